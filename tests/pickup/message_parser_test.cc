#include "sluice/pickup/message_parser.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice::pickup {
namespace {

Limits Small() {
  Limits l;
  l.max_message_size = 4096;
  l.max_line_length = 100;
  l.max_recipients = 5;
  return l;
}

Result Parse(const std::string& s, const Limits& l = Small()) { return ParseMessage(s, l); }

void ExpectError(const std::string& input, size_t line, const std::string& words,
                 const Limits& l = Small()) {
  Result r = Parse(input, l);
  ASSERT_FALSE(r.ok) << "accepted: " << input;
  EXPECT_EQ(r.error.line, line) << r.error.ToString();
  EXPECT_NE(r.error.reason.find(words), std::string::npos) << r.error.ToString();
}

TEST(PickupParser, ExplicitEnvelopeIsRemoved) {
  Result r = Parse(
      "X-Sluice-Envelope-From: <alice@example.com>\r\n"
      "X-Sluice-Envelope-To: <bob@example.net>\r\n"
      "X-Sluice-Envelope-To: carol@example.org\r\n"
      "From: Someone Else <other@example.com>\r\n"
      "To: nobody@example.com\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "Hello.\r\n");
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.sender, "alice@example.com");
  EXPECT_EQ(r.message.recipients,
            (std::vector<std::string>{"bob@example.net", "carol@example.org"}));
  EXPECT_EQ(r.message.body,
            "From: Someone Else <other@example.com>\r\nTo: nobody@example.com\r\nSubject: "
            "hi\r\n\r\nHello.\r\n");
  EXPECT_TRUE(r.message.envelope_from_given);
  EXPECT_TRUE(r.message.envelope_to_given);
  EXPECT_FALSE(r.message.has_date);
  EXPECT_FALSE(r.message.has_message_id);
}

TEST(PickupParser, TooManyHopsIsRefused) {
  Limits l = Small();
  l.max_hops = 2;
  const std::string head = "X-Sluice-Envelope-To: <bob@example.net>\nFrom: a@example.com\n";
  const std::string hop = "Received: from x\n\tby y; Mon, 1 Jan 2024 00:00:00 +0000\n";
  Result ok = Parse(head + hop + hop + "\nReceived: in the body\n", l);
  ASSERT_TRUE(ok.ok) << ok.error.ToString();
  ExpectError(head + hop + "received: z\n" + hop + "\nbody\n", 0, "too many hops: 3 Received:", l);
}

TEST(PickupParser, NullSender) {
  Result r =
      Parse("X-Sluice-Envelope-From: <>\nX-Sluice-Envelope-To: <b@example.net>\nS: x\n\nb\n");
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.sender, "");
}

TEST(PickupParser, RecipientsFromHeadersLikeSendmailT) {
  Result r = Parse(
      "From: \"Alice, A.\" <alice@example.com>\r\n"
      "To: bob@example.net, \"Carol (C)\" <carol@example.org> (comment)\r\n"
      "Cc: team: dave@example.com, erin@example.com;, undisclosed-recipients:;\r\n"
      "Bcc: hidden@example.org,\r\n"
      "  hidden2@example.org\r\n"
      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
      "Message-ID: <x@y>\r\n"
      "\r\n"
      "Body.\r\n",
      Limits{});
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.sender, "alice@example.com");
  EXPECT_EQ(
      r.message.recipients,
      (std::vector<std::string>{"bob@example.net", "carol@example.org", "dave@example.com",
                                "erin@example.com", "hidden@example.org", "hidden2@example.org"}));
  EXPECT_EQ(r.message.body.find("Bcc"), std::string::npos);
  EXPECT_EQ(r.message.body.find("hidden2"), std::string::npos);  // continuation removed too
  EXPECT_TRUE(r.message.has_date);
  EXPECT_TRUE(r.message.has_message_id);
  EXPECT_FALSE(r.message.envelope_to_given);
}

TEST(PickupParser, SenderPrefersSender) {
  Result r = Parse("From: a@example.com\nSender: s@example.com\nTo: b@example.net\n\nx\n");
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.sender, "s@example.com");
}

TEST(PickupParser, EnvelopeFromOnlyTakesRecipientsFromHeaders) {
  Result r = Parse(
      "X-Sluice-Envelope-From: <e@example.com>\nFrom: a@example.com\nTo: b@example.net\n\nx\n");
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.sender, "e@example.com");
  EXPECT_EQ(r.message.recipients, (std::vector<std::string>{"b@example.net"}));
}

TEST(PickupParser, BareLfIsNormalisedAndFinalNewlineAdded) {
  Result r = Parse("From: a@example.com\nTo: b@example.net\n\nline1\nline2");
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.body, "From: a@example.com\r\nTo: b@example.net\r\n\r\nline1\r\nline2\r\n");
}

TEST(PickupParser, DuplicateRecipientsCollapse) {
  Result r = Parse("From: a@example.com\nTo: b@example.net\nCc: b@example.net\n\nx\n");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.message.recipients.size(), 1u);
}

TEST(PickupParser, EightBitAndUtf8) {
  Result r = Parse("From: a@example.com\nTo: b\xc3\xa9@example.net\n\ncaf\xc3\xa9\n");
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_TRUE(r.message.eight_bit);
  EXPECT_TRUE(r.message.smtputf8);
}

