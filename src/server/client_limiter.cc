#include "sluice/server/client_limiter.h"

#include <algorithm>
#include <cstring>

namespace sluice::server {
namespace {

// FNV-1a over the address bytes that identify the client (v4: 4 bytes,
// v6: the /64), seeded differently for the two tables.
uint64_t Hash(const base::IpAddress& ip, uint64_t seed) {
  const size_t n = ip.v6 ? 8 : 4;
  uint64_t h = 14695981039346656037ull ^ seed;
  for (size_t i = 0; i < n; ++i) {
    h ^= ip.bytes[i];
    h *= 1099511628211ull;
  }
  h ^= ip.v6 ? 0x9e3779b97f4a7c15ull : 0;
  return h ^ (h >> 29);
}

}  // namespace

ClientLimiter::ClientLimiter(size_t max_connections, uint32_t max_per_minute)
    : max_connections_(max_connections),
      max_per_minute_(max_per_minute),
      counts_(new std::atomic<uint32_t>[2 * kSlots]),
      rates_(new std::atomic<uint64_t>[2 * kSlots]) {
  for (size_t i = 0; i < 2 * kSlots; ++i) {
    counts_[i].store(0, std::memory_order_relaxed);
    rates_[i].store(0, std::memory_order_relaxed);
  }
}

ClientLimiter::Slots ClientLimiter::SlotsFor(const base::IpAddress& ip) {
  return Slots{Hash(ip, 0) % kSlots, kSlots + Hash(ip, 0x5bd1e995) % kSlots};
}

uint32_t ClientLimiter::Connections(const base::IpAddress& ip) const {
  const Slots s = SlotsFor(ip);
  return std::min(counts_[s.a].load(std::memory_order_relaxed),
                  counts_[s.b].load(std::memory_order_relaxed));
}

bool ClientLimiter::RateExceeded(size_t slot, uint64_t minute) {
  const uint64_t v = rates_[slot].load(std::memory_order_relaxed);
  return (v >> 32) == (minute & 0xffffffff) && (v & 0xffffffff) >= max_per_minute_;
}

void ClientLimiter::CountRate(size_t slot, uint64_t minute) {
  uint64_t v = rates_[slot].load(std::memory_order_relaxed);
  while (true) {
    const uint64_t window = minute & 0xffffffff;
    const uint64_t next = (v >> 32) == window ? v + 1 : (window << 32 | 1);
    if (rates_[slot].compare_exchange_weak(v, next, std::memory_order_relaxed)) return;
  }
}

ClientLimiter::Verdict ClientLimiter::Admit(const base::IpAddress& ip, uint64_t now_ms) {
  const Slots s = SlotsFor(ip);
  if (max_per_minute_ > 0) {
    const uint64_t minute = now_ms / 60000;
    // Both slots over: the address itself is (a collision needs both).
    if (RateExceeded(s.a, minute) && RateExceeded(s.b, minute)) return Verdict::kTooFast;
    CountRate(s.a, minute);
    CountRate(s.b, minute);
  }
  const uint32_t a = counts_[s.a].fetch_add(1, std::memory_order_relaxed);
  const uint32_t b = counts_[s.b].fetch_add(1, std::memory_order_relaxed);
  if (max_connections_ > 0 && std::min(a, b) >= max_connections_) {
    counts_[s.a].fetch_sub(1, std::memory_order_relaxed);
    counts_[s.b].fetch_sub(1, std::memory_order_relaxed);
    return Verdict::kTooManyConnections;
  }
  return Verdict::kAdmitted;
}

void ClientLimiter::Release(const base::IpAddress& ip) {
  const Slots s = SlotsFor(ip);
  counts_[s.a].fetch_sub(1, std::memory_order_relaxed);
  counts_[s.b].fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace sluice::server
