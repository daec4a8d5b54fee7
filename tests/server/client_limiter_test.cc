// ClientLimiter: per-address connection counts and rates, shared by
// threads without a lock.
#include "sluice/server/client_limiter.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace sluice::server {
namespace {

base::IpAddress Ip(const char* text) { return *base::IpAddress::Parse(text); }

using V = ClientLimiter::Verdict;

TEST(ClientLimiterTest, CountsConnectionsPerAddress) {
  ClientLimiter l(3, 0);
  const auto a = Ip("192.0.2.1");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(l.Admit(a, 0), V::kAdmitted);
  EXPECT_EQ(l.Admit(a, 0), V::kTooManyConnections);
  EXPECT_EQ(l.Connections(a), 3u);                       // a refusal counts nothing
  EXPECT_EQ(l.Admit(Ip("192.0.2.2"), 0), V::kAdmitted);  // others are not affected
  l.Release(a);
  EXPECT_EQ(l.Admit(a, 0), V::kAdmitted);
  EXPECT_EQ(l.Admit(a, 0), V::kTooManyConnections);
}

TEST(ClientLimiterTest, ZeroMeansNoLimit) {
  ClientLimiter l(0, 0);
  const auto a = Ip("192.0.2.1");
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(l.Admit(a, i), V::kAdmitted);
}

TEST(ClientLimiterTest, RatePerMinuteWindow) {
  ClientLimiter l(0, 5);
  const auto a = Ip("198.51.100.7");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(l.Admit(a, 60'000 + i), V::kAdmitted);
  EXPECT_EQ(l.Admit(a, 60'500), V::kTooFast);
  EXPECT_EQ(l.Admit(Ip("198.51.100.8"), 60'500), V::kAdmitted);
  EXPECT_EQ(l.Admit(a, 120'000), V::kAdmitted);  // the next minute
}

// An IPv6 client counts as its /64: it cannot escape by changing the low bits.
TEST(ClientLimiterTest, Ipv6CountsPerSlash64) {
  ClientLimiter l(2, 0);
  EXPECT_EQ(l.Admit(Ip("2001:db8:1:2::1"), 0), V::kAdmitted);
  EXPECT_EQ(l.Admit(Ip("2001:db8:1:2::ffff"), 0), V::kAdmitted);
  EXPECT_EQ(l.Admit(Ip("2001:db8:1:2:aaaa::3"), 0), V::kTooManyConnections);
  EXPECT_EQ(l.Admit(Ip("2001:db8:1:3::1"), 0), V::kAdmitted);
}

// Many distinct addresses each at its limit: an address is refused only
// when both of its slots are shared with others (the sketch can only be
// stricter). With 2,000 outside clients at once that is about 1 in 1,000.
TEST(ClientLimiterTest, DistinctAddressesRarelyShareLimits) {
  ClientLimiter l(10, 0);
  int refused_addresses = 0;
  for (int i = 0; i < 2000; ++i) {
    base::IpAddress ip;
    ip.bytes[0] = 10;
    ip.bytes[1] = static_cast<uint8_t>(i >> 16);
    ip.bytes[2] = static_cast<uint8_t>(i >> 8);
    ip.bytes[3] = static_cast<uint8_t>(i);
    bool refused = false;
    for (int k = 0; k < 10; ++k) refused = refused || l.Admit(ip, 0) != V::kAdmitted;
    refused_addresses += refused;
  }
  EXPECT_LE(refused_addresses, 20);  // 1%
}

TEST(ClientLimiterTest, ThreadsCountExactly) {
  ClientLimiter l(1000000, 0);
  const auto a = Ip("203.0.113.9");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        ASSERT_EQ(l.Admit(a, 0), V::kAdmitted);
        if (i % 2) l.Release(a);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(l.Connections(a), 20000u);
}

}  // namespace
}  // namespace sluice::server
