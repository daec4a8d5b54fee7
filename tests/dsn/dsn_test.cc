// DSN building: structure, folding, header injection, the header cut, 8-bit
// and UTF-8 handling, errors, boundary clashes, LooksLikeDsn, and a check of
// the bytes by Python's email parser.
#include "sluice/dsn/dsn.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::dsn {
namespace {

constexpr uint64_t kArrival = 1772528707000000;      // Tue, 03 Mar 2026 09:05:07
constexpr uint64_t kNow = kArrival + 3600000000ULL;  // an hour later

const char kOriginal[] =
    "Received: from client.example (127.0.0.1)\r\n"
    "\tby mta.example (Sluice) with ESMTP id 0ABCDEFGHJKMN; Tue, 03 Mar 2026 09:05:07 +0000\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.net\r\n"
    "Subject: hello\r\n"
    "\r\n"
    "Body line that must not come back.\r\n";

DsnInput BasicInput() {
  DsnInput in;
  in.reporting_mta = "mta.example";
  in.original_id = "0ABCDEFGHJKMN";
  in.original_sender = "alice@example.com";
  in.arrival_micros = kArrival;
  in.now_micros = kNow;
  in.original_message = kOriginal;
  FailedRecipient r;
  r.address = "bob@example.net";
  r.status = "5.1.1";
  r.remote_mta = "mx1.example.net";
  r.diagnostic = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown";
  r.last_attempt_micros = kNow - 1000000;
  in.recipients.push_back(r);
  return in;
}

Dsn MustBuild(const DsnInput& in) {
  absl::StatusOr<Dsn> d = BuildDsn(in);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : Dsn{};
}

// Every line ends with CRLF, no bare CR or LF, none longer than 998, no NUL.
void ExpectWellFormedLines(const std::string& m) {
  ASSERT_GE(m.size(), 2u);
  ASSERT_EQ(m.substr(m.size() - 2), "\r\n");
  size_t start = 0;
  while (start < m.size()) {
    const size_t crlf = m.find("\r\n", start);
    ASSERT_NE(crlf, std::string::npos);
    const std::string_view line(m.data() + start, crlf - start);
    EXPECT_LE(line.size(), 998u) << line.substr(0, 80);
    EXPECT_EQ(line.find('\r'), std::string_view::npos) << line;
    EXPECT_EQ(line.find('\n'), std::string_view::npos) << line;
    EXPECT_EQ(line.find('\0'), std::string_view::npos) << line;
    start = crlf + 2;
  }
}

struct Parsed {
  std::string top;  // header section, CRLF-terminated lines
  std::string boundary;
  std::string preamble;
  std::vector<std::string> part_headers;
  std::vector<std::string> part_bodies;
};

Parsed Parse(const std::string& m) {
  Parsed p;
  const size_t end = m.find("\r\n\r\n");
  EXPECT_NE(end, std::string::npos);
  if (end == std::string::npos) return p;
  p.top = m.substr(0, end + 2);
  const size_t b = p.top.find("boundary=\"");
  EXPECT_NE(b, std::string::npos);
  if (b == std::string::npos) return p;
  p.boundary = p.top.substr(b + 10, p.top.find('"', b + 10) - (b + 10));
  const std::string delim = "\r\n--" + p.boundary;
  std::string body = "\r\n" + m.substr(end + 4);
  size_t pos = body.find(delim);
  EXPECT_NE(pos, std::string::npos);
  p.preamble = body.substr(2, pos - 2);
  while (pos != std::string::npos) {
    size_t after = pos + delim.size();
    if (body.compare(after, 4, "--\r\n") == 0) {
      EXPECT_EQ(after + 4, body.size()) << "text after the closing delimiter";
      break;
    }
    EXPECT_EQ(body.compare(after, 2, "\r\n"), 0);
    after += 2;
    const size_t next = body.find(delim, after);
    EXPECT_NE(next, std::string::npos) << "no closing delimiter";
    if (next == std::string::npos) break;
    const std::string part = body.substr(after, next - after);
    const size_t split = part.find("\r\n\r\n");
    EXPECT_NE(split, std::string::npos);
    p.part_headers.push_back(part.substr(0, split + 2));
    p.part_bodies.push_back(part.substr(split + 4));
    pos = next;
  }
  return p;
}

// All unfolded values of `name` in a section of CRLF lines (blank lines
// separate the blocks of a delivery-status part; they are just skipped).
std::vector<std::string> Fields(const std::string& section, const std::string& name) {
  std::vector<std::string> out;
  bool in_field = false;
  size_t start = 0;
  while (start < section.size()) {
    size_t crlf = section.find("\r\n", start);
    if (crlf == std::string::npos) crlf = section.size();
    const std::string line = section.substr(start, crlf - start);
    start = crlf + 2;
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (in_field) out.back() += line;
      continue;
    }
    in_field = line.compare(0, name.size() + 1, name + ":") == 0;
    if (in_field) {
      std::string v = line.substr(name.size() + 1);
      out.push_back(v);
    }
  }
  for (std::string& v : out) {
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  }
  return out;
}

