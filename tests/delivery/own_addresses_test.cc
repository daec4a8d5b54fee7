// The MX-is-me decision (delivery/own_addresses.h): which ip:port a
// delivery would reach this relay at, for fixed listeners and interface
// lists, and the host's real interfaces through getifaddrs.
#include "sluice/delivery/own_addresses.h"

#include "gtest/gtest.h"

namespace sluice::delivery {
namespace {

base::IpAddress Ip(std::string_view text) {
  auto ip = base::IpAddress::Parse(text);
  EXPECT_TRUE(ip.ok()) << text;
  return *ip;
}

Listener L(std::string_view spec) {
  auto a = base::SocketAddress::Parse(spec);
  EXPECT_TRUE(a.ok()) << spec;
  return OwnAddresses::ListenerOf(*a);
}

base::Network N(std::string_view spec) {
  auto n = base::Network::Parse(spec);
  EXPECT_TRUE(n.ok()) << spec;
  return *n;
}

TEST(OwnAddressesTest, ListenerOf) {
  const Listener a = L("127.0.0.1:2525");
  EXPECT_FALSE(a.wildcard);
  EXPECT_EQ(a.port, 2525);
  EXPECT_EQ(a.address, Ip("127.0.0.1"));
  EXPECT_TRUE(L("0.0.0.0:25").wildcard);
  EXPECT_TRUE(L("[::]:25").wildcard);
  EXPECT_FALSE(L("[::1]:25").wildcard);
}

TEST(OwnAddressesTest, SpecificListenersMatchTheirAddressAndPortOnly) {
  OwnAddresses own({L("127.0.0.1:25"), L("[::1]:587")}, {N("127.0.0.0/8"), N("192.0.2.10/32")});
  EXPECT_TRUE(own.IsSelf(Ip("127.0.0.1"), 25));
  EXPECT_FALSE(own.IsSelf(Ip("127.0.0.1"), 2525));  // a sink on another port of this host
  EXPECT_FALSE(own.IsSelf(Ip("127.0.0.2"), 25));    // nobody of ours listens there
  EXPECT_FALSE(own.IsSelf(Ip("192.0.2.10"), 25));
  EXPECT_TRUE(own.IsSelf(Ip("::1"), 587));
  EXPECT_FALSE(own.IsSelf(Ip("::1"), 25));
}

TEST(OwnAddressesTest, WildcardListenersMatchEveryHostAddressOfTheirFamily) {
  OwnAddresses own({L("0.0.0.0:25"), L("[::]:26")},
                   {N("127.0.0.0/8"), N("192.0.2.10/32"), N("::1/128"), N("2001:db8::5/128")});
  EXPECT_TRUE(own.IsSelf(Ip("127.0.0.1"), 25));
  EXPECT_TRUE(own.IsSelf(Ip("127.3.2.1"), 25));  // all of a loopback network
  EXPECT_TRUE(own.IsSelf(Ip("192.0.2.10"), 25));
  EXPECT_FALSE(own.IsSelf(Ip("192.0.2.11"), 25));  // another host
  EXPECT_FALSE(own.IsSelf(Ip("192.0.2.10"), 26));  // :: is IPv6 only (IPV6_V6ONLY)
  EXPECT_TRUE(own.IsSelf(Ip("2001:db8::5"), 26));
  EXPECT_FALSE(own.IsSelf(Ip("2001:db8::5"), 25));
  EXPECT_FALSE(own.IsSelf(Ip("2001:db8::6"), 26));
}

TEST(OwnAddressesTest, NoListenersNothingIsSelf) {
  OwnAddresses own;
  EXPECT_FALSE(own.IsSelf(Ip("127.0.0.1"), 25));
}

TEST(OwnAddressesTest, TheHostsInterfacesIncludeLoopback) {
  const std::vector<base::Network> nets = OwnAddresses::InterfaceNetworks();
  bool loopback = false;
  for (const base::Network& n : nets) loopback = loopback || n.Contains(Ip("127.0.0.1"));
  EXPECT_TRUE(loopback);
  // The loopback interface's whole network: the kernel answers 127.0.0.9 too.
  OwnAddresses own({L("0.0.0.0:25")}, nets);
  EXPECT_TRUE(own.IsSelf(Ip("127.0.0.9"), 25));
}

TEST(OwnAddressesTest, FromHostReadsListenAndListenTls) {
  config::Config c;
  c.listen = {"127.0.0.1:2525"};
  c.listen_tls = {"127.0.0.7:4650"};
  c.hostname = "mx.test";
  ASSERT_TRUE(c.Finalize().ok());
  OwnAddresses own = OwnAddresses::FromHost(c);
  EXPECT_TRUE(own.IsSelf(Ip("127.0.0.1"), 2525));
  EXPECT_TRUE(own.IsSelf(Ip("127.0.0.7"), 4650));
  EXPECT_FALSE(own.IsSelf(Ip("127.0.0.7"), 2525));
}

}  // namespace
}  // namespace sluice::delivery
