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
// Time is simulated: the clocks start at a fixed epoch (kEpochWallUs) and
// move only when RunOnce finds nothing to run (it jumps to the earliest
// timer, link timeout or scheduled delivery, bounded by its timeout_ms) or
// when the test calls Advance. Timeout fires with -ETIME at its deadline;
// LinkTimeout cancels a linked operation still waiting at its deadline.
//
// The network is simulated too: Socket() gives fake descriptors; a test
// registers endpoints (an address and port) served by a FakePeer (a
// scripted in-process peer) or by a listening descriptor that
// AcceptMultishot serves, so a server written against io::Loop runs too.
// Connect to an address without an endpoint fails with -ECONNREFUSED.
// Faults per endpoint: connects that hang, a delay before connect, the
// peer's bytes in small pieces with a delay between them; a FakeConnection
// can be reset (-ECONNRESET) or closed (EOF) by its peer at any point.
//
// Trusts: the test; one thread. Limits: no "..", symlinks or permissions in
// paths (relative names with '/' separators); descriptors are numbers from
// kFirstFd up, never real ones; no UDP, no partial sends (a Send takes all
// its bytes), no socket buffer limits; PostMessage completes with
// -EOPNOTSUPP (can_post_messages() is false).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/io/loop.h"

namespace sluice::io {

class FakeConnection;

// The far end of connections to an endpoint (FakeLoop::Listen). Its calls
// come from inside FakeLoop::RunOnce, never from another Loop method.
class FakePeer {
 public:
  virtual ~FakePeer() = default;
  // A client connected (its Connect completes in the same turn).
  virtual void OnConnect(FakeConnection& c) = 0;
  // Bytes the client sent, as it sent them (one Send, one call).
  virtual void OnBytes(FakeConnection& c, std::string_view bytes) = 0;
  // The client shut the connection down or closed it.
  virtual void OnClientClosed(FakeConnection& c) { (void)c; }
};

// One accepted connection, as its FakePeer sees it. Owned by the FakeLoop
// (valid until it is destroyed).
class FakeConnection {
 public:
  // To the client, paced by the endpoint's options. Ignored once closed.
  virtual void Send(std::string_view bytes) = 0;
  // FIN: the client reads what was sent, then EOF (0); its sends fail.
  virtual void Close() = 0;
  // RST: the client's pending and next receives and sends fail with
  // -ECONNRESET; unread bytes are lost.
  virtual void Reset() = 0;
  virtual bool closed() const = 0;
  // Connections the loop accepted before this one, on any endpoint.
  virtual uint64_t id() const = 0;
  // Bytes received from the client so far.
  virtual uint64_t received() const = 0;

 protected:
  ~FakeConnection() = default;
};

// Faults and pacing of one endpoint.
struct FakeEndpointOptions {
  bool hang_connect = false;      // connects never complete (a LinkTimeout or Cancel ends them)
  uint64_t connect_delay_us = 0;  // a connect completes this long after it started
  size_t chunk_bytes = 0;         // the peer's bytes arrive in pieces of this size (0: whole)
  uint64_t chunk_delay_us = 0;    // each piece (or whole send) arrives this long after the last
};

class FakeLoop final : public Loop {
 public:
  static constexpr int kFirstFd = 1 << 20;  // far above any real descriptor
  // The simulated clocks at construction: wall 2026-01-01T00:00:00Z;
  // monotonic 1000 s (so no deadline is 0).
  static constexpr uint64_t kEpochWallUs = 1767225600ull * 1000000;
  static constexpr uint64_t kEpochMonotonicUs = 1000ull * 1000000;

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

  // ---- time ----
  // Moves the simulated clocks forward; what falls due runs at the next
  // RunOnce.
  void Advance(uint64_t us) { now_us_ += us; }
  // Microseconds since construction.
  uint64_t elapsed_us() const { return now_us_; }
  // Calls RunOnce(-1) until `done` holds or nothing more can happen
  // (returns done() then), at most `max_turns` times.
  bool RunUntil(const std::function<bool()>& done, int max_turns = 100000);

