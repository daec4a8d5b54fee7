// io::FakeLoop itself: durable vs. visible state across Crash, linked
// chains cancelled by a failure, fault counting, the seeded order being
// deterministic, and socket pairs.
#include "sluice/io/fake_loop.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::io {
namespace {

struct Result final : Completion {
  std::vector<int>* order = nullptr;
  int id = 0;
  int result = 1;  // 1: not completed
  void OnComplete(int r, uint32_t) override {
    result = r;
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

}  // namespace
}  // namespace sluice::io
