#include "sluice/spool/journal.h"

#include <gtest/gtest.h>

namespace sluice::spool {
namespace {

TEST(Journal, RoundTrip) {
  std::string bytes;
  AppendJournalEntry(bytes, {base::QueueId(123456789), 0});
  AppendJournalEntry(bytes, {base::QueueId(~0ull), 4294967295u});
  ASSERT_EQ(bytes.size(), 2 * kJournalEntrySize);
  size_t valid = 0;
  auto entries = ParseJournal(bytes, &valid);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0], (JournalEntry{base::QueueId(123456789), 0}));
  EXPECT_EQ(entries[1], (JournalEntry{base::QueueId(~0ull), 4294967295u}));
  EXPECT_EQ(valid, bytes.size());
}

TEST(Journal, TornTailEndsTheJournal) {
  std::string bytes;
  AppendJournalEntry(bytes, {base::QueueId(1), 1});
  AppendJournalEntry(bytes, {base::QueueId(2), 2});
  size_t valid = 0;
  EXPECT_EQ(ParseJournal(std::string_view(bytes).substr(0, 40), &valid).size(), 1u);
  EXPECT_EQ(valid, kJournalEntrySize);
}

TEST(Journal, DamagedEntryEndsTheJournal) {
  std::string bytes;
  for (uint32_t i = 0; i < 3; ++i) AppendJournalEntry(bytes, {base::QueueId(7), i});
  bytes[kJournalEntrySize + 9] ^= 1;  // the second entry's index
  EXPECT_EQ(ParseJournal(bytes).size(), 1u);
  std::string zeros(kJournalEntrySize * 2, '\0');
  EXPECT_TRUE(ParseJournal(zeros).empty());
}

TEST(Journal, FileNames) {
  EXPECT_EQ(JournalFileName(42), "journal-00000042.jnl");
  EXPECT_EQ(JournalSequence("journal-00000042.jnl"), 42u);
  EXPECT_EQ(JournalSequence("journal-.jnl"), 0u);
  EXPECT_EQ(JournalSequence("journal-12x.jnl"), 0u);
  EXPECT_EQ(JournalSequence("0ABCDEFGHJKLM.seg"), 0u);
  EXPECT_EQ(JournalSequence("journal-99999999999999999999999.jnl"), 0u);
}

}  // namespace
}  // namespace sluice::spool
