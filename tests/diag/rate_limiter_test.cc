// The per-key rate limit and the byte ring, with time passed in.
#include "rate_limiter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "byte_ring.h"

namespace sluice::diag {
namespace {

TEST(DiagRateLimiter, AdmitsNPerWindowThenCountsAndReports) {
  RateLimiter r(3, 1000);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.Admit("auth.failed", 100).admit);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(r.Admit("auth.failed", 500).admit);
  // Another key has its own budget.
  EXPECT_TRUE(r.Admit("tls.handshake_failed", 500).admit);
  // The next window: the first line carries the count, once.
  const RateLimiter::Verdict v = r.Admit("auth.failed", 1100);
  EXPECT_TRUE(v.admit);
  EXPECT_EQ(v.suppressed, 5u);
  EXPECT_EQ(r.Admit("auth.failed", 1101).suppressed, 0u);
}

TEST(DiagRateLimiter, QuietKeysAreSummarisedOnce) {
  RateLimiter r(1, 1000);
  EXPECT_TRUE(r.Admit("a", 0).admit);
  EXPECT_FALSE(r.Admit("a", 10).admit);
  EXPECT_FALSE(r.Admit("a", 20).admit);
  std::vector<std::pair<std::string, uint64_t>> got;
  auto take = [&](std::string_view k, uint64_t n) { got.emplace_back(std::string(k), n); };
  r.TakeQuiet(999, take);  // the window is still open
  EXPECT_TRUE(got.empty());
  r.TakeQuiet(1000, take);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], (std::pair<std::string, uint64_t>{"a", 2}));
  got.clear();
  r.TakeQuiet(5000, take);
  EXPECT_TRUE(got.empty());
  // Already reported: the next line does not count them again.
  EXPECT_EQ(r.Admit("a", 5000).suppressed, 0u);
}

TEST(DiagRateLimiter, ZeroMeansUnlimitedAndTooManyKeysAreAdmitted) {
  RateLimiter unlimited(0, 1000);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.Admit("k", 0).admit);
  RateLimiter r(1, 1000);
  std::vector<std::string> keys;
  for (size_t i = 0; i < RateLimiter::kMaxKeys + 10; ++i) keys.push_back("k" + std::to_string(i));
  for (const std::string& k : keys) EXPECT_TRUE(r.Admit(k, 0).admit);
  const std::string& beyond = keys.back();
  EXPECT_TRUE(r.Admit(beyond, 0).admit);         // not tracked: never limited
  EXPECT_FALSE(r.Admit(keys.front(), 0).admit);  // tracked: limited
}

TEST(DiagByteRing, WholeLinesOrNothingAcrossTheWrap) {
  ByteRing ring(64);
  const std::string line(40, 'x');
  EXPECT_TRUE(ring.TryPush(line));
  EXPECT_FALSE(ring.TryPush(line));  // 24 bytes free: refused whole
  std::string out;
  EXPECT_EQ(ring.DrainTo(out), 40u);
  EXPECT_EQ(out, line);
  // This one wraps around the end of the buffer.
  const std::string wrapped = std::string(30, 'a') + std::string(20, 'b') + "\n";
  EXPECT_TRUE(ring.TryPush(wrapped));
  out.clear();
  EXPECT_EQ(ring.DrainTo(out), wrapped.size());
  EXPECT_EQ(out, wrapped);
  EXPECT_EQ(ring.DrainTo(out), 0u);
  EXPECT_TRUE(ring.TryPush(std::string(64, 'z')));  // exactly full
  EXPECT_FALSE(ring.TryPush("a"));
}

}  // namespace
}  // namespace sluice::diag
