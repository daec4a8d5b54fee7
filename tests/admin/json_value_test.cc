// admin::ParseJson / ParseUntrustedJson: what untrusted documents may and
// may not contain (the injection API reads them), and the value bound.
#include "sluice/admin/json_value.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice::admin {
namespace {

TEST(UntrustedJsonTest, EscapesBecomeUtf8) {
  auto v = ParseUntrustedJson(R"(["\u00e9", "\ud83d\ude00", "\"\\\/\b\f\n\r\t", "\u0041"])", 100);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->items[0].text, "\xC3\xA9");
  EXPECT_EQ(v->items[1].text, "\xF0\x9F\x98\x80");
  EXPECT_EQ(v->items[2].text, "\"\\/\b\f\n\r\t");
  EXPECT_EQ(v->items[3].text, "A");
  // Our own writer's \u00XX is the byte (log/json.h): kept for ParseJson.
  auto own = ParseJson(R"(["\u00e9"])");
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->items[0].text, "\xE9");
}

TEST(UntrustedJsonTest, RefusesWhatIsNotJson) {
  for (const std::string& bad :
       {std::string("[\"\\uZZZZ\"]"), std::string("[\"\\u12\"]"), std::string("[\"\\x\"]"),
        std::string("[\"a\nb\"]"), std::string("[\"\\ud83d\"]"), std::string("[\"\\ude00\"]"),
        std::string("[\"\\ud83d\\u0041\"]"), std::string("{\"a\" 1}"), std::string("[1,]"),
        std::string("[1] x"), std::string("\"unterminated"), std::string(""),
        std::string("{\"a\":1,}"), std::string(40, '[') + std::string(40, ']')}) {
    EXPECT_FALSE(ParseUntrustedJson(bad, 1000).ok()) << bad;
  }
}

TEST(UntrustedJsonTest, LongStringsRoundTripWithEscapesAnywhere) {
  // Plain runs are copied whole: escapes at the start, the middle and the
  // end of a long run, and a raw control byte or a missing quote after one.
  const std::string run(100000, 'x');
  auto v = ParseJson("[\"\\n" + run + "\\u00e9" + run + "\\\"\", \"" + run + "\"]");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->items[0].text, "\n" + run + "\xE9" + run + "\"");
  EXPECT_EQ(v->items[1].text, run);
  EXPECT_EQ(ToJson(*v), "[\"\\n" + run + "\\u00e9" + run + "\\\"\",\"" + run + "\"]");
  EXPECT_FALSE(ParseJson("[\"" + run + "\x01" + run + "\"]").ok());
  EXPECT_FALSE(ParseJson("[\"" + run).ok());
  EXPECT_FALSE(ParseJson("[\"" + run + "\\").ok());
}

TEST(UntrustedJsonTest, ValuesAreBounded) {
  std::string many = "[";
  for (int i = 0; i < 100; ++i) many += i == 0 ? "0" : ",0";
  many += "]";
  EXPECT_TRUE(ParseUntrustedJson(many, 101).ok());  // the array and its 100 items
  EXPECT_FALSE(ParseUntrustedJson(many, 100).ok());
  EXPECT_TRUE(ParseUntrustedJson(R"({"a":{"b":[1,2]}})", 5).ok());
  EXPECT_FALSE(ParseUntrustedJson(R"({"a":{"b":[1,2]}})", 4).ok());
}

}  // namespace
}  // namespace sluice::admin
