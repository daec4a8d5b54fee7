#include "sluice/base/cidr.h"

#include <arpa/inet.h>

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

IpAddress Ip(const char* s) { return *IpAddress::Parse(s); }

TEST(NetworkSet, DefaultRelayNetworks) {
  auto set = NetworkSet::Parse("127.0.0.0/8,::1");
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(set->Contains(Ip("127.0.0.1")));
  EXPECT_TRUE(set->Contains(Ip("127.255.1.2")));
  EXPECT_TRUE(set->Contains(Ip("::1")));
  EXPECT_FALSE(set->Contains(Ip("128.0.0.1")));
  EXPECT_FALSE(set->Contains(Ip("::2")));
  EXPECT_FALSE(set->Contains(Ip("10.0.0.1")));
}

TEST(NetworkSet, OddPrefixes) {
  auto set = NetworkSet::Parse("192.168.1.128/25, 2001:db8::/33");
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(set->Contains(Ip("192.168.1.200")));
  EXPECT_FALSE(set->Contains(Ip("192.168.1.127")));
  EXPECT_TRUE(set->Contains(Ip("2001:db8:7fff::1")));
  EXPECT_FALSE(set->Contains(Ip("2001:db8:8000::1")));
  auto zero = NetworkSet::Parse("0.0.0.0/0");
  EXPECT_TRUE(zero->Contains(Ip("8.8.8.8")));
  EXPECT_FALSE(zero->Contains(Ip("::1")));
}

TEST(NetworkSet, Errors) {
  EXPECT_FALSE(NetworkSet::Parse("127.0.0.0/33").ok());
  EXPECT_FALSE(NetworkSet::Parse("127.0.0/8").ok());
  EXPECT_FALSE(NetworkSet::Parse("::1/129").ok());
  EXPECT_FALSE(NetworkSet::Parse("host.example").ok());
  EXPECT_FALSE(NetworkSet::Parse("10.0.0.0/x").ok());
}

TEST(IpAddress, MappedV4MatchesV4Networks) {
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:127.0.0.9", &in6.sin6_addr);
  IpAddress a = IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6));
  EXPECT_FALSE(a.v6);
  EXPECT_EQ(a.ToString(), "127.0.0.9");
}

TEST(SocketAddress, ParsesBothFamilies) {
  auto v4 = SocketAddress::Parse("127.0.0.1:2525");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->ToString(), "127.0.0.1:2525");
  auto v6 = SocketAddress::Parse("[::1]:25");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->ToString(), "[::1]:25");
  EXPECT_FALSE(SocketAddress::Parse("127.0.0.1").ok());
  EXPECT_FALSE(SocketAddress::Parse("127.0.0.1:70000").ok());
  EXPECT_FALSE(SocketAddress::Parse("[::1]25").ok());
  EXPECT_FALSE(SocketAddress::Parse("localhost:25").ok());
}

}  // namespace
}  // namespace sluice::base
