// delivery::Ledger through io::FakeLoop (with the spool writer that feeds
// it, SpoolLedger): finals retire records with tombstones or unlinks, partial
// finals go to the journal, a crash between any two operations recovers the
// right pending set, and failed writes, fsyncs and opens end in a defined
// outcome (the recipients are delivered again, nothing is lost).
#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/spool/journal.h"
#include "spool_ledger_harness.h"

namespace sluice::testing_support {
namespace {

using Kind = io::FakeLoop::Kind;

class LedgerFakeTest : public testing::TestWithParam<uint64_t> {
 protected:
  SpoolLedger h_{GetParam()};

  base::QueueId Stored(uint32_t recipients, bool large = false) {
    const base::QueueId id = h_.Send(recipients, large);
    EXPECT_TRUE(h_.Settle());
    EXPECT_TRUE(h_.messages().at(id).acked);
    return id;
  }
  SpoolLedger::Recovered CrashAndRecover() {
    h_.Crash();
    SpoolLedger::Recovered r = h_.Recover();
    EXPECT_EQ(h_.Check(r), "");
    return r;
  }
};

TEST_P(LedgerFakeTest, AllFinalTombstonesTheRecord) {
  std::vector<base::QueueId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Stored(1));
  EXPECT_EQ(h_.ledger().live_messages(), 3u);
  for (base::QueueId id : ids) h_.Final(id, {0});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().live_messages(), 0u);
  EXPECT_EQ(h_.ledger().stats().messages_retired, 3u);
  EXPECT_EQ(h_.ledger().stats().journal_entries, 0u);  // no journal: one tombstone each
  EXPECT_EQ(h_.ledger().stats().io_errors, 0u);
  const SpoolLedger::Recovered r = CrashAndRecover();
  EXPECT_TRUE(r.pending.empty());
  // The segment the writer still appends to stays.
  EXPECT_EQ(h_.ledger().stats().segments_removed, 0u);
}

// Tombstones are made durable together, up to 100 ms late: a crash inside
// that window brings the message back (delivered again, the documented
// window), after it does not.
TEST_P(LedgerFakeTest, TombstonesAreSyncedTogetherWithin100Ms) {
  const base::QueueId id = Stored(1);
  h_.Final(id, {0});
  for (int i = 0; i < 20; ++i) h_.Step(/*advance_ms=*/0);
  EXPECT_FALSE(h_.ledger().idle());  // written, waiting for the batch's fdatasync
  EXPECT_EQ(h_.ledger().live_messages(), 1u);
  h_.Step(100);
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().live_messages(), 0u);
  EXPECT_TRUE(CrashAndRecover().pending.empty());
}

TEST_P(LedgerFakeTest, CrashInsideTheTombstoneWindowDeliversAgain) {
  const base::QueueId id = Stored(1);
  h_.Final(id, {0});
  for (int i = 0; i < 20; ++i) h_.Step(/*advance_ms=*/0);
  const SpoolLedger::Recovered r = CrashAndRecover();
  ASSERT_EQ(r.pending.count(id), 1u);
  EXPECT_EQ(r.pending.at(id), (std::set<uint32_t>{0}));
}

TEST_P(LedgerFakeTest, PartialFinalsAreJournaledThenTheJournalGoes) {
  const base::QueueId id = Stored(3);
  h_.Final(id, {1});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().stats().journal_entries, 1u);
  EXPECT_TRUE(h_.fake().DurableContents("spool/0/" + spool::JournalFileName(1)).has_value());
  h_.Final(id, {0, 2});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().live_messages(), 0u);
  EXPECT_EQ(h_.ledger().stats().journals_removed, 1u);
  const std::vector<std::string> names = h_.fake().List("spool/0");
  EXPECT_EQ(std::count(names.begin(), names.end(), spool::JournalFileName(1)), 0);
  // (The unlink is not made durable: a crash may bring the journal back,
  // and recovery ignores the entries of messages no longer queued.)
  const SpoolLedger::Recovered r = CrashAndRecover();
  EXPECT_TRUE(r.pending.empty());
}

TEST_P(LedgerFakeTest, CrashAfterAPartialFinalRecoversTheRest) {
  const base::QueueId id = Stored(3);
  h_.Final(id, {1});
  ASSERT_TRUE(h_.Settle());
  const SpoolLedger::Recovered r = CrashAndRecover();
  ASSERT_EQ(r.pending.count(id), 1u);
  EXPECT_EQ(r.pending.at(id), (std::set<uint32_t>{0, 2}));
}

TEST_P(LedgerFakeTest, AMessageFileIsUnlinked) {
  const base::QueueId id = Stored(1, /*large=*/true);
  const std::string name = id.ToString() + ".msg";
  ASSERT_EQ(h_.Recover().files.count(name), 1u);
  h_.Final(id, {0});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().live_messages(), 0u);
  const SpoolLedger::Recovered r = CrashAndRecover();
  EXPECT_TRUE(r.pending.empty());
  EXPECT_EQ(r.files.count(name), 0u);
}

