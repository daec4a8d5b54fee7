// DKIM canonicalization and header handling against RFC 6376's examples and
// the edge cases the relay's wire form brings (bare CR/LF, split pieces).
#include "sluice/dkim/canon.h"

#include <gtest/gtest.h>

#include <string>

#include "sluice/dkim/header_fields.h"

namespace sluice::dkim {
namespace {

// RFC 6376 3.4.5.
constexpr std::string_view kExample =
    "A: X\r\n"
    "B : Y\t\r\n"
    "\tZ  \r\n"
    "\r\n"
    " C \r\n"
    "D \t E\r\n"
    "\r\n"
    "\r\n";

std::string Headers(Canon canon, std::string_view message) {
  std::string out;
  for (const HeaderField& f : ParseHeaderFields(message.substr(0, HeaderBlockSize(message)))) {
    CanonicalizeHeader(canon, f.raw, out);
  }
  return out;
}

std::string Body(Canon canon, std::string_view body, size_t piece = 1 << 20) {
  BodyCanonicalizer c(canon);
  std::string out;
  while (!body.empty()) {
    c.Feed(body.substr(0, piece), out);
    body.remove_prefix(std::min(piece, body.size()));
  }
  c.Finish(out);
  return out;
}

TEST(Canon, Rfc6376Example) {
  const std::string_view body = kExample.substr(HeaderBlockSize(kExample));
  EXPECT_EQ(Headers(Canon::kRelaxed, kExample), "a:X\r\nb:Y Z\r\n");
  EXPECT_EQ(Body(Canon::kRelaxed, body), " C\r\nD E\r\n");
  EXPECT_EQ(Headers(Canon::kSimple, kExample), "A: X\r\nB : Y\t\r\n\tZ  \r\n");
  EXPECT_EQ(Body(Canon::kSimple, body), " C \r\nD \t E\r\n");
}

TEST(Canon, EverySplitGivesTheSameResult) {
  const std::string body = " a  b\t \r\n\r\n.x\rc\n\r\n  \r\nend  ";
  for (Canon c : {Canon::kSimple, Canon::kRelaxed}) {
    const std::string whole = Body(c, body);
    for (size_t piece = 1; piece < body.size(); ++piece) {
      EXPECT_EQ(Body(c, body, piece), whole) << "piece " << piece;
    }
  }
  EXPECT_EQ(Body(Canon::kRelaxed, body), " a b\r\n\r\n.x\r\nc\r\n\r\n\r\nend\r\n");
  EXPECT_EQ(Body(Canon::kSimple, body), " a  b\t \r\n\r\n.x\r\nc\r\n\r\n  \r\nend  \r\n");
}

TEST(Canon, EmptyBodiesAndTrailingLines) {
  EXPECT_EQ(Body(Canon::kSimple, ""), "\r\n");
  EXPECT_EQ(Body(Canon::kRelaxed, ""), "");
  EXPECT_EQ(Body(Canon::kSimple, "\r\n\r\n"), "\r\n");
  EXPECT_EQ(Body(Canon::kRelaxed, "\r\n \t\r\n"), "");
  EXPECT_EQ(Body(Canon::kSimple, "x"), "x\r\n");
  EXPECT_EQ(Body(Canon::kRelaxed, "x \r\n\r\n"), "x\r\n");
  EXPECT_EQ(Body(Canon::kSimple, "x\n\n"), "x\r\n");
}

TEST(Canon, RelaxedHeaderDetails) {
  std::string out;
  CanonicalizeHeader(Canon::kRelaxed, "SUBJect \t:  \t Hello\r\n   World \t \r\n", out);
  EXPECT_EQ(out, "subject:Hello World\r\n");
  out.clear();
  CanonicalizeHeader(Canon::kRelaxed, "X-Empty:\r\n", out);
  EXPECT_EQ(out, "x-empty:\r\n");
  out.clear();
  CanonicalizeHeader(Canon::kSimple, "X: a\nb", out);
  EXPECT_EQ(out, "X: a\r\nb\r\n");
}

TEST(HeaderFields, FoldedFieldsAndBlockEnd) {
  const std::string_view m = "From: a@b\r\nSubject: one\r\n two\r\nX:y\n\nbody\r\n";
  EXPECT_EQ(HeaderBlockSize(m), m.find("body"));
  const auto fields = ParseHeaderFields(m.substr(0, HeaderBlockSize(m)));
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[1].name, "Subject");
  EXPECT_EQ(fields[1].raw, "Subject: one\r\n two\r\n");
  EXPECT_EQ(fields[2].raw, "X:y\n");
  EXPECT_EQ(HeaderBlockSize("From: a@b\r\n"), 11u);  // no body at all
  // Not fields (found by dkim_header_fuzzer): a first line that starts with
  // a blank, a name with a blank or a control byte inside.
  const auto odd = ParseHeaderFields("  B: x\r\nBad Name: y\r\nA\x01: z\r\nOk : w\r\n");
  ASSERT_EQ(odd.size(), 4u);
  EXPECT_EQ(odd[0].name, "");
  EXPECT_EQ(odd[1].name, "");
  EXPECT_EQ(odd[2].name, "");
  EXPECT_EQ(odd[3].name, "Ok");
}

TEST(HeaderFields, SelectionBottomUpAndOversigning) {
  const std::string_view m = "To: 1\r\nFrom: f\r\nto: 2\r\nReceived: r\r\n\r\n";
  const auto fields = ParseHeaderFields(m);
  const auto h = SelectHeaders(fields, {"From", "To", "Cc", "Subject"}, {"From", "Subject", "To"});
  EXPECT_EQ(h, (std::vector<std::string>{"from", "from", "to", "to", "to", "subject"}));
  const auto covered = CoveredFields(fields, h);
  ASSERT_EQ(covered.size(), h.size());
  EXPECT_EQ(covered[0]->raw, "From: f\r\n");
  EXPECT_EQ(covered[1], nullptr);
  EXPECT_EQ(covered[2]->raw, "to: 2\r\n");  // the bottom one first
  EXPECT_EQ(covered[3]->raw, "To: 1\r\n");
  EXPECT_EQ(covered[4], nullptr);
  EXPECT_EQ(covered[5], nullptr);
}

TEST(HeaderFields, AuthorDomain) {
  auto domain = [](std::string_view m) { return AuthorDomain(ParseHeaderFields(m)); };
  EXPECT_EQ(domain("From: a@Example.COM\r\n"), "example.com");
  EXPECT_EQ(domain("FROM: \"Me <x@evil.test>, \" <me@news.example.org.>\r\n"), "news.example.org");
  EXPECT_EQ(domain("From: (comment@evil.test) Me\r\n <me@ok.test> (c)\r\n"), "ok.test");
  EXPECT_EQ(domain("From: \"a@b\"@quoted.test\r\n"), "quoted.test");
  EXPECT_EQ(domain("Subject: x\r\n"), std::nullopt);
  EXPECT_EQ(domain("From: a@x.test\r\nFrom: b@y.test\r\n"), std::nullopt);
  EXPECT_EQ(domain("From: a@x.test, b@y.test\r\n"), std::nullopt);
  EXPECT_EQ(domain("From: group: a@x.test;\r\n"), std::nullopt);
  EXPECT_EQ(domain("From: nobody\r\n"), std::nullopt);
  EXPECT_EQ(domain("From: a@b@\r\n"), std::nullopt);
  EXPECT_EQ(domain("From: a@bücher.test\r\n"), std::nullopt);
  EXPECT_EQ(domain("From: <a@x.test\r\n"), std::nullopt);
}

}  // namespace
}  // namespace sluice::dkim
