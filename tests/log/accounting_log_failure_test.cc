// The accounting log when writes fail, through real io_uring writes to real
// files. RLIMIT_FSIZE makes the kernel cut a write short at a chosen size
// and fail the next one with EFBIG, as a full disk does with ENOSPC (the
// integration test test_log_integrity.py fills a real tmpfs); an append-only
// file (chattr +a, root only) refuses the cut. Checked: every line of the
// file is one strict JSON object, none holds two records, the whole lines
// not written are retried and land once, in order, past the bound records
// are dropped whole and counted, and stderr hears a few lines, not one per
// record.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/base/clock.h"
#include "sluice/base/limits.h"
#include "sluice/io/ring.h"
#include "sluice/log/accounting_log.h"
#include "strict_json.h"

namespace sluice::log {
namespace {

constexpr uint64_t kTestRetryMs = 20;

// RLIMIT_FSIZE for the test's scope (the whole process: run alone).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of the signal
    getrlimit(RLIMIT_FSIZE, &saved_);
    Set(bytes);
  }
  ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &saved_); }
  void Set(rlim_t bytes) {
    rlimit r = saved_;
    r.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &r), 0);
  }
  void Lift() { setrlimit(RLIMIT_FSIZE, &saved_); }

 private:
  rlimit saved_{};
};

struct TempLog {
  TempLog() {
    fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(fcntl(fd, F_SETFL, O_APPEND), 0);
  }
  ~TempLog() {
    close(fd);
    unlink(path);
  }
  std::string Content() const {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  char path[64] = "/tmp/sluice-log-fail-XXXXXX";
  int fd = -1;
};

std::vector<std::string> Lines(const std::string& content) {
  std::vector<std::string> lines;
  size_t from = 0;
  for (size_t nl; (nl = content.find('\n', from)) != std::string::npos; from = nl + 1) {
    lines.push_back(content.substr(from, nl - from));
  }
  EXPECT_EQ(from, content.size()) << "the file ends inside a line";
  return lines;
}

// Every line one strict JSON object with one "type": no fragment, no merge.
void ExpectWholeRecords(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    ASSERT_TRUE(strict::IsObjectLine(line)) << line.substr(0, 300);
    size_t types = 0;
    for (size_t at = 0; (at = line.find("\"type\":", at)) != std::string::npos; ++at) ++types;
    ASSERT_EQ(types, 1u) << line.substr(0, 300);
  }
}

DeliveryRecord Numbered(const std::string& text) {
  DeliveryRecord r;
  r.ts_micros = 1772528707123456;
  r.id = "0ABCDEFGHJKMN";
  r.sender = "alice@example.com";
  r.recipient = "bob@example.net";
  r.code = 250;
  r.text = text;
  return r;
}

std::string SeqText(size_t seq, size_t pad) {
  return "seq=" + std::to_string(seq) + " " + std::string(pad, 'x');
}

size_t SeqOf(const std::string& line) {
  const size_t at = line.find("seq=");
  return at == std::string::npos ? SIZE_MAX : std::stoul(line.substr(at + 4));
}

// Runs the ring until the log has nothing in flight and nothing to retry.
bool Drain(io::Ring& ring, AccountingLog& log, const LogFile& file, uint64_t timeout_ms) {
  const uint64_t until = base::MonotonicMillis() + timeout_ms;
  while (base::MonotonicMillis() < until) {
    log.Flush();
    if (log.idle() && !file.failing()) return true;
    ring.RunOnce(5);
  }
  return false;
}

// Runs the ring until the log failed (and holds what it could not write).
bool UntilFailing(io::Ring& ring, AccountingLog& log, const LogFile& file) {
  for (int i = 0; i < 200 && !(file.failing() && log.idle()); ++i) {
    log.Flush();
    ring.RunOnce(5);
  }
  return file.failing();
}

