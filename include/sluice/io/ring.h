// The io_uring backend of io::Loop, the one place that owns io_uring. A
// Ring is used by exactly one thread (its shard), set up with
// SINGLE_ISSUER | DEFER_TASKRUN when the kernel has them and without when
// it does not. The liburing state lives in src/io (Ring::State), so no
// header outside src/io names an io_uring type.
//
// Every operation's completion record lives in its owner (a connection, a
// spool write) as an io::Completion; the SQE's user_data points at it. A full
// submission queue is flushed, not an error. Completions are reaped into a
// list first and the callbacks run after, so a callback that submits or
// completes more work never runs while the CQ ring is being walked.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "sluice/io/loop.h"

namespace sluice::io {

class Ring final : public Loop {
 public:
  static absl::StatusOr<std::unique_ptr<Ring>> Create(unsigned entries);
  ~Ring() override;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // The real clocks (base/clock.h) and the socket system calls.
  uint64_t NowWallUs() const override;
  uint64_t NowMonotonicUs() const override;
  uint64_t NowMonotonicMs() const override;
  int Socket(int family, int type) override;
  int SetSocketOption(int fd, int level, int name, int value) override;
  int Bind(int fd, const sockaddr* address, socklen_t size) override;
  int Shutdown(int fd, int how) override;
  int CloseNow(int fd) override;

  void AcceptMultishot(Completion* c, int fd) override;
  void RecvMultishot(Completion* c, int fd, const BufferRing& buffers) override;
  void Recv(Completion* c, int fd, void* data, size_t size, Op op = {}) override;
  void Send(Completion* c, int fd, const void* data, size_t size, Op op = {}) override;
  void Connect(Completion* c, int fd, const sockaddr* address, socklen_t size, Op op = {}) override;
  void Read(Completion* c, int fd, void* data, unsigned size, uint64_t offset, Op op = {}) override;
  void Write(Completion* c, int fd, const void* data, unsigned size, uint64_t offset,
             Op op = {}) override;
  void Writev(Completion* c, int fd, const iovec* iov, unsigned count, uint64_t offset,
              Op op = {}) override;
  void Fsync(Completion* c, int fd, Op op = {}) override;
  void Fdatasync(Completion* c, int fd, Op op = {}) override;
  void Openat(Completion* c, int dir_fd, const char* path, int flags, mode_t mode,
              Op op = {}) override;
  void Close(Completion* c, int fd, Op op = {}) override;
  void Statx(Completion* c, int fd, const char* path, int flags, unsigned mask, struct statx* out,
             Op op = {}) override;
  void Unlinkat(Completion* c, int dir_fd, const char* path, int flags, Op op = {}) override;
  void Renameat(Completion* c, int old_dir, const char* old_path, int new_dir, const char* new_path,
                Op op = {}) override;
  int Truncate(int fd, uint64_t length) override;
  void Nop(Completion* c, Op op = {}) override;
  void Timeout(Completion* c, const Timespec* after) override;
  void TimeoutRemove(Completion* c, const Completion* target) override;
  void LinkTimeout(Completion* c, const Timespec* after) override;
  void Cancel(Completion* c, const Completion* target) override;
  void PollAdd(Completion* c, int fd, unsigned events) override;
  void PollRemove(Completion* c, const Completion* target) override;

  // IORING_OP_MSG_RING: needs no syscall of its own (it leaves with this
  // ring's next submit). The sender sees nothing on success
  // (CQE_SKIP_SUCCESS); if the kernel refuses the message, `on_failure`
  // (which must outlive the post) is told, so the caller can wake the target
  // another way.
  void PostMessage(int target_fd, Completion* target, Completion* on_failure) override;
  // Whether the kernel supports PostMessage (IORING_OP_MSG_RING, 5.18).
  bool can_post_messages() const override;
  int fd() const override;

  absl::StatusOr<std::unique_ptr<BufferRing>> CreateBufferRing(uint16_t group_id, uint32_t count,
                                                               uint32_t size) override;

  // Never fails: on EBUSY/EAGAIN (CQ full) reaps into the run list first.
  void Submit() override;
  int RunOnce(int timeout_ms) override;

  // Tests: behave like kernels that refuse submissions with EBUSY while the
  // CQ holds `cq_ready` or more unreaped completions (0: off).
  void SimulateBusyCompletionQueue(unsigned cq_ready);
  // Tests: submits, waits for one completion and returns its result
  // without reaping it (its callback runs in a later RunOnce).
  int SubmitAndPeekForTest();
  bool defer_taskrun() const;
  uint64_t submitted_total() const;

  struct State;  // liburing's, in src/io/ring_state.h

 private:
  explicit Ring(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace sluice::io
