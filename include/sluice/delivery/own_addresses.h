// The relay's own SMTP endpoints, for the MX-is-me check: a delivery target
// that is one of them would hand the message back to this relay, which
// would queue it for the same target again (a mail loop). The engine drops
// such targets; when none is left the recipients fail with 5.4.6 ("mail
// for DOMAIN loops back to myself"), as Postfix does.
//
// A target is ours when its port is a listener's port and its address is
//   - that listener's address (127.0.0.1:25 listens only there), or
//   - for a wildcard listener (0.0.0.0, or :: for IPv6: listeners are
//     IPV6_V6ONLY), any address of this host of that family: an interface
//     address, or any address of a loopback interface's network (the kernel
//     answers all of 127.0.0.0/8).
// IPv4-mapped IPv6 addresses count as IPv4.
//
// Trusts the configuration and the kernel's interface list, read once at
// start-up with getifaddrs (a blocking call, never made on a shard's loop);
// an address added to the host later is not known. No other limits.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "sluice/base/cidr.h"
#include "sluice/config/config.h"

namespace sluice::delivery {

struct Listener {
  base::IpAddress address;
  bool wildcard = false;  // 0.0.0.0 or ::
  uint16_t port = 0;
};

class OwnAddresses {
 public:
  OwnAddresses() = default;
  OwnAddresses(std::vector<Listener> listeners, std::vector<base::Network> host_networks)
      : listeners_(std::move(listeners)), host_(std::move(host_networks)) {}

  // The configured listeners (listen and listen_tls) and this host's
  // interfaces (InterfaceNetworks).
  static OwnAddresses FromHost(const config::Config& config);
  // getifaddrs(): every interface address as a /32 or /128, and a loopback
  // interface's address with its netmask. Empty when the call fails.
  static std::vector<base::Network> InterfaceNetworks();
  // "127.0.0.1:2525", "[::]:25" as a Listener.
  static Listener ListenerOf(const base::SocketAddress& address);

  // Would a connection to ip:port reach this relay?
  bool IsSelf(const base::IpAddress& ip, uint16_t port) const;

 private:
  std::vector<Listener> listeners_;
  std::vector<base::Network> host_;
};

}  // namespace sluice::delivery
