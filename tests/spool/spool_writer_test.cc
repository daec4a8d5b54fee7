// The spool writer on a real io_uring and real files in a temporary
// directory: commit protocol, group commit, abort, recovery scan.
#include "sluice/spool/spool_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "sluice/base/limits.h"
#include "sluice/spool/spool_directory.h"

namespace sluice::spool {
namespace {

namespace fs = std::filesystem;

class SpoolWriterTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-spool-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    ASSERT_TRUE(PrepareSpool(root_, 1).ok());
    dir_fd_ = open((root_ + "/0").c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(dir_fd_, 0);
    ring_ = std::move(*io::Ring::Create(256));
    buffers_ = std::move(*io::BufferRing::Create(*ring_, 1, 16, 4096));
    writer_ = std::make_unique<SpoolWriter>(*ring_, *buffers_, dir_fd_);
  }
  void TearDown() override {
    writer_.reset();
    buffers_.reset();
    ring_.reset();
    close(dir_fd_);
    fs::remove_all(root_);
  }

  // Runs the loop the way a shard does until `done` or a bounded number of turns.
  void RunUntil(const bool& done) {
    for (int i = 0; i < 1000 && !done; ++i) {
      ring_->RunOnce(100);
      writer_->FlushDirectory();
    }
    ASSERT_TRUE(done);
  }

  Envelope MakeEnvelope() {
    Envelope e;
    e.arrival_micros = 1;
    e.sender = "s@example.com";
    e.protocol = "ESMTP";
    e.recipients = {{"r@example.net"}};
    return e;
  }

  std::string root_;
  int dir_fd_ = -1;
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> buffers_;
  std::unique_ptr<SpoolWriter> writer_;
  base::QueueIdGenerator ids_{0};
};

TEST_F(SpoolWriterTest, CommittedMessagesAreCompleteAndRenamed) {
  constexpr int kMessages = 20;
  int committed = 0;
  bool all = false;
  for (int i = 0; i < kMessages; ++i) {
    base::QueueId id = ids_.Next(1000 + i);
    SpoolWriter::Message* m = writer_->Begin(id);
    // Large enough to force intermediate writes before the commit.
    std::string body = "Subject: " + std::to_string(i) + "\r\n\r\n";
    for (int k = 0; k < 20000; ++k) body += "line of text\r\n";
    writer_->AppendOwned(m, body);
    writer_->Commit(m, MakeEnvelope(), [&](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      all = ++committed == kMessages;
    });
  }
  RunUntil(all);
  EXPECT_EQ(writer_->in_flight(), 0u);
  auto report = ScanSpool(root_, ScanOptions{.repair = false, .verify_body = true});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->messages.size(), static_cast<size_t>(kMessages));
  EXPECT_TRUE(report->corrupt.empty());
  EXPECT_EQ(report->temporary_removed, 0u);
}

TEST_F(SpoolWriterTest, ReceiveBuffersAreHeldUntilWritten) {
  const uint16_t id = 3;
  buffers_->Acquire(id);
  std::memcpy(buffers_->data(id), "Subject: b\r\n\r\nbody\r\n", 20);
  SpoolWriter::Message* m = writer_->Begin(ids_.Next(5));
  writer_->Append(m, buffers_->data(id), 20, id);
  buffers_->Release(id);  // the session is done with it; the write is not
  EXPECT_EQ(buffers_->available_estimate(), 15u);
  bool done = false;
  writer_->Commit(m, MakeEnvelope(), [&](const absl::Status& s) {
    EXPECT_TRUE(s.ok());
    done = true;
  });
  RunUntil(done);
  EXPECT_EQ(buffers_->available_estimate(), 16u);
}

TEST_F(SpoolWriterTest, AbortLeavesNothingBehind) {
  SpoolWriter::Message* m = writer_->Begin(ids_.Next(7));
  writer_->AppendOwned(m, "partial body");
  writer_->Abort(m);
  for (int i = 0; i < 20 && writer_->in_flight() > 0; ++i) ring_->RunOnce(50);
  EXPECT_EQ(writer_->in_flight(), 0u);
  // The unlink runs in io_uring's worker pool: give it a bounded moment.
  for (int i = 0; i < 200 && !fs::is_empty(root_ + "/0"); ++i) ring_->RunOnce(10);
  EXPECT_TRUE(fs::is_empty(root_ + "/0"));
}

TEST_F(SpoolWriterTest, RecoveryRemovesTemporariesAndSetsAsideCorruption) {
  bool done = false;
  base::QueueId good = ids_.Next(100);
  SpoolWriter::Message* m = writer_->Begin(good);
  writer_->AppendOwned(m, "Subject: ok\r\n\r\nfine\r\n");
  writer_->Commit(m, MakeEnvelope(), [&](const absl::Status&) { done = true; });
  RunUntil(done);
  // A crashed write and a damaged file.
  base::QueueId tmp = ids_.Next(200), bad = ids_.Next(300);
  std::ofstream(root_ + "/0/" + TemporaryFileName(tmp)) << "SLUICEQ1half a mess";
  fs::copy_file(root_ + "/0/" + MessageFileName(good), root_ + "/0/" + MessageFileName(bad));
  {
    std::fstream f(root_ + "/0/" + MessageFileName(bad), std::ios::in | std::ios::out);
    f.seekp(10);
    f.put('#');
  }
  auto report = ScanSpool(root_, ScanOptions{.repair = true, .verify_body = true});
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->messages.size(), 1u);
  EXPECT_EQ(report->messages[0].envelope.id, good);
  EXPECT_EQ(report->temporary_removed, 1u);
  ASSERT_EQ(report->corrupt.size(), 1u);
  EXPECT_EQ(report->newest, bad);
  EXPECT_FALSE(fs::exists(root_ + "/0/" + TemporaryFileName(tmp)));
  EXPECT_TRUE(fs::exists(root_ + "/corrupt/0-" + MessageFileName(bad)));
  EXPECT_TRUE(fs::exists(root_ + "/corrupt/0-" + MessageFileName(bad) + ".why"));
}

TEST_F(SpoolWriterTest, FailedOpenIsReported) {
  base::QueueId id = ids_.Next(9);
  // Occupy the temporary name so O_EXCL fails.
  std::ofstream(root_ + "/0/" + TemporaryFileName(id)) << "x";
  SpoolWriter::Message* m = writer_->Begin(id);
  writer_->AppendOwned(m, "body");
  bool done = false;
  writer_->Commit(m, MakeEnvelope(), [&](const absl::Status& s) {
    EXPECT_FALSE(s.ok());
    done = true;
  });
  RunUntil(done);
  // The file we did not create is left alone.
  EXPECT_TRUE(fs::exists(root_ + "/0/" + TemporaryFileName(id)));
}

}  // namespace
}  // namespace sluice::spool
