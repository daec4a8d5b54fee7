#include "sluice/smtp/address.h"

#include "gtest/gtest.h"

namespace sluice::smtp {
namespace {

std::string Forward(std::string_view text, bool utf8 = false) {
  auto r = ParsePath(text, PathKind::kForwardPath, utf8);
  return r.ok() ? r->mailbox.ToString() : "ERROR";
}

TEST(ParsePath, AcceptsRfc5321Mailboxes) {
  EXPECT_EQ(Forward("<user@example.com>"), "user@example.com");
  EXPECT_EQ(Forward("<first.last+tag@sub.example.co.uk>"), "first.last+tag@sub.example.co.uk");
  EXPECT_EQ(Forward("<\"quoted local\"@example.com>"), "\"quoted local\"@example.com");
  EXPECT_EQ(Forward("<\"a\\\"b@c\"@example.com>"), "\"a\\\"b@c\"@example.com");
  EXPECT_EQ(Forward("<user@[127.0.0.1]>"), "user@[127.0.0.1]");
  EXPECT_EQ(Forward("<user@[IPv6:::1]>"), "user@[IPv6:::1]");
  EXPECT_EQ(Forward("<@relay.one,@relay.two:user@example.com>"), "user@example.com");
  EXPECT_EQ(Forward("<Postmaster>"), "Postmaster");
}

TEST(ParsePath, RejectsBrokenPaths) {
  for (const char* bad : {"user@example.com",
                          "<user@example.com",
                          "<>",
                          "<user>",
                          "<@example.com>",
                          "<user@>",
                          "<.user@example.com>",
                          "<us..er@example.com>",
                          "<user.@example.com>",
                          "<us er@example.com>",
                          "<user@exa mple.com>",
                          "<user@-example.com>",
                          "<user@example-.com>",
                          "<user@example..com>",
                          "<user@[300.1.1.1]>",
                          "<user@[IPv6:zz]>",
                          "<\"unterminated@x.com>",
                          "<user@ex_ample.com>",
                          "<@relay:user>",
                          "<user@\xc3\xa9xample.com>"}) {
    EXPECT_EQ(Forward(bad), "ERROR") << bad;
  }
}

TEST(ParsePath, LimitsFromRfc5321) {
  std::string local(64, 'a');
  EXPECT_NE(Forward("<" + local + "@example.com>"), "ERROR");
  EXPECT_EQ(Forward("<" + local + "a@example.com>"), "ERROR");
  std::string label(63, 'b');
  EXPECT_NE(Forward("<u@" + label + ".com>"), "ERROR");
  EXPECT_EQ(Forward("<u@" + label + "b.com>"), "ERROR");
  std::string long_domain;
  for (int i = 0; i < 5; ++i) long_domain += std::string(60, 'c') + ".";
  EXPECT_EQ(Forward("<u@" + long_domain + "com>"), "ERROR");  // path > 256
}

TEST(ParsePath, NullReversePathAndRest) {
  auto r = ParsePath("<> SIZE=10", PathKind::kReversePath, false);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->mailbox.IsNull());
  EXPECT_EQ(r->rest, " SIZE=10");
}

TEST(ParsePath, Utf8OnlyWithSmtpUtf8) {
  const char* addr =
      "<j\xc3\xb6rg@b\xc3\xbc"
      "cher.example>";
  EXPECT_EQ(Forward(addr, false), "ERROR");
  EXPECT_NE(Forward(addr, true), "ERROR");
  EXPECT_EQ(Forward("<j\xc3@example.com>", true), "ERROR");          // truncated sequence
  EXPECT_EQ(Forward("<j\xed\xa0\x80@example.com>", true), "ERROR");  // surrogate
  EXPECT_EQ(Forward("<j\xc0\xaf@example.com>", true), "ERROR");      // overlong
}

}  // namespace
}  // namespace sluice::smtp
