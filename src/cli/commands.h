// The entry of each `sluice` command that main.cc dispatches to with the
// parsed command line (options.h). Each returns the process's exit code:
// 0 success, 1 run-time failure, 2 usage or configuration error. The
// commands with more to them have their own headers (queue_command.h,
// reload_command.h, log_command.h, dkim_command.h, sendmail_command.h);
// these entries read the configuration and call them.
#pragma once

#include "options.h"
#include "sluice/config/config.h"

namespace sluice::cli {

// check_config_command.cc: `sluice check-config [--user NAME]`.
int RunCheckConfig(const Options& o);

// daemon_commands.cc: the commands that talk to the running daemon.
int RunReload(const Options& o);   // `sluice reload`
int RunLog(const Options& o);      // `sluice log reopen`
int RunMetrics(const Options& o);  // `sluice metrics`
int RunQueue(const Options& o);    // `sluice queue ...`

// inject_command.cc: `sluice inject --from A --to B` / `-t`; with --batch,
// inject_batch_command.cc.
int RunInject(const Options& o);
int RunInjectBatch(const Options& o, const config::Config& c);

// credential_commands.cc: `sluice passwd USER`, `sluice http-token NAME`.
int RunPasswd(const Options& o);
int RunHttpToken(const Options& o);

}  // namespace sluice::cli
