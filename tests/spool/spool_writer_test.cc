// The spool writer on a real io_uring and real files in a temporary
// directory: commit protocol, group commit, abort, recovery scan.
#include "sluice/spool/spool_writer.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "sluice/base/limits.h"
#include "sluice/spool/spool_directory.h"
#include "spool_writer_fixture.h"

namespace sluice::spool {
namespace {

namespace fs = std::filesystem;

using SpoolWriterTest = SpoolWriterFixture;

TEST_F(SpoolWriterTest, LargeMessagesGetTheirOwnFiles) {
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

// A body of many short spans (dot-stuffed lines arrive one span per line)
// piles up more than IOV_MAX iovecs while the file's open is in flight: they
// must go out in several writev calls, not one that fails with EINVAL.
TEST_F(SpoolWriterTest, ManySpansWhileTheFileOpens) {
  SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
  std::string expected = "Subject: spans\r\n\r\n";
  writer_->AppendOwned(m, expected);
  for (int i = 0; i < 5000; ++i) {
    std::string line = "." + std::to_string(i) + "\r\n";
    expected += line;
    writer_->AppendOwned(m, line);
  }
  bool done = false;
  writer_->Commit(m, MakeEnvelope(), [&](const absl::Status& s) {
    EXPECT_TRUE(s.ok()) << s;
    done = true;
  });
  RunUntil(done);
  auto report = ScanSpool(root_, ScanOptions{.repair = false, .verify_body = true});
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->messages.size(), 1u);
  auto bytes = ReadRecord(report->messages[0].where);
  ASSERT_TRUE(bytes.ok());
  auto parsed = ParseFile(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->body, expected);
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

TEST_F(SpoolWriterTest, SmallMessagesShareSegmentFlushes) {
  constexpr int kMessages = 300;
  int committed = 0;
  bool all = false;
  for (int i = 0; i < kMessages; ++i) {
    SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
    writer_->AppendOwned(m, "Subject: " + std::to_string(i) + "\r\n\r\nshort body\r\n");
    writer_->Commit(m, MakeEnvelope(), [&](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      all = ++committed == kMessages;
    });
  }
  RunUntil(all);
  // All committed in one turn: one chain, one fdatasync.
  EXPECT_EQ(writer_->segment_flushes(), 1u);
  auto report = ScanSpool(root_, ScanOptions{});
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->messages.size(), static_cast<size_t>(kMessages));
  auto body = ReadRecord(report->messages[7].where);
  ASSERT_TRUE(body.ok());
  auto parsed = ParseFile(*body);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->body, "Subject: 7\r\n\r\nshort body\r\n");
}

TEST_F(SpoolWriterTest, RecoveryCutsTornTailsAndSetsAsideCorruption) {
  int committed = 0;
  bool all = false;
  for (int i = 0; i < 3; ++i) {
    SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
    writer_->AppendOwned(m, "Subject: ok\r\n\r\nfine " + std::to_string(i) + "\r\n");
    writer_->Commit(m, MakeEnvelope(), [&](const absl::Status&) { all = ++committed == 3; });
  }
  RunUntil(all);
  auto before = ScanSpool(root_, ScanOptions{});
  ASSERT_EQ(before->messages.size(), 3u);
  const RecordLocation second = before->messages[1].where;
  const std::string segment = second.path;
  const auto full_size = fs::file_size(segment);
  // Damage the middle record's body, and append half a record (a crash).
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(second.offset + kPreambleSize + 3));
    f.put('#');
    f.seekp(0, std::ios::end);
    f << EncodePreamble(500) << "half a record";
  }
  // And a crashed large-message write.
  base::QueueId tmp = ids_.Next(++clock_);
  std::ofstream(root_ + "/0/" + TemporaryFileName(tmp)) << "SLUICEQ1half a mess";

  auto report = ScanSpool(root_, ScanOptions{.repair = true, .verify_body = true});
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->messages.size(), 2u);
  EXPECT_EQ(report->temporary_removed, 2u);  // the torn tail and the .tmp file
  ASSERT_EQ(report->corrupt.size(), 1u);
  EXPECT_EQ(fs::file_size(segment), full_size);  // tail cut back
  EXPECT_FALSE(fs::exists(root_ + "/0/" + TemporaryFileName(tmp)));
  int set_aside = 0;
  for (const auto& e : fs::directory_iterator(root_ + "/corrupt")) {
    set_aside += e.path().extension() == ".rec";
  }
  EXPECT_EQ(set_aside, 1);
  // A second scan finds the same two, and nothing new to set aside.
  auto again = ScanSpool(root_, ScanOptions{.repair = true, .verify_body = true});
  EXPECT_EQ(again->messages.size(), 2u);
  EXPECT_TRUE(again->corrupt.empty());
  EXPECT_EQ(again->temporary_removed, 0u);
}

