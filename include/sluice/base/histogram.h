// A fixed-bucket histogram for latencies, recorded on a shard's hot path and
// copied into metrics snapshots (metrics/snapshot.h).
//
// The bucket bounds are a static array chosen at compile time (the
// k*BoundsUs tables below); a histogram holds a pointer to them and a fixed
// array of counts, so Record() never allocates, takes no lock and costs a
// short scan of at most kMaxBounds bounds plus two additions. A histogram is
// owned by one thread (its shard); other threads only ever see copies.
//
// Values are in microseconds; the renderer turns them into seconds.
// Limits: at most kMaxBounds finite bounds; the sum wraps after 2^64 µs
// (584,000 years of latency), which is never reached.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::base {

class Histogram {
 public:
  // Finite upper bounds; a histogram has one more bucket (+Inf).
  static constexpr size_t kMaxBounds = 20;

  // `bounds_us` is strictly increasing, at most kMaxBounds long, and must
  // outlive the histogram and its copies (use the static tables below).
  explicit constexpr Histogram(std::span<const uint64_t> bounds_us) : bounds_(bounds_us) {}

  void Record(uint64_t value_us) {
    size_t i = 0;
    while (i < bounds_.size() && value_us > bounds_[i]) ++i;
    ++counts_[i];
    sum_us_ += value_us;
  }

  // Adds `other`'s counts (same bounds: the caller checks same_bounds()).
  void Merge(const Histogram& other) {
    for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] += other.counts_[i];
    sum_us_ += other.sum_us_;
  }
  bool same_bounds(const Histogram& other) const { return bounds_.data() == other.bounds_.data(); }

  std::span<const uint64_t> bounds_us() const { return bounds_; }
  // Observations in bucket i (not cumulative): bounds_us()[i-1] < v <=
  // bounds_us()[i]; bucket bounds_us().size() is +Inf.
  uint64_t bucket(size_t i) const { return counts_[i]; }
  uint64_t count() const {
    uint64_t n = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) n += counts_[i];
    return n;
  }
  uint64_t sum_us() const { return sum_us_; }

 private:
  std::span<const uint64_t> bounds_;
  std::array<uint64_t, kMaxBounds + 1> counts_{};
  uint64_t sum_us_ = 0;
};

// Spool group commit (writev + fdatasync [+ directory fsync]): 100 µs
// (a fast NVMe cache) to 2.5 s (a disk in trouble).
inline constexpr std::array<uint64_t, 14> kCommitBoundsUs = {
    100,    250,    500,     1'000,   2'500,   5'000,     10'000,
    25'000, 50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000};

// One DNS query (sent to answered or failed): 0.5 ms (a local cache) to
// 30 s (c-ares' retries against a dead server).
inline constexpr std::array<uint64_t, 15> kDnsBoundsUs = {
    500,     1'000,   2'500,     5'000,     10'000,    25'000,     50'000,    100'000,
    250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000, 30'000'000};

// A recipient's time in the queue, from its message's acceptance to its
// final outcome: 10 ms (a relay that keeps up) to 5 days (expiry).
inline constexpr std::array<uint64_t, 16> kDeliveryBoundsUs = {
    10'000,         50'000,         100'000,        500'000,        1'000'000,   5'000'000,
    10'000'000,     30'000'000,     60'000'000,     300'000'000,    900'000'000, 3'600'000'000,
    14'400'000'000, 43'200'000'000, 86'400'000'000, 432'000'000'000};

static_assert(kCommitBoundsUs.size() <= Histogram::kMaxBounds);
static_assert(kDnsBoundsUs.size() <= Histogram::kMaxBounds);
static_assert(kDeliveryBoundsUs.size() <= Histogram::kMaxBounds);

}  // namespace sluice::base
