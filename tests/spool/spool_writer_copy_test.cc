// The spool writer's copy path (AppendCopy) on a real io_uring and real
// files: coalesced pages, interleaving with held receive buffers, the
// memory budget that makes bodies stream early, and pages freed as soon as
// their writes complete.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "sluice/spool/spool_directory.h"
#include "sluice/spool/spool_writer.h"

namespace sluice::spool {
namespace {

namespace fs = std::filesystem;

class SpoolWriterCopyTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-spool-copy-XXXXXX";
    root_ = mkdtemp(tmpl);
    ASSERT_TRUE(PrepareSpool(root_, 1).ok());
    dir_fd_ = open((root_ + "/0").c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(dir_fd_, 0);
    ring_ = std::move(*io::Ring::Create(256));
    buffers_ = std::move(*io::BufferRing::Create(*ring_, 1, 16, 4096));
    writer_ = std::make_unique<SpoolWriter>(*ring_, *buffers_, dir_fd_,
                                            [this] { return ids_.Next(++clock_); });
  }
  void TearDown() override {
    writer_.reset();
    buffers_.reset();
    ring_.reset();
    close(dir_fd_);
    fs::remove_all(root_);
  }

  void RunUntil(const bool& done) {
    for (int i = 0; i < 1000 && !done; ++i) {
      ring_->RunOnce(100);
      writer_->Flush();
    }
    ASSERT_TRUE(done);
  }

  void Commit(SpoolWriter::Message* m) {
    Envelope e;
    e.arrival_micros = 1;
    e.sender = "s@example.com";
    e.protocol = "ESMTP";
    e.recipients = {{"r@example.net"}};
    bool done = false;
    writer_->Commit(m, std::move(e), [&](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      done = true;
    });
    RunUntil(done);
  }

  // The one stored message's body.
  std::string StoredBody() {
    auto report = ScanSpool(root_, ScanOptions{.repair = false, .verify_body = true});
    EXPECT_TRUE(report.ok()) << report.status();
    if (!report.ok() || report->messages.size() != 1) return "<no single message>";
    auto bytes = ReadRecord(report->messages[0].where);
    EXPECT_TRUE(bytes.ok());
    auto parsed = ParseFile(*bytes);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed.ok() ? std::string(parsed->body) : "";
  }

  std::string root_;
  int dir_fd_ = -1;
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> buffers_;
  std::unique_ptr<SpoolWriter> writer_;
  base::QueueIdGenerator ids_{0};
  uint64_t clock_ = 1'000'000;
};

// A body trickled in 3-byte lines: one page per 16 KiB, not one iovec (or
// one held buffer) per line.
TEST_F(SpoolWriterCopyTest, TrickledLinesShareAPage) {
  SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
  std::string expected;
  for (int i = 0; i < 3000; ++i) {
    const std::string line = std::to_string(i % 10) + "\r\n";
    expected += line;
    writer_->AppendCopy(m, line.data(), line.size());
  }
  EXPECT_EQ(writer_->copied_bytes(), SpoolWriter::kPageBytes);  // 9,000 bytes: one page
  EXPECT_EQ(writer_->HeldBuffers(m), 0u);
  Commit(m);
  EXPECT_EQ(writer_->copied_bytes(), 0u);  // freed with the message
  EXPECT_EQ(StoredBody(), expected);
}

// Copies and held receive buffers interleave: the order of bytes is kept,
// and a copy after a held span never extends the iovec before it.
TEST_F(SpoolWriterCopyTest, CopiesAndHeldBuffersInterleave) {
  SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
  std::string expected;
  for (uint16_t id = 0; id < 4; ++id) {
    const std::string small = "small " + std::to_string(id) + "\r\n";
    writer_->AppendCopy(m, small.data(), small.size());
    expected += small;
    buffers_->Acquire(id);
    std::string big(3000, static_cast<char>('a' + id));
    big += "\r\n";
    std::memcpy(buffers_->data(id), big.data(), big.size());
    writer_->Append(m, buffers_->data(id), big.size(), id);
    buffers_->Release(id);
    expected += big;
  }
  EXPECT_EQ(writer_->HeldBuffers(m), 4u);
  EXPECT_EQ(buffers_->available_estimate(), 12u);
  Commit(m);
  EXPECT_EQ(buffers_->available_estimate(), 16u);
  EXPECT_EQ(StoredBody(), expected);
}

// Over the memory budget a body streams to its own file once it holds
// kSpillBytes, and its pages are freed when their writes complete, not at
// the end of the message.
TEST_F(SpoolWriterCopyTest, OverBudgetBodiesStreamEarlyAndFreeTheirPages) {
  writer_->set_memory_budget(32 * 1024);
  // Another message holds 48 KiB of pages: the shard is over its budget.
  SpoolWriter::Message* hog = writer_->Begin(ids_.Next(++clock_));
  const std::string chunk(1000, 'h');
  for (int i = 0; i < 48; ++i) writer_->AppendCopy(hog, chunk.data(), chunk.size());
  ASSERT_GT(writer_->copied_bytes(), 32u * 1024);
  // This one streams: after 100 KiB it holds at most about kSpillBytes.
  SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    const std::string line = std::string(1022, static_cast<char>('0' + i % 10)) + "\r\n";
    expected += line;
    writer_->AppendCopy(m, line.data(), line.size());
    if (i % 10 == 9) {
      for (int k = 0; k < 5; ++k) ring_->RunOnce(10);  // let the writes complete
    }
  }
  EXPECT_LE(writer_->copied_bytes(), 48u * 1024 + 2 * SpoolWriter::kSpillBytes + 16 * 1024);
  writer_->Abort(hog);
  Commit(m);
  EXPECT_EQ(writer_->copied_bytes(), 0u);
  EXPECT_EQ(StoredBody(), expected);
}

}  // namespace
}  // namespace sluice::spool
