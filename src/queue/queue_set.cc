#include "sluice/queue/queue_set.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "sluice/base/check.h"
#include "sluice/base/strings.h"

namespace sluice::queue {
namespace {

std::string Lower(std::string_view s) {
  while (!s.empty() && s.back() == '.') s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = base::AsciiLower(c);
  return out;
}

bool Later(const auto& a, const auto& b) { return a.when > b.when; }

}  // namespace

QueueSet::QueueSet(ShapingPolicy policy, RetrySchedule retry)
    : policy_(std::make_unique<ShapingPolicy>(std::move(policy))), retry_(std::move(retry)) {
  unshared_.max_connections = UINT32_MAX;
  unshared_.max_messages_per_connection = 0;
  unshared_.backoff_on_421 = false;
  unshared_.backoff_patterns.clear();
}

void QueueSet::SetPolicy(ShapingPolicy policy, Micros now) {
  // The old policy lives until every gate points into the new one.
  const std::unique_ptr<ShapingPolicy> old =
      std::exchange(policy_, std::make_unique<ShapingPolicy>(std::move(policy)));
  for (auto& [host, shared] : mx_gates_) {
    const ShapeParams* p = policy_->ForMx(host);
    shared->gate.Reconfigure(p != nullptr ? *p : unshared_, now);
  }
  for (auto& [name, q] : queues_) {
    q->gate().Reconfigure(policy_->ForDomain(name), now);
    Reschedule(*q, now);
  }
}

DomainQueue& QueueSet::Get(std::string_view domain, Micros now) {
  std::string key = Lower(domain);
  auto it = queues_.find(key);
  if (it != queues_.end()) return *it->second;
  const ShapeParams& params = policy_->ForDomain(key);
  auto q = std::make_unique<DomainQueue>(key, params, &retry_, now);
  q->set_held_ids(&held_ids_);
  DomainQueue& ref = *q;
  queues_.emplace(std::move(key), std::move(q));
  return ref;
}

DomainQueue* QueueSet::Find(std::string_view domain) {
  auto it = queues_.find(Lower(domain));
  return it == queues_.end() ? nullptr : it->second.get();
}

void QueueSet::Enqueue(std::string_view domain, Job job, Micros now) {
  DomainQueue& q = Get(domain, now);
  q.Enqueue(std::move(job));
  Reschedule(q, now);
}

void QueueSet::EnqueueDeferred(std::string_view domain, Job job, Micros when, Micros now) {
  DomainQueue& q = Get(domain, now);
  q.EnqueueDeferred(std::move(job), when);
  Reschedule(q, now);
}

void QueueSet::BindMx(DomainQueue& q, std::string_view mx_host, Micros now) {
  if (q.open_connections() != 0) return;
  auto old = membership_.find(&q);
  if (old != membership_.end()) {
    auto& m = old->second->members;
    m.erase(std::remove(m.begin(), m.end(), &q), m.end());
    membership_.erase(old);
  }
  const ShapeParams* params = policy_->ForMx(mx_host);
  if (params == nullptr) {
    q.BindSharedGate(nullptr);
  } else {
    std::string key = Lower(mx_host);
    auto it = mx_gates_.find(key);
    if (it == mx_gates_.end()) {
      it = mx_gates_.emplace(std::move(key), std::make_unique<SharedGate>(*params, now)).first;
    }
    SharedGate* g = it->second.get();
    g->members.push_back(&q);
    membership_[&q] = g;
    q.BindSharedGate(&g->gate);
  }
  Reschedule(q, now);
}

void QueueSet::Push(Micros when, DomainQueue* q) {
  heap_.push_back({when, q});
  std::push_heap(heap_.begin(), heap_.end(), Later<Wake, Wake>);
}

void QueueSet::PopTop() {
  std::pop_heap(heap_.begin(), heap_.end(), Later<Wake, Wake>);
  heap_.pop_back();
}

void QueueSet::MaybeCompact() {
  if (heap_.size() < 64 || heap_.size() < 2 * live_) return;
  std::erase_if(heap_, [](const Wake& w) { return w.q->scheduled_at != w.when; });
  std::make_heap(heap_.begin(), heap_.end(), Later<Wake, Wake>);
  // Two entries may name the same queue and time; harmless (the second is
  // skipped once the first clears scheduled_at).
}

void QueueSet::Reschedule(DomainQueue& q, Micros now) {
  const Micros when = q.NextWakeup(now);
  if (when == q.scheduled_at) return;
  if (q.scheduled_at == kNever) ++live_;
  if (when == kNever) --live_;
  q.scheduled_at = when;
  if (when != kNever) Push(when, &q);
  MaybeCompact();
}

void QueueSet::Due(Micros now, std::vector<DomainQueue*>& out) {
  size_t touched = 0;
  while (!heap_.empty()) {
    ++touched;
    const Wake top = heap_.front();
    if (top.when > now) break;
    PopTop();
    DomainQueue* q = top.q;
    if (q->scheduled_at != top.when) continue;  // stale
    q->scheduled_at = kNever;
    --live_;
    // Its time has come: deferred jobs ripen, tokens refill. Check it can
    // really move (a shared gate may have been used up by a sibling).
    const Micros when = q->NextWakeup(now);
    if (when <= now) {
      out.push_back(q);
    } else if (when != kNever) {
      q->scheduled_at = when;
      ++live_;
      Push(when, q);
    }
  }
  last_due_touched_ = touched;
}

void QueueSet::CloseConnection(DomainQueue& q, ConnectionId c, Micros now) {
  q.CloseConnection(c);
  auto it = membership_.find(&q);
  if (it == membership_.end()) {
    Reschedule(q, now);
    return;
  }
  for (DomainQueue* m : it->second->members) Reschedule(*m, now);
}

bool QueueSet::Suspend(std::string_view domain, Micros now, Micros until) {
  DomainQueue* q = Find(domain);
  if (q == nullptr) return false;
  q->Suspend(until);
  Reschedule(*q, now);
  return true;
}

bool QueueSet::Resume(std::string_view domain, Micros now) {
  DomainQueue* q = Find(domain);
  if (q == nullptr) return false;
  q->Resume();
  Reschedule(*q, now);
  return true;
}

bool QueueSet::Flush(std::string_view domain, Micros now) {
  DomainQueue* q = Find(domain);
  if (q == nullptr) return false;
  q->Flush();
  Reschedule(*q, now);
  return true;
}

void QueueSet::FlushAll(Micros now) {
  for (auto& [name, q] : queues_) {
    q->Flush();
    Reschedule(*q, now);
  }
}

size_t QueueSet::HoldMessage(base::QueueId id, Micros now) {
  held_ids_.insert(id);
  size_t recipients = 0;
  for (auto& [name, q] : queues_) {
    const size_t n = q->HoldMessage(id);
    if (n != 0) Reschedule(*q, now);
    recipients += n;
  }
  return recipients;
}

size_t QueueSet::ReleaseMessage(base::QueueId id, Micros now) {
  if (held_ids_.erase(id) == 0) return 0;
  size_t recipients = 0;
  for (auto& [name, q] : queues_) {
    const size_t n = q->ReleaseMessage(id);
    if (n != 0) Reschedule(*q, now);
    recipients += n;
  }
  return recipients;
}

}  // namespace sluice::queue
