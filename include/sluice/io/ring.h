// The one place that owns io_uring. A Ring is used by exactly one thread
// (its shard), set up with SINGLE_ISSUER | DEFER_TASKRUN when the kernel has
// them and without when it does not.
//
// Every operation's completion record lives in its owner (a connection, a
// spool write) as an io::Completion; the SQE's user_data points at it. A full
// submission queue is flushed, not an error. Completions are reaped into a
// list first and the callbacks run after, so a callback that submits or
// completes more work never runs while the CQ ring is being walked.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::io {

class Completion {
 public:
  virtual void OnComplete(int result, uint32_t flags) = 0;

 protected:
  ~Completion() = default;
};

// A Completion that calls a member function of its owner.
template <typename Owner, void (Owner::*Method)(int, uint32_t)>
class MemberCompletion final : public Completion {
 public:
  explicit MemberCompletion(Owner* owner) : owner_(owner) {}
  void OnComplete(int result, uint32_t flags) override { (owner_->*Method)(result, flags); }

 private:
  Owner* owner_;
};

class Ring {
 public:
  static absl::StatusOr<std::unique_ptr<Ring>> Create(unsigned entries);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // A fresh SQE whose user_data is `completion` (nullptr: no callback).
  // Never fails: flushes the SQ to the kernel when it is full, and reaps
  // the CQ (callbacks run later, in RunOnce) when the kernel refuses new
  // work because the CQ is full.
  io_uring_sqe* Prepare(Completion* completion);

  // Submits what is prepared, waits until at least one completion arrived or
  // `timeout_ms` passed (-1: no limit), then runs the callbacks of every
  // completion reaped. Returns the number of callbacks run.
  int RunOnce(int timeout_ms);

  // Tests: behave like kernels that refuse submissions with EBUSY while the
  // CQ holds `cq_ready` or more unreaped completions (0: off).
  void SimulateBusyCompletionQueue(unsigned cq_ready) { busy_at_cq_ready_ = cq_ready; }

  // Posts a completion for `target` into another thread's ring (fd
  // `target_ring_fd`) with IORING_OP_MSG_RING: a wake-up between shards that
  // needs no syscall of its own (it leaves with this ring's next submit).
  // The sender sees nothing on success (CQE_SKIP_SUCCESS); if the kernel
  // refuses the message, `on_failure` (which must outlive the post) is told,
  // so the caller can wake the target another way.
  void PostMessage(int target_ring_fd, Completion* target, Completion* on_failure);
  // Whether the kernel supports PostMessage (IORING_OP_MSG_RING, 5.18).
  bool can_post_messages() const { return msg_ring_; }
  int fd() const { return ring_.ring_fd; }

  io_uring* raw() { return &ring_; }
  bool defer_taskrun() const { return defer_taskrun_; }
  uint64_t submitted_total() const { return submitted_total_; }

 private:
  Ring() = default;
  // io_uring_submit; on EBUSY/EAGAIN (CQ full) reaps into reaped_ first.
  void Submit();
  int SubmitToKernel();
  // Moves every completion in the CQ to reaped_; returns how many CQEs.
  size_t Reap();

  struct Reaped {
    Completion* completion;
    int result;
    uint32_t flags;
  };

  io_uring ring_{};
  bool initialised_ = false;
  bool defer_taskrun_ = false;
  bool msg_ring_ = false;
  uint64_t submitted_total_ = 0;
  unsigned busy_at_cq_ready_ = 0;
  std::vector<Reaped> reaped_;
};

// Receive buffers handed to the kernel through a provided-buffer ring
// (IORING_REGISTER_PBUF_RING). Multishot receives pick one per completion.
// A buffer goes back to the kernel only when every holder released it:
// the session parsing it and any spool write still reading from it.
class BufferRing {
 public:
  static absl::StatusOr<std::unique_ptr<BufferRing>> Create(Ring& ring, uint16_t group_id,
                                                            uint32_t count, uint32_t size);
  ~BufferRing();

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_size() const { return size_; }
  char* data(uint16_t id) { return storage_.get() + static_cast<size_t>(id) * size_; }

  // A completion handed us buffer `id` (one reference).
  void Acquire(uint16_t id) {
    refs_[id] = 1;
    ++in_use_;
  }
  void Hold(uint16_t id) { ++refs_[id]; }
  // Drops a reference; the last one queues the buffer for the kernel.
  void Release(uint16_t id);
  // Publishes the buffers released since the last call (once per loop turn).
  void Publish();

  uint32_t available_estimate() const { return count_ - in_use_; }
  uint32_t count() const { return count_; }

 private:
  BufferRing() = default;

  Ring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  uint16_t group_id_ = 0;
  uint32_t count_ = 0;
  uint32_t size_ = 0;
  uint32_t pending_ = 0;  // added since the last Publish
  uint32_t in_use_ = 0;
  std::unique_ptr<char[]> storage_;
  std::vector<uint16_t> refs_;
};

}  // namespace sluice::io
