// Gives the memory the shards freed back to the kernel: glibc's malloc_trim,
// run by the main thread every `interval` (server.memory_trim_interval_s).
//
// Why (docs/BENCHMARKS.md, "Soak"): glibc keeps freed memory in its arenas,
// one per shard thread, and returns it only from the top of a heap. A burst
// (a backlog of deferred mail, a thousand outbound connections opening at
// once) raises a shard's heap; the chunks that stay in use afterwards (a
// queued message's record, a pooled connection's buffers) pin it, so RSS
// kept every burst's high-water mark although the bytes in use stayed flat.
// malloc_trim(0) hands back every free page inside the heaps as well
// (madvise(MADV_DONTNEED)), so RSS follows what is in use.
//
// Trusts: glibc (on another C library malloc_trim does not exist and
// TrimFreeMemory does nothing). Limits: a trim locks one arena at a time
// while it walks that arena's free chunks and hands pages back (17 ms to
// release 63 MiB in the unit test), so a shard allocating from that arena
// meanwhile waits; pages handed back cost a page fault when used again.
// Hence an interval, not every turn.
#pragma once

#include <cstdint>

namespace sluice::server {

// One malloc_trim(0) over every arena. True when glibc released memory.
bool TrimFreeMemory();

// When the next trim is due, on the monotonic millisecond clock.
class MemoryTrimSchedule {
 public:
  // `interval_s` 0: never.
  MemoryTrimSchedule(uint32_t interval_s, uint64_t now_ms)
      : interval_ms_(uint64_t{interval_s} * 1000), next_ms_(now_ms + interval_ms_) {}

  bool enabled() const { return interval_ms_ != 0; }
  // Milliseconds until the next trim (0: due now); UINT64_MAX when disabled.
  uint64_t MsUntilDue(uint64_t now_ms) const {
    if (!enabled()) return UINT64_MAX;
    return next_ms_ > now_ms ? next_ms_ - now_ms : 0;
  }
  // Trims when due (returns true then) and schedules the next one an
  // interval after `now_ms`: a late trim does not make the next ones
  // come in a burst.
  bool RunIfDue(uint64_t now_ms) {
    if (!enabled() || now_ms < next_ms_) return false;
    TrimFreeMemory();
    next_ms_ = now_ms + interval_ms_;
    ++trims_;
    return true;
  }
  uint64_t trims() const { return trims_; }

 private:
  uint64_t interval_ms_;
  uint64_t next_ms_;
  uint64_t trims_ = 0;
};

}  // namespace sluice::server
