// Pattern precedence, glob/substring backoff patterns, gate backoff and recovery.
#include "sluice/queue/shaping.h"

#include "gtest/gtest.h"

namespace sluice::queue {
namespace {

ShapeParams Conns(uint32_t n) {
  ShapeParams p;
  p.max_connections = n;
  return p;
}

TEST(ShapingPolicy, MostSpecificWins) {
  auto policy = ShapingPolicy::Create({
      {"*", false, Conns(1)},
      {"*.example.com", false, Conns(2)},
      {"*.eu.example.com", false, Conns(3)},
      {"Mail.EU.example.com.", false, Conns(4)},
      {"example.com", false, Conns(5)},
      {"*.mx.provider.net", true, Conns(6)},
  });
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->ForDomain("other.org").max_connections, 1u);
  EXPECT_EQ(policy->ForDomain("example.com").max_connections, 5u);
  EXPECT_EQ(policy->ForDomain("a.example.com").max_connections, 2u);
  EXPECT_EQ(policy->ForDomain("b.a.example.com").max_connections, 2u);
  EXPECT_EQ(policy->ForDomain("x.eu.example.com").max_connections, 3u);
  EXPECT_EQ(policy->ForDomain("eu.example.com").max_connections, 2u);
  EXPECT_EQ(policy->ForDomain("MAIL.eu.example.COM").max_connections, 4u);
  EXPECT_EQ(policy->ForDomain("notexample.com").max_connections, 1u);
  // MX rules are separate from domain rules.
  EXPECT_EQ(policy->ForDomain("a.mx.provider.net").max_connections, 1u);
  ASSERT_NE(policy->ForMx("a.mx.provider.net"), nullptr);
  EXPECT_EQ(policy->ForMx("a.mx.provider.net")->max_connections, 6u);
  EXPECT_EQ(policy->ForMx("mx.other.net"), nullptr);
}

TEST(ShapingPolicy, DefaultsWithoutStar) {
  auto policy = ShapingPolicy::Create({{"example.com", false, Conns(5)}});
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->ForDomain("other.org").max_connections, ShapeParams{}.max_connections);
}

TEST(ShapingPolicy, RejectsBadRules) {
  EXPECT_FALSE(ShapingPolicy::Create({{"a*.com", false, {}}}).ok());
  EXPECT_FALSE(ShapingPolicy::Create({{"*.a.*", false, {}}}).ok());
  EXPECT_FALSE(ShapingPolicy::Create({{"", false, {}}}).ok());
  EXPECT_FALSE(ShapingPolicy::Create({{"a.com", false, {}}, {"A.com", false, {}}}).ok());
  EXPECT_FALSE(ShapingPolicy::Create({{"*", false, Conns(0)}}).ok());
  ShapeParams p;
  p.backoff_factor_permille = 0;
  EXPECT_FALSE(ShapingPolicy::Create({{"*", false, p}}).ok());
  // The same pattern once for domains and once for MX hosts is fine.
  EXPECT_TRUE(ShapingPolicy::Create({{"*", false, {}}, {"*", true, {}}}).ok());
}

TEST(Patterns, GlobAndSubstring) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("4.7.? *too*", "4.7.0 Too many connections"));
  EXPECT_FALSE(GlobMatch("4.7.? *too*", "4.7.10 too many"));
  EXPECT_TRUE(GlobMatch("*try*later*", "please TRY again LATER"));
  EXPECT_FALSE(GlobMatch("try*", "please try"));
  EXPECT_TRUE(BackoffPatternMatches("rate limit", "452 4.2.2 Rate Limit exceeded"));
  EXPECT_FALSE(BackoffPatternMatches("rate limit", "mailbox full"));
  EXPECT_TRUE(BackoffPatternMatches("*deferred*ip*", "Temporarily deferred due to IP reputation"));
}

TEST(ShapingGate, BackoffOn421ThenGradualRecovery) {
  ShapeParams p;
  p.max_connections = 16;
  p.messages_per_second = 100;
  p.backoff_factor_permille = 500;
  p.backoff_duration = kMinute;
  p.recovery_successes = 10;
  ShapingGate g(p, 0);
  EXPECT_EQ(g.max_connections(), 16u);
  EXPECT_FALSE(g.OnReply({250, "ok"}, 0));
  EXPECT_TRUE(g.OnReply({421, "4.7.0 go away"}, 0));
  EXPECT_EQ(g.scale_permille(), 500u);
  EXPECT_EQ(g.max_connections(), 8u);
  EXPECT_TRUE(g.OnReply({451, "4.7.1 Throttled, try later"}, 1));
  EXPECT_EQ(g.max_connections(), 4u);
  EXPECT_FALSE(g.OnReply({450, "mailbox busy"}, 2));  // an ordinary 4xx
  EXPECT_FALSE(g.OnReply({550, "no such user"}, 2));
  EXPECT_EQ(g.max_connections(), 4u);
  // The rate is down to 25/s: a drained bucket refills at 40 ms a token.
  for (int i = 0; i < 100 && g.MessageAvailableAt(2) <= 2; ++i) g.TakeMessage(2);
  EXPECT_EQ(g.MessageAvailableAt(2), 2 + 40'000u);
  // Successes during the backoff window do not count.
  for (int i = 0; i < 100; ++i) g.OnReply({250, "ok"}, 10 * kSecond);
  EXPECT_EQ(g.scale_permille(), 250u);
  // After it: one step per 10 successes.
  const Micros t = 2 * kMinute;
  for (int i = 0; i < 9; ++i) g.OnReply({250, "ok"}, t);
  EXPECT_EQ(g.scale_permille(), 250u);
  g.OnReply({250, "ok"}, t);
  EXPECT_EQ(g.scale_permille(), 500u);
  EXPECT_EQ(g.max_connections(), 8u);
  for (int i = 0; i < 10; ++i) g.OnReply({250, "ok"}, t);
  EXPECT_EQ(g.scale_permille(), 1000u);
  EXPECT_EQ(g.max_connections(), 16u);
  EXPECT_FALSE(g.backing_off());
  for (int i = 0; i < 10; ++i) g.OnReply({250, "ok"}, t);
  EXPECT_EQ(g.scale_permille(), 1000u);
}

TEST(ShapingGate, BackoffFloorAndOptOut) {
  ShapeParams p;
  p.max_connections = 3;
  p.backoff_min_permille = 100;
  ShapingGate g(p, 0);
  for (int i = 0; i < 20; ++i) g.OnReply({421, ""}, 0);
  EXPECT_EQ(g.scale_permille(), 100u);
  EXPECT_EQ(g.max_connections(), 1u);  // never below one connection
  p.backoff_on_421 = false;
  p.backoff_patterns = {};
  ShapingGate quiet(p, 0);
  EXPECT_FALSE(quiet.OnReply({421, "rate limit"}, 0));
}

}  // namespace
}  // namespace sluice::queue
