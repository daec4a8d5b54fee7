// The retry state a clean stop leaves for the next start: the entry codec
// (round trip, torn and damaged tails), and the file written then taken
// exactly once from a real directory.
#include "sluice/spool/retry_state.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace sluice::spool {
namespace {

RetryEntry Entry(uint64_t id, uint16_t failures, uint64_t next, std::vector<uint32_t> rcpts) {
  RetryEntry e;
  e.id = base::QueueId(id);
  e.failures = failures;
  e.next_attempt_us = next;
  e.recipients = std::move(rcpts);
  return e;
}

TEST(RetryState, RoundTrip) {
  const std::vector<RetryEntry> in = {Entry(1, 1, 0, {0}),
                                      Entry(~0ull, 65535, ~0ull, {4294967295u, 7, 0}),
                                      Entry(1797000000000000, 3, 1797000000123456, {2, 5})};
  std::string bytes;
  for (const RetryEntry& e : in) AppendRetryEntry(bytes, e);
  size_t valid = 0;
  EXPECT_EQ(ParseRetryState(bytes, &valid), in);
  EXPECT_EQ(valid, bytes.size());
  EXPECT_TRUE(ParseRetryState("").empty());
}

TEST(RetryState, TornOrDamagedEntryEndsTheState) {
  std::string bytes;
  AppendRetryEntry(bytes, Entry(1, 1, 10, {0, 1}));
  const size_t first = bytes.size();
  AppendRetryEntry(bytes, Entry(2, 2, 20, {3}));
  for (size_t cut = first; cut < bytes.size(); ++cut) {
    size_t valid = 0;
    EXPECT_EQ(ParseRetryState(std::string_view(bytes).substr(0, cut), &valid).size(), 1u) << cut;
    EXPECT_EQ(valid, first);
  }
  // Any flipped byte of the second entry drops it and only it.
  for (size_t at = first; at < bytes.size(); ++at) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x40);
    EXPECT_EQ(ParseRetryState(damaged).size(), 1u) << at;
  }
  // A recipient count of zero or past the bound is damage, even with a CRC
  // that matches (no allocation of 4 billion entries).
  std::string zero;
  AppendRetryEntry(zero, Entry(3, 1, 0, {}));
  EXPECT_TRUE(ParseRetryState(zero).empty());
}

class RetryStateFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-retry-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(RetryStateFile, WrittenThenTakenOnce) {
  std::string bytes;
  AppendRetryEntry(bytes, Entry(5, 2, 99, {1}));
  AppendRetryEntry(bytes, Entry(6, 1, 0, {0, 2}));
  ASSERT_TRUE(WriteRetryState(dir_, bytes).ok());
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/retry.state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(stat((dir_ + "/retry.state.tmp").c_str(), &st), 0);
  auto taken = TakeRetryState(dir_);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_EQ(taken->size(), 2u);
  EXPECT_EQ((*taken)[0], Entry(5, 2, 99, {1}));
  // Gone: a crash of the run that took it must not apply it again.
  EXPECT_NE(stat((dir_ + "/retry.state").c_str(), &st), 0);
  auto again = TakeRetryState(dir_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

TEST_F(RetryStateFile, DamagedTailKeepsTheGoodEntriesAndAStaleTemporaryGoes) {
  std::string bytes;
  AppendRetryEntry(bytes, Entry(5, 2, 99, {1}));
  bytes += "garbage after a good entry";
  ASSERT_TRUE(WriteRetryState(dir_, bytes).ok());
  std::ofstream(dir_ + "/retry.state.tmp") << "half written by a stop that died";
  auto taken = TakeRetryState(dir_);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->size(), 1u);
  struct stat st;
  EXPECT_NE(stat((dir_ + "/retry.state.tmp").c_str(), &st), 0);
}

TEST_F(RetryStateFile, WriteIntoMissingDirectoryFails) {
  EXPECT_FALSE(WriteRetryState(dir_ + "/nowhere", "x").ok());
}

}  // namespace
}  // namespace sluice::spool
