// `sluice sendmail` (also run as `sendmail`): the command-line interface of
// sendmail(8) that PHP's mail(), cron and monitoring tools call, submitting
// through the pickup directory. See sendmail_command.cc.
#pragma once

#include <string>

namespace sluice::cli {

// argv[0] is the command's own name ("sendmail"); `config_file` the
// configuration to read ("" for the built-in defaults). Returns a
// sysexits(3) code, as sendmail does.
int SendmailMain(int argc, char** argv, const std::string& config_file);

}  // namespace sluice::cli
