// The helper pool: a few threads (`helper-N`) that run the work a shard
// thread must never do itself because it blocks or burns milliseconds of CPU
// (PBKDF2 for AUTH, statvfs of the spool), and hand the result back to the
// shard that asked.
//
// A job is two closures: `work` runs on a helper thread, `done` runs later on
// the submitting shard's thread, from Drain(), which the shard calls when its
// wake-up eventfd fires (the pool writes that eventfd after queueing a
// completion, as another shard's mailbox post would). `done` therefore may
// touch the shard's state freely; `work` must touch only what it captured.
//
// Nothing the shard does here blocks: Submit pushes onto the shard's own
// single-producer ring and wakes a sleeping helper (a futex wake, no lock);
// Drain pops from the shard's own completion ring. The helpers serialise
// among themselves on one mutex to pop requests and push completions, which
// keeps both rings single-consumer/single-producer in effect; a shard never
// takes that mutex.
//
// Bounded: at most `slots_per_shard` jobs per shard are in flight (queued or
// running or completed but not drained). Past it Submit returns false and the
// caller degrades (a temporary failure for AUTH, a skipped refresh for
// statvfs). Because a completion needs a slot that its request held, the
// completion ring can never be full.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "sluice/base/spsc_ring.h"

namespace sluice::io {

class HelperPool {
 public:
  struct Job {
    absl::AnyInvocable<void()> work;  // on a helper thread
    absl::AnyInvocable<void()> done;  // on the submitting shard's thread
  };

  // `wake_fds[s]` is the eventfd shard s's loop keeps a read armed on; the
  // pool does not own it. `slots_per_shard` is rounded up to a power of two.
  // Threads are named `<name>-N` (the pickup's own pool: `pickup-0`).
  HelperPool(std::vector<int> wake_fds, int threads, size_t slots_per_shard,
             std::string name = "helper");
  ~HelperPool();  // stops and joins; jobs not yet run are dropped unrun
  HelperPool(const HelperPool&) = delete;
  HelperPool& operator=(const HelperPool&) = delete;

  // Shard `shard`'s thread only. False when the shard has no free slot.
  bool Submit(int shard, Job job);
  // Shard `shard`'s thread only: runs the `done` of every finished job.
  // Returns how many ran.
  size_t Drain(int shard);
  // Jobs of `shard` not yet drained (shard thread only).
  size_t in_flight(int shard) const { return lanes_[static_cast<size_t>(shard)]->in_flight; }
  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  struct Lane {
    explicit Lane(size_t slots) : requests(slots), completions(slots) {}
    base::SpscRing<Job> requests;     // shard -> helpers (popped under mu_)
    base::SpscRing<Job> completions;  // helpers (pushed under mu_) -> shard
    size_t in_flight = 0;             // shard thread only
    int wake_fd = -1;
  };

  void Run(int index);
  std::optional<std::pair<size_t, Job>> Next();

  const size_t slots_;
  const std::string name_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::mutex mu_;                      // helpers only: serialises pops and completion pushes
  size_t next_lane_ = 0;               // under mu_: round-robin start, so no shard starves another
  std::atomic<uint32_t> work_seq_{0};  // bumped per Submit; sleeping helpers wait on it
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace sluice::io
