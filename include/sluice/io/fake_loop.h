// io::FakeLoop: a deterministic io::Loop for unit tests. Files live in an
// in-memory file system that keeps two views: what a reader sees now, and
// what would survive a crash (file bytes as of their last fsync/fdatasync,
// directory entries as of the directory's last fsync). Crash() drops the
// difference. Faults are injected by count (the Nth write fails with an
// errno, or is cut short). Operations run only in RunOnce: the chains
// submitted since the last turn (ops joined by Op::link) execute in an
// order drawn from the seed, a chain's ops in order, a failed or short op
// cancelling the rest of its chain with -ECANCELED, as io_uring does.
//
// Trusts: the test; one thread. Limits: sockets are minimal (SocketPair:
// two byte queues; Send/Recv on them); AcceptMultishot, RecvMultishot,
// Connect, PollAdd and PostMessage complete with -EOPNOTSUPP; no time
// passes (a Timeout fires at the next RunOnce, a LinkTimeout never). Paths are
// relative names with '/' separators (no "..", no symlinks). Descriptors
// are numbers from kFirstFd up, never real ones.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "sluice/io/loop.h"

namespace sluice::io {

class FakeLoop final : public Loop {
 public:
  static constexpr int kFirstFd = 1 << 20;  // far above any real descriptor

  enum class Kind { kWrite, kSync, kOpen, kRename, kUnlink, kRead, kSend, kRecv, kOther };

  explicit FakeLoop(uint64_t seed);
  ~FakeLoop() override;

  // ---- the file system ----
  // Creates `path` (and its parents) as durable directories; returns an
  // O_DIRECTORY descriptor for it.
  int OpenDirectory(const std::string& path);
  // What a reader sees now / what a crash would leave (nullopt: no file).
  std::optional<std::string> FileContents(const std::string& path) const;
  std::optional<std::string> DurableContents(const std::string& path) const;
  // Names in a directory, now / after a crash.
  std::vector<std::string> List(const std::string& dir) const;
  std::vector<std::string> DurableList(const std::string& dir) const;
  // Loses everything not durable (descriptors stay valid and see the
  // durable state); pending operations are dropped without completing.
  void Crash();

  // ---- faults ----
  // The `nth` operation of `kind` from now (1: the next) fails with -err.
  void FailNth(Kind kind, int nth, int err);
  // The `nth` write from now transfers only `bytes` bytes (fewer if the
  // write is smaller).
  void ShortWriteNth(int nth, size_t bytes);
  // Counters of operations executed, per kind.
  uint64_t executed(Kind kind) const { return executed_[static_cast<size_t>(kind)]; }

  // ---- sockets ----
  // Two connected descriptors: what one Sends, the other Recvs.
  std::pair<int, int> SocketPair();

  // ---- io::Loop ----
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
  void PostMessage(int target_fd, Completion* target, Completion* on_failure) override;
  bool can_post_messages() const override { return false; }
  int fd() const override { return -1; }
  absl::StatusOr<std::unique_ptr<BufferRing>> CreateBufferRing(uint16_t group_id, uint32_t count,
                                                               uint32_t size) override;
  void Submit() override {}
  // Runs every chain submitted before this call (in seeded order), then the
  // callbacks of their completions. `timeout_ms` is ignored: nothing waits.
  int RunOnce(int timeout_ms) override;

  // Operations submitted and not yet run (a Recv waiting for bytes counts).
  size_t pending() const { return pending_.size(); }

  struct Node;

 private:
  struct Pending {
    Completion* completion = nullptr;
    Kind kind = Kind::kOther;
    Op op;
    // Runs the operation: a result (negative errno) and whether it is
    // complete (a short transfer breaks a chain). nullopt: not ready yet
    // (a Recv on an empty queue), retried next turn.
    std::function<std::optional<int>(bool& short_transfer)> run;
  };
  struct Descriptor;

  void Queue(Completion* c, Kind kind, Op op,
             std::function<std::optional<int>(bool& short_transfer)> run);
  std::optional<int> Injected(Kind kind);
  Descriptor* Find(int fd);
  // The directory node and last name component of `path` under `dir_fd`.
  std::shared_ptr<Node> Parent(int dir_fd, const std::string& path, std::string& name, int& err);
  std::shared_ptr<Node> Walk(const std::string& path, bool durable) const;
  int AddDescriptor(std::shared_ptr<Node> node, int flags);
  int DoWrite(int fd, const std::vector<std::string_view>& pieces, uint64_t offset,
              bool& short_transfer);

  std::mt19937_64 random_;
  std::shared_ptr<Node> root_;
  std::map<int, std::unique_ptr<Descriptor>> fds_;
  int next_fd_ = kFirstFd;
  std::vector<Pending> pending_;
  struct Fault {
    Kind kind;
    int countdown;
    int err;  // 0: a short write of `bytes`
    size_t bytes;
  };
  std::vector<Fault> faults_;
  uint64_t executed_[9] = {};
};

}  // namespace sluice::io
