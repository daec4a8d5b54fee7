// Cross-shard messages: one bounded lock-free SPSC ring per (source, target)
// pair, and a wake-up per target.
//
// A shard posts to another only through here; nothing else is shared. Post
// never blocks and never allocates: a full ring returns false and the sender
// decides (keep the work and retry next turn, or refuse it). The receiver
// drains every ring aimed at it when it is woken. A wake is sent only when
// the target is not already due to drain (an atomic flag), so a burst of
// posts costs one wake.
//
// The wake: when both shards registered their io_uring (UseRing) and the
// kernel has IORING_OP_MSG_RING, the sender's ring posts a completion for
// the target's `wake` straight into the target's ring; it leaves with the
// sender's next submit, so the shard thread makes no syscall of its own.
// Otherwise (and for threads that are not shards: stop, reload, helpers)
// the target's eventfd is written; the target keeps a read armed on it.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "sluice/base/check.h"
#include "sluice/base/spsc_ring.h"
#include "sluice/io/loop.h"

namespace sluice::io {

template <typename T>
class Mailboxes {
 public:
  Mailboxes(int shards, size_t slots) : shards_(shards), targets_(static_cast<size_t>(shards)) {
    for (int t = 0; t < shards; ++t) {
      Target& target = targets_[static_cast<size_t>(t)];
      target.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      SLUICE_CHECK(target.wake_fd >= 0);
      target.fallback.fd = target.wake_fd;
      for (int s = 0; s < shards; ++s) {
        target.from.push_back(std::make_unique<base::SpscRing<T>>(slots));
      }
    }
  }
  ~Mailboxes() {
    for (Target& t : targets_) close(t.wake_fd);
  }
  Mailboxes(const Mailboxes&) = delete;
  Mailboxes& operator=(const Mailboxes&) = delete;

  int shards() const { return shards_; }
  // The eventfd the target's loop keeps a read armed on (wakes from other
  // threads, and from shards when MSG_RING is not available).
  int wake_fd(int target) const { return targets_[static_cast<size_t>(target)].wake_fd; }

  // Set-up, on shard `shard`'s thread, before any shard posts (the start-up
  // latch orders it): wakes aimed at `shard` come as completions of `wake`
  // on `ring`, and posts from `shard` send them through `ring`.
  void UseRing(int shard, Loop* ring, Completion* wake) {
    if (!ring->can_post_messages()) return;
    Target& t = targets_[static_cast<size_t>(shard)];
    t.ring = ring;
    t.ring_fd = ring->fd();
    t.ring_wake = wake;
  }

  // Called only by shard `source`'s thread.
  bool Post(int source, int target, T message) {
    Target& t = targets_[static_cast<size_t>(target)];
    if (!t.from[static_cast<size_t>(source)]->TryPush(std::move(message))) return false;
    if (!t.wake_pending.exchange(true, std::memory_order_acq_rel)) {
      Loop* own = targets_[static_cast<size_t>(source)].ring;
      if (own != nullptr && t.ring_wake != nullptr) {
        own->PostMessage(t.ring_fd, t.ring_wake, &t.fallback);
      } else {
        WriteWake(t.wake_fd);
      }
    }
    return true;
  }

  // Called only by shard `target`'s thread, after a wake (either kind).
  // Returns the number of messages handed to `fn`.
  template <typename Fn>
  size_t Drain(int target, Fn&& fn) {
    Target& t = targets_[static_cast<size_t>(target)];
    // Clear first: a post after this point writes a new wake. An exchange
    // (not a store) so that we acquire every push whose poster saw the flag
    // still set and skipped the wake.
    t.wake_pending.exchange(false, std::memory_order_acq_rel);
    size_t count = 0;
    for (auto& ring : t.from) {
      while (std::optional<T> m = ring->TryPop()) {
        fn(std::move(*m));
        ++count;
      }
    }
    return count;
  }

 private:
  static void WriteWake(int fd) {
    const uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;  // EAGAIN only if the counter is saturated: a wake is pending anyway
  }

  // Runs on the sender's thread only when the kernel refused a MSG_RING:
  // the target is woken through its eventfd instead, so no post is stranded.
  class Fallback final : public Completion {
   public:
    void OnComplete(int result, uint32_t) override {
      if (result < 0) WriteWake(fd);
    }
    int fd = -1;
  };

  struct Target {
    int wake_fd = -1;
    Loop* ring = nullptr;  // the target's own ring, when it posts by MSG_RING
    int ring_fd = -1;
    Completion* ring_wake = nullptr;
    Fallback fallback;
    std::atomic<bool> wake_pending{false};
    std::vector<std::unique_ptr<base::SpscRing<T>>> from;  // indexed by source shard
    Target() = default;
    Target(Target&&) noexcept { SLUICE_CHECK(false); }  // only default-constructed in place
  };

  const int shards_;
  std::vector<Target> targets_;
};

}  // namespace sluice::io
