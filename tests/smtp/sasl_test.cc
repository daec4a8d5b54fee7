#include "sluice/smtp/sasl.h"

#include <gtest/gtest.h>

namespace sluice::smtp {
namespace {

using namespace std::string_literals;

TEST(Sasl, AuthArgument) {
  auto a = ParseAuthArgument("PLAIN");
  EXPECT_EQ(a.mechanism, SaslMechanism::kPlain);
  EXPECT_TRUE(a.syntax_ok);
  EXPECT_FALSE(a.has_initial);
  a = ParseAuthArgument("login dXNlcg==");
  EXPECT_EQ(a.mechanism, SaslMechanism::kLogin);
  EXPECT_TRUE(a.syntax_ok);
  EXPECT_TRUE(a.has_initial);
  EXPECT_EQ(a.initial, "dXNlcg==");
  a = ParseAuthArgument("CRAM-MD5");
  EXPECT_EQ(a.mechanism, SaslMechanism::kUnknown);
  EXPECT_FALSE(ParseAuthArgument("").syntax_ok);
  EXPECT_FALSE(ParseAuthArgument("PLAIN a b").syntax_ok);
  EXPECT_FALSE(ParseAuthArgument("PLAIN ").syntax_ok);
}

TEST(Sasl, Responses) {
  EXPECT_EQ(DecodeSaslResponse("="), "");
  EXPECT_EQ(DecodeSaslResponse("dXNlcg=="), "user");
  EXPECT_FALSE(DecodeSaslResponse("").has_value());
  EXPECT_FALSE(DecodeSaslResponse("dXNlcg").has_value());
  EXPECT_FALSE(DecodeSaslResponse("*").has_value());
}

TEST(Sasl, Plain) {
  auto c = ParsePlain("\0alice\0secret"s);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->authzid, "");
  EXPECT_EQ(c->user, "alice");
  EXPECT_EQ(c->password, "secret");
  c = ParsePlain("admin\0alice\0pw with spaces"s);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->authzid, "admin");
  EXPECT_EQ(c->password, "pw with spaces");
  EXPECT_FALSE(ParsePlain("alice\0secret"s).has_value());      // one NUL
  EXPECT_FALSE(ParsePlain("\0alice\0sec\0ret"s).has_value());  // three
  EXPECT_FALSE(ParsePlain("\0\0secret"s).has_value());         // no user
  EXPECT_FALSE(ParsePlain("\0alice\0"s).has_value());          // no password
  EXPECT_FALSE(ParsePlain("\0"s + std::string(256, 'u') + "\0p"s).has_value());
  EXPECT_TRUE(ParsePlain("\0"s + std::string(255, 'u') + "\0p"s).has_value());
}

}  // namespace
}  // namespace sluice::smtp
