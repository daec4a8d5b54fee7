// Shared vocabulary of the pure queue module: time, jobs, replies.
//
// Nothing in queue/ reads a clock: every call takes `now`, microseconds on
// any monotonic-enough scale the caller chooses (the shard passes wall-clock
// microseconds so that a job's age can be read from its queue id).
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>

#include "absl/container/inlined_vector.h"
#include "sluice/base/queue_id.h"

namespace sluice::queue {

using Micros = uint64_t;
inline constexpr Micros kNever = std::numeric_limits<Micros>::max();
inline constexpr Micros kSecond = 1'000'000;
inline constexpr Micros kMinute = 60 * kSecond;
inline constexpr Micros kHour = 60 * kMinute;
inline constexpr Micros kDay = 24 * kHour;

// One job per (message, recipient domain). The recipients are indexes into
// the message's envelope recipient list; the first two live inline, so the
// common one- or two-recipient job costs no allocation. 40 bytes.
//
// The job's age is the age of its message: QueueId carries the accept time
// (microseconds), so `message.micros()` is when the job was first queued.
struct Job {
  base::QueueId message;
  uint16_t failures = 0;  // transient failures so far; the next attempt is failures + 1
  // The reply of the last failed attempt, as an index into its DomainQueue's
  // table of error texts (DomainQueue::ErrorText; 0: none yet). Fits in the
  // padding after `failures`: the job stays 40 bytes.
  uint16_t last_error = 0;
  absl::InlinedVector<uint32_t, 2> recipients;

  Micros queued_at() const { return message.micros(); }
};
static_assert(sizeof(Job) <= 40, "a deferred backlog pays for every byte of Job");

// Where a queued job is (administration views).
enum class JobState : uint8_t { kReady, kDeferred, kHeld };

// The reply that decided an attempt: the SMTP code (0 for "no reply":
// connection failure, timeout, DNS trouble) and its text.
struct Reply {
  int code = 0;
  std::string_view text;
};

// Handle of an outbound connection within one DomainQueue.
using ConnectionId = uint32_t;
inline constexpr ConnectionId kNoConnection = std::numeric_limits<ConnectionId>::max();

}  // namespace sluice::queue
