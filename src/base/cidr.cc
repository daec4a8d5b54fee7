#include "sluice/base/cidr.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "sluice/base/strings.h"

namespace sluice::base {

absl::StatusOr<IpAddress> IpAddress::Parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  a.v6 = true;
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) return a;
  return absl::InvalidArgumentError(absl::StrCat("not an IP address: '", s, "'"));
}

IpAddress IpAddress::FromSockaddr(const sockaddr* sa) {
  IpAddress a;
  if (sa->sa_family == AF_INET) {
    std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      std::memcpy(a.bytes.data(), in6->sin6_addr.s6_addr + 12, 4);
    } else {
      a.v6 = true;
      std::memcpy(a.bytes.data(), in6->sin6_addr.s6_addr, 16);
    }
  }
  return a;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

absl::StatusOr<Network> Network::Parse(std::string_view text) {
  std::string_view addr = text;
  int bits = -1;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    uint64_t bits64 = 0;
    if (!ParseUint64(text.substr(slash + 1), bits64) || bits64 > 128) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix length in '", Av(text), "'"));
    }
    bits = static_cast<int>(bits64);
  }
  auto ip = IpAddress::Parse(addr);
  if (!ip.ok()) return ip.status();
  const int max_bits = ip->v6 ? 128 : 32;
  if (bits < 0) bits = max_bits;
  if (bits > max_bits) {
    return absl::InvalidArgumentError(absl::StrCat("prefix length too long in '", Av(text), "'"));
  }
  return Network{*ip, bits};
}

bool Network::Contains(const IpAddress& addr) const {
  if (addr.v6 != base.v6) return false;
  int bits = prefix_bits;
  for (size_t i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((addr.bytes[i] & mask) != (base.bytes[i] & mask)) return false;
  }
  return true;
}

std::string Network::ToString() const { return absl::StrCat(base.ToString(), "/", prefix_bits); }

absl::StatusOr<NetworkSet> NetworkSet::Parse(std::string_view comma_separated) {
  NetworkSet set;
  for (absl::string_view part : absl::StrSplit(Av(comma_separated), ',', absl::SkipWhitespace())) {
    auto n = Network::Parse(Sv(absl::StripAsciiWhitespace(part)));
    if (!n.ok()) return n.status();
    set.Add(*n);
  }
  return set;
}

bool NetworkSet::Contains(const IpAddress& addr) const {
  for (const Network& n : networks_) {
    if (n.Contains(addr)) return true;
  }
  return false;
}

std::string NetworkSet::ToString() const {
  std::string out;
  for (const Network& n : networks_) {
    if (!out.empty()) out += ',';
    out += n.ToString();
  }
  return out;
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(std::string_view text) {
  std::string_view host, port_text;
  if (!text.empty() && text.front() == '[') {
    text.remove_prefix(1);
    size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close).size() < 2 ||
        text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad address '[", Av(text), "'"));
    }
    host = text.substr(0, close);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("address '", Av(text), "' has no :port"));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  uint64_t port = 0;
  if (!ParseUint64(port_text, port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port '", Av(port_text), "'"));
  }
  auto ip = IpAddress::Parse(host);
  if (!ip.ok()) return ip.status();
  SocketAddress out;
  if (ip->v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&in6->sin6_addr, ip->bytes.data(), 16);
    out.size = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&out.storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&in4->sin_addr, ip->bytes.data(), 4);
    out.size = sizeof(sockaddr_in);
  }
  return out;
}

std::string SocketAddress::ToString() const {
  IpAddress ip = IpAddress::FromSockaddr(get());
  uint16_t port = storage.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port)
                      : ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  return ip.v6 ? absl::StrCat("[", ip.ToString(), "]:", port)
               : absl::StrCat(ip.ToString(), ":", port);
}

}  // namespace sluice::base
