// IPv4/IPv6 networks in CIDR notation and the set of them that the relay
// policy consults. IPv4-mapped IPv6 client addresses (::ffff:a.b.c.d) match
// IPv4 networks.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::base {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // v4 uses the first 4

  static absl::StatusOr<IpAddress> Parse(std::string_view text);
  static IpAddress FromSockaddr(const sockaddr* sa);
  std::string ToString() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct Network {
  IpAddress base;
  int prefix_bits = 0;

  static absl::StatusOr<Network> Parse(std::string_view text);
  bool Contains(const IpAddress& addr) const;
  std::string ToString() const;
};

class NetworkSet {
 public:
  // "127.0.0.0/8,::1" -> two networks; a bare address is a /32 or /128.
  static absl::StatusOr<NetworkSet> Parse(std::string_view comma_separated);
  void Add(Network n) { networks_.push_back(n); }
  bool Contains(const IpAddress& addr) const;
  const std::vector<Network>& networks() const { return networks_; }
  std::string ToString() const;

 private:
  std::vector<Network> networks_;
};

// "127.0.0.1:2525", "[::1]:2525" -> sockaddr_storage.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t size = 0;

  static absl::StatusOr<SocketAddress> Parse(std::string_view text);
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  std::string ToString() const;
};

}  // namespace sluice::base
