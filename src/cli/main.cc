// The sluice command line: reads the command name and dispatches. The
// help text is usage.cc, flag parsing options.cc, loading the
// configuration load_config.cc, and each command's entry is named in
// commands.h (or its own header).
//
// Configuration precedence: built-in defaults < --config FILE < flags. Exit
// codes: 0 success, 1 run-time failure, 2 usage or configuration error.
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "commands.h"
#include "dkim_command.h"
#include "load_config.h"
#include "options.h"
#include "sendmail_command.h"
#include "sluice/base/strings.h"
#include "sluice/config/config.h"
#include "sluice/server/server.h"
#include "usage.h"

namespace sluice::cli {
namespace {

// `sluice serve`: runs the relay (server/server.h) until a stop signal.
int RunServe(const Options& o) {
  config::Config c;
  std::string error;
  if (!LoadConfig(o, c, error)) {
    std::fprintf(stderr, "sluice: %s\n", error.c_str());
    return 2;
  }
  // SIGHUP loads the configuration again from the same file and flags.
  server::ConfigLoader loader = [o]() -> absl::StatusOr<config::Config> {
    config::Config fresh;
    std::string why;
    if (!LoadConfig(o, fresh, why)) return absl::InvalidArgumentError(why);
    return fresh;
  };
  absl::Status s = server::Serve(c, std::move(loader));
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

// Run as "sendmail" (a link, deploy/README.md) or as `sluice sendmail`.
bool IsSendmail(std::string_view argv0) {
  const size_t slash = argv0.rfind('/');
  return argv0.substr(slash == std::string_view::npos ? 0 : slash + 1) == "sendmail";
}

int Main(int argc, char** argv) {
  if (IsSendmail(argv[0])) return SendmailMain(argc, argv, DefaultConfigFile());
  if (argc < 2) return Usage("no command given");
  const std::string_view command = argv[1];
  if (command == "sendmail") return SendmailMain(argc - 1, argv + 1, DefaultConfigFile());
  if (command == "--help" || command == "-h") return Usage("");
  if (command == "version" || command == "--version") {
    std::printf("sluice 0.1.0\n");
    return 0;
  }
  if (command == "help") return argc > 2 ? CommandHelp(argv[2]) : Usage("");
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return CommandHelp(command);
  }
  if (command == "dkim") return DkimCommand(argc - 2, argv + 2);
  Options o;
  std::string error;
  if (!ParseArgs(argc, argv, 1, o, error)) return Usage(error);
  if (o.config_file.empty()) o.config_file = DefaultConfigFile();
  if (command == "serve") return RunServe(o);
  if (command == "check-config") return RunCheckConfig(o);
  if (command == "inject") return RunInject(o);
  if (command == "passwd") return RunPasswd(o);
  if (command == "http-token") return RunHttpToken(o);
  if (command == "queue") return RunQueue(o);
  if (command == "metrics") return RunMetrics(o);
  if (command == "reload") return RunReload(o);
  if (command == "log") return RunLog(o);
  return Usage(absl::StrCat("unknown command '", base::Av(command), "'"));
}

}  // namespace
}  // namespace sluice::cli

int main(int argc, char** argv) { return sluice::cli::Main(argc, argv); }
