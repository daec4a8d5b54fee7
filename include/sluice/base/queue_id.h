// Queue ids: unique across shards and restarts, and time-ordered.
//
// An id is 64 bits: microseconds since the Unix epoch in the high 56 bits and
// the shard number in the low 8. Each shard's generator never repeats or goes
// back (it steps one microsecond past its last id when the clock stalls or
// steps back), and at start-up it is seeded past the newest id found in the
// spool, so a clock that went backwards across a restart still yields fresh
// ids. The text form is 13 characters of Crockford base32, which sorts in the
// same order as the numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace sluice::base {

class QueueId {
 public:
  static constexpr size_t kTextSize = 13;

  constexpr QueueId() = default;
  constexpr explicit QueueId(uint64_t value) : value_(value) {}

  uint64_t value() const { return value_; }
  uint64_t micros() const { return value_ >> 8; }
  int shard() const { return static_cast<int>(value_ & 0xff); }

  std::string ToString() const;
  // Writes exactly kTextSize characters.
  void Format(char* out) const;
  static std::optional<QueueId> Parse(std::string_view text);

  friend bool operator==(QueueId, QueueId) = default;
  friend auto operator<=>(QueueId, QueueId) = default;
  template <typename H>
  friend H AbslHashValue(H h, QueueId id) {
    return H::combine(std::move(h), id.value_);
  }

 private:
  uint64_t value_ = 0;
};

class QueueIdGenerator {
 public:
  explicit QueueIdGenerator(int shard);
  // Never returns an id at or below `floor` (the newest id seen in the spool).
  void RaiseFloor(QueueId floor);
  QueueId Next(uint64_t now_micros);

 private:
  uint64_t shard_;
  uint64_t last_micros_ = 0;
};

}  // namespace sluice::base
