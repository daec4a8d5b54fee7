// RecordCache: one read per record however many jobs ask, sharing while
// held, trimming idle records past the budget, failures not cached.
#include "sluice/delivery/record_cache.h"

#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sluice/base/crc32c.h"
#include "sluice/spool/message_file.h"

namespace sluice::delivery {
namespace {

std::string MakeRecord(base::QueueId id, size_t body_size) {
  spool::Envelope env;
  env.id = id;
  env.sender = "a@example.com";
  env.recipients.push_back(spool::Recipient{"b@example.net"});
  std::string body(body_size, 'x');
  env.body_size = body.size();
  env.body_crc = base::Crc32c(0, body.data(), body.size());
  std::string trailer = spool::EncodeTrailer(env);
  std::string record = spool::EncodePreamble(0) + body + trailer;
  return record;
}

struct FakeReads {
  std::vector<std::function<void(absl::StatusOr<std::string>)>> pending;
  RecordCache::Reader reader() {
    return [this](std::function<void(absl::StatusOr<std::string>)> done) {
      pending.push_back(std::move(done));
    };
  }
};

TEST(RecordCache, ConcurrentGetsShareOneReadThenHit) {
  RecordCache cache(1 << 20);
  FakeReads reads;
  const base::QueueId id(42 << 8);
  std::vector<RecordPtr> got;
  for (int i = 0; i < 3; ++i) {
    cache.Get(id, reads.reader(), [&](absl::StatusOr<RecordPtr> r) {
      ASSERT_TRUE(r.ok()) << r.status();
      got.push_back(*r);
    });
  }
  ASSERT_EQ(reads.pending.size(), 1u);
  reads.pending[0](MakeRecord(id, 100));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].get(), got[2].get());
  EXPECT_EQ(got[0]->parsed.body.size(), 100u);
  EXPECT_EQ(got[0]->parsed.envelope.recipients.size(), 1u);
  cache.Get(id, reads.reader(), [&](absl::StatusOr<RecordPtr> r) { got.push_back(*r); });
  EXPECT_EQ(reads.pending.size(), 1u);  // a hit
  EXPECT_EQ(got.back().get(), got[0].get());
  EXPECT_EQ(cache.reads(), 1u);
  cache.Forget(id);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(RecordCache, IdleRecordsTrimmedPastTheBudgetHeldOnesKept) {
  RecordCache cache(5000);
  FakeReads reads;
  RecordPtr held;
  for (uint64_t i = 1; i <= 4; ++i) {
    const base::QueueId id(i << 8);
    cache.Get(id, reads.reader(), [&, i](absl::StatusOr<RecordPtr> r) {
      if (i == 1) held = *r;  // the oldest stays in use
    });
    reads.pending.back()(MakeRecord(id, 2000));
  }
  // ~2.1 KB each: the budget keeps two; the held oldest one is never dropped.
  EXPECT_LE(cache.bytes(), 5000u + 2200u);
  EXPECT_EQ(cache.size(), 2u);
  cache.Get(base::QueueId(1 << 8), reads.reader(),
            [&](absl::StatusOr<RecordPtr> r) { EXPECT_EQ(r->get(), held.get()); });
  EXPECT_EQ(reads.pending.size(), 4u);  // no new read for the held one
}

// A shard keeps its own recipients of a batch and, once a large envelope is
// decoded, only the body's bytes.
TEST(RecordCache, KeepsOwnRecipientsAndDropsALargeEnvelope) {
  spool::Envelope env;
  env.id = base::QueueId(9 << 8);
  env.sender = "a@example.com";
  for (int i = 0; i < 20000; ++i) {
    env.recipients.push_back(
        spool::Recipient{absl::StrCat("r", i, i % 10 == 0 ? "@Mine.example" : "@other.example")});
  }
  const std::string body = "Subject: hi\r\n\r\nbody\r\n";
  env.body_size = body.size();
  env.body_crc = base::Crc32c(0, body.data(), body.size());
  const std::string record = spool::EncodePreamble(0) + body + spool::EncodeTrailer(env);
  ASSERT_GT(record.size(), 300000u);
  RecordCache cache(1 << 20, [](std::string_view a) { return a.ends_with("@Mine.example"); });
  FakeReads reads;
  RecordPtr got;
  cache.Get(env.id, reads.reader(), [&](absl::StatusOr<RecordPtr> r) {
    ASSERT_TRUE(r.ok()) << r.status();
    got = *r;
  });
  reads.pending[0](record);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->parsed.body, body);
  EXPECT_EQ(got->bytes.size(), spool::kPreambleSize + body.size());
  EXPECT_EQ(got->parsed.envelope.recipients.size(), 2000u);
  EXPECT_EQ(got->parsed.envelope.recipient_count(), 20000u);
  ASSERT_NE(got->parsed.envelope.FindRecipient(400), nullptr);
  EXPECT_EQ(got->parsed.envelope.FindRecipient(400)->address, "r400@Mine.example");
  EXPECT_EQ(got->parsed.envelope.FindRecipient(401), nullptr);
  EXPECT_LT(cache.bytes(), record.size() / 2);
}

TEST(RecordCache, FailuresAreReportedAndNotCached) {
  RecordCache cache(1 << 20);
  FakeReads reads;
  const base::QueueId id(7 << 8);
  int failures = 0;
  cache.Get(id, reads.reader(), [&](absl::StatusOr<RecordPtr> r) { failures += !r.ok(); });
  reads.pending[0](absl::DataLossError("short read"));
  cache.Get(id, reads.reader(), [&](absl::StatusOr<RecordPtr> r) { failures += !r.ok(); });
  reads.pending[1](std::string("not a record at all"));
  EXPECT_EQ(failures, 2);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace sluice::delivery
