// The configuration a command runs with: built-in defaults < --config FILE
// < flags, then checked (config::Config::Finalize). `serve`, `check-config`,
// `reload` and `log reopen` load it whole; the queue and metrics commands
// need only the spool and control directories, which they read leniently
// (a file that does not load leaves the defaults).
#pragma once

#include <string>

#include "options.h"
#include "sluice/config/config.h"

namespace sluice::cli {

// Builds the configuration: defaults, file, flags; then checks it, and
// turns shards = 0 into one per CPU. False with `error` set otherwise.
bool LoadConfig(const Options& o, config::Config& c, std::string& error);

// The spool directory from --config and --spool, without checking the rest.
std::string SpoolDir(const Options& o);

// The control-socket directory from --config, --spool and --control-dir
// (default SPOOL/control), without checking the rest.
std::string ControlDir(const Options& o);

}  // namespace sluice::cli
