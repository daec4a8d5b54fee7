// The sink end to end on real pipes and threads: level filtering, shard
// lines through the log-writer, thread names, the rate limit, drop
// counting with a reader that stalls, and a stderr nobody reads.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "sluice/diag/diag.h"

namespace sluice::diag {
namespace {

struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    read_fd = fds[0];
    write_fd = fds[1];
  }
  ~Pipe() {
    if (read_fd >= 0) close(read_fd);
    if (write_fd >= 0) close(write_fd);
  }
  // Everything written until the write end is closed.
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(read_fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  int read_fd = -1, write_fd = -1;
};

Options To(int fd, Level min = Level::kDebug, uint32_t rate = 0) {
  Options o;
  o.fd = fd;
  o.min_level = min;
  o.lines_per_key_per_second = rate;
  o.prefix = Prefix::kJournald;
  return o;
}

std::string ThreadName() {
  std::ifstream f("/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/comm");
  std::string name;
  std::getline(f, name);
  return name;
}

size_t Count(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class DiagSink : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }
};

TEST_F(DiagSink, FiltersByLevelAndWritesSynchronouslyWithoutTheWriter) {
  Pipe p;
  Configure(To(p.write_fd, Level::kWarning));
  SLUICE_LOG(kInfo, "test.hidden", "not written");
  SLUICE_LOG(kWarning, "test.shown", "written", {{"peer", "192.0.2.1"}});
  SLUICE_LOG(kError, "test.error", "also written");
  EXPECT_FALSE(Admit(Level::kNotice, "test.x"));
  EXPECT_TRUE(Admit(Level::kWarning, "test.x"));
  close(p.write_fd);
  p.write_fd = -1;
  EXPECT_EQ(p.ReadAll(),
            "<4>level=warning key=test.shown msg=written peer=192.0.2.1\n"
            "<3>level=error key=test.error msg=\"also written\"\n");
}

TEST_F(DiagSink, ShardLinesGoThroughTheNamedWriterThread) {
  Pipe p;
  Configure(To(p.write_fd));
  StartWriter();
  std::string shard_name;
  std::thread t([&] {
    ShardScope scope(7);
    shard_name = ThreadName();
    SLUICE_LOG(kWarning, "test.from_shard", "hello", {{"n", 1}});
  });
  t.join();
  bool saw_writer = false;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream f(task.path() / "comm");
    std::string name;
    std::getline(f, name);
    saw_writer |= name == "log-writer";
  }
  SLUICE_LOG(kNotice, "test.from_main", "main");
  StopWriter(5000);
  close(p.write_fd);
  p.write_fd = -1;
  EXPECT_EQ(shard_name, "shard-7");
  EXPECT_TRUE(saw_writer);
  const std::string out = p.ReadAll();
  EXPECT_TRUE(
      absl::StrContains(out, "<4>level=warning key=test.from_shard shard=7 msg=hello n=1\n"))
      << out;
  EXPECT_TRUE(absl::StrContains(out, "<5>level=notice key=test.from_main msg=main\n")) << out;
}

TEST_F(DiagSink, RateLimitsEachKeyOnAShardAndSummarises) {
  Pipe p;
  Configure(To(p.write_fd, Level::kDebug, 2));
  StartWriter();
  const uint64_t suppressed_before = GetCounters().suppressed;
  std::thread t([&] {
    ShardScope scope(1);
    for (int i = 0; i < 10; ++i) SLUICE_LOG(kWarning, "auth.failed", "AUTH failed", {{"i", i}});
    SLUICE_LOG(kWarning, "tls.handshake_failed", "another key");
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    Tick();  // the window ended: a summary for auth.failed
    SLUICE_LOG(kWarning, "auth.failed", "AUTH failed again");
  });
  t.join();
  StopWriter(5000);
  close(p.write_fd);
  p.write_fd = -1;
  const std::string out = p.ReadAll();
  EXPECT_EQ(Count(out, "level=warning key=auth.failed "), 3u) << out;
  EXPECT_EQ(Count(out, "key=tls.handshake_failed "), 1u) << out;
  EXPECT_TRUE(absl::StrContains(
      out,
      "<5>level=notice key=diag.suppressed shard=1 msg=\"lines held back by the per-key rate "
      "limit\" suppressed_key=auth.failed count=8\n"))
      << out;
  EXPECT_FALSE(absl::StrContains(out, "again\" suppressed=")) << out;  // reported once
  EXPECT_EQ(GetCounters().suppressed - suppressed_before, 8u);
}

// A reader that stalls: the shard keeps going, drops are counted, and the
// count arrives as diag.dropped once the pipe drains. Nothing is lost
// without being counted.
TEST_F(DiagSink, FullBufferDropsCountsAndReportsWithoutBlockingTheShard) {
  Pipe p;
  ASSERT_GT(fcntl(p.write_fd, F_SETPIPE_SZ, 4096), 0);
  Configure(To(p.write_fd));
  StartWriter();
  constexpr int kLines = 20000;
  const std::string padding(100, 'p');
  std::chrono::steady_clock::duration took{};
  std::thread t([&] {
    ShardScope scope(2);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kLines; ++i) SLUICE_LOG(kWarning, "test.flood", padding, {{"i", i}});
    took = std::chrono::steady_clock::now() - start;
  });
  t.join();  // nobody has read the pipe yet
  EXPECT_LT(took, std::chrono::seconds(2));
  std::string out;
  std::thread reader([&] { out = p.ReadAll(); });
  StopWriter(10000);
  close(p.write_fd);
  p.write_fd = -1;
  reader.join();
  const size_t written = Count(out, "key=test.flood ");
  uint64_t reported = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (!absl::StrContains(line, "key=diag.dropped shard=2 ")) continue;
    uint64_t n = 0;
    ASSERT_TRUE(absl::SimpleAtoi(line.substr(line.rfind("count=") + 6), &n)) << line;
    reported += n;
  }
  EXPECT_GT(reported, 0u);
  EXPECT_GT(written, 0u);
  EXPECT_EQ(written + reported, static_cast<size_t>(kLines));
}

// Last: it leaves a writer stuck on a pipe nobody reads.
TEST_F(DiagSink, StopGivesUpOnAStderrNobodyReads) {
  Pipe p;
  ASSERT_GT(fcntl(p.write_fd, F_SETPIPE_SZ, 4096), 0);
  Configure(To(p.write_fd));
  StartWriter();
  std::thread t([&] {
    ShardScope scope(0);
    for (int i = 0; i < 2000; ++i) SLUICE_LOG(kWarning, "test.wedge", std::string(200, 'w'));
  });
  t.join();
  const auto start = std::chrono::steady_clock::now();
  StopWriter(300);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  const uint64_t dropped = GetCounters().dropped;
  SLUICE_LOG(kNotice, "test.after", "dropped, never blocks");
  EXPECT_EQ(GetCounters().dropped, dropped + 1);
  close(p.read_fd);  // the abandoned writer gets EPIPE and ends
  p.read_fd = -1;
}

}  // namespace
}  // namespace sluice::diag