// Commits that fail on a full disk (here: a file size limit of 0, so every
// write fails with EFBIG) leave no empty segment behind; the next commit,
// with room again, lands in a fresh segment.
TEST_F(SpoolWriterTest, FailedCommitsLeaveNoEmptySegments) {
  auto segments = [&] {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(root_ + "/0")) {
      if (e.path().extension() == ".seg") out.push_back(e.path().filename());
    }
    return out;
  };
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit full = saved;
  full.rlim_cur = 0;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &full), 0);
  int failed = 0;
  for (int round = 0; round < 3; ++round) {
    bool done = false;
    SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
    writer_->AppendOwned(m, "Subject: full\r\n\r\nno room\r\n");
    writer_->Commit(m, MakeEnvelope(), [&](const absl::Status& s) {
      failed += !s.ok();
      done = true;
    });
    RunUntil(done);
  }
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &saved), 0);
  signal(SIGXFSZ, old_handler);
  EXPECT_EQ(failed, 3);
  // The unlinks are not awaited by the writer: give them a moment.
  for (int i = 0; i < 100 && !segments().empty(); ++i) ring_->RunOnce(10);
  EXPECT_TRUE(segments().empty()) << segments().size() << " segments left";

  bool done = false;
  SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
  writer_->AppendOwned(m, "Subject: room\r\n\r\nagain\r\n");
  writer_->Commit(m, MakeEnvelope(), [&](const absl::Status& s) {
    EXPECT_TRUE(s.ok()) << s;
    done = true;
  });
  RunUntil(done);
  EXPECT_EQ(segments().size(), 1u);
  auto report = ScanSpool(root_, ScanOptions{.repair = true, .verify_body = true});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->messages.size(), 1u);
  EXPECT_EQ(report->counts.empty_segments, 0u);
}

TEST_F(SpoolWriterTest, FailedOpenIsReported) {
  base::QueueId id = ids_.Next(9);
  // Occupy the temporary name so O_EXCL fails.
  std::ofstream(root_ + "/0/" + TemporaryFileName(id)) << "x";
  SpoolWriter::Message* m = writer_->Begin(id);
  writer_->AppendOwned(m, std::string(SpoolWriter::kFlushBytes + 1, 'x'));  // file mode
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

namespace sluice::spool {
namespace {

// A mail-merge batch record: the template once, 200,000 packed recipients
// with two values each, in one segment record; the stored hook counts the
// packed recipients, and recovery reads every value back.
TEST_F(SpoolWriterTest, PackedBatchRecord) {
  constexpr uint32_t kRecipients = 200'000;
  uint32_t hooked = 0;
  writer_->set_stored_hook([&](const StoredRecord& r) { hooked = r.recipients; });
  Envelope e = MakeEnvelope();
  e.recipients.clear();
  e.protocol = "pickup";
  e.campaign = "c1";
  e.merge_fields = {"name", "n"};
  for (uint32_t i = 0; i < kRecipients; ++i) {
    const std::string address =
        "user" + std::to_string(i) + "@d" + std::to_string(i % 97) + ".test";
    const std::string n = std::to_string(i);
    PackRecipient(e.packed_recipients, address, {"Name", n});
    ++e.packed_count;
  }
  const std::string body = "Subject: hi {{name}}\r\n\r\nnumber {{n}}\r\n";
  SpoolWriter::Message* m = writer_->Begin(ids_.Next(++clock_));
  writer_->AppendOwned(m, body);
  bool done = false;
  writer_->Commit(m, std::move(e), [&](const absl::Status& s) {
    EXPECT_TRUE(s.ok()) << s;
    done = true;
  });
  RunUntil(done);
  EXPECT_EQ(hooked, kRecipients);
  auto report = ScanSpool(root_, ScanOptions{.repair = false, .verify_body = true});
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->messages.size(), 1u);
  const Envelope& got = report->messages[0].envelope;
  ASSERT_EQ(got.recipients.size(), kRecipients);
  EXPECT_EQ(got.campaign, "c1");
  EXPECT_EQ(got.merge_fields, (std::vector<std::string>{"name", "n"}));
  EXPECT_EQ(got.recipients[12345].address, "user12345@d26.test");
  EXPECT_EQ(got.recipients[12345].values, (std::vector<std::string>{"Name", "12345"}));
  EXPECT_EQ(got.body_size, body.size());
}

}  // namespace
}  // namespace sluice::spool
