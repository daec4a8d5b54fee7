#include "sluice/delivery/own_addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>

#include <cstdio>
#include <cstring>

#include "sluice/diag/diag.h"
namespace sluice::delivery {
namespace {

// Prefix length of a netmask (contiguous ones; a broken mask counts its ones).
int PrefixBits(const base::IpAddress& mask) {
  int bits = 0;
  const size_t n = mask.v6 ? 16 : 4;
  for (size_t i = 0; i < n; ++i) bits += __builtin_popcount(mask.bytes[i]);
  return bits;
}

bool IsUnspecified(const base::IpAddress& a) {
  const size_t n = a.v6 ? 16 : 4;
  for (size_t i = 0; i < n; ++i) {
    if (a.bytes[i] != 0) return false;
  }
  return true;
}

}  // namespace

Listener OwnAddresses::ListenerOf(const base::SocketAddress& address) {
  Listener l;
  l.address = base::IpAddress::FromSockaddr(address.get());
  l.wildcard = IsUnspecified(l.address);
  l.port = address.storage.ss_family == AF_INET6
               ? ntohs(reinterpret_cast<const sockaddr_in6*>(&address.storage)->sin6_port)
               : ntohs(reinterpret_cast<const sockaddr_in*>(&address.storage)->sin_port);
  return l;
}

std::vector<base::Network> OwnAddresses::InterfaceNetworks() {
  std::vector<base::Network> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    const int err = errno;
    SLUICE_LOG(kWarning, "delivery.getifaddrs_failed",
               "getifaddrs failed; MX-is-me knows only the listeners",
               {{"error", std::strerror(err)}});
    return out;
  }
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    const int family = i->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    base::Network n;
    n.base = base::IpAddress::FromSockaddr(i->ifa_addr);
    n.prefix_bits = n.base.v6 ? 128 : 32;
    if ((i->ifa_flags & IFF_LOOPBACK) != 0 && i->ifa_netmask != nullptr &&
        i->ifa_netmask->sa_family == family) {
      n.prefix_bits = PrefixBits(base::IpAddress::FromSockaddr(i->ifa_netmask));
    }
    out.push_back(n);
  }
  freeifaddrs(list);
  return out;
}

OwnAddresses OwnAddresses::FromHost(const config::Config& config) {
  std::vector<Listener> listeners;
  for (const base::SocketAddress& a : config.listen_addresses) listeners.push_back(ListenerOf(a));
  for (const std::string& text : config.listen_tls) {
    auto a = base::SocketAddress::Parse(text);
    if (a.ok()) listeners.push_back(ListenerOf(*a));
  }
  bool wildcard = false;
  for (const Listener& l : listeners) wildcard = wildcard || l.wildcard;
  return OwnAddresses(std::move(listeners),
                      wildcard ? InterfaceNetworks() : std::vector<base::Network>());
}

bool OwnAddresses::IsSelf(const base::IpAddress& ip, uint16_t port) const {
  for (const Listener& l : listeners_) {
    if (l.port != port) continue;
    if (!l.wildcard) {
      if (l.address == ip) return true;
      continue;
    }
    // 0.0.0.0 takes IPv4 only, :: IPv6 only (server/shard.cc sets IPV6_V6ONLY).
    if (l.address.v6 != ip.v6) continue;
    for (const base::Network& n : host_) {
      if (n.Contains(ip)) return true;
    }
  }
  return false;
}

}  // namespace sluice::delivery
