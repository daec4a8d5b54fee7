// Mail integrity in the pure SMTP layer (issue 10): the hop count, the
// postmaster rules, duplicate recipients, the trust flag, the EHLO/HELO
// argument check and duplicate MAIL parameters. The session is driven byte
// by byte-range with a recording handler in place of the spool.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "sluice/smtp/address.h"
#include "sluice/smtp/command.h"
#include "sluice/smtp/header_scanner.h"
#include "sluice/smtp/server_session.h"

namespace sluice::smtp {
namespace {

// ---------------------------------------------------------------------------
// HeaderScanner: Received: fields

uint32_t CountReceived(std::string_view text, size_t piece) {
  HeaderScanner s;
  for (size_t i = 0; i < text.size(); i += piece) s.Feed(text.substr(i, piece));
  return s.received_count();
}

TEST(HeaderScannerTest, CountsReceivedFieldsInTheHeaderSectionOnly) {
  const std::string msg =
      "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
      "RECEIVED: from c\r\n\tby d; folded Received: not a field\r\n"
      "received : obsolete syntax, blank before the colon\r\n"
      "X-Received: not this one\r\n"
      "Subject: Received: neither\r\n"
      " Received: a continuation line\r\n"
      "\r\n"
      "Received: in the body, not counted\r\n";
  for (size_t piece : {1, 2, 3, 7, 64, 4096}) {
    EXPECT_EQ(CountReceived(msg, piece), 3u) << "piece " << piece;
  }
}

TEST(HeaderScannerTest, CountsManyAndStopsAtTheScanLimit) {
  std::string msg;
  for (int i = 0; i < 60; ++i) absl::StrAppend(&msg, "Received: hop ", i, "\r\n");
  EXPECT_EQ(CountReceived(msg + "\r\nbody\r\n", 4096), 60u);
  // A header section past kHeaderScanMax is counted up to the limit.
  std::string big = msg + "X-Pad: " + std::string(70 * 1024, 'x') + "\r\n" + msg + "\r\n";
  EXPECT_EQ(CountReceived(big, 4096), 60u);
}

TEST(HeaderScannerTest, BareLfLinesAndLongNamesDoNotConfuseIt) {
  EXPECT_EQ(CountReceived("Received-SPF: pass\r\nReceivedX: y\r\nReceived:x\r\n\r\n", 5), 1u);
  EXPECT_EQ(CountReceived("A-very-long-field-name-indeed: Received: x\r\nReceived: y\r\n\r\n", 1),
            1u);
}

// ---------------------------------------------------------------------------
// The session

class Recorder : public SessionHandler {
 public:
  bool SpoolAvailable() override { return true; }
  void BeginMessage(const Envelope&) override { body.clear(); }
  void AppendBody(const char* data, size_t size) override { body.append(data, size); }
  void CommitMessage(const Envelope& e, const MessageFacts& f) override {
    envelopes.push_back(e);
    facts.push_back(f);
  }
  void AbortMessage() override { ++aborted; }
  void Authenticate(std::string_view user, std::string_view) override {
    session->OnAuthResult(user == "alice" ? AuthVerdict::kOk : AuthVerdict::kBad);
  }

  ServerSession* session = nullptr;
  std::string body;
  int aborted = 0;
  std::vector<Envelope> envelopes;
  std::vector<MessageFacts> facts;
};

class IntegrityTest : public testing::Test {
 protected:
  IntegrityTest() { Restart({.hostname = "mx.test", .relay_allowed = true}); }

  void Restart(SessionConfig config) {
    recorder_ = Recorder();
    session_ = std::make_unique<ServerSession>(std::move(config), recorder_);
    recorder_.session = session_.get();
    session_->Start();
    session_->output().clear();
  }