TEST(AccountingLogFailure, ShortWriteIsCutBackAndTheRestRetried) {
  auto ring = io::Ring::Create(64);
  ASSERT_TRUE(ring.ok()) << ring.status();
  TempLog f;
  auto file = std::make_shared<LogFile>(f.fd);
  file->set_retry_ms(kTestRetryMs);
  testing::internal::CaptureStderr();
  const size_t n = 50;
  {
    AccountingLog log(**ring, file);
    FileSizeLimit limit(10'000);  // mid-way through a ~300-byte record
    for (size_t i = 0; i < n; ++i) log.Write(DeliveryType::kDelivery, Numbered(SeqText(i, 100)));
    ASSERT_TRUE(UntilFailing(**ring, log, *file));
    const std::string before = f.Content();
    EXPECT_LE(before.size(), 10'000u);
    EXPECT_GT(before.size(), 9'000u);
    const auto lines = Lines(before);
    ExpectWholeRecords(lines);
    EXPECT_EQ(log.stats().write_errors, 1u);
    EXPECT_EQ(log.stats().short_writes, 1u);
    EXPECT_EQ(log.stats().fragments_cut, 1u);
    EXPECT_EQ(log.stats().records_written, lines.size());
    // Not due yet: nothing is attempted.
    log.Flush();
    EXPECT_TRUE(log.idle());
    EXPECT_EQ(log.stats().write_errors, 1u);

    limit.Lift();
    ASSERT_TRUE(Drain(**ring, log, *file, 2000));
    EXPECT_EQ(log.stats().records_written, n);
    EXPECT_EQ(log.stats().records_lost, 0u);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  const auto lines = Lines(f.Content());
  ExpectWholeRecords(lines);
  ASSERT_EQ(lines.size(), n);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(SeqOf(lines[i]), i) << lines[i];
  EXPECT_NE(err.find("key=log.write_failed msg=\"accounting log: write failed (File too large)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("writes recovered after"), std::string::npos) << err;
  EXPECT_NE(err.find(": 0 records lost, 1 write errors"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << err;
}

// The ordering the shard relies on before a final outcome goes to the
// ledger: a mark is reached only once every record buffered before it is in
// the file, in order; while writes fail it counts as reached (the ledger
// does not wait on a broken disk); with logging off, always.
TEST(AccountingLogFailure, MarksAreReachedOnceTheirRecordsAreInTheFile) {
  auto ring = io::Ring::Create(64);
  ASSERT_TRUE(ring.ok()) << ring.status();
  TempLog f;
  auto file = std::make_shared<LogFile>(f.fd);
  file->set_retry_ms(kTestRetryMs);
  testing::internal::CaptureStderr();
  {
    AccountingLog log(**ring, file);
    EXPECT_TRUE(log.Reached(log.mark()));  // nothing buffered
    for (size_t i = 0; i < 20; ++i) log.Write(DeliveryType::kDelivery, Numbered(SeqText(i, 10)));
    const uint64_t first = log.mark();
    EXPECT_EQ(first, 20u);
    EXPECT_FALSE(log.Reached(first));
    log.Flush();
    EXPECT_FALSE(log.Reached(first));  // submitted, not yet written
    ASSERT_TRUE(Drain(**ring, log, *file, 2000));
    EXPECT_TRUE(log.Reached(first));
    EXPECT_EQ(Lines(f.Content()).size(), 20u);
    for (size_t i = 20; i < 40; ++i) log.Write(DeliveryType::kBounce, Numbered(SeqText(i, 10)));
    const uint64_t second = log.mark();
    EXPECT_TRUE(log.Reached(first));
    EXPECT_FALSE(log.Reached(second));

    FileSizeLimit limit(f.Content().size() + 300);  // room for about one more record
    ASSERT_TRUE(UntilFailing(**ring, log, *file));
    EXPECT_LT(log.stats().records_written, 40u);
    EXPECT_TRUE(log.Reached(second));  // failing: not waited for
    limit.Lift();
    ASSERT_TRUE(Drain(**ring, log, *file, 2000));
    EXPECT_TRUE(log.Reached(second));
    EXPECT_EQ(log.stats().records_written, 40u);
  }
  testing::internal::GetCapturedStderr();
  AccountingLog off(**ring, -1);
  off.Write(DeliveryType::kDelivery, Numbered("x"));
  EXPECT_TRUE(off.Reached(off.mark()));
}

// While writes fail the buffer stops at kLogBufferMax: later records are
// dropped whole and counted, the kept ones land in order once writes work,
// and stderr says how many were lost, once.
TEST(AccountingLogFailure, PastTheBoundRecordsAreDroppedWholeAndCounted) {
  auto ring = io::Ring::Create(64);
  ASSERT_TRUE(ring.ok()) << ring.status();
  TempLog f;
  const std::string pre = "{\"type\":\"Before\"}\n";
  std::string prefill;
  while (prefill.size() < 64 * 1024) prefill += pre;
  ASSERT_EQ(write(f.fd, prefill.data(), prefill.size()), static_cast<ssize_t>(prefill.size()));
  auto file = std::make_shared<LogFile>(f.fd);
  file->set_retry_ms(kTestRetryMs);
  testing::internal::CaptureStderr();
  size_t total = 0;
  AccountingLogStats stats;
  {
    AccountingLog log(**ring, file);
    FileSizeLimit limit(prefill.size());  // full: not one more byte
    log.Write(DeliveryType::kBounce, Numbered(SeqText(total++, 500)));
    ASSERT_TRUE(UntilFailing(**ring, log, *file));
    EXPECT_EQ(f.Content().size(), prefill.size());
    // Three times the bound, a retry now and then on the way.
    while (total * 600 < 3 * limits::kLogBufferMax) {
      log.Write(DeliveryType::kBounce, Numbered(SeqText(total++, 500)));
      if (total % 500 == 0) {
        log.Flush();
        (*ring)->RunOnce(kTestRetryMs);
      }
    }
    EXPECT_GT(log.stats().records_lost, total / 2);
    EXPECT_GT(log.stats().write_errors, 1u);
    limit.Lift();
    ASSERT_TRUE(Drain(**ring, log, *file, 2000));
    stats = log.stats();
  }
  const std::string err = testing::internal::GetCapturedStderr();
  auto lines = Lines(f.Content());
  ExpectWholeRecords(lines);
  lines.erase(lines.begin(), lines.begin() + static_cast<long>(prefill.size() / pre.size()));
  EXPECT_EQ(stats.records_written, lines.size());
  EXPECT_EQ(stats.records_written + stats.records_lost, total);
  EXPECT_LE(stats.records_written * 600, limits::kLogBufferMax + 1200);
  // The kept records are the first ones, in order.
  for (size_t i = 0; i < lines.size(); ++i) ASSERT_EQ(SeqOf(lines[i]), i) << lines[i];
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << err;
  EXPECT_NE(err.find("records lost"), std::string::npos) << err;
  EXPECT_NE(err.find(": " + std::to_string(stats.records_lost) + " records lost"),
            std::string::npos)
      << err;
}

// However many records are lost, stderr hears of it at a rate, not per
// record: a line when writes start failing, a reminder per interval with
// the count so far, a line when they recover with the total.
TEST(AccountingLogFailure, StderrIsRateLimited) {
  auto ring = io::Ring::Create(64);
  ASSERT_TRUE(ring.ok()) << ring.status();
  TempLog f;
  const std::string prefill(4095, ' ');  // the limit must leave stderr's capture file room
  ASSERT_EQ(write(f.fd, (prefill + "\n").data(), 4096), 4096);
  auto file = std::make_shared<LogFile>(f.fd);
  file->set_retry_ms(2);
  file->set_report_ms(40);
  testing::internal::CaptureStderr();
  uint64_t lost = 0, errors = 0, elapsed_ms = 0;
  {
    AccountingLog log(**ring, file);
    FileSizeLimit limit(4096);
    // At least 130 ms and a dozen failed attempts (a loaded machine is slow
    // to complete them), at most 5 s.
    const uint64_t start = base::MonotonicMillis();
    for (size_t i = 0; base::MonotonicMillis() < start + 5000; ++i) {
      log.Write(DeliveryType::kDelivery, Numbered(SeqText(i, 20'000)));
      log.Flush();
      (*ring)->RunOnce(0);
      if (base::MonotonicMillis() >= start + 130 && log.stats().write_errors >= 12) break;
    }
    elapsed_ms = base::MonotonicMillis() - start;
    limit.Lift();
    ASSERT_TRUE(Drain(**ring, log, *file, 2000));
    lost = log.stats().records_lost;
    errors = log.stats().write_errors;
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_GT(lost, 10u);
  EXPECT_GE(errors, 12u);
  const auto lines = Lines(err);
  // The failure, a reminder per 40 ms at most, the recovery.
  ASSERT_GE(lines.size(), 2u) << err;
  ASSERT_LE(lines.size(), 3 + elapsed_ms / 40) << err;
  ASSERT_LT(lines.size(), errors) << err;
  EXPECT_NE(lines.front().find("write failed (File too large)"), std::string::npos) << err;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    EXPECT_NE(lines[i].find("writes still failing (File too large) for "), std::string::npos)
        << err;
  }
  EXPECT_NE(lines.back().find(": " + std::to_string(lost) + " records lost"), std::string::npos)
      << err;
}

// A log that ends its life while writes fail: the records it still holds
// get one last attempt, and what is lost is reported on stderr.
TEST(AccountingLogFailure, RecordsLeftAtExitAreTriedOnceAndReported) {
  auto ring = io::Ring::Create(64);
  ASSERT_TRUE(ring.ok()) << ring.status();
  TempLog f;
  testing::internal::CaptureStderr();
  size_t tried = 0;
  {
    FileSizeLimit limit(1000);  // still in force when the log goes
    auto file = std::make_shared<LogFile>(f.fd);
    file->set_retry_ms(60'000);  // no retry before the end
    AccountingLog log(**ring, file);
    for (int i = 0; i < 10; ++i) log.Write(DeliveryType::kDelivery, Numbered(SeqText(i, 200)));
    ASSERT_TRUE(UntilFailing(**ring, log, *file));
    for (int i = 10; i < 20; ++i) log.Write(DeliveryType::kDelivery, Numbered(SeqText(i, 200)));
    EXPECT_TRUE(log.idle());  // failing: the shard may stop
    tried = log.stats().write_errors;
  }
  const std::string err = testing::internal::GetCapturedStderr();
  const auto lines = Lines(f.Content());
  ExpectWholeRecords(lines);
  EXPECT_EQ(tried, 1u);
  EXPECT_GE(lines.size(), 1u);
  EXPECT_LE(lines.size(), 3u);
  EXPECT_NE(err.find(std::to_string(20 - lines.size()) +
                     " records lost since the last report, writes still failing (File too large)"),
            std::string::npos)
      << err;
}

// Where the fragment cannot be cut (an append-only file refuses ftruncate),
// the next write starts with a newline: the fragment stands alone on its
// line and no record is glued to it.
TEST(AccountingLogFailure, UncutFragmentIsEndedByTheNextWrite) {
  auto ring = io::Ring::Create(64);
  ASSERT_TRUE(ring.ok()) << ring.status();
  TempLog f;
  int flags = FS_APPEND_FL;
  if (ioctl(f.fd, FS_IOC_SETFLAGS, &flags) != 0) {
    GTEST_SKIP() << "cannot make the file append-only (needs root and ext4/xfs/btrfs)";
  }
  auto file = std::make_shared<LogFile>(f.fd);
  file->set_retry_ms(kTestRetryMs);
  testing::internal::CaptureStderr();
  const size_t n = 20;
  {
    AccountingLog log(**ring, file);
    FileSizeLimit limit(3000);
    for (size_t i = 0; i < n; ++i) log.Write(DeliveryType::kDelivery, Numbered(SeqText(i, 200)));
    ASSERT_TRUE(UntilFailing(**ring, log, *file));
    EXPECT_EQ(log.stats().fragments_left, 1u);
    EXPECT_TRUE(file->torn());
    limit.Lift();
    ASSERT_TRUE(Drain(**ring, log, *file, 2000));
    EXPECT_FALSE(file->torn());
    EXPECT_EQ(log.stats().records_written, n);
  }
  testing::internal::GetCapturedStderr();
  flags = 0;
  ioctl(f.fd, FS_IOC_SETFLAGS, &flags);
  const auto lines = Lines(f.Content());
  ASSERT_EQ(lines.size(), n + 1);
  size_t fragments = 0, next = 0;
  for (const std::string& line : lines) {
    if (!strict::IsObjectLine(line)) {
      ++fragments;
      EXPECT_EQ(line.rfind("{\"type\":\"Delivery\"", 0), 0u) << line;  // a record's start, alone
      EXPECT_EQ(line.find("{\"type\"", 1), std::string::npos) << line;
      continue;
    }
    EXPECT_EQ(SeqOf(line), next++) << line;
  }
  EXPECT_EQ(fragments, 1u);
  EXPECT_EQ(next, n);
}

// Shard A's write is cut short (the file hit its limit) and space returns
// before A's loop sees the completion. Shard B must not write in between:
// its lines would land behind A's fragment, merged with it. A completes its
// line with the rest; then B writes.
TEST(AccountingLogFailure, AShortWriteIsCompletedBeforeAnotherShardWrites) {
  auto ring_a = io::Ring::Create(64);
  auto ring_b = io::Ring::Create(64);
  ASSERT_TRUE(ring_a.ok() && ring_b.ok());
  TempLog f;
  auto file = std::make_shared<LogFile>(f.fd);
  AccountingLog a(**ring_a, file), b(**ring_b, file);
  {
    FileSizeLimit limit(1000);
    for (int i = 0; i < 10; ++i) a.Write(DeliveryType::kDelivery, Numbered(SeqText(i, 200)));
    a.Flush();
    // Submitted and done in the kernel, not yet seen by A's loop.
    ASSERT_EQ((*ring_a)->SubmitAndPeekForTest(), 1000);
  }
  for (int i = 10; i < 20; ++i) b.Write(DeliveryType::kBounce, Numbered(SeqText(i, 200)));
  b.Flush();
  (*ring_b)->RunOnce(0);
  EXPECT_FALSE(b.idle());  // B waits for the token
  for (int i = 0; i < 100 && !(a.idle() && b.idle()); ++i) {
    (*ring_a)->RunOnce(1);
    b.Flush();
    (*ring_b)->RunOnce(1);
  }
  ASSERT_TRUE(a.idle() && b.idle());
  const auto lines = Lines(f.Content());
  ExpectWholeRecords(lines);
  ASSERT_EQ(lines.size(), 20u);
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(SeqOf(lines[i]), i) << lines[i];
  EXPECT_EQ(a.stats().short_writes, 1u);
  EXPECT_EQ(a.stats().write_errors, 0u);
}

// Two shards (threads, rings) on one file while writes fail and recover:
// the token keeps every line whole, and every record is written or counted.
TEST(AccountingLogFailure, TwoShardsNeverMergeLines) {
  TempLog f;
  auto file = std::make_shared<LogFile>(f.fd);
  file->set_retry_ms(kTestRetryMs);
  testing::internal::CaptureStderr();
  FileSizeLimit limit(300'000);
  constexpr size_t kPerShard = 6000;
  std::atomic<int> finished{0};
  AccountingLogStats stats[2];
  auto shard = [&](int index) {
    auto ring = io::Ring::Create(64);
    ASSERT_TRUE(ring.ok()) << ring.status();
    AccountingLog log(**ring, file);
    for (size_t i = 0; i < kPerShard; ++i) {
      log.Write(DeliveryType::kDelivery,
                Numbered("shard=" + std::to_string(index) + " " + SeqText(i, 150 + index * 37)));
      if (i % 20 == 0) {
        log.Flush();
        (*ring)->RunOnce(0);
      }
    }
    finished.fetch_add(1);
    while (finished.load() < 3) {  // until the limit is lifted
      log.Flush();
      (*ring)->RunOnce(1);
    }
    EXPECT_TRUE(Drain(**ring, log, *file, 3000));
    stats[index] = log.stats();
  };
  std::thread a(shard, 0), b(shard, 1);
  while (finished.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  limit.Lift();
  finished.fetch_add(1);
  a.join();
  b.join();
  testing::internal::GetCapturedStderr();
  const auto lines = Lines(f.Content());
  ExpectWholeRecords(lines);
  EXPECT_EQ(lines.size(), stats[0].records_written + stats[1].records_written);
  for (const auto& s : stats) {
    EXPECT_EQ(s.records_written + s.records_lost, kPerShard);
    EXPECT_EQ(s.fragments_left, 0u);
  }
  EXPECT_GT(stats[0].write_errors + stats[1].write_errors, 0u);
  EXPECT_GT(stats[0].records_lost + stats[1].records_lost, 0u);
}

}  // namespace
}  // namespace sluice::log
