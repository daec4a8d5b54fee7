// A bounded lock-free single-producer single-consumer ring of bytes that
// carries whole lines: the producer (one shard thread) publishes a line
// only when all of it fits, so the consumer (the log writer) always reads
// complete lines and never waits. Full means the line is refused; the
// caller counts it as dropped. Neither side ever blocks or allocates.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/base/check.h"

namespace sluice::diag {

class ByteRing {
 public:
  explicit ByteRing(size_t capacity_pow2)
      : mask_(capacity_pow2 - 1), bytes_(new char[capacity_pow2]) {
    SLUICE_CHECK(capacity_pow2 >= 64 && (capacity_pow2 & mask_) == 0);
  }
  ByteRing(const ByteRing&) = delete;
  ByteRing& operator=(const ByteRing&) = delete;

  size_t capacity() const { return mask_ + 1; }

  // Producer: all of `line` or nothing.
  bool TryPush(std::string_view line) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    const uint64_t head = head_.load(std::memory_order_acquire);
    if (line.size() > capacity() - (tail - head)) return false;
    const size_t at = static_cast<size_t>(tail & mask_);
    const size_t first = std::min(line.size(), capacity() - at);
    std::memcpy(bytes_.get() + at, line.data(), first);
    std::memcpy(bytes_.get(), line.data() + first, line.size() - first);
    tail_.store(tail + line.size(), std::memory_order_release);
    return true;
  }

  // Consumer: appends everything published so far to `out`; returns the
  // number of bytes taken.
  size_t DrainTo(std::string& out) {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    const uint64_t tail = tail_.load(std::memory_order_acquire);
    const size_t size = static_cast<size_t>(tail - head);
    if (size == 0) return 0;
    const size_t at = static_cast<size_t>(head & mask_);
    const size_t first = std::min(size, capacity() - at);
    out.append(bytes_.get() + at, first);
    out.append(bytes_.get(), size - first);
    head_.store(tail, std::memory_order_release);
    return size;
  }

 private:
  const uint64_t mask_;
  std::unique_ptr<char[]> bytes_;
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
};

}  // namespace sluice::diag