  std::vector<std::string> Send(std::string_view bytes) {
    size_t used = 0;
    for (int guard = 0; used < bytes.size() && !session_->closed() && guard < 100000; ++guard) {
      used += session_->Feed(bytes.data() + used, bytes.size() - used);
      if (session_->mode() == ServerSession::Mode::kCommit) session_->OnCommitted("QID");
    }
    std::string out;
    out.swap(session_->output());
    return absl::StrSplit(out, "\r\n", absl::SkipEmpty());
  }
  std::string Last(std::string_view bytes) {
    auto r = Send(bytes);
    return r.empty() ? "" : r.back();
  }

  static std::string Hops(int n) {
    std::string h;
    for (int i = 0; i < n; ++i) absl::StrAppend(&h, "Received: from h", i, " by h", i + 1, "\r\n");
    return h;
  }

  Recorder recorder_;
  std::unique_ptr<ServerSession> session_;
};

TEST_F(IntegrityTest, HopLimitWithData) {
  Restart({.hostname = "mx.test", .relay_allowed = true, .max_hops = 3});
  Send("EHLO c.test\r\n");
  const std::string txn = "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n";
  EXPECT_EQ(Last(txn + Hops(3) + "\r\nbody\r\n.\r\n"), "250 2.0.0 Ok: queued as QID");
  ASSERT_EQ(recorder_.facts.size(), 1u);
  EXPECT_EQ(recorder_.facts[0].received_count, 3u);
  EXPECT_EQ(Last(txn + Hops(4) + "\r\nbody\r\n.\r\n"), "554 5.4.6 Too many hops");
  EXPECT_EQ(recorder_.facts.size(), 1u);  // nothing committed
  EXPECT_EQ(recorder_.aborted, 1);
  // The session goes on: the next transaction is judged afresh.
  EXPECT_EQ(Last(txn + "Subject: x\r\n\r\n" + Hops(9) + ".\r\n"), "250 2.0.0 Ok: queued as QID");
}

TEST_F(IntegrityTest, HopLimitWithBdat) {
  Restart({.hostname = "mx.test", .relay_allowed = true, .max_hops = 2});
  const std::string body = Hops(3) + "\r\nx\r\n";
  const std::string first = body.substr(0, 20), rest = body.substr(20);
  auto r = Send(absl::StrCat("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nBDAT ",
                             first.size(), "\r\n", first, "BDAT ", rest.size(), " LAST\r\n", rest));
  EXPECT_EQ(r.back(), "554 5.4.6 Too many hops");
  EXPECT_TRUE(recorder_.facts.empty());
  EXPECT_EQ(Last("MAIL FROM:<a@b.test>\r\n"), "250 2.1.0 Ok");  // transaction was reset
}

TEST_F(IntegrityTest, DefaultHopLimitIsFifty) {
  Send("EHLO c\r\n");
  const std::string txn = "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n";
  EXPECT_EQ(Last(txn + Hops(50) + "\r\n.\r\n"), "250 2.0.0 Ok: queued as QID");
  EXPECT_EQ(Last(txn + Hops(51) + "\r\n.\r\n"), "554 5.4.6 Too many hops");
}

TEST_F(IntegrityTest, DuplicateRecipientsAreOne) {
  Restart({.hostname = "mx.test", .relay_allowed = true, .max_recipients = 2});
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(Last("RCPT TO:<x@y.test>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(Last("RCPT TO:<x@Y.TEST>\r\n"), "250 2.1.5 Ok");  // domains fold case
  EXPECT_EQ(Last("RCPT TO:<x@y.test>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(Last("RCPT TO:<X@y.test>\r\n"), "250 2.1.5 Ok");  // local parts do not
  // The duplicates did not count toward max_recipients; the third mailbox does.
  EXPECT_EQ(Last("RCPT TO:<z@y.test>\r\n"), "452 4.5.3 Error: too many recipients");
  EXPECT_EQ(Last("RCPT TO:<x@y.test>\r\n"), "250 2.1.5 Ok");  // still a duplicate, not "too many"
  Send("DATA\r\nSubject: s\r\n\r\n.\r\n");
  ASSERT_EQ(recorder_.envelopes.size(), 1u);
  EXPECT_EQ(recorder_.envelopes[0].recipients, (std::vector<std::string>{"x@y.test", "X@y.test"}));
  // A new transaction starts with an empty set.
  Send("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n\r\n.\r\n");
  ASSERT_EQ(recorder_.envelopes.size(), 2u);
  EXPECT_EQ(recorder_.envelopes[1].recipients, (std::vector<std::string>{"x@y.test"}));
}

TEST_F(IntegrityTest, SameMailbox) {
  EXPECT_TRUE(SameMailbox("u@example.com", "u@EXAMPLE.com"));
  EXPECT_FALSE(SameMailbox("U@example.com", "u@example.com"));
  EXPECT_TRUE(SameMailbox("\"a@b\"@x.test", "\"a@b\"@X.test"));
  EXPECT_FALSE(SameMailbox("\"a@b\"@x.test", "\"a@c\"@x.test"));
  EXPECT_FALSE(SameMailbox("ab@c.test", "a@bc.test"));
}

TEST_F(IntegrityTest, PostmasterFromOutsidersWithoutAnAddressIsRefused) {
  Restart({.hostname = "mx.test", .relay_allowed = false});
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(Last("RCPT TO:<Postmaster>\r\n"), "550 5.7.1 <Postmaster>: Relay access denied");
  EXPECT_EQ(Last("RCPT TO:<postmaster@MX.test>\r\n"),
            "550 5.7.1 <postmaster@MX.test>: Relay access denied");
  EXPECT_EQ(Last("RCPT TO:<postmaster@other.test>\r\n"),
            "550 5.7.1 <postmaster@other.test>: Relay access denied");
  EXPECT_EQ(Last("DATA\r\n"), "554 5.5.1 Error: no valid recipients");
}

TEST_F(IntegrityTest, PostmasterFromTrustedClientsStaysOurs) {
  Send(
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<POSTMASTER>\r\nRCPT TO:<postmaster@mx.test>\r\n"
      "DATA\r\n\r\n.\r\n");
  ASSERT_EQ(recorder_.envelopes.size(), 1u);
  // The same mailbox twice: one recipient.
  EXPECT_EQ(recorder_.envelopes[0].recipients, (std::vector<std::string>{"postmaster@mx.test"}));
  EXPECT_TRUE(recorder_.envelopes[0].trusted);
}

TEST_F(IntegrityTest, PostmasterAddressTakesItFromAnyone) {
  Restart({.hostname = "mx.test", .relay_allowed = false, .postmaster_address = "ops@corp.test"});
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(Last("RCPT TO:<postmaster>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(Last("RCPT TO:<PostMaster@mx.TEST>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(Last("RCPT TO:<someone@corp.test>\r\n"),
            "550 5.7.1 <someone@corp.test>: Relay access denied");
  EXPECT_EQ(Last("RCPT TO:<postmaster@corp.test>\r\n"),
            "550 5.7.1 <postmaster@corp.test>: Relay access denied");
  EXPECT_EQ(Last("DATA\r\nSubject: s\r\n\r\n.\r\n"), "250 2.0.0 Ok: queued as QID");
  ASSERT_EQ(recorder_.envelopes.size(), 1u);
  EXPECT_EQ(recorder_.envelopes[0].recipients, (std::vector<std::string>{"ops@corp.test"}));
  EXPECT_FALSE(recorder_.envelopes[0].trusted);
}

TEST_F(IntegrityTest, AuthenticatedClientsAreTrusted) {
  Restart({.hostname = "mx.test",
           .relay_allowed = false,
           .auth_available = true,
           .auth_plaintext = true});
  // "alice\0alice\0pw" in base64.
  Send("EHLO c\r\nAUTH PLAIN YWxpY2UAYWxpY2UAcHc=\r\n");
  Send("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nRCPT TO:<postmaster>\r\nDATA\r\n\r\n.\r\n");
  ASSERT_EQ(recorder_.envelopes.size(), 1u);
  EXPECT_TRUE(recorder_.envelopes[0].trusted);
  EXPECT_EQ(recorder_.envelopes[0].recipients,
            (std::vector<std::string>{"x@y.test", "postmaster@mx.test"}));
}

TEST_F(IntegrityTest, HeloArgumentIsValidated) {
  for (const char* ok : {"c.test", "my_host.local", "host.", "192.0.2.1", "[192.0.2.1]",
                         "[IPv6:2001:db8::1]", "DESKTOP-7QX", "[x-tag:anything]"}) {
    Restart({.hostname = "mx.test", .relay_allowed = true});
    EXPECT_EQ(Send(absl::StrCat("EHLO ", ok, "\r\n"))[0], absl::StrCat("250-mx.test Hello ", ok))
        << ok;
    EXPECT_EQ(Last(absl::StrCat("HELO ", ok, "\r\n")), "250 mx.test") << ok;
  }
  for (const char* bad : {"two words", "caf\xc3\xa9.test", "esc\x1b[31m", "tab\there", "a<b>",
                          "[300.1.1.1", "[IPv6:zz]", "...", "x\x7f"}) {
    Restart({.hostname = "mx.test", .relay_allowed = true});
    EXPECT_EQ(Last(absl::StrCat("EHLO ", bad, "\r\n")),
              "501 5.5.4 Error: invalid EHLO argument (a domain or address literal)")
        << bad;
    EXPECT_EQ(Last(absl::StrCat("HELO ", bad, "\r\n")),
              "501 5.5.4 Error: invalid HELO argument (a domain or address literal)")
        << bad;
    EXPECT_EQ(Last("MAIL FROM:<a@b.test>\r\n"), "503 5.5.1 Error: send HELO/EHLO first");
  }
  Restart({.hostname = "mx.test", .relay_allowed = true});
  EXPECT_EQ(Last("EHLO " + std::string(256, 'a') + "\r\n"),
            "501 5.5.4 Error: invalid EHLO argument (a domain or address literal)");
  EXPECT_EQ(Last("EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname");
}

TEST_F(IntegrityTest, UnsupportedOptionNamesAreNotEchoedRaw) {
  Send("EHLO c\r\n");
  EXPECT_EQ(Last("MAIL FROM:<a@b.test> X\x1b[2J\xff=1\r\n"),
            "555 5.5.4 Unsupported option: X?[2J?");
}

TEST(MailParametersTest, DuplicatesAreRefused) {
  for (std::string_view text : {" SIZE=1 SIZE=2", " BODY=7BIT BODY=8BITMIME", " SMTPUTF8 SMTPUTF8",
                                " size=1 BODY=7BIT Size=1"}) {
    MailParameters p;
    const ParamResult r = ParseMailParameters(text, p);
    EXPECT_EQ(r.error, ParamError::kDuplicate) << text;
  }
  MailParameters p;
  const ParamResult r = ParseMailParameters(" SIZE=1 BODY=7BIT size=3", p);
  EXPECT_EQ(r.name, "size");
}

TEST_F(IntegrityTest, DuplicateMailParametersGet555) {
  Send("EHLO c\r\n");
  EXPECT_EQ(Last("MAIL FROM:<a@b.test> SIZE=1 SIZE=2\r\n"), "555 5.5.4 Duplicate parameter: SIZE");
  EXPECT_EQ(Last("MAIL FROM:<a@b.test> BODY=8BITMIME body=8bitmime\r\n"),
            "555 5.5.4 Duplicate parameter: BODY");
  EXPECT_EQ(Last("MAIL FROM:<a@b.test> SMTPUTF8 SMTPUTF8\r\n"),
            "555 5.5.4 Duplicate parameter: SMTPUTF8");
  EXPECT_EQ(Last("MAIL FROM:<a@b.test> SIZE=1 BODY=7BIT\r\n"), "250 2.1.0 Ok");
}

}  // namespace
}  // namespace sluice::smtp
