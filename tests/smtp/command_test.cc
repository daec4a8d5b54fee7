#include "sluice/smtp/command.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice::smtp {
namespace {

TEST(ParseCommand, VerbsAreCaseInsensitive) {
  EXPECT_EQ(ParseCommand("ehlo client.example\r\n").verb, Verb::kEhlo);
  EXPECT_EQ(ParseCommand("EhLo client.example\r\n").argument, "client.example");
  EXPECT_EQ(ParseCommand("QUIT\r\n").verb, Verb::kQuit);
  EXPECT_EQ(ParseCommand("StartTLS\r\n").verb, Verb::kStartTls);
  EXPECT_EQ(ParseCommand("FOO bar\r\n").verb, Verb::kUnknown);
  EXPECT_EQ(ParseCommand("QUITX\r\n").verb, Verb::kUnknown);
}

TEST(ParseCommand, StrictLineEndings) {
  EXPECT_EQ(ParseCommand("NOOP\n").verb, Verb::kBadSyntax);
  EXPECT_EQ(ParseCommand("NO\rOP\r\n").verb, Verb::kBadSyntax);
  EXPECT_EQ(ParseCommand(std::string("NOOP\0\r\n", 7)).verb, Verb::kBadSyntax);
  EXPECT_EQ(ParseCommand("NOOP").verb, Verb::kBadSyntax);
}

TEST(ParseCommand, MailAndRcptPrefixes) {
  Command c = ParseCommand("MAIL FROM:<a@b.c> SIZE=10\r\n");
  EXPECT_EQ(c.verb, Verb::kMail);
  EXPECT_TRUE(c.has_prefix);
  EXPECT_EQ(c.argument, "<a@b.c> SIZE=10");
  EXPECT_EQ(ParseCommand("mail from: <a@b.c>\r\n").argument, "<a@b.c>");
  EXPECT_FALSE(ParseCommand("MAIL <a@b.c>\r\n").has_prefix);
  EXPECT_EQ(ParseCommand("RCPT TO:<x@y.z>   \r\n").argument, "<x@y.z>");
  EXPECT_FALSE(ParseCommand("RCPT FROM:<x@y.z>\r\n").has_prefix);
}

TEST(MailParameters, KnownParameters) {
  MailParameters p;
  EXPECT_EQ(ParseMailParameters(" SIZE=12345 BODY=8BITMIME SMTPUTF8", p).error, ParamError::kNone);
  EXPECT_EQ(p.size, 12345u);
  EXPECT_EQ(p.body, BodyType::k8BitMime);
  EXPECT_TRUE(p.smtputf8);
  MailParameters q;
  EXPECT_EQ(ParseMailParameters(" body=7bit", q).error, ParamError::kNone);
  EXPECT_EQ(ParseMailParameters("", q).error, ParamError::kNone);
}

TEST(MailParameters, Errors) {
  MailParameters p;
  ParamResult r = ParseMailParameters(" RET=FULL", p);
  EXPECT_EQ(r.error, ParamError::kUnknown);
  EXPECT_EQ(r.name, "RET");
  EXPECT_EQ(ParseMailParameters(" SIZE=abc", p).error, ParamError::kBadValue);
  EXPECT_EQ(ParseMailParameters(" SIZE=", p).error, ParamError::kBadValue);
  EXPECT_EQ(ParseMailParameters(" SIZE=-1", p).error, ParamError::kBadValue);
  EXPECT_EQ(ParseMailParameters(" SIZE=99999999999999999999999", p).error, ParamError::kBadValue);
  EXPECT_EQ(ParseMailParameters(" BODY=BINARYMIME", p).error, ParamError::kBadValue);
  EXPECT_EQ(ParseMailParameters(" SMTPUTF8=yes", p).error, ParamError::kBadValue);
  EXPECT_EQ(ParseMailParameters("SIZE=1", p).error, ParamError::kSyntax);
}

TEST(Bdat, Arguments) {
  uint64_t size;
  bool last, size_ok;
  EXPECT_TRUE(ParseBdatArgument("1000", size, last, size_ok));
  EXPECT_EQ(size, 1000u);
  EXPECT_FALSE(last);
  EXPECT_TRUE(ParseBdatArgument("0 LAST", size, last, size_ok));
  EXPECT_TRUE(last);
  EXPECT_TRUE(ParseBdatArgument("5 last", size, last, size_ok));
  EXPECT_FALSE(ParseBdatArgument("5 FIRST", size, last, size_ok));
  EXPECT_TRUE(size_ok);  // the chunk must still be swallowed
  EXPECT_FALSE(ParseBdatArgument("x", size, last, size_ok));
  EXPECT_FALSE(size_ok);
  EXPECT_FALSE(ParseBdatArgument("", size, last, size_ok));
  EXPECT_FALSE(ParseBdatArgument("-5", size, last, size_ok));
}

}  // namespace
}  // namespace sluice::smtp
