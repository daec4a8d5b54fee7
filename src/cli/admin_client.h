// `sluice queue ...` against a running daemon: the client side of the
// per-shard control sockets (server/control_socket.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::cli {

// Sends `line` to every "<control_dir>/<n>.sock" (in shard order) and
// returns each reply. NotFound when no daemon answers.
absl::StatusOr<std::vector<std::string>> AdminCall(const std::string& control_dir,
                                                   const std::string& line);

// `queue list`: per-domain queues of the running daemon, merged over shards.
// Text: DOMAIN READY DEFERRED IN-FLIGHT RCPTS CONNS OLDEST NEXT-ATTEMPT [flags];
// --json: one JSON object per line.
int PrintDomains(const std::vector<std::string>& replies, bool json);

}  // namespace sluice::cli
