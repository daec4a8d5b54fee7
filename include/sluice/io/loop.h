// The event loop every module submits its I/O to: one typed method per
// operation (accept, receive, send, write at an offset, fsync, open, rename,
// ...), each naming the io::Completion its result goes to. Two backends
// implement it: io::Ring (io_uring, include/sluice/io/ring.h) for the server
// and io::FakeLoop (include/sluice/io/fake_loop.h), an in-memory file system
// with fault injection and a seeded completion order, for unit tests. No
// code outside src/io knows io_uring: CQE flags, timespecs and provided
// buffers are io:: types here.
//
// Trusts: callers keep every pointer argument (buffers, iovecs, addresses,
// timespecs, statx targets) and the Completion alive until the completion
// ran; a path (Openat, Statx, Unlinkat, Renameat) only until the operation
// was submitted (Submit or RunOnce): both backends have copied it by then (io_uring
// reads it while preparing the request), and the spool writer and ledger
// rely on that to free a name right after Submit. A Loop is used by one
// thread. A method never fails: errors
// arrive as a negative errno in OnComplete (the synchronous socket calls
// return it). The loop is also the clock: code that may run on the fake
// reads time from NowWallUs/NowMonotonicMs, not from base/clock.h, so a
// test's simulated time reaches it. Limits: see each backend.
#pragma once

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

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

// Completion flags (the `flags` of OnComplete). Their values equal the
// kernel's (src/io/ring.cc checks), so the io_uring backend passes CQE
// flags through untouched.
inline constexpr uint32_t kCompletionBuffer = 1u << 0;  // a provided buffer was used
inline constexpr uint32_t kCompletionMore = 1u << 1;    // a multishot op stays armed
inline constexpr unsigned kCompletionBufferShift = 16;
inline bool HasMore(uint32_t flags) { return (flags & kCompletionMore) != 0; }
inline bool HasBuffer(uint32_t flags) { return (flags & kCompletionBuffer) != 0; }
inline uint16_t BufferId(uint32_t flags) {
  return static_cast<uint16_t>(flags >> kCompletionBufferShift);
}

// How an operation is chained and reported.
struct Op {
  // The next operation submitted starts only when this one succeeded (a
  // failure cancels it with -ECANCELED). IOSQE_IO_LINK on io_uring.
  bool link = false;
  // Report only failures: a success posts no completion (where the kernel
  // supports it; otherwise the success arrives as usual, so a caller must
  // accept one). IOSQE_CQE_SKIP_SUCCESS on io_uring.
  bool skip_success = false;
};
inline constexpr Op kLinked{.link = true};

// A relative time for LinkTimeout; layout of the kernel's __kernel_timespec.
struct Timespec {
  int64_t tv_sec = 0;
  long long tv_nsec = 0;
};

// Receive buffers lent to the backend for multishot receives. Each receive
// completion picks one (BufferId(flags)); a buffer goes back only when
// every holder released it: the session parsing it and any spool write
// still reading from it.
class BufferRing {
 public:
  // Where released buffers are returned (the kernel's ring, or a fake's).
  class Provider {
   public:
    virtual ~Provider() = default;
    // Queues buffer `id` at position `pending` after the last publish.
    virtual void Add(char* data, uint32_t size, uint16_t id, uint32_t pending) = 0;
    // Makes the `count` queued buffers available.
    virtual void Publish(uint32_t count) = 0;
  };

  // Made by Loop::CreateBufferRing.
  BufferRing(uint16_t group_id, uint32_t count, uint32_t size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_size() const { return size_; }
  char* data(uint16_t id) { return storage_.get() + static_cast<size_t>(id) * size_; }

  // A completion handed us buffer `id` (one reference).
  void Acquire(uint16_t id) {
    refs_[id] = 1;
    ++in_use_;
  }
  void Hold(uint16_t id) { ++refs_[id]; }
  // Drops a reference; the last one queues the buffer for the backend.
  void Release(uint16_t id);
  // Publishes the buffers released since the last call (once per loop turn).
  void Publish();

  uint32_t available_estimate() const { return count_ - in_use_; }
  uint32_t count() const { return count_; }

  // Backends: set once, before the ring is used.
  void set_provider(std::unique_ptr<Provider> p) { provider_ = std::move(p); }

 private:
  std::unique_ptr<Provider> provider_;
  uint16_t group_id_ = 0;
  uint32_t count_ = 0;
  uint32_t size_ = 0;
  uint32_t pending_ = 0;  // added since the last Publish
  uint32_t in_use_ = 0;
  std::unique_ptr<char[]> storage_;
  std::vector<uint16_t> refs_;
};

class Loop {
 public:
  virtual ~Loop() = default;

  // ---- time ----
  // Wall-clock time (CLOCK_REALTIME) in microseconds since the epoch.
  virtual uint64_t NowWallUs() const = 0;
  // Precise monotonic time (CLOCK_MONOTONIC), for latencies.
  virtual uint64_t NowMonotonicUs() const = 0;
  // Cheap monotonic time (CLOCK_MONOTONIC_COARSE), for timeouts.
  virtual uint64_t NowMonotonicMs() const = 0;

