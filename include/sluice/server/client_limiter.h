// Connections per client address: how many at once and how many new ones a
// minute, shared by every shard without a lock (SO_REUSEPORT spreads one
// client's connections over all shards, so per-shard counts would not do).
//
// Counts live in two tables of 64 Ki atomic slots each, indexed by two
// independent hashes of the address (an IPv6 client counts as its /64,
// which is what one subscriber holds). An address's count is the smaller of
// its two slots (a count-min sketch): an address shares its limit with
// others only when both of its slots are shared (with N outside clients
// connected at once, about (N / 64 Ki)^2: 1 in 1,000 at N = 2,000), and a
// collision can only make a limit stricter, never let a client past it.
// Clients in relay_from (the senders Sluice exists for) are not counted. Rates use
// fixed one-minute windows per slot (a burst across a window edge may reach
// twice the rate; the count limit still holds).
//
// Memory: 2 x 64 Ki x (4 + 8) bytes = 1.5 MiB, allocated once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "sluice/base/cidr.h"

namespace sluice::server {

class ClientLimiter {
 public:
  enum class Verdict : uint8_t { kAdmitted, kTooManyConnections, kTooFast };

  // 0 turns a limit off.
  ClientLimiter(size_t max_connections, uint32_t max_per_minute);

  // A new connection from `ip` at `now_ms`. kAdmitted counts it: call
  // Release when it closes. A refusal counts nothing.
  Verdict Admit(const base::IpAddress& ip, uint64_t now_ms);
  void Release(const base::IpAddress& ip);

  // The address's current count (the smaller slot): tests, diagnostics.
  uint32_t Connections(const base::IpAddress& ip) const;

  static constexpr size_t kSlots = 1 << 16;

 private:
  struct Slots {
    size_t a;
    size_t b;
  };
  static Slots SlotsFor(const base::IpAddress& ip);
  bool RateExceeded(size_t slot, uint64_t minute);
  void CountRate(size_t slot, uint64_t minute);

  const size_t max_connections_;
  const uint32_t max_per_minute_;
  std::unique_ptr<std::atomic<uint32_t>[]> counts_;  // 2 x kSlots
  std::unique_ptr<std::atomic<uint64_t>[]> rates_;   // 2 x kSlots: minute << 32 | count
};

}  // namespace sluice::server
