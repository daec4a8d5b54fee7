// http::ParseResponse: framing by Content-Length, chunked, close; 1xx
// skipped; junk refused.
#include "sluice/http/response_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::http {
namespace {

TEST(ResponseParserTest, ContentLength) {
  const std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  for (size_t cut = 0; cut < r.size(); ++cut) {
    auto p = ParseResponse(r.substr(0, cut), 4096);
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(p->has_value()) << cut;
  }
  auto p = ParseResponse(r + "HTTP/1.1 ...", 4096);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((*p)->status, 200);
  EXPECT_EQ((*p)->consumed, r.size());
  EXPECT_TRUE((*p)->keep_alive);
}

TEST(ResponseParserTest, Chunked) {
  const std::string r =
      "HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n";
  EXPECT_FALSE(ParseResponse(r.substr(0, r.size() - 1), 4096)->has_value());
  auto p = ParseResponse(r, 4096);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((*p)->status, 500);
  EXPECT_EQ((*p)->consumed, r.size());
}

TEST(ResponseParserTest, CloseAndHttp10AndNoBody) {
  auto close =
      ParseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 4096);
  ASSERT_TRUE(close.ok() && close->has_value());
  EXPECT_FALSE((*close)->keep_alive);
  auto old = ParseResponse("HTTP/1.0 204 No Content\r\n\r\n", 4096);
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ((*old)->status, 204);
  EXPECT_FALSE((*old)->keep_alive);
  auto to_end = ParseResponse("HTTP/1.1 202 Accepted\r\n\r\nwhatever", 4096);
  ASSERT_TRUE(to_end.ok() && to_end->has_value());
  EXPECT_EQ((*to_end)->status, 202);
  EXPECT_FALSE((*to_end)->keep_alive);
}

TEST(ResponseParserTest, InterimSkipped) {
  const std::string r =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
  auto p = ParseResponse(r, 4096);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((*p)->status, 201);
  EXPECT_EQ((*p)->consumed, r.size());
}

TEST(ResponseParserTest, Refusals) {
  for (const char* bad :
       {"SMTP 220 hi\r\n\r\n", "HTTP/1.1 2000 x\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    EXPECT_FALSE(ParseResponse(bad, 4096).ok()) << bad;
  }
  EXPECT_FALSE(ParseResponse(std::string(5000, 'a'), 4096).ok());
}

}  // namespace
}  // namespace sluice::http