std::string Field(const std::string& section, const std::string& name) {
  std::vector<std::string> v = Fields(section, name);
  return v.empty() ? "" : v.front();
}

TEST(BuildDsn, Structure) {
  const Dsn d = MustBuild(BasicInput());
  ExpectWellFormedLines(d.message);
  EXPECT_FALSE(d.eight_bit);
  EXPECT_FALSE(d.smtputf8);
  const Parsed p = Parse(d.message);
  EXPECT_EQ(d.message.rfind("From: Mail Delivery System <MAILER-DAEMON@mta.example>\r\n", 0), 0u);
  EXPECT_EQ(Field(p.top, "To"), "alice@example.com");
  EXPECT_EQ(Field(p.top, "Subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(Field(p.top, "Date"), "Tue, 03 Mar 2026 10:05:07 +0000");
  EXPECT_EQ(Field(p.top, "Message-ID"),
            "<0ABCDEFGHJKMN." + std::to_string(kNow) + ".dsn@mta.example>");
  EXPECT_EQ(Field(p.top, "Auto-Submitted"), "auto-replied");
  EXPECT_EQ(Field(p.top, "X-Failed-Recipients"), "bob@example.net");
  EXPECT_EQ(Field(p.top, "MIME-Version"), "1.0");
  EXPECT_EQ(Field(p.top, "Content-Type"),
            "multipart/report; report-type=delivery-status;\tboundary=\"" + p.boundary + "\"");
  EXPECT_EQ(Field(p.top, "Content-Transfer-Encoding"), "");
  EXPECT_FALSE(p.boundary.empty());
  EXPECT_LE(p.boundary.size(), 70u);  // RFC 2046

  ASSERT_EQ(p.part_headers.size(), 3u);
  EXPECT_EQ(Field(p.part_headers[0], "Content-Type"), "text/plain; charset=us-ascii");
  EXPECT_EQ(Field(p.part_headers[1], "Content-Type"), "message/delivery-status");
  EXPECT_EQ(Field(p.part_headers[2], "Content-Type"), "text/rfc822-headers");

  const std::string& text = p.part_bodies[0];
  EXPECT_NE(text.find("This is the mail system at host mta.example."), std::string::npos);
  EXPECT_NE(text.find("<bob@example.net>: host mx1.example.net said: 550 5.1.1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("0ABCDEFGHJKMN"), std::string::npos);

  const std::string expected_status =
      "Reporting-MTA: dns; mta.example\r\n"
      "X-Sluice-Queue-ID: 0ABCDEFGHJKMN\r\n"
      "Arrival-Date: Tue, 03 Mar 2026 09:05:07 +0000\r\n"
      "\r\n"
      "Final-Recipient: rfc822; bob@example.net\r\n"
      "Action: failed\r\n"
      "Status: 5.1.1\r\n"
      "Remote-MTA: dns; mx1.example.net\r\n"
      "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address\r\n"
      " rejected: User unknown\r\n"
      "Last-Attempt-Date: Tue, 03 Mar 2026 10:05:06 +0000\r\n";
  EXPECT_EQ(p.part_bodies[1], expected_status);

  // The header section only, never the body.
  EXPECT_EQ(p.part_bodies[2],
            std::string(kOriginal).substr(0, std::string(kOriginal).find("\r\n\r\n") + 2));
  EXPECT_EQ(d.message.find("must not come back"), std::string::npos);
}

TEST(BuildDsn, SeveralRecipientsLocalReasonAndMissingFacts) {
  DsnInput in = BasicInput();
  in.arrival_micros = 0;
  in.original_id.clear();
  FailedRecipient local;
  local.address = "<carol@nowhere.example>";  // brackets are dropped
  local.status = "5.1.2";
  local.diagnostic = "Host or domain name not found. Name service error for name=nowhere.example";
  in.recipients.push_back(local);
  FailedRecipient bare;
  bare.address = "dave@example.org";
  bare.status = "5.4.4";
  in.recipients.push_back(bare);
  const Dsn d = MustBuild(in);
  ExpectWellFormedLines(d.message);
  const Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  const std::string& s = p.part_bodies[1];
  EXPECT_EQ(Field(s, "Arrival-Date"), "");
  EXPECT_EQ(Field(s, "X-Sluice-Queue-ID"), "");
  EXPECT_EQ(Fields(s, "Final-Recipient"),
            (std::vector<std::string>{"rfc822; bob@example.net", "rfc822; carol@nowhere.example",
                                      "rfc822; dave@example.org"}));
  EXPECT_EQ(Fields(s, "Status"), (std::vector<std::string>{"5.1.1", "5.1.2", "5.4.4"}));
  EXPECT_EQ(Fields(s, "Action"), (std::vector<std::string>{"failed", "failed", "failed"}));
  EXPECT_EQ(Fields(s, "Remote-MTA"), (std::vector<std::string>{"dns; mx1.example.net"}));
  const std::vector<std::string> diag = Fields(s, "Diagnostic-Code");
  ASSERT_EQ(diag.size(), 2u);
  EXPECT_EQ(diag[0].rfind("smtp; 550 5.1.1", 0), 0u);
  EXPECT_EQ(diag[1],
            "X-Sluice; Host or domain name not found. Name service error for name=nowhere.example");
  EXPECT_EQ(Fields(s, "Last-Attempt-Date").size(), 1u);
  EXPECT_EQ(Field(p.top, "X-Failed-Recipients"),
            "bob@example.net, carol@nowhere.example, dave@example.org");
  EXPECT_EQ(Field(p.top, "Message-ID"), "<" + std::to_string(kNow) + ".dsn@mta.example>");
  EXPECT_NE(p.part_bodies[0].find("<dave@example.org>: delivery failed (5.4.4)"),
            std::string::npos);
  EXPECT_NE(p.part_bodies[0].find("<carol@nowhere.example>: Host or domain name not found."),
            std::string::npos);
}

TEST(BuildDsn, ExpiryWording) {
  DsnInput in = BasicInput();
  in.expired = true;
  in.now_micros = kArrival + (5 * 86400ULL + 120) * 1000000;
  in.recipients[0].status = "4.4.7";
  in.recipients[0].diagnostic = "421 4.7.0 Try again later";
  Dsn d = MustBuild(in);
  Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  EXPECT_NE(p.part_bodies[0].find("could not be delivered within 5 days"), std::string::npos)
      << p.part_bodies[0];
  EXPECT_EQ(Field(p.part_bodies[1], "Status"), "4.4.7");
  EXPECT_EQ(Field(p.part_bodies[1], "Action"), "failed");

  in.max_queue_time_micros = 36 * 3600ULL * 1000000;
  d = MustBuild(in);
  p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  EXPECT_NE(p.part_bodies[0].find("within 1 day 12 hours"), std::string::npos) << p.part_bodies[0];
}

TEST(BuildDsn, MalformedStatusIsReplacedNotRejected) {
  for (const char* bad : {"", "2.0.0", "5.1", "5.1.1.1", "5.1111.1", "x.1.1", "5.1.1 ", "550"}) {
    DsnInput in = BasicInput();
    in.recipients[0].status = bad;
    const Parsed p = Parse(MustBuild(in).message);
    ASSERT_EQ(p.part_bodies.size(), 3u);
    EXPECT_EQ(Field(p.part_bodies[1], "Status"), "5.0.0") << bad;
    in.expired = true;
    const Parsed q = Parse(MustBuild(in).message);
    ASSERT_EQ(q.part_bodies.size(), 3u);
    EXPECT_EQ(Field(q.part_bodies[1], "Status"), "4.4.7") << bad;
  }
  DsnInput in = BasicInput();
  in.recipients[0].status = "4.123.999";
  EXPECT_EQ(Field(Parse(MustBuild(in).message).part_bodies.at(1), "Status"), "4.123.999");
}

TEST(BuildDsn, Errors) {
  DsnInput in = BasicInput();
  in.original_sender = "";
  EXPECT_EQ(BuildDsn(in).status().code(), absl::StatusCode::kInvalidArgument);
  in.original_sender = "<>";
  EXPECT_EQ(BuildDsn(in).status().code(), absl::StatusCode::kInvalidArgument);
  in = BasicInput();
  in.recipients.clear();
  EXPECT_EQ(BuildDsn(in).status().code(), absl::StatusCode::kInvalidArgument);
  in = BasicInput();
  in.recipients[0].address = "<>";
  EXPECT_EQ(BuildDsn(in).status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* host : {"", "mta example", "mta.example\r\nBcc: x", "mta.example>", "mta@x"}) {
    in = BasicInput();
    in.reporting_mta = host;
    EXPECT_EQ(BuildDsn(in).status().code(), absl::StatusCode::kInvalidArgument) << host;
  }
  in = BasicInput();
  in.reporting_mta = std::string(256, 'a');
  EXPECT_EQ(BuildDsn(in).status().code(), absl::StatusCode::kInvalidArgument);
}

// Nothing a remote server or an address says can start a header line or a
// MIME part of its own.
TEST(BuildDsn, InjectionAttempts) {
  DsnInput in = BasicInput();
  in.recipients[0].diagnostic =
      "550 no\r\nBcc: victim@example.org\r\n\r\n--sluice-dsn-0ABCDEFGHJKMN\r\nX-Evil: 1\n"
      "Subject: bare lf\rReply-To: bare cr\ttab\x01\x7f"
      "end";
  in.recipients[0].diagnostic.push_back('\0');
  in.recipients[0].diagnostic += "\xff\xfe tail \r\n";
  in.recipients[0].remote_mta = "mx.example\r\nX-Evil: 2";
  in.recipients[0].status = "5.1.1\r\nX-Evil: 3";
  in.original_id = "ID\r\nX-Evil: 4";
  in.original_sender = "alice@example.com\r\nX-Evil: 5";
  FailedRecipient r;
  r.address = "eve@example.net\r\nX-Evil: 6";
  r.diagnostic = "\r\n\r\n";
  in.recipients.push_back(r);
  const Dsn d = MustBuild(in);
  ExpectWellFormedLines(d.message);
  for (const char* bad : {"\r\nBcc:", "\r\nX-Evil", "\r\nSubject: bare", "\r\nReply-To:"}) {
    EXPECT_EQ(d.message.find(bad), std::string::npos) << bad << "\n" << d.message;
  }
  const Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  const std::string& s = p.part_bodies[1];
  EXPECT_EQ(Fields(s, "Diagnostic-Code").front(),
            "smtp; 550 no; Bcc: victim@example.org; --sluice-dsn-0ABCDEFGHJKMN; X-Evil: 1; "
            "Subject: bare lf; Reply-To: bare cr tab end ?? tail");
  EXPECT_EQ(Fields(s, "Diagnostic-Code").size(), 1u);  // "\r\n\r\n" cleans to nothing
  EXPECT_EQ(Field(s, "Remote-MTA"), "dns; mx.example;X-Evil:2");
  EXPECT_EQ(Field(s, "Status"), "5.0.0");
  EXPECT_EQ(Field(s, "X-Sluice-Queue-ID"), "ID;X-Evil:4");
  EXPECT_EQ(Fields(s, "Final-Recipient")[1], "rfc822; eve@example.net??X-Evil: 6");
  EXPECT_EQ(Field(p.top, "To"), "alice@example.com??X-Evil: 5");
  EXPECT_EQ(Field(p.top, "Message-ID"), "<IDXEvil4." + std::to_string(kNow) + ".dsn@mta.example>");
  EXPECT_NE(p.boundary.find("IDXEvil4"), std::string::npos);
}

TEST(BuildDsn, FoldsLongFieldsAndTheRecipientList) {
  DsnInput in = BasicInput();
  in.recipients.clear();
  std::string joined;
  for (int i = 0; i < 150; ++i) {  // about 6 KiB, under kFailedRecipientsHeaderMax
    FailedRecipient r;
    r.address = "user" + std::to_string(i) + "@some-long-domain-name.example.com";
    r.status = "5.1.1";
    in.recipients.push_back(r);
    if (!joined.empty()) joined += ", ";
    joined += r.address;
  }
  std::string words;
  for (int i = 0; i < 400; ++i) words += " word" + std::to_string(i);
  in.recipients[0].diagnostic = "550" + words;
  in.recipients[1].diagnostic = "550 " + std::string(3000, 'x') + " end";  // one huge word
  const Dsn d = MustBuild(in);
  ExpectWellFormedLines(d.message);
  const Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  // Unfolding gives back the whole list; folded lines stay short.
  EXPECT_EQ(Field(p.top, "X-Failed-Recipients"), joined);
  size_t start = 0;
  for (size_t crlf; (crlf = p.top.find("\r\n", start)) != std::string::npos; start = crlf + 2) {
    EXPECT_LE(crlf - start, 78u) << p.top.substr(start, crlf - start);
  }
  const std::vector<std::string> diag = Fields(p.part_bodies[1], "Diagnostic-Code");
  ASSERT_EQ(diag.size(), 2u);
  EXPECT_EQ(diag[0], "smtp; 550" + words);
  // The huge word was cut by folds: its x's all arrive, split by spaces.
  std::string xs = diag[1];
  std::erase(xs, ' ');
  EXPECT_EQ(xs, "smtp;550" + std::string(3000, 'x') + "end");
  // Human text lines are wrapped too.
  start = 0;
  const std::string& text = p.part_bodies[0];
  for (size_t crlf; (crlf = text.find("\r\n", start)) != std::string::npos; start = crlf + 2) {
    if (text.find("xxxxxxxxxx", start) < crlf) continue;
    EXPECT_LE(crlf - start, 76u) << text.substr(start, crlf - start);
  }
}

TEST(BuildDsn, FailedRecipientsHeaderIsBounded) {
  DsnInput in = BasicInput();
  in.recipients.clear();
  for (int i = 0; i < 5000; ++i) {
    FailedRecipient r;
    r.address = "user" + std::to_string(i) + "@example.com";
    in.recipients.push_back(r);
  }
  const Dsn d = MustBuild(in);
  ExpectWellFormedLines(d.message);
  const Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  const std::string listed = Field(p.top, "X-Failed-Recipients");
  EXPECT_LE(listed.size(), kFailedRecipientsHeaderMax);
  EXPECT_GT(listed.size(), kFailedRecipientsHeaderMax - 100);
  EXPECT_EQ(listed.rfind("user0@example.com, user1@example.com", 0), 0u);
  EXPECT_EQ(Fields(p.part_bodies[1], "Final-Recipient").size(), 5000u);  // the full list
}

TEST(BuildDsn, HeaderSectionIsCutAtALineBoundary) {
  std::string original;
  for (int i = 0; i < 100; ++i) {
    original += "X-Header-" + std::to_string(i) + ": value\r\n";
    original += "\tcontinued\r\n";
  }
  original += "\r\nbody\r\n";
  DsnInput in = BasicInput();
  in.original_message = original;
  in.max_returned_header_bytes = 85;
  Dsn d = MustBuild(in);
  Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  // 19 + 12 + 19 + 12 + 19 = 81; the next line (12) would pass 85. Cutting
  // between a field and its continuation still leaves valid fields.
  EXPECT_EQ(p.part_bodies[2],
            "X-Header-0: value\r\n\tcontinued\r\nX-Header-1: value\r\n\tcontinued\r\n"
            "X-Header-2: value\r\n");
  EXPECT_NE(p.part_bodies[0].find("longer than 85 bytes and has been cut"), std::string::npos);

  // Exactly at the limit: nothing is cut.
  in.max_returned_header_bytes = original.size() - 8;  // everything but "\r\nbody\r\n"
  d = MustBuild(in);
  p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  EXPECT_EQ(p.part_bodies[2], original.substr(0, original.size() - 8));
  EXPECT_EQ(p.part_bodies[0].find("has been cut"), std::string::npos);

  in.max_returned_header_bytes = 0;
  p = Parse(MustBuild(in).message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  EXPECT_EQ(p.part_bodies[2], "");
}

TEST(BuildDsn, HeaderSectionEdgeCases) {
  struct Case {
    std::string original;
    std::string returned;
  } cases[] = {
      {"", ""},
      {"\r\nbody only\r\n", ""},
      {"Subject: no body\r\n", "Subject: no body\r\n"},
      {"Subject: no newline", "Subject: no newline\r\n"},
      {"Subject: lf\nTo: x\n\nbody\n", "Subject: lf\r\nTo: x\r\n"},
      {"Subject: a\r\nnot a header line\r\nTo: body\r\n", "Subject: a\r\n"},
      {"From sender@x Tue Mar  3 09:05:07 2026\r\nSubject: a\r\n", ""},
      {"  leading continuation\r\nSubject: a\r\n", ""},
      {"Subject : obsolete space\r\n\r\n", "Subject : obsolete space\r\n"},
      {std::string("Subject: nul\0 and\rcr\r\n", 22), "Subject: nul  and cr\r\n"},
  };
  for (const Case& c : cases) {
    DsnInput in = BasicInput();
    in.original_message = c.original;
    const Dsn d = MustBuild(in);
    ExpectWellFormedLines(d.message);
    const Parsed p = Parse(d.message);
    ASSERT_EQ(p.part_bodies.size(), 3u);
    EXPECT_EQ(p.part_bodies[2], c.returned) << c.original;
  }
  // A header line longer than 998 is folded, not passed on.
  DsnInput in = BasicInput();
  const std::string original = "X-Long: " + std::string(3000, 'y') + "\r\n\r\n";
  in.original_message = original;
  const Dsn d = MustBuild(in);
  ExpectWellFormedLines(d.message);
  const Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  std::string unfolded = p.part_bodies[2];
  std::erase(unfolded, ' ');
  std::erase(unfolded, '\r');
  std::erase(unfolded, '\n');
  EXPECT_EQ(unfolded, "X-Long:" + std::string(3000, 'y'));
}

TEST(BuildDsn, EightBitOriginalHeaders) {
  DsnInput in = BasicInput();
  const std::string original = "Subject: caf\xc3\xa9 \xff raw\r\nTo: x@example.net\r\n\r\nbody\r\n";
  in.original_message = original;
  const Dsn d = MustBuild(in);
  EXPECT_TRUE(d.eight_bit);
  EXPECT_FALSE(d.smtputf8);
  const Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  EXPECT_EQ(Field(p.top, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(Field(p.part_headers[2], "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(Field(p.part_headers[0], "Content-Transfer-Encoding"), "");
  EXPECT_EQ(p.part_bodies[2], "Subject: caf\xc3\xa9 \xff raw\r\nTo: x@example.net\r\n");
}

TEST(BuildDsn, NonAsciiAddresses) {
  DsnInput in = BasicInput();
  in.original_sender = "j\xc3\xb6rg@m\xc3\xbcnchen.example";
  in.recipients[0].address = "\xe7\x94\xa8\xe6\x88\xb7+tag=x@example.net";
  in.recipients[0].diagnostic = "550 5.1.1 unknown \xe7\x94\xa8\xe6\x88\xb7";
  FailedRecipient broken;
  broken.address = "bad\xff\xc3@example.net";  // invalid UTF-8
  in.recipients.push_back(broken);
  const Dsn d = MustBuild(in);
  ExpectWellFormedLines(d.message);
  EXPECT_TRUE(d.eight_bit);
  EXPECT_TRUE(d.smtputf8);
  const Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  EXPECT_EQ(Field(p.top, "To"), "j\xc3\xb6rg@m\xc3\xbcnchen.example");
  EXPECT_EQ(Fields(p.part_bodies[1], "Final-Recipient"),
            (std::vector<std::string>{"utf-8; \\x{7528}\\x{6237}\\x{2B}tag\\x{3D}x@example.net",
                                      "rfc822; bad??@example.net"}));
  // The delivery-status part stays 7-bit; the text carries the UTF-8 address.
  for (char c : p.part_bodies[1]) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
  EXPECT_EQ(Field(p.part_bodies[1], "Diagnostic-Code"), "smtp; 550 5.1.1 unknown ??????");
  EXPECT_EQ(Field(p.part_headers[0], "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(Field(p.part_headers[0], "Content-Transfer-Encoding"), "8bit");
  EXPECT_NE(p.part_bodies[0].find("<\xe7\x94\xa8\xe6\x88\xb7+tag=x@example.net>"),
            std::string::npos);
}

TEST(BuildDsn, BoundaryNeverOccursInContent) {
  DsnInput in = BasicInput();
  // The first candidates, planted in the returned headers and the diagnostic.
  char hex[32];
  snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(kNow));
  const std::string base = std::string("sluice-dsn-0ABCDEFGHJKMN-") + hex;
  const std::string original = "X-A: --" + base + "\r\nX-B: " + base + ".1\r\n\r\n";
  in.original_message = original;
  in.recipients[0].diagnostic = "550 " + base + ".2";
  const Dsn d = MustBuild(in);
  const Parsed p = Parse(d.message);
  ASSERT_EQ(p.part_bodies.size(), 3u);
  EXPECT_EQ(p.boundary, base + ".3");
  for (const std::string& body : p.part_bodies) {
    EXPECT_EQ(body.find(p.boundary), std::string::npos);
  }
  EXPECT_EQ(p.part_bodies[2], original.substr(0, original.size() - 2));
}

// Whatever the input, the output is a well-formed message (or an error).
TEST(BuildDsn, TotalOnRandomInput) {
  std::mt19937_64 rng(42);
  auto random_bytes = [&](size_t max) {
    std::string s(rng() % (max + 1), '\0');
    const char alphabet[] = "aZ09 :;<>@.-\r\n\t\"\\(),=+";
    for (char& c : s) {
      c = rng() % 3 == 0 ? static_cast<char>(rng()) : alphabet[rng() % (sizeof alphabet - 1)];
    }
    return s;
  };
  for (int iter = 0; iter < 2000; ++iter) {
    DsnInput in;
    in.reporting_mta = rng() % 8 == 0 ? random_bytes(20) : "mta.example";
    in.original_id = random_bytes(40);
    in.original_sender = random_bytes(60);
    in.arrival_micros = rng();
    in.now_micros = rng();
    in.expired = rng() % 2;
    in.max_queue_time_micros = rng() % 2 ? rng() : 0;
    const std::string original = random_bytes(3000);
    in.original_message = original;
    in.max_returned_header_bytes = rng() % 4000;
    const size_t n = rng() % 4;
    for (size_t i = 0; i < n; ++i) {
      FailedRecipient r;
      r.address = random_bytes(rng() % 8 == 0 ? 2000 : 60);
      r.status = random_bytes(8);
      r.remote_mta = random_bytes(40);
      r.diagnostic = random_bytes(rng() % 8 == 0 ? 5000 : 300);
      r.last_attempt_micros = rng();
      in.recipients.push_back(r);
    }
    absl::StatusOr<Dsn> d = BuildDsn(in);
    if (!d.ok()) continue;
    ExpectWellFormedLines(d->message);
    const Parsed p = Parse(d->message);
    ASSERT_EQ(p.part_bodies.size(), 3u) << d->message;
    EXPECT_TRUE(LooksLikeDsn("x@y", d->message));
    bool eight = false;
    for (char c : d->message) eight = eight || static_cast<unsigned char>(c) >= 0x80;
    EXPECT_EQ(d->eight_bit, eight);
    if (HasFailure()) break;
  }
}

TEST(LooksLikeDsn, NullSender) {
  EXPECT_TRUE(LooksLikeDsn("", "Subject: x\r\n\r\nbody\r\n"));
  EXPECT_TRUE(LooksLikeDsn("<>", "Subject: x\r\n\r\nbody\r\n"));
  EXPECT_FALSE(LooksLikeDsn("alice@example.com", "Subject: x\r\n\r\nbody\r\n"));
  EXPECT_FALSE(LooksLikeDsn("alice@example.com", ""));
}

TEST(LooksLikeDsn, ByContentType) {
  EXPECT_TRUE(LooksLikeDsn("relay@example.com", MustBuild(BasicInput()).message));
  const char* yes[] = {
      "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n",
      "content-type:Multipart/Report;Report-Type=\"Delivery-Status\"\r\n\r\n",
      "Subject: x\r\nContent-Type: multipart/report;\r\n\tboundary=\"a;b\";\r\n"
      " report-type=delivery-status\r\n\r\nbody\r\n",
      "Content-Type: multipart/report (a comment; report-type=no); report-type = "
      "delivery-status\r\n\r\n",
      "Content-Type: multipart/report; report-type=global-delivery-status\r\n\r\n",
      "Content-Type : multipart/report; report-type=delivery-status\n\n",
      "Content-Type: text/plain\r\nContent-Type: multipart/report; "
      "report-type=delivery-status\r\n\r\n",
      // Lenient: an unterminated quote still reads (a false "yes" only
      // withholds a bounce about a broken message).
      "Content-Type: multipart/report; report-type=\"delivery-status\r\n\r\n",
  };
  for (const char* m : yes) EXPECT_TRUE(LooksLikeDsn("relay@example.com", m)) << m;
  const char* no[] = {
      "Content-Type: multipart/report; report-type=disposition-notification\r\n\r\n",
      "Content-Type: multipart/mixed; report-type=delivery-status\r\n\r\n",
      "Content-Type: multipart/report; boundary=\"report-type=delivery-status\"\r\n\r\n",
      "Content-Type: multipart/report; x-report-type=delivery-status\r\n\r\n",
      "Subject: x\r\n\r\nContent-Type: multipart/report; report-type=delivery-status\r\n",
      "Subject: x\r\nnot a header\r\nContent-Type: multipart/report; "
      "report-type=delivery-status\r\n\r\n",
      "X-Content-Type: multipart/report; report-type=delivery-status\r\n\r\n",
      "Content-Type:\r\n\r\n",
  };
  for (const char* m : no) EXPECT_FALSE(LooksLikeDsn("relay@example.com", m)) << m;
}

// Python's email package (Debian's, not the pyenv one) reads the DSN as we
// mean it: no defects, three parts, the delivery-status blocks and fields.
TEST(BuildDsn, PythonEmailParserAgrees) {
  const char* python = "/usr/bin/python3";
  if (access(python, X_OK) != 0) GTEST_SKIP() << python << " not found";
  DsnInput in = BasicInput();
  FailedRecipient r;
  r.address = "carol@example.org";
  r.status = "5.7.1";
  r.remote_mta = "mx2.example.org";
  std::string long_reply = "550-5.7.1 first line\r\n550 5.7.1";
  for (int i = 0; i < 40; ++i) long_reply += " policy" + std::to_string(i);
  r.diagnostic = long_reply;
  in.recipients.push_back(r);
  const std::string original = std::string(kOriginal) + "";
  in.original_message = original;
  const Dsn d = MustBuild(in);

  char dir[] = "/tmp/sluice-dsn-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string msg_path = std::string(dir) + "/dsn.eml";
  const std::string script_path = std::string(dir) + "/check.py";
  std::ofstream(msg_path, std::ios::binary) << d.message;
  std::ofstream(script_path) << R"PY(
import sys, email, email.policy
raw = open(sys.argv[1], 'rb').read()
m = email.message_from_bytes(raw, policy=email.policy.default)
def check(cond, what):
    if not cond:
        print('FAILED:', what, file=sys.stderr)
        sys.exit(1)
check(not m.defects, 'top defects %r' % m.defects)
check(m.get_content_type() == 'multipart/report', m.get_content_type())
check(m.get_param('report-type') == 'delivery-status', m.get_param('report-type'))
check(str(m['To']) == 'alice@example.com', m['To'])
check(m['From'].addresses[0].addr_spec == 'MAILER-DAEMON@mta.example', m['From'])
check(m['Date'].datetime.isoformat() == '2026-03-03T10:05:07+00:00', m['Date'])
failed = [a.strip() for a in str(m['X-Failed-Recipients']).split(',')]
check(failed == ['bob@example.net', 'carol@example.org'], failed)
parts = m.get_payload()
check([p.get_content_type() for p in parts] ==
      ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
      [p.get_content_type() for p in parts])
for p in parts:
    check(not p.defects, 'part defects %r' % p.defects)
check('mx1.example.net said: 550 5.1.1' in parts[0].get_content(), parts[0].get_content())
blocks = parts[1].get_payload()
check(len(blocks) == 3, 'blocks %d' % len(blocks))
check(blocks[0]['Reporting-MTA'] == 'dns; mta.example', blocks[0]['Reporting-MTA'])
check(blocks[1]['Final-Recipient'] == 'rfc822; bob@example.net', blocks[1]['Final-Recipient'])
check(blocks[2]['Final-Recipient'] == 'rfc822; carol@example.org', blocks[2]['Final-Recipient'])
check(blocks[2]['Status'] == '5.7.1', blocks[2]['Status'])
check(blocks[2]['Remote-MTA'] == 'dns; mx2.example.org', blocks[2]['Remote-MTA'])
diag = ' '.join(str(blocks[2]['Diagnostic-Code']).split())
check(diag.startswith('smtp; 550-5.7.1 first line; 550 5.7.1 policy0 policy1'), diag)
check(diag.endswith('policy39'), diag)
headers = email.message_from_string(parts[2].get_content(), policy=email.policy.default)
check(str(headers['Subject']) == 'hello', headers['Subject'])
check(str(headers['From']) == 'Alice <alice@example.com>', headers['From'])
check('Body line' not in raw.decode(), 'body returned')
)PY";
  const std::string command = std::string(python) + " " + script_path + " " + msg_path;
  const int rc = std::system(command.c_str());
  std::remove(msg_path.c_str());
  std::remove(script_path.c_str());
  rmdir(dir);
  EXPECT_EQ(rc, 0) << "python's email parser disagrees (see stderr); command: " << command;
}

}  // namespace
}  // namespace sluice::dsn
