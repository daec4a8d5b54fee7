// server.require_from: the header scanner's From: count, and the session's
// 550 5.6.0 for a message without exactly one From: field, through DATA
// and BDAT, split anywhere.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/base/limits.h"
#include "sluice/smtp/header_scanner.h"
#include "sluice/smtp/server_session.h"

namespace sluice::smtp {
namespace {

size_t Froms(std::string_view message, size_t split = 0) {
  HeaderScanner s;
  if (split == 0) {
    s.Feed(message);
  } else {
    for (size_t i = 0; i < message.size(); i += split) s.Feed(message.substr(i, split));
  }
  return s.from_count();
}

TEST(HeaderScannerFrom, Counts) {
  for (size_t split : {0, 1, 3}) {
    EXPECT_EQ(Froms("From: a@b.c\r\nSubject: x\r\n\r\nbody\r\n", split), 1u);
    EXPECT_EQ(Froms("Subject: x\r\n\r\nFrom: in the body\r\n", split), 0u);
    EXPECT_EQ(Froms("From: a@b.c\r\nfrom: c@d.e\r\n\r\n", split), 2u);
    EXPECT_EQ(Froms("FROM:\r\n \"Folded\"\r\n <a@b.c>\r\nTo: x\r\n\r\n", split), 1u);
    EXPECT_EQ(Froms("From : obsolete@b.c\r\n\r\n", split), 1u);  // RFC 5322 4.5
    EXPECT_EQ(Froms("From a@b.c Mon Dec  7 05:00:00 2026\r\nSubject: x\r\n\r\n", split), 0u);
    EXPECT_EQ(Froms("X-From: a\r\nFrom-X: b\r\nReply-To: From: c\r\n\r\n", split), 0u);
    EXPECT_EQ(Froms("Subject: x\r\n From: a continuation line\r\n\r\n", split), 0u);
  }
}

TEST(HeaderScannerFrom, TruncatedPastTheScanLimit) {
  HeaderScanner s;
  const std::string pad = "X-Pad: " + std::string(990, 'p') + "\r\n";
  std::string head;
  while (head.size() <= limits::kHeaderScanMax) head += pad;
  s.Feed(head + "From: late@b.c\r\n\r\n");
  EXPECT_TRUE(s.truncated());
  EXPECT_EQ(s.from_count(), 0u);
  HeaderScanner t;
  t.Feed("From: a@b.c\r\n\r\n" + head);
  EXPECT_FALSE(t.truncated());  // the header section ended in time
  EXPECT_EQ(t.from_count(), 1u);
}

class Recorder : public SessionHandler {
 public:
  bool SpoolAvailable() override { return true; }
  void BeginMessage(const Envelope&) override {}
  void AppendBody(const char*, size_t) override {}
  void CommitMessage(const Envelope&, const MessageFacts& f) override { facts.push_back(f); }
  void AbortMessage() override { ++aborted; }
  std::vector<MessageFacts> facts;
  int aborted = 0;
};

// One transaction per message; returns the last reply line of each.
std::vector<std::string> Deliver(bool require_from, const std::vector<std::string>& bodies,
                                 bool bdat = false) {
  Recorder h;
  SessionConfig c{.hostname = "mx.test", .relay_allowed = true};
  c.require_from = require_from;
  ServerSession s(c, h);
  s.Start();
  std::vector<std::string> out;
  for (const std::string& body : bodies) {
    s.output().clear();
    std::string in = "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n";
    in += bdat ? "BDAT " + std::to_string(body.size()) + " LAST\r\n" + body
               : "DATA\r\n" + body + ".\r\n";
    s.Feed(in.data(), in.size());
    if (s.mode() == ServerSession::Mode::kCommit) s.OnCommitted(std::string("ID"));
    std::string replies = s.output();
    replies.resize(replies.size() - 2);
    out.push_back(replies.substr(replies.rfind("\r\n") + 2));
    const std::string rset = "RSET\r\n";
    s.Feed(rset.data(), rset.size());
  }
  return out;
}

TEST(RequireFrom, DataAndBdat) {
  const std::vector<std::string> bodies = {
      "From: a@b.test\r\nSubject: one\r\n\r\nx\r\n",
      "Subject: none\r\n\r\nFrom: only in the body\r\n",
      "From: a@b.test\r\nFrom: c@d.test\r\n\r\nx\r\n",
      "From:\r\n  folded <a@b.test>\r\n\r\nx\r\n",
  };
  for (bool bdat : {false, true}) {
    const auto r = Deliver(true, bodies, bdat);
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0], "250 2.0.0 Ok: queued as ID") << bdat;
    EXPECT_EQ(r[1], "550 5.6.0 Error: message has no From: header field (RFC 5322 3.6)");
    EXPECT_EQ(r[2], "550 5.6.0 Error: message has more than one From: header field (RFC 5322 3.6)");
    EXPECT_EQ(r[3], "250 2.0.0 Ok: queued as ID");
    // Off: everything is taken.
    for (const std::string& reply : Deliver(false, bodies, bdat)) {
      EXPECT_EQ(reply, "250 2.0.0 Ok: queued as ID");
    }
  }
}

TEST(RequireFrom, RefusedMessageIsAbortedAndTheSessionGoesOn) {
  Recorder h;
  SessionConfig c{.hostname = "mx.test", .relay_allowed = true};
  c.require_from = true;
  ServerSession s(c, h);
  s.Start();
  const std::string in =
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nSubject: x\r\n\r\n.\r\n"
      "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nFrom: a@b.test\r\n\r\n.\r\n";
  size_t used = 0;
  while (used < in.size() && !s.closed()) {
    used += s.Feed(in.data() + used, in.size() - used);
    if (s.mode() == ServerSession::Mode::kCommit) s.OnCommitted(std::string("ID"));
  }
  EXPECT_EQ(h.aborted, 1);
  ASSERT_EQ(h.facts.size(), 1u);
  EXPECT_EQ(h.facts[0].from_count, 1u);
  EXPECT_NE(s.output().find("550 5.6.0"), std::string::npos);
  EXPECT_NE(s.output().find("250 2.0.0 Ok: queued as ID"), std::string::npos);
}

}  // namespace
}  // namespace sluice::smtp
