#include "sluice/base/utc_time.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

constexpr uint64_t kSecond = 1000000;
// 2026-12-08T01:02:03Z, a Tuesday.
constexpr uint64_t kT = 1796691723ull * kSecond;

TEST(UtcTime, Iso8601CarriesMicrosecondsAndZ) {
  std::string out = "ts=";
  AppendIso8601Micros(out, kT + 456789);
  EXPECT_EQ(out, "ts=2026-12-08T01:02:03.456789Z");
}

TEST(UtcTime, Iso8601PadsSmallFractions) {
  std::string out;
  AppendIso8601Micros(out, kT + 7);
  EXPECT_EQ(out, "2026-12-08T01:02:03.000007Z");
}

TEST(UtcTime, TheCacheFollowsTheClockBothWays) {
  std::string out;
  AppendIso8601Micros(out, kT + kSecond);  // fills the cache at :04
  AppendIso8601Micros(out, kT);            // an earlier record (another shard's clock)
  AppendIso8601Micros(out, kT + 86400 * kSecond + 999999);
  EXPECT_EQ(out,
            "2026-12-08T01:02:04.000000Z"
            "2026-12-08T01:02:03.000000Z"
            "2026-12-09T01:02:03.999999Z");
}

TEST(UtcTime, EpochAndLeapDay) {
  std::string out;
  AppendIso8601Micros(out, 0);
  AppendIso8601Micros(out, 1709164800ull * kSecond);  // 2024-02-29
  EXPECT_EQ(out, "1970-01-01T00:00:00.000000Z2024-02-29T00:00:00.000000Z");
}

TEST(UtcTime, Rfc5322Date) {
  EXPECT_EQ(Rfc5322Date(kT + 999999), "Tue, 08 Dec 2026 01:02:03 +0000");
  EXPECT_EQ(Rfc5322Date(kT + kSecond), "Tue, 08 Dec 2026 01:02:04 +0000");
  EXPECT_EQ(Rfc5322Date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(Rfc5322Date(1709251199000000), "Thu, 29 Feb 2024 23:59:59 +0000");
  // Beyond what gmtime can say: still a date, never a crash.
  EXPECT_FALSE(Rfc5322Date(UINT64_MAX).empty());
  std::string out;
  AppendIso8601Micros(out, UINT64_MAX);
  EXPECT_FALSE(out.empty());
}

}  // namespace
}  // namespace sluice::base
