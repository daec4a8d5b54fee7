// The spool writer's group commit through io::FakeLoop: what a commit
// callback reports as stored must already be durable (it survives
// FakeLoop::Crash), and a failed write or fdatasync reports an error and
// loses no message that was acknowledged before it. Several seeds, so the
// completions come back in different orders.
#include <fcntl.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/io/fake_loop.h"
#include "sluice/spool/message_file.h"
#include "sluice/spool/spool_writer.h"

namespace sluice::spool {
namespace {

class SpoolWriterFakeTest : public testing::TestWithParam<uint64_t> {
 protected:
  void SetUp() override {
    loop_ = std::make_unique<io::FakeLoop>(GetParam());
    dir_fd_ = loop_->OpenDirectory("spool/0");
    buffers_ = std::move(*loop_->CreateBufferRing(1, 16, 4096));
    writer_ = std::make_unique<SpoolWriter>(*loop_, *buffers_, dir_fd_,
                                            [this] { return ids_.Next(++clock_); });
    writer_->set_stored_hook([this](const StoredRecord& r) { stored_[r.id.ToString()] = r; });
  }

  struct Outcome {
    bool done = false;
    absl::Status status;
    bool durable_at_report = false;  // its record parsed from the durable view then
  };

  // A small message (it goes into the segment); its outcome lands in `out`.
  std::string Send(int n, Outcome& out) {
    const base::QueueId id = ids_.Next(++clock_);
    SpoolWriter::Message* m = writer_->Begin(id);
    bodies_[id.ToString()] = Body(n);
    writer_->AppendOwned(m, Body(n));
    Envelope e;
    e.id = id;
    e.arrival_micros = 1;
    e.sender = "s@example.com";
    e.protocol = "ESMTP";
    e.recipients = {{"r@example.net"}};
    writer_->Commit(m, e, [this, &out, key = id.ToString()](const absl::Status& s) {
      out.done = true;
      out.status = s;
      out.durable_at_report = s.ok() && DurableBody(key) == bodies_[key];
    });
    return id.ToString();
  }

  static std::string Body(int n) {
    return "Subject: " + std::to_string(n) + "\r\n\r\nbody " + std::to_string(n) + "\r\n";
  }

  // The body of message `key` as a crash would leave it ("" if lost).
  std::string DurableBody(const std::string& key) const {
    auto it = stored_.find(key);
    if (it == stored_.end()) return "";
    auto file = loop_->DurableContents("spool/0/" + it->second.file);
    if (!file || file->size() < it->second.offset + it->second.length) return "";
    auto parsed = ParseFile(std::string_view(*file).substr(it->second.offset, it->second.length));
    return parsed.ok() ? std::string(parsed->body) : std::string();
  }

  void Turns(int n) {
    for (int i = 0; i < n; ++i) {
      writer_->Flush();
      loop_->RunOnce(0);
    }
  }

