// A log-bucket latency histogram in the spirit of HdrHistogram: values (in
// microseconds) are binned by their power of two and 64 linear sub-buckets
// inside it, so every recorded value is kept within 1/64 (1.6 %) of its
// true value from 1 us to hours, in 64 x 64 counters. No dependency.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace sluice::tools {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr int kSub = 1 << kSubBits;

  static int BucketOf(uint64_t v) {
    if (v < kSub) return static_cast<int>(v);
    const int msb = 63 - std::countl_zero(v);  // >= kSubBits
    const int shift = msb - kSubBits;
    return (shift + 1) * kSub + static_cast<int>((v >> shift) & (kSub - 1));
  }
  // Upper bound of a bucket (the largest value that maps to it).
  static uint64_t BucketHigh(int b) {
    if (b < kSub) return static_cast<uint64_t>(b);
    const int shift = b / kSub - 1;
    const uint64_t base = (uint64_t{kSub} | static_cast<uint64_t>(b % kSub)) << shift;
    return base + ((uint64_t{1} << shift) - 1);
  }

  void Record(uint64_t v) {
    ++counts_[static_cast<size_t>(BucketOf(v))];
    ++total_;
    if (v > max_) max_ = v;
    if (total_ == 1 || v < min_) min_ = v;
    sum_ += v;
  }
  void Merge(const LatencyHistogram& o) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    if (o.total_ > 0 && (total_ == 0 || o.min_ < min_)) min_ = o.min_;
    total_ += o.total_;
    if (o.max_ > max_) max_ = o.max_;
    sum_ += o.sum_;
  }
  // The value at quantile q (0..1): the upper bound of the bucket holding it,
  // clamped to the largest value seen.
  uint64_t Quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_) + 0.5);
    if (rank < 1) rank = 1;
    if (rank > total_) rank = total_;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const uint64_t high = BucketHigh(static_cast<int>(i));
        return high < max_ ? high : max_;
      }
    }
    return max_;
  }
  uint64_t count() const { return total_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return min_; }
  double mean() const {
    return total_ ? static_cast<double>(sum_) / static_cast<double>(total_) : 0;
  }

 private:
  std::array<uint64_t, 64 * kSub> counts_{};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace sluice::tools
