// StepLoop: an io::Loop over io::FakeLoop that hands the fake one chain of
// operations per RunOnce (a chain: ops joined by Op::link), picked by its
// own seed among those submitted. So a test can stop between any two
// chains and FakeLoop::Crash() there: a crash "at any operation" (a chain
// is a unit for durability: its write is durable only through the sync
// linked behind it, or a later one).
//
// Paths are copied when an operation is submitted, as io_uring does (the
// kernel copies them at submission; io::Ring submits at once): the spool
// writer and the ledger rely on it (their unlinks name strings that change
// right after), though io::Loop's contract asks callers to keep paths alive.
//
// Trusts: the test; one thread. Limits: sockets and timers pass straight
// through (the ledger and spool writer use neither).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "sluice/io/fake_loop.h"

namespace sluice::testing_support {

class StepLoop final : public io::Loop {
 public:
  StepLoop(io::FakeLoop& fake, uint64_t seed) : fake_(fake), random_(seed) {}

  // Chains submitted and not yet handed to the fake.
  size_t queued() const { return chains_.size(); }
  // Drops what was not handed over (with FakeLoop::Crash: nothing completes).
  void Crash() {
    chains_.clear();
    fake_.Crash();
  }

  void AcceptMultishot(io::Completion* c, int fd) override { fake_.AcceptMultishot(c, fd); }
  void RecvMultishot(io::Completion* c, int fd, const io::BufferRing& b) override {
    fake_.RecvMultishot(c, fd, b);
  }
  void Recv(io::Completion* c, int fd, void* data, size_t size, io::Op op = {}) override {
    Add(op, [=, this] { fake_.Recv(c, fd, data, size, op); });
  }
  void Send(io::Completion* c, int fd, const void* data, size_t size, io::Op op = {}) override {
    Add(op, [=, this] { fake_.Send(c, fd, data, size, op); });
  }
  void Connect(io::Completion* c, int fd, const sockaddr* a, socklen_t s, io::Op op = {}) override {
    Add(op, [=, this] { fake_.Connect(c, fd, a, s, op); });
  }
  void Read(io::Completion* c, int fd, void* data, unsigned size, uint64_t offset,
            io::Op op = {}) override {
    Add(op, [=, this] { fake_.Read(c, fd, data, size, offset, op); });
  }
  void Write(io::Completion* c, int fd, const void* data, unsigned size, uint64_t offset,
             io::Op op = {}) override {
    Add(op, [=, this] { fake_.Write(c, fd, data, size, offset, op); });
  }
  void Writev(io::Completion* c, int fd, const iovec* iov, unsigned count, uint64_t offset,
              io::Op op = {}) override {
    Add(op, [=, this] { fake_.Writev(c, fd, iov, count, offset, op); });
  }
  void Fsync(io::Completion* c, int fd, io::Op op = {}) override {
    Add(op, [=, this] { fake_.Fsync(c, fd, op); });
  }
  void Fdatasync(io::Completion* c, int fd, io::Op op = {}) override {
    Add(op, [=, this] { fake_.Fdatasync(c, fd, op); });
  }
  void Openat(io::Completion* c, int dir_fd, const char* path, int flags, mode_t mode,
              io::Op op = {}) override {
    Add(op,
        [=, this, p = std::string(path)] { fake_.Openat(c, dir_fd, p.c_str(), flags, mode, op); });
  }
  void Close(io::Completion* c, int fd, io::Op op = {}) override {
    Add(op, [=, this] { fake_.Close(c, fd, op); });
  }
  void Statx(io::Completion* c, int fd, const char* path, int flags, unsigned mask,
             struct statx* out, io::Op op = {}) override {
    Add(op,
        [=, this, p = std::string(path)] { fake_.Statx(c, fd, p.c_str(), flags, mask, out, op); });
  }
  void Unlinkat(io::Completion* c, int dir_fd, const char* path, int flags,
                io::Op op = {}) override {
    Add(op, [=, this, p = std::string(path)] { fake_.Unlinkat(c, dir_fd, p.c_str(), flags, op); });
  }
  void Renameat(io::Completion* c, int old_dir, const char* old_path, int new_dir,
                const char* new_path, io::Op op = {}) override {
    Add(op, [=, this, from = std::string(old_path), to = std::string(new_path)] {
      fake_.Renameat(c, old_dir, from.c_str(), new_dir, to.c_str(), op);
    });
  }
  int Truncate(int fd, uint64_t length) override { return fake_.Truncate(fd, length); }
  uint64_t NowWallUs() const override { return fake_.NowWallUs(); }
  uint64_t NowMonotonicUs() const override { return fake_.NowMonotonicUs(); }
  uint64_t NowMonotonicMs() const override { return fake_.NowMonotonicMs(); }
  int Socket(int family, int type) override { return fake_.Socket(family, type); }
  int SetSocketOption(int fd, int level, int name, int value) override {
    return fake_.SetSocketOption(fd, level, name, value);
  }
  int Bind(int fd, const sockaddr* a, socklen_t s) override { return fake_.Bind(fd, a, s); }
  int Shutdown(int fd, int how) override { return fake_.Shutdown(fd, how); }
  int CloseNow(int fd) override { return fake_.CloseNow(fd); }
  void Nop(io::Completion* c, io::Op op = {}) override {
    Add(op, [=, this] { fake_.Nop(c, op); });
  }
  void Timeout(io::Completion* c, const io::Timespec* after) override { fake_.Timeout(c, after); }
  void TimeoutRemove(io::Completion* c, const io::Completion* target) override {
    fake_.TimeoutRemove(c, target);
  }
  void LinkTimeout(io::Completion* c, const io::Timespec* after) override {
    Add({}, [=, this] { fake_.LinkTimeout(c, after); });
  }
  void Cancel(io::Completion* c, const io::Completion* target) override { fake_.Cancel(c, target); }
  void PollAdd(io::Completion* c, int fd, unsigned events) override {
    fake_.PollAdd(c, fd, events);
  }
  void PollRemove(io::Completion* c, const io::Completion* target) override {
    fake_.PollRemove(c, target);
  }
  void PostMessage(int target_fd, io::Completion* target, io::Completion* fail) override {
    fake_.PostMessage(target_fd, target, fail);
  }
  bool can_post_messages() const override { return false; }
  int fd() const override { return -1; }
  absl::StatusOr<std::unique_ptr<io::BufferRing>> CreateBufferRing(uint16_t group_id,
                                                                   uint32_t count,
                                                                   uint32_t size) override {
    return fake_.CreateBufferRing(group_id, count, size);
  }
  void Submit() override {}
  // Hands one chain (seeded pick) to the fake and runs its turn.
  int RunOnce(int timeout_ms) override {
    if (!chains_.empty()) {
      std::uniform_int_distribution<size_t> pick(0, chains_.size() - 1);
      const size_t i = pick(random_);
      std::vector<std::function<void()>> chain = std::move(chains_[i]);
      chains_.erase(chains_.begin() + static_cast<std::ptrdiff_t>(i));
      for (auto& submit : chain) submit();
    }
    return fake_.RunOnce(timeout_ms);
  }

 private:
  void Add(io::Op op, std::function<void()> submit) {
    if (!open_chain_) chains_.emplace_back();
    chains_.back().push_back(std::move(submit));
    open_chain_ = op.link;
  }

  io::FakeLoop& fake_;
  std::mt19937_64 random_;
  std::vector<std::vector<std::function<void()>>> chains_;
  bool open_chain_ = false;  // the last op had Op::link: the next joins its chain
};

}  // namespace sluice::testing_support