  std::unique_ptr<io::FakeLoop> loop_;
  int dir_fd_ = -1;
  std::unique_ptr<io::BufferRing> buffers_;
  std::unique_ptr<SpoolWriter> writer_;
  base::QueueIdGenerator ids_{0};
  uint64_t clock_ = 1000;
  std::map<std::string, StoredRecord> stored_;
  std::map<std::string, std::string> bodies_;
};

TEST_P(SpoolWriterFakeTest, ABatchIsReportedOnlyOnceDurable) {
  std::vector<Outcome> out(20);
  for (int i = 0; i < 20; ++i) Send(i, out[static_cast<size_t>(i)]);
  Turns(10);
  for (const Outcome& o : out) {
    ASSERT_TRUE(o.done);
    EXPECT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(o.durable_at_report);
  }
  // One group commit: the segment's writes, one fdatasync, one directory
  // fsync (the segment is new).
  EXPECT_EQ(writer_->segment_flushes(), 1u);
  EXPECT_EQ(loop_->executed(io::FakeLoop::Kind::kSync), 2u);
  loop_->Crash();
  for (const auto& [key, body] : bodies_) EXPECT_EQ(DurableBody(key), body) << key;
}

// Nothing acknowledged before the fdatasync finished: a turn's messages
// are not reported while their sync is still queued.
TEST_P(SpoolWriterFakeTest, NothingIsReportedBeforeTheSyncRan) {
  Outcome o;
  Send(1, o);
  writer_->Flush();
  // The segment opens in this turn; the batch (writes, fdatasync, directory
  // fsync) is submitted from the open's completion and runs in the next.
  loop_->RunOnce(0);
  EXPECT_FALSE(o.done);
  EXPECT_EQ(loop_->executed(io::FakeLoop::Kind::kSync), 0u);
  Turns(3);
  ASSERT_TRUE(o.done);
  EXPECT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(o.durable_at_report);
}

TEST_P(SpoolWriterFakeTest, AFailedFdatasyncReportsAndLosesNothingAcknowledged) {
  // A first batch commits; the second batch's fdatasync fails.
  std::vector<Outcome> first(5), second(5), third(5);
  std::vector<std::string> acknowledged, failed;
  for (int i = 0; i < 5; ++i) acknowledged.push_back(Send(i, first[static_cast<size_t>(i)]));
  Turns(5);
  for (const Outcome& o : first) ASSERT_TRUE(o.done && o.status.ok()) << o.status;
  loop_->FailNth(io::FakeLoop::Kind::kSync, 1, EIO);
  for (int i = 0; i < 5; ++i) failed.push_back(Send(10 + i, second[static_cast<size_t>(i)]));
  Turns(5);
  for (const Outcome& o : second) {
    ASSERT_TRUE(o.done);
    EXPECT_FALSE(o.status.ok());  // told: the client gets a temporary failure
  }
  // The writer goes on (a fresh segment) and later batches commit.
  for (int i = 0; i < 5; ++i) acknowledged.push_back(Send(20 + i, third[static_cast<size_t>(i)]));
  Turns(10);
  for (const Outcome& o : third) {
    ASSERT_TRUE(o.done);
    EXPECT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(o.durable_at_report);
  }
  loop_->Crash();
  for (const std::string& key : acknowledged) {
    EXPECT_EQ(DurableBody(key), bodies_[key]) << "acknowledged and lost: " << key;
  }
  // No record of the failed batch is handed to the ledger.
  for (const std::string& key : failed) EXPECT_EQ(stored_.count(key), 0u) << key;
}

TEST_P(SpoolWriterFakeTest, AFailedWriteFailsItsBatchOnly) {
  std::vector<Outcome> a(3), b(3);
  std::vector<std::string> kept;
  for (int i = 0; i < 3; ++i) kept.push_back(Send(i, a[static_cast<size_t>(i)]));
  Turns(5);
  loop_->FailNth(io::FakeLoop::Kind::kWrite, 1, ENOSPC);
  const uint64_t syncs = loop_->executed(io::FakeLoop::Kind::kSync);
  for (int i = 0; i < 3; ++i) Send(30 + i, b[static_cast<size_t>(i)]);
  Turns(5);
  for (const Outcome& o : a) EXPECT_TRUE(o.done && o.status.ok());
  for (const Outcome& o : b) {
    ASSERT_TRUE(o.done);
    EXPECT_FALSE(o.status.ok());
  }
  // The fdatasync linked behind the failed write never ran.
  EXPECT_EQ(loop_->executed(io::FakeLoop::Kind::kSync), syncs);
  loop_->Crash();
  for (const std::string& key : kept) EXPECT_EQ(DurableBody(key), bodies_[key]) << key;
}

INSTANTIATE_TEST_SUITE_P(Seeds, SpoolWriterFakeTest, testing::Values(1, 2, 3, 42, 1234));

}  // namespace
}  // namespace sluice::spool