  // ---- sockets, synchronous (nothing to wait for; 0/descriptor or -errno) ----
  // socket(family, type | SOCK_CLOEXEC, 0).
  virtual int Socket(int family, int type) = 0;
  // setsockopt of an int option (TCP_NODELAY, SO_REUSEADDR, ...).
  virtual int SetSocketOption(int fd, int level, int name, int value) = 0;
  virtual int Bind(int fd, const sockaddr* address, socklen_t size) = 0;
  // shutdown(2): a receive pending on `fd` ends (0), the peer reads EOF.
  virtual int Shutdown(int fd, int how) = 0;
  // close(2) at once, for a descriptor no pending operation names.
  virtual int CloseNow(int fd) = 0;

  // ---- sockets ----
  // Multishot accept (SOCK_CLOEXEC): one completion per connection, with
  // kCompletionMore while it stays armed.
  virtual void AcceptMultishot(Completion* c, int fd) = 0;
  // Multishot receive into `buffers`: one completion per chunk, carrying
  // kCompletionBuffer and BufferId(flags).
  virtual void RecvMultishot(Completion* c, int fd, const BufferRing& buffers) = 0;
  virtual void Recv(Completion* c, int fd, void* data, size_t size, Op op = {}) = 0;
  // Always MSG_NOSIGNAL.
  virtual void Send(Completion* c, int fd, const void* data, size_t size, Op op = {}) = 0;
  virtual void Connect(Completion* c, int fd, const sockaddr* address, socklen_t size,
                       Op op = {}) = 0;

  // ---- files ----
  virtual void Read(Completion* c, int fd, void* data, unsigned size, uint64_t offset,
                    Op op = {}) = 0;
  // `offset` (uint64_t)-1: the file position (an O_APPEND file's end).
  virtual void Write(Completion* c, int fd, const void* data, unsigned size, uint64_t offset,
                     Op op = {}) = 0;
  virtual void Writev(Completion* c, int fd, const iovec* iov, unsigned count, uint64_t offset,
                      Op op = {}) = 0;
  virtual void Fsync(Completion* c, int fd, Op op = {}) = 0;
  virtual void Fdatasync(Completion* c, int fd, Op op = {}) = 0;
  virtual void Openat(Completion* c, int dir_fd, const char* path, int flags, mode_t mode,
                      Op op = {}) = 0;
  virtual void Close(Completion* c, int fd, Op op = {}) = 0;
  virtual void Statx(Completion* c, int fd, const char* path, int flags, unsigned mask,
                     struct statx* out, Op op = {}) = 0;
  virtual void Unlinkat(Completion* c, int dir_fd, const char* path, int flags, Op op = {}) = 0;
  virtual void Renameat(Completion* c, int old_dir, const char* old_path, int new_dir,
                        const char* new_path, Op op = {}) = 0;
  // Synchronous (a metadata change that must precede the next write):
  // 0 or -errno.
  virtual int Truncate(int fd, uint64_t length) = 0;

  // ---- control ----
  virtual void Nop(Completion* c, Op op = {}) = 0;
  // Completes with -ETIME once `after` passed; TimeoutRemove cancels it.
  virtual void Timeout(Completion* c, const Timespec* after) = 0;
  virtual void TimeoutRemove(Completion* c, const Completion* target) = 0;
  // Bounds the operation submitted just before (which must have Op::link):
  // when `after` passes first, that operation ends with -ECANCELED.
  virtual void LinkTimeout(Completion* c, const Timespec* after) = 0;
  // Cancels the (first) operation whose completion is `target`.
  virtual void Cancel(Completion* c, const Completion* target) = 0;
  // One-shot poll for `events` (POLLIN/POLLOUT); PollRemove cancels it.
  virtual void PollAdd(Completion* c, int fd, unsigned events) = 0;
  virtual void PollRemove(Completion* c, const Completion* target) = 0;
  // Posts a completion for `target` into another thread's loop (fd
  // `target_fd`), a wake between shards; see Ring. Only when
  // can_post_messages().
  virtual void PostMessage(int target_fd, Completion* target, Completion* on_failure) = 0;
  virtual bool can_post_messages() const = 0;
  virtual int fd() const = 0;

  // Receive buffers for RecvMultishot.
  virtual absl::StatusOr<std::unique_ptr<BufferRing>> CreateBufferRing(uint16_t group_id,
                                                                       uint32_t count,
                                                                       uint32_t size) = 0;

  // Hands what is prepared to the backend without waiting (before a thread
  // ends, or for work that must start before the caller returns).
  virtual void Submit() = 0;
  // Submits, waits until at least one completion arrived or `timeout_ms`
  // passed (-1: no limit), then runs the callbacks of every completion
  // reaped. Returns the number of callbacks run. Callbacks never run from
  // any other method.
  virtual int RunOnce(int timeout_ms) = 0;
};

}  // namespace sluice::io
