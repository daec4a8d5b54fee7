// The commands that talk to the running daemon: `reload`, `log reopen`,
// `metrics` and `queue ...`. Each finds the daemon's spool or control
// directory from the same configuration file and flags as `serve`
// (load_config.h) and hands over to its own module.
#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "admin_client.h"
#include "commands.h"
#include "load_config.h"
#include "log_command.h"
#include "queue_command.h"
#include "reload_command.h"
#include "usage.h"

namespace sluice::cli {

// `sluice reload` (reload_command.h): the spool from the configuration as
// `serve` loads it. A file that does not load is reported here and nothing
// is sent: the daemon would refuse it the same way.
int RunReload(const Options& o) {
  config::Config c;
  std::string error;
  if (!LoadConfig(o, c, error)) {
    std::fprintf(stderr, "sluice: reload: %s; nothing sent to the daemon\n", error.c_str());
    return 1;
  }
  return ReloadCommand(c.spool_dir);
}

// `sluice log reopen` (log_command.h): the spool and the log's name from
// the configuration as `serve` loads them.
int RunLog(const Options& o) {
  if (o.positional.size() != 2 || o.positional[1] != "reopen") {
    return Usage("log takes one command: reopen");
  }
  config::Config c;
  std::string error;
  if (!LoadConfig(o, c, error)) {
    std::fprintf(stderr, "sluice: log reopen: %s\n", error.c_str());
    return 1;
  }
  return LogReopenCommand(c.spool_dir, c.log_file);
}

// `sluice metrics`: the daemon's Prometheus text (server/metrics_text.h)
// through any shard's control socket; exit 1 when no daemon answers.
int RunMetrics(const Options& o) {
  if (o.positional.size() > 1) return Usage("metrics takes no arguments");
  const std::string dir = ControlDir(o);
  absl::StatusOr<std::string> text = AdminCallAny(dir, "metrics");
  if (!text.ok()) {
    std::fprintf(stderr, "sluice: metrics: %s\n", std::string(text.status().message()).c_str());
    return 1;
  }
  if (text->empty() || text->front() == '{') {  // an older daemon: {"error":"unknown command"}
    std::fprintf(stderr, "sluice: metrics: unexpected reply: %s\n", text->substr(0, 200).c_str());
    return 1;
  }
  std::fwrite(text->data(), 1, text->size(), stdout);
  std::fputc('\n', stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

// `sluice queue ...` (queue_command.h): the spool and control directories
// come from --config/--spool/--control-dir as for `serve`.
int RunQueue(const Options& o) {
  QueueContext q;
  q.args.assign(o.positional.begin() + 1, o.positional.end());
  if (q.args.empty() || q.args[0] == "help")
    return QueueUsage(q.args.empty() ? "queue needs a command" : "");
  q.spool_dir = SpoolDir(o);
  q.control_dir = ControlDir(o);
  q.json = o.json;
  q.recipient = o.recipient;
  q.flags = o.queue_flags;
  return RunQueueCommand(q);
}

}  // namespace sluice::cli
