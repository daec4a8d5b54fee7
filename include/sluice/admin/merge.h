// One answer from the shards' control-socket replies (server/control_socket.h).
// Each shard answers for its own part (its queues, its counters) and domain
// commands only from the domain's owner shard, so a client asks every shard
// and merges. `sluice queue` (cli/queue_command.cc) and the HTTP admin API
// (server/http_admin.cc) both merge here, so they say the same thing: the
// JSON documents below are exactly what `sluice queue VERB --json` prints.
//
// What it trusts: the replies come from our own daemon; a shard's
// {"error":"..."} or malformed text is an error, never a crash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sluice/admin/json_value.h"

namespace sluice::admin {

// Every shard's reply parsed (in shard order). A shard's {"error":"..."}
// is the call's error (FailedPrecondition, its text); malformed text is
// Internal.
absl::StatusOr<std::vector<JsonValue>> ParseReplies(const std::vector<std::string>& replies);

// What a merge says. `status`: OK, or the reason the command did nothing
// (NotFound: no such mail or domain; FailedPrecondition: a state that does
// not allow it, or a shard that did not answer), with the CLI's message.
// `json`: the document `sluice queue VERB --json` prints (no final newline).
// `warnings`: said on stderr by the CLI, in "warnings" by the HTTP API.
struct Outcome {
  absl::Status status;
  std::string json;
  std::vector<std::string> warnings;
  uint64_t count = 0;      // domains flushed, recipients suspended/acted on
  uint64_t in_flight = 0;  // bounce/delete/hold/release: being attempted now
};

// The items of every reply's array (list, suspensions), sorted by "domain".
std::vector<const JsonValue*> SortedByDomain(const std::vector<JsonValue>& replies);

// list: one array of every shard's destination queues.
Outcome MergeList(const std::vector<JsonValue>& replies);
// stats: {"shards":[...],"totals":{...}}; totals add every counter but "shard".
Outcome MergeStats(const std::vector<JsonValue>& replies);
// flush [DOMAIN]: {"domains_flushed":N}; NotFound when DOMAIN had no mail.
Outcome MergeFlush(const std::vector<JsonValue>& replies, std::string_view domain);
// suspend DOMAIN: {"domain","until_us","reason","recipients"}.
Outcome MergeSuspend(const std::vector<JsonValue>& replies, std::string_view domain,
                     uint64_t until_us, std::string_view reason);
// resume DOMAIN: {"domain","resumed":true}; FailedPrecondition when it was
// not suspended.
Outcome MergeResume(const std::vector<JsonValue>& replies, std::string_view domain);
// suspensions: one array, sorted by domain.
Outcome MergeSuspensions(const std::vector<JsonValue>& replies);
// bounce|delete|hold|release with exactly one of `id` and `domain`:
// {"action","id"|"domain","recipients","in_flight"}; NotFound when nothing
// was queued (a domain hold is set anyway, with a warning), and for release
// FailedPrecondition when it was not held.
Outcome MergeSelection(const std::vector<JsonValue>& replies, std::string_view verb,
                       std::string_view id, std::string_view domain);
// messages: {"truncated":B,"jobs":[...]}, every shard's jobs (the delivery
// state only; `sluice queue messages` joins them with the spool's envelopes).
Outcome MergeJobs(const std::vector<JsonValue>& replies);

// "d0.Example." -> "d0.example", as queues and the owner shard name it.
std::string NormalDomain(std::string_view domain);
// "90s", "15m", "2h", "1d", or plain seconds; at least one second, at most
// ten years.
absl::StatusOr<uint64_t> ParseDurationSeconds(std::string_view text);

}  // namespace sluice::admin
