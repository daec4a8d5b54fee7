// `sluice queue ...` against a running daemon: the client side of the
// per-shard control sockets (server/control_socket.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/admin/json_value.h"
#include "sluice/admin/merge.h"

namespace sluice::cli {

using admin::JsonValue;
using admin::ParseDurationSeconds;
using admin::ParseJson;

// Sends `line` to every "<control_dir>/<n>.sock" (in shard order) and
// returns each reply. NotFound when no daemon answers.
absl::StatusOr<std::vector<std::string>> AdminCall(const std::string& control_dir,
                                                   const std::string& line);

// Sends `line` to the first shard that answers (a command every shard
// answers the same way, e.g. `metrics`) and returns its reply.
absl::StatusOr<std::string> AdminCallAny(const std::string& control_dir, const std::string& line);

// AdminCall with every reply parsed as JSON; a shard's {"error":"..."} reply
// (or a malformed one) is the call's error.
absl::StatusOr<std::vector<JsonValue>> AdminCallJson(const std::string& control_dir,
                                                     const std::string& line);

// Display helpers (wall-clock microseconds): "45s", "12m", "3h", "2d";
// "-" for 0.
std::string FormatAge(uint64_t then_us, uint64_t now_us);
// "now", "in 4m", "-" for 0.
std::string FormatDue(uint64_t at_us, uint64_t now_us);
// "2026-12-07 05:40:01Z".
std::string FormatTime(uint64_t us);

}  // namespace sluice::cli
