// `sluice queue ...`: the administrator's view of and hand on the queue,
// modelled on Postfix's mailq/postqueue/postsuper/postcat/qshape and
// KumoMTA's suspensions (docs/QUEUE.md maps one to the other).
//
// Commands that change or report the delivery state talk to the running
// daemon through its per-shard control sockets (server/control_socket.h)
// and merge the shards' JSON replies; `messages`, `show` and `shape` read
// the spool files too and fall back to them alone when no daemon answers.
// Every command takes --json (one JSON document on stdout); text output is
// an aligned table with a header. Exit codes: 0 success, 1 failure (no
// daemon, unknown id or domain, a domain that is not suspended or held),
// 2 usage.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace sluice::cli {

struct QueueContext {
  std::vector<std::string> args;  // after "queue": the verb and its operands
  std::string spool_dir;
  std::string control_dir;
  bool json = false;
  std::string recipient;  // show --recipient
  // --id, --domain, --for, --reason, --top, --limit (values) and
  // --envelope, --body, --spool-only (present: "1").
  std::map<std::string, std::string> flags;
};

// Flags only queue commands take: TakesValue tells which need a value.
bool IsQueueFlag(std::string_view flag, bool& takes_value);

int RunQueueCommand(const QueueContext& q);

// The views (queue_view.cc).
int QueueMessages(const QueueContext& q);
int QueueShow(const QueueContext& q);
int QueueShape(const QueueContext& q);

// Shared by both files.
int QueueUsage(const std::string& error);
int Fail(const std::string& message);  // "sluice: message" on stderr, returns 1
std::string Flag(const QueueContext& q, const std::string& name);

}  // namespace sluice::cli
