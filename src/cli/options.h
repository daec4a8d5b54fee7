// The sluice command line, parsed: which flags take a value, where each
// lands (Options), and the configuration file used when no --config is
// given. Commands turn Options into a configuration with LoadConfig
// (load_config.h).
//
// Trusts nothing in argv. Limits: flags are --name VALUE or --name=VALUE;
// a flag that is neither known here nor a queue flag (queue_command.h) is
// an error; anything not starting with "--" is a positional argument.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sluice::cli {

struct Options {
  std::string config_file;
  std::vector<std::string> listen;
  std::vector<std::string> dns;     // --dns, replaces delivery.dns when given
  std::vector<std::string> routes;  // --route PATTERN=NEXT_HOP, replaces [[route]] when given
  bool no_delivery = false;
  std::vector<std::pair<std::string, std::string>> overrides;  // flag, value
  bool json = false;
  bool recipients_from_headers = false;  // inject -t
  std::string from;                      // inject --from
  bool from_given = false;
  std::vector<std::string> to;                     // inject --to
  std::string batch;                               // inject --batch MANIFEST
  std::string recipient;                           // queue show --recipient ADDRESS
  std::string user;                                // check-config --user NAME
  std::map<std::string, std::string> queue_flags;  // queue_command.h
  std::vector<std::string> positional;
};

// Parses argv[first..argc) into `o`; false with `error` set on an unknown
// flag or a missing value.
bool ParseArgs(int argc, char** argv, int first, Options& o, std::string& error);

// The configuration file when no --config is given: $SLUICE_CONFIG (empty:
// none, the built-in defaults), else /etc/sluice/sluice.toml when it
// exists, else "".
std::string DefaultConfigFile();

}  // namespace sluice::cli
