// The diagnostic line format: prefixes, field order, escaping, cuts.
#include "sluice/diag/format.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::diag {
namespace {

std::string Line(const Event& e, Prefix p = Prefix::kJournald, uint64_t micros = 0) {
  std::string out;
  AppendLine(e, p, micros, out);
  return out;
}

TEST(DiagFormat, JournaldLineHasPriorityPrefixAndOneLine) {
  const Field fields[] = {{"peer", "192.0.2.7"}, {"attempts", 3}};
  Event e{Level::kWarning, "tls.handshake_failed", 2, "TLS handshake failed", fields, 0};
  EXPECT_EQ(Line(e),
            "<4>level=warning key=tls.handshake_failed shard=2 msg=\"TLS handshake failed\" "
            "peer=192.0.2.7 attempts=3\n");
}

TEST(DiagFormat, PlainLineStartsWithUtcTimestamp) {
  Event e{Level::kNotice, "server.ready", -1, "ready", {}, 0};
  // 2026-12-07T18:00:00.000042Z
  EXPECT_EQ(Line(e, Prefix::kTimestamp, 1796666400000042ull),
            "ts=2026-12-07T18:00:00.000042Z level=notice key=server.ready msg=ready\n");
}

TEST(DiagFormat, EveryLevelHasItsPriority) {
  for (auto [level, digit, name] :
       {std::tuple{Level::kError, '3', "error"}, std::tuple{Level::kWarning, '4', "warning"},
        std::tuple{Level::kNotice, '5', "notice"}, std::tuple{Level::kInfo, '6', "info"},
        std::tuple{Level::kDebug, '7', "debug"}}) {
    const std::string line = Line(Event{level, "k", -1, "m", {}, 0});
    EXPECT_EQ(line[1], digit);
    EXPECT_NE(line.find(std::string("level=") + name + " "), std::string::npos) << line;
    EXPECT_EQ(ParseLevel(name), level);
    EXPECT_EQ(ParseLevel(std::string(1, digit)), level);
  }
  EXPECT_EQ(ParseLevel("warn"), Level::kWarning);
  EXPECT_EQ(ParseLevel("err"), Level::kError);
  EXPECT_FALSE(ParseLevel("loud").has_value());
  EXPECT_FALSE(ParseLevel("").has_value());
}

std::string Value(std::string_view v) {
  std::string out;
  AppendValue(v, out);
  return out;
}

TEST(DiagFormat, ValuesAreBareOnlyWhenPlain) {
  EXPECT_EQ(Value("abc.def:25"), "abc.def:25");
  EXPECT_EQ(Value(""), "\"\"");
  EXPECT_EQ(Value("two words"), "\"two words\"");
  EXPECT_EQ(Value("a=b"), "\"a=b\"");
}

TEST(DiagFormat, EscapesEverythingThatCouldBreakTheLine) {
  EXPECT_EQ(Value("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
  EXPECT_EQ(Value("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
  EXPECT_EQ(Value(std::string_view("\0\x01\x1b\x7f", 4)), "\"\\x00\\x01\\x1b\\x7f\"");
  EXPECT_EQ(Value("caf\xc3\xa9"), "\"caf\\xc3\\xa9\"");
  // A hostile value cannot forge a second event or a field.
  const std::string forged = Value("x\n<3>level=error key=auth.ok msg=\"pwned\"");
  EXPECT_EQ(forged.find('\n'), std::string::npos);
  EXPECT_EQ(forged.front(), '"');
  EXPECT_EQ(forged.back(), '"');
}

TEST(DiagFormat, EveryByteValueStaysOnOneLine) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  const Field fields[] = {{"v", all}};
  const std::string line = Line(Event{Level::kInfo, "k", -1, all, fields, 0});
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  for (char c : line.substr(0, line.size() - 1)) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  }
}

TEST(DiagFormat, LongValuesAreCutAndMarked) {
  const std::string big(kMaxValueBytes + 100, 'a');
  const std::string v = Value(big);
  EXPECT_EQ(v, "\"" + std::string(kMaxValueBytes, 'a') + "...(+100 bytes)\"");
  EXPECT_EQ(Value(std::string(kMaxValueBytes, 'a')), std::string(kMaxValueBytes, 'a'));
}

TEST(DiagFormat, NamesAreSanitisedAndNumbersRendered) {
  const Field fields[] = {
      {"Bad Name", 1}, {"neg", -42}, {"big", uint64_t{18446744073709551615ull}}, {"yes", true}};
  EXPECT_EQ(Line(Event{Level::kInfo, "a.b", -1, "m", fields, 0}),
            "<6>level=info key=a.b msg=m _ad__ame=1 neg=-42 big=18446744073709551615 yes=true\n");
}

TEST(DiagFormat, FieldsCopySafely) {
  Field a("n", 12345);
  Field b = a;
  a = Field("n", 9);
  EXPECT_EQ(b.value(), "12345");
  EXPECT_EQ(a.value(), "9");
}

TEST(DiagFormat, SuppressedCountComesLast) {
  Event e{Level::kWarning, "auth.failed", 0, "AUTH failed", {}, 17};
  EXPECT_EQ(Line(e),
            "<4>level=warning key=auth.failed shard=0 msg=\"AUTH failed\" suppressed=17\n");
}

}  // namespace
}  // namespace sluice::diag
