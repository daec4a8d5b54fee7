#include "tools/blast/reply_parser.h"

#include <gtest/gtest.h>

namespace sluice::tools {
namespace {

TEST(ReplyParser, SingleLine) {
  ReplyParser p;
  std::vector<Reply> out;
  ASSERT_TRUE(p.Feed("250 2.0.0 Ok\r\n", out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].code, 250);
  EXPECT_EQ(out[0].first(), "2.0.0 Ok");
  EXPECT_FALSE(p.partial());
}

TEST(ReplyParser, MultiLine) {
  ReplyParser p;
  std::vector<Reply> out;
  ASSERT_TRUE(p.Feed("250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250 CHUNKING\r\n", out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].code, 250);
  ASSERT_EQ(out[0].lines.size(), 4u);
  EXPECT_EQ(out[0].lines[1], "PIPELINING");
  EXPECT_EQ(out[0].lines[3], "CHUNKING");
}

TEST(ReplyParser, EverySplitGivesTheSameReplies) {
  const std::string wire =
      "220 hi\r\n250-a\r\n250-b\r\n250 c\r\n250 2.1.0 Ok\r\n451 4.7.1 later\r\n354 go\r\n250 "
      "ok\r\n";
  for (size_t i = 0; i <= wire.size(); ++i) {
    for (size_t j = i; j <= wire.size(); ++j) {
      ReplyParser p;
      std::vector<Reply> out;
      ASSERT_TRUE(p.Feed(std::string_view(wire).substr(0, i), out));
      ASSERT_TRUE(p.Feed(std::string_view(wire).substr(i, j - i), out));
      ASSERT_TRUE(p.Feed(std::string_view(wire).substr(j), out));
      ASSERT_EQ(out.size(), 6u) << i << " " << j;
      EXPECT_EQ(out[1].lines.size(), 3u);
      EXPECT_EQ(out[3].code, 451);
      EXPECT_EQ(out[4].code, 354);
    }
  }
}

TEST(ReplyParser, ByteAtATime) {
  const std::string wire = "250-x\r\n250 y\r\n221 bye\r\n";
  ReplyParser p;
  std::vector<Reply> out;
  for (char c : wire) {
    ASSERT_TRUE(p.Feed(std::string_view(&c, 1), out));
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].code, 221);
}

TEST(ReplyParser, BareCodeAndLfOnly) {
  ReplyParser p;
  std::vector<Reply> out;
  ASSERT_TRUE(p.Feed("250\r\n354 go\n", out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].lines[0], "");
  EXPECT_EQ(out[1].code, 354);
}

TEST(ReplyParser, Errors) {
  {
    ReplyParser p;
    std::vector<Reply> out;
    EXPECT_FALSE(p.Feed("hello\r\n", out));
    EXPECT_TRUE(p.error());
    EXPECT_FALSE(p.Feed("250 ok\r\n", out));
  }
  {
    ReplyParser p;
    std::vector<Reply> out;
    EXPECT_FALSE(p.Feed("250-a\r\n251 b\r\n", out));  // code changed
  }
  {
    ReplyParser p;
    std::vector<Reply> out;
    EXPECT_FALSE(p.Feed("250xok\r\n", out));
  }
  {
    ReplyParser p;
    std::vector<Reply> out;
    EXPECT_FALSE(p.Feed(std::string(ReplyParser::kLineMax + 10, '2'), out));
  }
}

}  // namespace
}  // namespace sluice::tools
