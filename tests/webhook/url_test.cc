// http::ParseUrl: what a [[webhook]] url may be, and the refusals.
#include "sluice/http/url.h"

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

TEST(UrlTest, HostPortPath) {
  auto u = ParseUrl("http://127.0.0.1:8080/events?x=1");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/events?x=1");
  EXPECT_EQ(u->HostHeader(), "127.0.0.1:8080");
}

TEST(UrlTest, Defaults) {
  auto u = ParseUrl("HTTP://Hooks.Example.COM");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/");
  EXPECT_EQ(u->HostHeader(), "hooks.example.com");
  auto q = ParseUrl("http://h?a=b");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->target, "/?a=b");
}

TEST(UrlTest, Https) {
  auto u = ParseUrl("https://hooks.example.com/in");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->HostHeader(), "hooks.example.com");
  auto p = ParseUrl("https://h:8443");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->HostHeader(), "h:8443");
  auto plain = ParseUrl("http://h:443/");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->HostHeader(), "h:443");
}

TEST(UrlTest, Ipv6) {
  auto u = ParseUrl("http://[::1]:9000/x");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "::1");
  EXPECT_TRUE(u->ipv6_literal);
  EXPECT_EQ(u->HostHeader(), "[::1]:9000");
}

TEST(UrlTest, Refusals) {
  for (const char* bad :
       {"", "127.0.0.1:80/x", "ftp://h/", "http://", "http://:80/", "http://h:0/",
        "http://h:65536/", "http://h:/", "http://h:8x/", "http://user:pw@h/", "http://h/a b",
        "http://h/#frag", "http://[::1/", "http://[zz]/", "http://h_$/", "http://-h/",
        "http://a..b/", "http://[::1]x/", "http://h/\x01"}) {
    EXPECT_FALSE(ParseUrl(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseUrl("httpx://example.com/hook").ok());
  EXPECT_FALSE(ParseUrl(std::string("http://h/") + std::string(kMaxUrlLength, 'a')).ok());
}

}  // namespace
}  // namespace sluice::http
