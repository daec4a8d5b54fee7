// smtp/long_lines.h: parts with lines over 998 octets are re-encoded so that
// every line fits and the decoded content is unchanged.
#include "sluice/smtp/long_lines.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::smtp {
namespace {

size_t LongestLine(const std::string& s) {
  size_t longest = 0, at = 0;
  while (at < s.size()) {
    size_t end = s.find("\r\n", at);
    if (end == std::string::npos) end = s.size();
    longest = std::max(longest, end - at);
    at = end + 2;
  }
  return longest;
}

// Decodes quoted-printable (soft breaks, =XX) for the checks.
std::string DecodeQp(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=' && i + 2 < s.size() && s[i + 1] == '\r' && s[i + 2] == '\n') {
      i += 2;
    } else if (s[i] == '=' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

TEST(LongLinesTest, ShortLinesAreLeftAlone) {
  const std::string m = "Subject: x\r\n\r\n" + std::string(998, 'a') + "\r\n";
  EXPECT_FALSE(HasLongLine(m));
  EXPECT_FALSE(ReencodeLongLines(m).has_value());
}

TEST(LongLinesTest, SinglePartBecomesQuotedPrintable) {
  const std::string html = "<p>" + std::string(1500, 'x') + " caf\xc3\xa9 a=b </p>\r\nend \r\n";
  const std::string m =
      "Subject: x\r\nContent-Type: text/html; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\n" +
      html;
  EXPECT_TRUE(HasLongLine(m));
  auto out = ReencodeLongLines(m);
  ASSERT_TRUE(out.has_value());
  EXPECT_LE(LongestLine(*out), 76u);
  EXPECT_EQ(out->find("8bit"), std::string::npos);
  EXPECT_NE(out->find("Content-Transfer-Encoding: quoted-printable\r\n"), std::string::npos);
  EXPECT_NE(out->find("MIME-Version: 1.0\r\n"), std::string::npos);
  const size_t body = out->find("\r\n\r\n") + 4;
  EXPECT_EQ(DecodeQp(out->substr(body)), html);
}

TEST(LongLinesTest, OnlyThePartWithTheLongLineChanges) {
  const std::string text_part = "Content-Type: text/plain\r\n\r\nshort line\r\n";
  const std::string html = std::string(2000, 'h') + "\r\n";
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"BB\"\r\n\r\n"
      "preamble\r\n--BB\r\n" +
      text_part + "--BB\r\nContent-Type: text/html\r\n\r\n" + html + "--BB--\r\nepilogue\r\n";
  auto out = ReencodeLongLines(m);
  ASSERT_TRUE(out.has_value());
  EXPECT_LE(LongestLine(*out), 998u);
  EXPECT_NE(out->find("preamble\r\n--BB\r\n" + text_part + "--BB\r\n"), std::string::npos);
  EXPECT_NE(out->find("--BB--\r\nepilogue\r\n"), std::string::npos);
  const size_t start = out->find("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
  ASSERT_NE(start, std::string::npos);
  const size_t body = start + 47;
  const size_t end = out->find("\r\n--BB--", body);
  EXPECT_EQ(DecodeQp(out->substr(body, end - body)) + "\r\n", html);
  // Exactly one MIME-Version: the top level already had one.
  EXPECT_EQ(out->find("MIME-Version", 1), std::string::npos);
}

TEST(LongLinesTest, QuotedPrintableGetsSoftBreaksAndBase64IsRewrapped) {
  std::string qp_line;
  for (int i = 0; i < 400; ++i) qp_line += "ab=3D";
  const std::string qp = "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp_line + "\r\n";
  auto out = ReencodeLongLines(qp);
  ASSERT_TRUE(out.has_value());
  EXPECT_LE(LongestLine(*out), 76u);
  EXPECT_EQ(DecodeQp(out->substr(out->find("\r\n\r\n") + 4)), DecodeQp(qp_line + "\r\n"));

  const std::string b64_line(1200, 'Q');
  auto out64 = ReencodeLongLines("Content-Transfer-Encoding: base64\r\n\r\n" + b64_line + "\r\n");
  ASSERT_TRUE(out64.has_value());
  EXPECT_LE(LongestLine(*out64), 76u);
  std::string joined;
  for (char c : out64->substr(out64->find("\r\n\r\n") + 4)) {
    if (c != '\r' && c != '\n') joined.push_back(c);
  }
  EXPECT_EQ(joined, b64_line);
}

TEST(LongLinesTest, MessagePartsAndHeadersAreNotTouched) {
  const std::string m = "Content-Type: message/rfc822\r\n\r\n" + std::string(1200, 'm') + "\r\n";
  auto out = ReencodeLongLines(m);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, m);
}

}  // namespace
}  // namespace sluice::smtp
