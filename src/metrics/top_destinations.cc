// See top_destinations.h.
#include "sluice/metrics/top_destinations.h"

#include <algorithm>

namespace sluice::metrics {
namespace {

bool DeeperFirst(const DestinationSample& a, const DestinationSample& b) {
  if (a.recipients != b.recipients) return a.recipients > b.recipients;
  return *a.domain < *b.domain;
}

bool MoreDeferredFirst(const DestinationSample& a, const DestinationSample& b) {
  if (a.deferred != b.deferred) return a.deferred > b.deferred;
  return *a.domain < *b.domain;
}

DestinationRow RowOf(const DestinationSample& s) {
  DestinationRow r;
  r.domain = *s.domain;
  r.recipients = s.recipients;
  r.messages = s.messages;
  r.deferred = s.deferred;
  r.oldest_us = s.oldest_us;
  r.connections = s.connections;
  r.limit_permille = s.limit_permille;
  r.suspended = s.suspended;
  r.held = s.held;
  return r;
}

void AddTo(DestinationRow& other, const DestinationSample& s) {
  other.recipients += s.recipients;
  other.messages += s.messages;
  other.deferred += s.deferred;
  other.connections += s.connections;
  if (s.oldest_us != 0 && (other.oldest_us == 0 || s.oldest_us < other.oldest_us)) {
    other.oldest_us = s.oldest_us;
  }
}

// Moves the (at most k) best of [first, last) by `better` to the front,
// sorted, and returns the end of the chosen range: only those `eligible`.
template <typename Better, typename Eligible>
std::vector<DestinationSample>::iterator Choose(std::vector<DestinationSample>::iterator first,
                                                std::vector<DestinationSample>::iterator last,
                                                size_t k, Better better, Eligible eligible) {
  const auto n = static_cast<size_t>(last - first);
  auto end = first + static_cast<std::ptrdiff_t>(std::min(k, n));
  if (k < n) std::nth_element(first, end, last, better);
  std::sort(first, end, better);
  return std::partition_point(first, end, eligible);
}

// Ready mail that shaping lets no new connection carry now: a rate limit,
// or every connection slot taken (ready mail normally leaves at once on an
// idle open connection, so that case is left aside).
bool Throttled(const queue::DomainQueue& q, uint64_t now_us) {
  if (q.ready_count() == 0 || q.suspended_at(now_us)) return false;
  const queue::Gate g = q.MayOpenConnection(now_us).gate;
  return g == queue::Gate::kWait || g == queue::Gate::kSlotsFull;
}

}  // namespace

void SelectTopDestinations(std::vector<DestinationSample>& samples, size_t k,
                           std::vector<DestinationRow>& top, DestinationRow& other) {
  top.clear();
  other = DestinationRow();
  other.domain = "other";
  auto by_depth = Choose(samples.begin(), samples.end(), k, DeeperFirst,
                         [](const DestinationSample& s) { return s.recipients > 0; });
  auto by_deferrals = Choose(by_depth, samples.end(), k, MoreDeferredFirst,
                             [](const DestinationSample& s) { return s.deferred > 0; });
  top.reserve(static_cast<size_t>(by_deferrals - samples.begin()));
  for (auto it = samples.begin(); it != by_deferrals; ++it) top.push_back(RowOf(*it));
  for (auto it = by_deferrals; it != samples.end(); ++it) AddTo(other, *it);
}

void CollectDestinations(ForEachQueue for_each_queue, uint64_t now_us, size_t k,
                         std::vector<DestinationSample>& scratch, ShardSnapshot& out) {
  scratch.clear();
  for_each_queue([&](queue::DomainQueue& q) {
    const bool suspended = q.suspended_at(now_us);
    const uint32_t permille = q.gate().scale_permille();
    out.domains_queued += q.empty() ? 0 : 1;  // queues are kept once made
    out.domains_suspended += suspended ? 1 : 0;
    out.domains_backoff += permille < 1000 ? 1 : 0;
    out.domains_held += q.held_all() ? 1 : 0;
    out.domains_throttled += Throttled(q, now_us) ? 1 : 0;
    DestinationSample& d = scratch.emplace_back();
    d.domain = &q.domain();
    d.recipients = q.queued_recipients();
    d.messages = q.ready_count() + q.deferred_count() + q.held_count();
    d.deferred = q.deferred_count();
    const queue::Micros oldest = q.OldestQueued();
    d.oldest_us = oldest == queue::kNever ? 0 : oldest;
    d.connections = q.open_connections();
    d.limit_permille = permille;
    d.suspended = suspended;
    d.held = q.held_all();
  });
  SelectTopDestinations(scratch, k, out.top, out.other);
}

}  // namespace sluice::metrics
