// `sluice dkim ...` (dkim_command.cc).
#pragma once

namespace sluice::cli {

// argv: the words after "dkim". Returns the exit status.
int DkimCommand(int argc, char** argv);

}  // namespace sluice::cli