TEST(PickupParser, Errors) {
  ExpectError("", 0, "empty file");
  ExpectError(std::string("From: a@example.com\nTo: b@example.net\n\nx\0y\n", 41), 4, "NUL");
  ExpectError("\x7f\x45\x4c\x46\x02\x01\x01garbage", 1, "not a header field");
  ExpectError("From: a@example.com\nTo: b@example.net\nSubj", 3, "not a header field");
  ExpectError("From: a@example.com\nTo: b@example.net\n", 2, "truncated");
  ExpectError("From: a@example.com\nSubject: no recipients\n\nx\n", 0, "no recipients");
  ExpectError("To: b@example.net\nSubject: no sender\n\nx\n", 0, "no sender");
  ExpectError("From: a@example.com\nTo: not an address\n\nx\n", 2, "bad recipient address");
  ExpectError("X-Sluice-Envelope-From: <a@example.com>\nX-Sluice-Envelope-To: <b@@x>\n\nx\n", 2,
              "bad envelope recipient");
  ExpectError("X-Sluice-Envelope-From: <a@>\nX-Sluice-Envelope-To: <b@x.org>\n\nx\n", 1,
              "bad envelope sender");
  ExpectError("From: a@example.com\nTo: b@example.net\n\n" + std::string(200, 'x') + "\n", 4,
              "line length");
  ExpectError("From: a@example.com\rTo: b@example.net\n\nx\n", 1, "bare CR");
  ExpectError(" folded: first\nTo: b@example.net\n\nx\n", 1, "continuation");
  ExpectError("From: a@example.com\nTo: b@example.net\nX-Sluice-Envelope-To: <c@x.org>\n\nx\n", 3,
              "must come before");
  ExpectError(
      "X-Sluice-Envelope-From: <a@x.org>\nX-Sluice-Envelope-From: <b@x.org>\n"
      "X-Sluice-Envelope-To: <c@x.org>\n\nx\n",
      2, "more than one");
  ExpectError("From: a@example.com\nTo: \"unterminated <b@example.net>\n\nx\n", 2, "malformed");
  ExpectError(
      "From: a@example.com\nTo: a@x.org, b@x.org, c@x.org, d@x.org, e@x.org, f@x.org\n\nx\n", 2,
      "more than 5 recipients");
  ExpectError("Bad Name: x\nTo: b@example.net\n\nx\n", 1, "field name");
  std::string big = "From: a@example.com\nTo: b@example.net\n\n";
  while (big.size() < 5000) big += "0123456789012345678901234567890123456789\n";
  ExpectError(big, 0, "size limit");
}

TEST(PickupParser, NormalisationMayNotExceedSize) {
  Limits l = Small();
  std::string msg = "From: a@example.com\nTo: b@example.net\n\n";
  while (msg.size() < 4000) msg += "\n";
  Result r = Parse(msg, l);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.reason.find("after CRLF normalisation"), std::string::npos);
}

TEST(PickupParser, RequireFromWantsExactlyOne) {
  Limits l = Small();
  l.require_from = true;
  const std::string env = "X-Sluice-Envelope-From: <a@x.org>\nX-Sluice-Envelope-To: <b@y.org>\n";
  Result r = Parse(env + "From: a@x.org\nSubject: s\n\nFrom: in the body is text\n", l);
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.from_count, 1u);
  r = Parse(env + "Subject: s\nfrom:\n  Folded <a@x.org>\n\nx\n", l);
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.from_count, 1u);
  ExpectError(env + "Subject: s\n\nFrom: only in the body\n", 0, "no From field", l);
  ExpectError(env + "From: a@x.org\nSubject: s\nFROM: c@x.org\n\nx\n", 5, "a second From field", l);
  // X-Sluice-Envelope-From is not a From field.
  ExpectError("X-Sluice-Envelope-From: <a@x.org>\nTo: b@y.org\n\nx\n", 0, "no From field", l);
  // Without require_from (the pure parser's default) both are accepted.
  r = Parse(env + "From: a@x.org\nFrom: c@x.org\n\nx\n");
  ASSERT_TRUE(r.ok) << r.error.ToString();
  EXPECT_EQ(r.message.from_count, 2u);
  EXPECT_TRUE(Parse(env + "Subject: s\n\nx\n").ok);
}

TEST(PickupParser, ErrorText) {
  EXPECT_EQ((Error{3, "bad"}).ToString(), "line 3: bad");
  EXPECT_EQ((Error{0, "bad"}).ToString(), "file: bad");
}

TEST(ExtractAddresses, Forms) {
  std::vector<std::string> out;
  ASSERT_TRUE(ExtractAddresses(" a@b.c , Name <d@e.f>, \"Q, x\" <g@h.i>, (c) j@k.l (c2)", out));
  EXPECT_EQ(out, (std::vector<std::string>{"a@b.c", "d@e.f", "g@h.i", "j@k.l"}));
  out.clear();
  ASSERT_TRUE(ExtractAddresses("undisclosed-recipients:;", out));
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(ExtractAddresses("<a@b.c", out));
  EXPECT_FALSE(ExtractAddresses("a@b.c)", out));
  EXPECT_FALSE(ExtractAddresses("\"a@b.c", out));
}

}  // namespace
}  // namespace sluice::pickup