  // ---- sockets ----
  // Two connected descriptors: what one Sends, the other Recvs.
  std::pair<int, int> SocketPair();
  // Serves connects to `address` with `peer` (which must outlive the
  // loop's use of it). Replaces an earlier endpoint of that address.
  void Listen(const sockaddr* address, socklen_t size, FakePeer* peer,
              FakeEndpointOptions options = {});
  // The same for "192.0.2.1" / "2001:db8::1" and a port.
  void Listen(std::string_view ip, uint16_t port, FakePeer* peer, FakeEndpointOptions options = {});
  // A listening descriptor for `address`: connects to it are accepted by an
  // AcceptMultishot on it (the new descriptor is the completion's result).
  int ListenSocket(const sockaddr* address, socklen_t size, FakeEndpointOptions options = {});
  // Connects to `address` are refused again.
  void Unlisten(const sockaddr* address, socklen_t size);
  // Connects attempted, per endpoint address or not (refused ones too).
  uint64_t connects() const { return connects_; }
  // The address a fake socket was bound to (Bind), or family AF_UNSPEC.
  sockaddr_storage BoundAddress(int fd);
  // Builds a sockaddr for tests: "192.0.2.1" or "2001:db8::1".
  static sockaddr_storage Address(std::string_view ip, uint16_t port, socklen_t* size = nullptr);

  // ---- io::Loop ----
  uint64_t NowWallUs() const override { return kEpochWallUs + now_us_; }
  uint64_t NowMonotonicUs() const override { return kEpochMonotonicUs + now_us_; }
  uint64_t NowMonotonicMs() const override { return NowMonotonicUs() / 1000; }
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
  void PostMessage(int target_fd, Completion* target, Completion* on_failure) override;
  bool can_post_messages() const override { return false; }
  int fd() const override { return -1; }
  absl::StatusOr<std::unique_ptr<BufferRing>> CreateBufferRing(uint16_t group_id, uint32_t count,
                                                               uint32_t size) override;
  void Submit() override {}
  // One turn: deliveries and peer calls due now, every chain submitted
  // before this call (in seeded order), multishot operations, timers due.
  // When that completes nothing, simulated time jumps to the earliest
  // deadline (not past timeout_ms, when >= 0) and the turn runs again; with
  // nothing scheduled, time moves by timeout_ms (>= 0) or not at all (-1).
  // Then the callbacks run, in completion order.
  int RunOnce(int timeout_ms) override;

  // Operations submitted and not yet completed (a Recv waiting for bytes,
  // a timer and an armed multishot count).
  size_t pending() const { return pending_.size() + timers_.size() + multishots_.size(); }

  struct Node;
  struct Endpoint;
  class Connection;
  class BufferPool;

 private:
  struct Pending {
    Completion* completion = nullptr;
    Kind kind = Kind::kOther;
    Op op;
    // Runs the operation: a result (negative errno) and whether it is
    // complete (a short transfer breaks a chain). nullopt: not ready yet
    // (a Recv on an empty queue), retried next turn.
    std::function<std::optional<int>(bool& short_transfer)> run;
    bool link_timeout = false;  // a LinkTimeout: bounds the op before it
    uint64_t deadline = 0;      // a LinkTimeout's, in elapsed_us()
  };
  struct Done {
    Completion* c;
    int result;
    uint32_t flags;
  };
  struct Timer {
    Completion* completion;
    uint64_t deadline;
    uint64_t seq;
  };
  // An armed AcceptMultishot or RecvMultishot.
  struct Multishot {
    Completion* completion;
    int fd;
    bool accept;
    std::shared_ptr<BufferPool> buffers;  // RecvMultishot
    BufferRing* ring;
    bool cancelled = false;
  };
  struct Descriptor;

  void Turn(std::vector<Done>& done);
  void RunChains(std::vector<Done>& done);
  void RunMultishots(std::vector<Done>& done);
  void FireTimers(std::vector<Done>& done);
  bool RunDueEvents();
  std::optional<uint64_t> NextDeadline() const;
  // Runs `fn` at elapsed time `at` (before the operations of that turn).
  void Schedule(uint64_t at, std::function<void()> fn);
  std::optional<int> Establish(Descriptor& d, Endpoint& e);
  std::optional<int> RunMultishot(Multishot& m, std::vector<Done>& done);
  // The node's socket ends: its own receives end (0), the peer reads EOF.
  void ShutdownNode(const std::shared_ptr<Node>& node);
  // Bytes for a socket end: to its FakePeer at once, else into its inbox,
  // paced by its endpoint's options.
  void Deliver(const std::shared_ptr<Node>& to, std::string bytes);

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

  uint64_t now_us_ = 0;  // simulated time since construction
  uint64_t timer_seq_ = 0;
  std::vector<Timer> timers_;
  std::vector<Multishot> multishots_;
  // Deliveries and peer calls, by due time then scheduling order.
  std::multimap<uint64_t, std::function<void()>> events_;
  std::map<std::string, std::unique_ptr<Endpoint>> endpoints_;  // by AddressKey
  std::vector<std::unique_ptr<Connection>> connections_;
  std::map<uint16_t, std::shared_ptr<BufferPool>> buffer_pools_;  // by group id
  uint64_t connects_ = 0;
  bool stalled_ = false;  // the last RunOnce found nothing to run or wait for
};

}  // namespace sluice::io
