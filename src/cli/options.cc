// Command-line parsing; see options.h.
#include "options.h"

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "queue_command.h"

namespace sluice::cli {
namespace {

bool TakesValue(std::string_view flag) {
  for (const char* f :
       {"--config", "--listen", "--spool", "--shards", "--relay-from", "--hostname",
        "--max-message-size", "--max-recipients", "--log", "--pickup", "--from", "--to", "--dns",
        "--mx-port", "--source-address", "--route", "--control-dir", "--batch", "--recipient",
        // TLS/AUTH
        "--listen-tls", "--tls-cert", "--tls-key", "--password-file", "--user", "--http"}) {
    if (flag == f) return true;
  }
  return false;
}

// Read when neither --config nor $SLUICE_CONFIG names a file.
constexpr char kDefaultConfigFile[] = "/etc/sluice/sluice.toml";

}  // namespace

bool ParseArgs(int argc, char** argv, int first, Options& o, std::string& error) {
  for (int i = first; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    std::string flag(arg);
    bool queue_value = false;
    const bool queue_flag = IsQueueFlag(arg.substr(0, arg.find('=')), queue_value);
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string_view::npos) {
      flag = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
    } else if (TakesValue(arg) || (queue_flag && queue_value)) {
      if (i + 1 >= argc) {
        error = absl::StrCat(flag, " needs a value");
        return false;
      }
      value = argv[++i];
    }
    if (queue_flag) {
      o.queue_flags[flag] = queue_value ? value : "1";
    } else if (flag == "--json") {
      o.json = true;
    } else if (flag == "-t") {
      o.recipients_from_headers = true;
    } else if (flag == "--from") {
      o.from = value;
      o.from_given = true;
    } else if (flag == "--to") {
      o.to.push_back(value);
    } else if (flag == "--batch") {
      o.batch = value;
    } else if (flag == "--recipient") {
      o.recipient = value;
    } else if (flag == "--config") {
      o.config_file = value;
    } else if (flag == "--user") {
      o.user = value;
    } else if (flag == "--listen") {
      o.listen.push_back(value);
    } else if (flag == "--dns") {
      o.dns.push_back(value);
    } else if (flag == "--route") {
      o.routes.push_back(value);
    } else if (flag == "--no-delivery") {
      o.no_delivery = true;
    } else if (TakesValue(flag)) {
      o.overrides.emplace_back(flag, value);
    } else if (flag.rfind("--", 0) == 0) {
      error = absl::StrCat("unknown option ", flag);
      return false;
    } else {
      o.positional.push_back(flag);
    }
  }
  return true;
}

std::string DefaultConfigFile() {
  if (const char* env = std::getenv("SLUICE_CONFIG"); env != nullptr) return env;
  if (access(kDefaultConfigFile, F_OK) == 0) return kDefaultConfigFile;
  return "";
}

}  // namespace sluice::cli
