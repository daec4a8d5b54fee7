// A bounded, lock-free, single-producer single-consumer ring: the wire
// between two shards (one ring per (source, target) pair, so every ring has
// exactly one writer and one reader). Push fails when full instead of
// growing; the caller decides whether to retry later or refuse work.
//
// Head and tail live on separate cache lines, and each side caches the other
// side's index so that an uncontended push or pop touches one shared line.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <utility>

#include "sluice/base/check.h"

namespace sluice::base {

template <typename T>
class SpscRing {
 public:
  explicit SpscRing(size_t capacity_pow2)
      : mask_(capacity_pow2 - 1), slots_(new Slot[capacity_pow2]) {
    SLUICE_CHECK(capacity_pow2 >= 2 && (capacity_pow2 & mask_) == 0);
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;
  ~SpscRing() {
    while (TryPop()) {
    }
  }

  size_t capacity() const { return mask_ + 1; }

  // Producer side.
  bool TryPush(T value) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ > mask_) return false;
    }
    new (&slots_[tail & mask_].storage) T(std::move(value));
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer side.
  std::optional<T> TryPop() {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return std::nullopt;
    }
    T* slot = std::launder(reinterpret_cast<T*>(&slots_[head & mask_].storage));
    std::optional<T> out(std::move(*slot));
    slot->~T();
    head_.store(head + 1, std::memory_order_release);
    return out;
  }

 private:
  struct Slot {
    alignas(T) unsigned char storage[sizeof(T)];
  };
  static constexpr size_t kLine = 64;

  const size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  alignas(kLine) std::atomic<size_t> head_{0};
  size_t tail_cache_ = 0;  // consumer's view of tail
  alignas(kLine) std::atomic<size_t> tail_{0};
  size_t head_cache_ = 0;  // producer's view of head
};

}  // namespace sluice::base
