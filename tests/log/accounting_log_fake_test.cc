// The accounting log's write path through io::FakeLoop, with faults the
// real kernel only gives under a full disk: a short write is completed with
// its rest; a failed write keeps its whole lines and retries them, so every
// record reaches the file exactly once, whole. (The fake's descriptors are
// not real, so a fragment of a failed write cannot be cut back: it is left
// and ended by '\n', the fallback the log has for files it cannot read.)
#include <fcntl.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/io/fake_loop.h"
#include "sluice/log/accounting_log.h"

namespace sluice::log {
namespace {

class AccountingLogFakeTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_fd_ = loop_.OpenDirectory("log");
    // The file the daemon opens at start (O_APPEND), made here by the loop.
    struct Open final : io::Completion {
      int fd = -1;
      void OnComplete(int result, uint32_t) override { fd = result; }
    } open;
    loop_.Openat(&open, dir_fd_, "accounting.log", O_WRONLY | O_CREAT | O_APPEND, 0600);
    loop_.RunOnce(0);
    ASSERT_GE(open.fd, io::FakeLoop::kFirstFd);
    file_ = std::make_shared<LogFile>(open.fd);
    file_->set_retry_ms(2);
    log_ = std::make_unique<AccountingLog>(loop_, file_);
  }

  void WriteRecords(size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      texts_.push_back("seq=" + std::to_string(i) + " " + std::string(150, 'x'));
      DeliveryRecord r;
      r.ts_micros = 1772528707123456;
      r.id = "0ABCDEFGHJKMN";
      r.sender = "alice@example.com";
      r.recipient = "bob@example.net";
      r.code = 250;
      r.text = texts_.back();
      log_->Write(DeliveryType::kDelivery, r);
    }
  }

  // Turns until nothing is buffered, in flight or waiting for a retry.
  bool Drain() {
    for (int i = 0; i < 2000; ++i) {
      log_->Flush();
      if (log_->idle() && !file_->failing()) return true;
      loop_.RunOnce(0);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

  // seq -> how many whole lines carry it; `partial`: lines that are not whole.
  std::map<size_t, int> Records(int& partial) const {
    std::map<size_t, int> seen;
    partial = 0;
    const std::string content = loop_.FileContents("log/accounting.log").value_or("");
    EXPECT_TRUE(content.empty() || content.back() == '\n') << "ends inside a line";
    size_t from = 0;
    for (size_t nl; (nl = content.find('\n', from)) != std::string::npos; from = nl + 1) {
      const std::string line = content.substr(from, nl - from);
      const size_t at = line.find("seq=");
      const bool whole = line.size() > 2 && line.front() == '{' && line.back() == '}' &&
                         line.find("\"type\":\"Delivery\"") != std::string::npos;
      if (!whole || at == std::string::npos) {
        if (!line.empty()) ++partial;
        continue;
      }
      ++seen[std::stoul(line.substr(at + 4))];
    }
    return seen;
  }

  void ExpectEachOnce(size_t n, int partial_allowed) {
    int partial = 0;
    const std::map<size_t, int> seen = Records(partial);
    EXPECT_EQ(seen.size(), n);
    for (size_t i = 0; i < n; ++i) {
      auto it = seen.find(i);
      EXPECT_TRUE(it != seen.end() && it->second == 1) << "seq " << i;
    }
    EXPECT_EQ(partial, partial_allowed);
  }

  io::FakeLoop loop_{7};
  int dir_fd_ = -1;
  std::shared_ptr<LogFile> file_;
  std::unique_ptr<AccountingLog> log_;
  std::vector<std::string> texts_;  // the records' text outlives their formatting
};

TEST_F(AccountingLogFakeTest, AShortWriteIsCompletedWithItsRest) {
  loop_.ShortWriteNth(1, 100);  // cuts the first line in the middle
  WriteRecords(0, 20);
  ASSERT_TRUE(Drain());
  ExpectEachOnce(20, 0);
  EXPECT_EQ(log_->stats().short_writes, 1u);
  EXPECT_EQ(log_->stats().write_errors, 0u);
  EXPECT_EQ(log_->stats().records_written, 20u);
  EXPECT_EQ(loop_.executed(io::FakeLoop::Kind::kWrite), 2u);  // the cut one and its rest
}

TEST_F(AccountingLogFakeTest, AFailedWriteKeepsItsLinesAndRetriesThem) {
  loop_.FailNth(io::FakeLoop::Kind::kWrite, 1, ENOSPC);
  WriteRecords(0, 10);
  log_->Flush();
  loop_.RunOnce(0);
  EXPECT_TRUE(file_->failing());
  EXPECT_EQ(loop_.FileContents("log/accounting.log").value_or("x"), "");
  WriteRecords(10, 15);  // buffered behind the kept ones
  ASSERT_TRUE(Drain());
  ExpectEachOnce(15, 0);
  EXPECT_EQ(log_->stats().write_errors, 1u);
  EXPECT_EQ(log_->stats().records_written, 15u);
  EXPECT_EQ(log_->stats().records_lost, 0u);
}

// Part of a batch lands, then its rest fails: the whole lines written count
// as written, the rest is retried, and only the fragment is not a record.
TEST_F(AccountingLogFakeTest, AFailureAfterAShortWriteRetriesOnlyTheUnwrittenLines) {
  loop_.ShortWriteNth(1, 500);                        // two whole lines and a piece
  loop_.FailNth(io::FakeLoop::Kind::kWrite, 2, EIO);  // the rest fails
  WriteRecords(0, 12);
  ASSERT_TRUE(Drain());
  ExpectEachOnce(12, 1);
  EXPECT_EQ(log_->stats().write_errors, 1u);
  EXPECT_EQ(log_->stats().fragments_left, 1u);
  EXPECT_EQ(log_->stats().records_written, 12u);
}

}  // namespace
}  // namespace sluice::log
