// The sluice command's help: the whole text (`sluice help`), one command's
// part of it (`sluice help COMMAND`, `sluice COMMAND --help`), and the
// one-line usage error every command gives.
#pragma once

#include <string>
#include <string_view>

namespace sluice::cli {

// "" prints the whole text on standard output and returns 0; anything else
// is a usage error: one line naming it and where help is, exit 2.
int Usage(const std::string& error);

// The lines of the help that describe `command` (its entry and the
// indented lines under it), then the options. 0, or 2 for an unknown
// command.
int CommandHelp(std::string_view command);

}  // namespace sluice::cli
