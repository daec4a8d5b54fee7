// io::FakeLoop itself: durable vs. visible state across Crash, linked
// chains cancelled by a failure, fault counting, the seeded order being
// deterministic, socket pairs, simulated time (timers, link timeouts,
// cancellation) and the simulated network (endpoints, scripted peers,
// listening descriptors, resets, pacing, multishot receive, poll).
#include "sluice/io/fake_loop.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/stat.h>

#include <cerrno>
#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::io {
namespace {

struct Result final : Completion {
  std::vector<int>* order = nullptr;
  int id = 0;
  int result = 1;  // 1: not completed
  uint32_t flags = 0;
  int count = 0;
  void OnComplete(int r, uint32_t f) override {
    result = r;
    flags = f;
    ++count;
    if (order != nullptr) order->push_back(id);
  }
};

int OpenFile(FakeLoop& loop, int dir, const char* name, int flags) {
  Result r;
  loop.Openat(&r, dir, name, flags, 0600);
  loop.RunOnce(0);
  return r.result;
}

TEST(FakeLoop, DataIsDurableOnlyAfterFsyncAndNamesAfterTheDirectorySync) {
  FakeLoop loop(1);
  const int dir = loop.OpenDirectory("d");
  const int fd = OpenFile(loop, dir, "f", O_WRONLY | O_CREAT | O_EXCL);
  ASSERT_GE(fd, FakeLoop::kFirstFd);
  const std::string text = "hello";
  Result w, s;
  loop.Write(&w, fd, text.data(), 5, 0);
  loop.RunOnce(0);
  EXPECT_EQ(w.result, 5);
  EXPECT_EQ(loop.FileContents("d/f"), "hello");
  EXPECT_EQ(loop.DurableContents("d/f"), std::nullopt);  // its name is not durable yet
  loop.Fdatasync(&s, fd);
  loop.RunOnce(0);
  EXPECT_EQ(loop.DurableContents("d/f"), std::nullopt);
  Result ds;
  loop.Fsync(&ds, dir);
  loop.RunOnce(0);
  EXPECT_EQ(loop.DurableContents("d/f"), "hello");
  Result w2;
  loop.Write(&w2, fd, " world", 6, 5);
  loop.RunOnce(0);
  EXPECT_EQ(loop.FileContents("d/f"), "hello world");
  loop.Crash();
  EXPECT_EQ(loop.FileContents("d/f"), "hello");
}

TEST(FakeLoop, RenameAndUnlinkNeedTheDirectorySyncToSurviveACrash) {
  FakeLoop loop(1);
  const int dir = loop.OpenDirectory("d");
  const int fd = OpenFile(loop, dir, "a.tmp", O_WRONLY | O_CREAT);
  Result w, s, r, ds;
  loop.Write(&w, fd, "x", 1, 0, kLinked);
  loop.Fdatasync(&s, fd, kLinked);
  loop.Renameat(&r, dir, "a.tmp", dir, "a.msg");
  loop.RunOnce(0);
  EXPECT_EQ(r.result, 0);
  EXPECT_EQ(loop.List("d"), std::vector<std::string>{"a.msg"});
  EXPECT_TRUE(loop.DurableList("d").empty());
  loop.Fsync(&ds, dir);
  loop.RunOnce(0);
  EXPECT_EQ(loop.DurableList("d"), std::vector<std::string>{"a.msg"});
  Result u;
  loop.Unlinkat(&u, dir, "a.msg", 0);
  loop.RunOnce(0);
  EXPECT_TRUE(loop.List("d").empty());
  loop.Crash();
  EXPECT_EQ(loop.List("d"), std::vector<std::string>{"a.msg"});  // the unlink was not synced
}

TEST(FakeLoop, AFailureCancelsTheRestOfItsChainOnly) {
  FakeLoop loop(3);
  const int dir = loop.OpenDirectory("d");
  const int fd = OpenFile(loop, dir, "f", O_WRONLY | O_CREAT);
  loop.FailNth(FakeLoop::Kind::kWrite, 2, ENOSPC);
  Result w1, w2, s, other;
  loop.Write(&w1, fd, "ab", 2, 0, kLinked);
  loop.Write(&w2, fd, "cd", 2, 2, kLinked);
  loop.Fdatasync(&s, fd);
  loop.Nop(&other);  // a chain of its own
  loop.RunOnce(0);
  EXPECT_EQ(w1.result, 2);
  EXPECT_EQ(w2.result, -ENOSPC);
  EXPECT_EQ(s.result, -ECANCELED);
  EXPECT_EQ(other.result, 0);
  EXPECT_EQ(loop.executed(FakeLoop::Kind::kSync), 0u);
}

TEST(FakeLoop, AShortWriteBreaksItsChain) {
  FakeLoop loop(3);
  const int dir = loop.OpenDirectory("d");
  const int fd = OpenFile(loop, dir, "f", O_WRONLY | O_CREAT);
  loop.ShortWriteNth(1, 3);
  Result w, s;
  loop.Write(&w, fd, "abcdef", 6, 0, kLinked);
  loop.Fdatasync(&s, fd);
  loop.RunOnce(0);
  EXPECT_EQ(w.result, 3);
  EXPECT_EQ(s.result, -ECANCELED);
  EXPECT_EQ(loop.FileContents("d/f"), "abc");
}

std::vector<int> Order(uint64_t seed) {
  FakeLoop loop(seed);
  std::vector<int> order;
  std::vector<Result> ops(16);
  for (int i = 0; i < 16; ++i) {
    ops[static_cast<size_t>(i)].order = &order;
    ops[static_cast<size_t>(i)].id = i;
    loop.Nop(&ops[static_cast<size_t>(i)]);
  }
  loop.RunOnce(0);
  return order;
}

TEST(FakeLoop, TheCompletionOrderFollowsTheSeed) {
  EXPECT_EQ(Order(5), Order(5));
  EXPECT_NE(Order(5), Order(6));
  EXPECT_EQ(Order(5).size(), 16u);
}

TEST(FakeLoop, ExclusiveCreateAndMissingFiles) {
  FakeLoop loop(1);
  const int dir = loop.OpenDirectory("d");
  ASSERT_GE(OpenFile(loop, dir, "f", O_WRONLY | O_CREAT | O_EXCL), FakeLoop::kFirstFd);
  EXPECT_EQ(OpenFile(loop, dir, "f", O_WRONLY | O_CREAT | O_EXCL), -EEXIST);
  EXPECT_EQ(OpenFile(loop, dir, "g", O_RDONLY), -ENOENT);
  Result st;
  struct statx sx {};
  loop.Statx(&st, dir, "f", 0, STATX_NLINK, &sx);
  loop.RunOnce(0);
  EXPECT_EQ(st.result, 0);
  EXPECT_EQ(sx.stx_nlink, 1u);
}

TEST(FakeLoop, SocketPairsCarryBytesAndRecvWaitsForThem) {
  FakeLoop loop(1);
  auto [a, b] = loop.SocketPair();
  char buffer[16] = {};
  Result recv, send;
  loop.Recv(&recv, b, buffer, sizeof buffer);
  loop.RunOnce(0);
  EXPECT_EQ(recv.result, 1);  // still waiting
  EXPECT_EQ(loop.pending(), 1u);
  loop.Send(&send, a, "ping", 4);
  loop.RunOnce(0);
  loop.RunOnce(0);
  EXPECT_EQ(send.result, 4);
  EXPECT_EQ(recv.result, 4);
  EXPECT_EQ(std::string(buffer, 4), "ping");
  Result waiting, cancel;
  loop.Recv(&waiting, b, buffer, sizeof buffer);
  loop.Cancel(&cancel, &waiting);
  loop.RunOnce(0);
  EXPECT_EQ(waiting.result, -ECANCELED);
  EXPECT_EQ(cancel.result, 0);
}

// ---- simulated time ----

Timespec Ms(int64_t ms) { return Timespec{ms / 1000, (ms % 1000) * 1000000}; }

TEST(FakeLoopTime, TimersFireInDeadlineOrderAtTheirSimulatedTime) {
  FakeLoop loop(7);
  std::vector<int> order;
  Result a, b, c;
  a.order = b.order = c.order = &order;
  a.id = 1, b.id = 2, c.id = 3;
  const Timespec t300 = Ms(300), t100 = Ms(100), t200 = Ms(200);
  const uint64_t start_ms = loop.NowMonotonicMs();
  const uint64_t start_wall = loop.NowWallUs();
  EXPECT_EQ(start_wall, FakeLoop::kEpochWallUs);
  loop.Timeout(&a, &t300);
  loop.Timeout(&b, &t100);
  loop.Timeout(&c, &t200);
  EXPECT_EQ(loop.RunOnce(50), 0);  // nothing due within 50 ms: time moves 50 ms
  EXPECT_EQ(loop.NowMonotonicMs() - start_ms, 50u);
  EXPECT_EQ(loop.RunOnce(-1), 1);  // jumps to the earliest deadline
  EXPECT_EQ(loop.NowMonotonicMs() - start_ms, 100u);
  EXPECT_EQ(b.result, -ETIME);
  loop.Advance(250 * 1000);  // both others are due now: one turn fires them in order
  EXPECT_EQ(loop.RunOnce(0), 2);
  EXPECT_EQ(order, (std::vector<int>{2, 3, 1}));
  EXPECT_EQ(loop.NowWallUs() - start_wall, 350u * 1000);
  EXPECT_EQ(loop.pending(), 0u);
  EXPECT_EQ(loop.RunOnce(-1), 0);  // nothing left: returns without moving time
  EXPECT_EQ(loop.NowMonotonicMs() - start_ms, 350u);
}

TEST(FakeLoopTime, TimeoutRemoveAndCancelStopATimer) {
  FakeLoop loop(1);
  Result a, b, remove, cancel, missing;
  const Timespec t = Ms(10);
  loop.Timeout(&a, &t);
  loop.Timeout(&b, &t);
  loop.TimeoutRemove(&remove, &a);
  loop.Cancel(&cancel, &b);
  loop.TimeoutRemove(&missing, &a);
  loop.RunOnce(0);
  EXPECT_EQ(a.result, -ECANCELED);
  EXPECT_EQ(b.result, -ECANCELED);
  EXPECT_EQ(remove.result, 0);
  EXPECT_EQ(cancel.result, 0);
  EXPECT_EQ(missing.result, -ENOENT);
  EXPECT_EQ(loop.RunOnce(-1), 0);
  EXPECT_EQ(loop.elapsed_us(), 0u);
}

// A peer that echoes what it gets, and can be told to close or reset.
struct Echo final : FakePeer {
  std::vector<FakeConnection*> connections;
  std::string got;
  int client_closed = 0;
  std::string greeting;
  void OnConnect(FakeConnection& c) override {
    connections.push_back(&c);
    if (!greeting.empty()) c.Send(greeting);
  }
  void OnBytes(FakeConnection& c, std::string_view bytes) override {
    got.append(bytes);
    c.Send(bytes);
  }
  void OnClientClosed(FakeConnection&) override { ++client_closed; }
};

int ConnectTo(FakeLoop& loop, const char* ip, uint16_t port, Result& r, Result* timeout = nullptr,
              int64_t timeout_ms = 0) {
  const int fd = loop.Socket(AF_INET, SOCK_STREAM);
  EXPECT_GE(fd, FakeLoop::kFirstFd);
  static sockaddr_storage address;
  socklen_t size = 0;
  address = FakeLoop::Address(ip, port, &size);
  static Timespec after;
  after = Ms(timeout_ms);
  loop.Connect(&r, fd, reinterpret_cast<sockaddr*>(&address), size,
               timeout != nullptr ? kLinked : Op{});
  if (timeout != nullptr) loop.LinkTimeout(timeout, &after);
  return fd;
}

TEST(FakeLoopTime, ALinkTimeoutCancelsAHungConnectAtItsDeadline) {
  FakeLoop loop(3);
  Echo peer;
  loop.Listen("192.0.2.1", 25, &peer, {.hang_connect = true});
  Result connect, timeout;
  ConnectTo(loop, "192.0.2.1", 25, connect, &timeout, 1500);
  EXPECT_EQ(loop.RunOnce(1000), 0);  // still hanging after 1 s
  EXPECT_EQ(connect.result, 1);
  EXPECT_EQ(loop.RunOnce(-1), 2);
  EXPECT_EQ(connect.result, -ECANCELED);
  EXPECT_EQ(timeout.result, -ETIME);
  EXPECT_EQ(loop.elapsed_us(), 1500u * 1000);
  EXPECT_TRUE(peer.connections.empty());
}

TEST(FakeLoopTime, ALinkTimeoutOfAConnectThatWonReportsCancelled) {
  FakeLoop loop(3);
  Echo peer;
  loop.Listen("192.0.2.1", 25, &peer, {.connect_delay_us = 20000});
  Result connect, timeout;
  ConnectTo(loop, "192.0.2.1", 25, connect, &timeout, 1000);
  loop.RunUntil([&] { return connect.count > 0; });
  EXPECT_EQ(connect.result, 0);
  EXPECT_EQ(timeout.result, -ECANCELED);
  EXPECT_EQ(loop.elapsed_us(), 20000u);  // the connect delay
}

TEST(FakeLoopTime, CancelEndsAHungConnect) {
  FakeLoop loop(3);
  Echo peer;
  loop.Listen("192.0.2.1", 25, &peer, {.hang_connect = true});
  Result connect, cancel;
  ConnectTo(loop, "192.0.2.1", 25, connect);
  loop.RunOnce(0);
  loop.Cancel(&cancel, &connect);
  loop.RunOnce(0);
  EXPECT_EQ(connect.result, -ECANCELED);
  EXPECT_EQ(cancel.result, 0);
}

// ---- simulated network ----

TEST(FakeLoopNet, NoEndpointRefusesAndAScriptedPeerTalks) {
  FakeLoop loop(5);
  Result refused;
  ConnectTo(loop, "192.0.2.9", 25, refused);
  loop.RunOnce(0);
  EXPECT_EQ(refused.result, -ECONNREFUSED);

  Echo peer;
  peer.greeting = "hello\n";
  loop.Listen("2001:db8::1", 2525, &peer);
  const int fd = loop.Socket(AF_INET6, SOCK_STREAM);
  socklen_t size = 0;
  const sockaddr_storage a = FakeLoop::Address("2001:db8::1", 2525, &size);
  Result connect, recv, send;
  loop.Connect(&connect, fd, reinterpret_cast<const sockaddr*>(&a), size);
  loop.RunOnce(0);
  ASSERT_EQ(connect.result, 0);
  ASSERT_EQ(peer.connections.size(), 1u);
  char buffer[64];
  loop.Recv(&recv, fd, buffer, sizeof buffer);
  loop.RunOnce(0);
  EXPECT_EQ(std::string(buffer, recv.result), "hello\n");
  loop.Send(&send, fd, "ping", 4);
  loop.Recv(&recv, fd, buffer, sizeof buffer, {});
  loop.RunUntil([&] { return recv.count == 2; });
  EXPECT_EQ(send.result, 4);
  EXPECT_EQ(std::string(buffer, recv.result), "ping");
  EXPECT_EQ(peer.connections[0]->received(), 4u);
  // The peer closes: what it sent first, then EOF; the client's send fails.
  peer.connections[0]->Send("last");
  peer.connections[0]->Close();
  loop.Recv(&recv, fd, buffer, sizeof buffer);
  loop.RunOnce(0);
  EXPECT_EQ(std::string(buffer, recv.result), "last");
  loop.Recv(&recv, fd, buffer, sizeof buffer);
  loop.RunOnce(0);
  EXPECT_EQ(recv.result, 0);
  loop.Send(&send, fd, "x", 1);
  loop.RunOnce(0);
  EXPECT_EQ(send.result, -EPIPE);
  EXPECT_EQ(loop.connects(), 2u);
}

TEST(FakeLoopNet, AResetFailsThePendingReceiveAndShutdownEndsOne) {
  FakeLoop loop(5);
  Echo peer;
  loop.Listen("192.0.2.1", 25, &peer);
  Result connect, recv;
  const int fd = ConnectTo(loop, "192.0.2.1", 25, connect);
  loop.RunOnce(0);
  char buffer[8];
  loop.Recv(&recv, fd, buffer, sizeof buffer);
  loop.RunOnce(0);
  EXPECT_EQ(recv.count, 0);
  peer.connections[0]->Reset();
  loop.RunOnce(0);
  EXPECT_EQ(recv.result, -ECONNRESET);

  Result connect2, recv2;
  const int fd2 = ConnectTo(loop, "192.0.2.1", 25, connect2);
  loop.RunOnce(0);
  loop.Recv(&recv2, fd2, buffer, sizeof buffer);
  loop.RunOnce(0);
  EXPECT_EQ(loop.Shutdown(fd2, SHUT_RDWR), 0);
  loop.RunOnce(0);
  EXPECT_EQ(recv2.result, 0);  // shutdown(2) ends a pending receive
  EXPECT_EQ(peer.client_closed, 1);
  EXPECT_EQ(loop.CloseNow(fd2), 0);
  EXPECT_EQ(loop.CloseNow(fd2), -EBADF);
  EXPECT_EQ(loop.SetSocketOption(fd, IPPROTO_TCP, 1, 1), 0);
}

TEST(FakeLoopNet, APacedPeerDeliversSmallPiecesOverTime) {
  FakeLoop loop(5);
  Echo peer;
  peer.greeting = "0123456789";
  loop.Listen("192.0.2.1", 25, &peer, {.chunk_bytes = 4, .chunk_delay_us = 1000});
  Result connect;
  const int fd = ConnectTo(loop, "192.0.2.1", 25, connect);
  loop.RunOnce(0);
  std::vector<std::string> pieces;
  char buffer[64];
  while (pieces.size() < 3) {
    Result recv;
    loop.Recv(&recv, fd, buffer, sizeof buffer);
    ASSERT_TRUE(loop.RunUntil([&] { return recv.count > 0; }));
    pieces.emplace_back(buffer, recv.result);
  }
  EXPECT_EQ(pieces, (std::vector<std::string>{"0123", "4567", "89"}));
  EXPECT_EQ(loop.elapsed_us(), 3000u);
}

TEST(FakeLoopNet, AServerOnAListeningDescriptorAcceptsAndReceivesMultishot) {
  FakeLoop loop(9);
  socklen_t size = 0;
  const sockaddr_storage a = FakeLoop::Address("127.0.0.1", 2525, &size);
  const int listener = loop.ListenSocket(reinterpret_cast<const sockaddr*>(&a), size);
  Result accept;
  loop.AcceptMultishot(&accept, listener);
  Result connect;
  const int client = ConnectTo(loop, "127.0.0.1", 2525, connect);
  loop.RunUntil([&] { return accept.count > 0 && connect.count > 0; });
  ASSERT_EQ(connect.result, 0);
  ASSERT_GE(accept.result, FakeLoop::kFirstFd);
  EXPECT_TRUE(HasMore(accept.flags));
  const int server = accept.result;

  Result send, poll_in;
  loop.Send(&send, client, "abcdefghij", 10);
  loop.RunOnce(0);
  loop.PollAdd(&poll_in, server, POLLIN | POLLOUT);
  loop.RunOnce(0);
  EXPECT_EQ(poll_in.result, POLLIN | POLLOUT);

  auto buffers = loop.CreateBufferRing(1, 2, 4);
  ASSERT_TRUE(buffers.ok());
  std::vector<std::string> got;
  struct Chunks final : Completion {
    std::function<void(int, uint32_t)> fn;
    void OnComplete(int r, uint32_t f) override { fn(r, f); }
  } chunks;
  int end = 1;  // 1: still armed
  chunks.fn = [&](int r, uint32_t f) {
    if (r > 0) {
      ASSERT_TRUE(HasBuffer(f));
      const uint16_t id = BufferId(f);
      (*buffers)->Acquire(id);
      got.emplace_back((*buffers)->data(id), r);
      (*buffers)->Release(id);
    }
    if (!HasMore(f)) end = r;
  };
  loop.RecvMultishot(&chunks, server, **buffers);
  loop.RunUntil([&] { return end != 1; });
  // Two 4-byte buffers, not yet handed back: the kernel ends the multishot
  // with -ENOBUFS, and so does the fake.
  EXPECT_EQ(got, (std::vector<std::string>{"abcd", "efgh"}));
  EXPECT_EQ(end, -ENOBUFS);
  (*buffers)->Publish();
  end = 1;
  loop.RecvMultishot(&chunks, server, **buffers);
  loop.RunUntil([&] { return got.size() == 3; });
  EXPECT_EQ(got.back(), "ij");
  EXPECT_EQ(loop.CloseNow(client), 0);
  loop.RunUntil([&] { return end != 1; });
  EXPECT_EQ(end, 0);  // EOF ends the multishot
  Result cancel;
  loop.Cancel(&cancel, &accept);
  loop.RunOnce(0);
  EXPECT_EQ(accept.result, -ECANCELED);
  EXPECT_FALSE(HasMore(accept.flags));
}

}  // namespace
}  // namespace sluice::io
