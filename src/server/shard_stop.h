// How the shards stop together. RequestStop (any thread) sets a flag and
// wakes the shard; at its next wake-up the shard begins (Shard::BeginStop:
// no more accepts, every session finishes its message and says 421, the
// engine, pickup, control socket and HTTP listener stop) with a deadline of
// server.shutdown_grace_s. Then, once per loop turn (Shard::StopTurn):
//   1. When this shard's own work ended (sessions, spool writes, deliveries,
//      the notes it still has to post, finals waiting for the log), or the
//      deadline passed, it posts its last note: from then on it sends none,
//      and says so on the barrier shared by every shard (PostLast).
//   2. It leaves when every shard got that far (so no final outcome can
//      still be on its way here) and its ledger and log are idle. Some time
//      past the deadline it leaves regardless: what is not durable is
//      delivered again after the restart, never lost.
// This class holds the protocol's state; the shard supplies the facts.
#pragma once

#include <atomic>
#include <cstdint>

namespace sluice::server {

class StopProtocol {
 public:
  // Shared by all shards: how many have not yet posted their last note
  // (starts at the shard count); null: this shard is alone.
  void set_barrier(std::atomic<int>* barrier) { barrier_ = barrier; }

  // Thread-safe: the stop was asked for.
  void Request() { requested_.store(true, std::memory_order_release); }
  // The shard thread's side, from here on.
  bool requested() const { return requested_.load(std::memory_order_acquire); }
  void Begin(uint64_t now_ms, uint64_t grace_ms) {
    stopping_ = true;
    deadline_ms_ = now_ms + grace_ms;
  }
  bool stopping() const { return stopping_; }
  // `after_ms` past the grace period's end (meaningful while stopping).
  bool late(uint64_t now_ms, uint64_t after_ms = 0) const {
    return now_ms >= deadline_ms_ + after_ms;
  }
  // Step 1: this shard posts no more notes.
  void PostLast() {
    posted_last_ = true;
    if (barrier_ != nullptr) barrier_->fetch_sub(1, std::memory_order_acq_rel);
  }
  bool posted_last() const { return posted_last_; }
  // Every shard posted its last note.
  bool others_done() const {
    return barrier_ == nullptr || barrier_->load(std::memory_order_acquire) == 0;
  }

 private:
  std::atomic<bool> requested_{false};
  bool stopping_ = false;
  bool posted_last_ = false;
  std::atomic<int>* barrier_ = nullptr;
  uint64_t deadline_ms_ = 0;
};

}  // namespace sluice::server