// A failed tombstone fdatasync: counted, and the message comes back after a
// restart (delivered again), never lost.
TEST_P(LedgerFakeTest, AFailedTombstoneSyncDeliversAgain) {
  const base::QueueId id = Stored(1);
  h_.fake().FailNth(Kind::kSync, 1, EIO);
  h_.Final(id, {0});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().stats().io_errors, 1u);
  const SpoolLedger::Recovered r = CrashAndRecover();
  EXPECT_EQ(r.pending.count(id), 1u);
}

// A failed journal write: counted, those recipients come back; the journal
// entries reported after it are durable again.
TEST_P(LedgerFakeTest, AFailedJournalWriteLosesOnlyItsEntries) {
  const base::QueueId a = Stored(3);
  const base::QueueId b = Stored(3);
  h_.fake().FailNth(Kind::kWrite, 1, EIO);
  h_.Final(a, {0});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().stats().io_errors, 1u);
  h_.Final(b, {1});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().stats().io_errors, 1u);
  const SpoolLedger::Recovered r = CrashAndRecover();
  EXPECT_EQ(r.pending.at(a), (std::set<uint32_t>{0, 1, 2}));  // delivered again
  EXPECT_EQ(r.pending.at(b), (std::set<uint32_t>{0, 2}));     // b's final kept
}

// A short journal write is a failure too (its fdatasync is cancelled).
TEST_P(LedgerFakeTest, AShortJournalWriteIsAFailure) {
  const base::QueueId a = Stored(3);
  h_.fake().ShortWriteNth(1, 10);
  h_.Final(a, {2});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().stats().io_errors, 1u);
  h_.Final(a, {1});
  ASSERT_TRUE(h_.Settle());
  const SpoolLedger::Recovered r = CrashAndRecover();
  EXPECT_EQ(r.pending.at(a), (std::set<uint32_t>{0, 2}));
}

// A short tombstone write must not count as a retirement.
TEST_P(LedgerFakeTest, AShortTombstoneWriteIsAFailure) {
  const base::QueueId id = Stored(1);
  h_.fake().ShortWriteNth(1, 3);
  h_.Final(id, {0});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().stats().io_errors, 1u);
  const SpoolLedger::Recovered r = CrashAndRecover();
  EXPECT_EQ(r.pending.count(id), 1u);
}

// The segment cannot be opened for its tombstone: the message stays live
// (delivered again after a restart), counted.
TEST_P(LedgerFakeTest, AFailedOpenKeepsTheMessageLive) {
  const base::QueueId id = Stored(1);
  h_.fake().FailNth(Kind::kOpen, 1, EMFILE);
  h_.Final(id, {0});
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.ledger().stats().io_errors, 1u);
  EXPECT_EQ(h_.ledger().live_messages(), 1u);
  EXPECT_EQ(CrashAndRecover().pending.count(id), 1u);
}

// The crash-recovery bookkeeping: one scenario (segment and message-file
// records, partial and whole finals), crashed after each of its steps in
// turn; every crash point must recover a pending set that keeps the
// invariants (SpoolLedger::Check).
TEST_P(LedgerFakeTest, ACrashAtEveryStepRecoversTheRightPendingSet) {
  auto scenario = [](SpoolLedger& h, uint64_t crash_at) {
    std::vector<base::QueueId> ids;
    auto step = [&] {
      h.Step(30);
      return h.steps() < crash_at;
    };
    ids.push_back(h.Send(1, false));
    ids.push_back(h.Send(3, false));
    ids.push_back(h.Send(2, true));
    for (int i = 0; i < 8; ++i) {
      if (!step()) return;
    }
    h.Final(ids[0], {0});
    h.Final(ids[1], {2});
    h.Final(ids[2], {1});
    for (int i = 0; i < 12; ++i) {
      if (!step()) return;
    }
    h.Final(ids[1], {0, 1});
    h.Final(ids[2], {0});
    ids.push_back(h.Send(2, false));
    while (h.steps() < crash_at && h.steps() < 3000 && !(h.quiet() && h.steps() > 60)) step();
  };
  SpoolLedger dry(GetParam());
  scenario(dry, UINT64_MAX);
  const uint64_t total = dry.steps();
  ASSERT_GT(total, 20u);
  ASSERT_LT(total, 3000u);  // it settled
  for (uint64_t k = 1; k <= total; ++k) {
    SpoolLedger h(GetParam());
    scenario(h, k);
    h.Crash();
    EXPECT_EQ(h.Check(h.Recover()), "") << "crash after step " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, LedgerFakeTest, testing::Values(1, 2, 3, 42, 1234));

}  // namespace
}  // namespace sluice::testing_support
