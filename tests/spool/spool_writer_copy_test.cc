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
#include "spool_writer_fixture.h"

namespace sluice::spool {
namespace {

class SpoolWriterCopyTest : public SpoolWriterFixture {
 protected:
  void Commit(SpoolWriter::Message* m) {
    bool done = false;
    writer_->Commit(m, MakeEnvelope(), [&](const absl::Status& s) {
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
