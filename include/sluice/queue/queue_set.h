// A shard's scheduler: its DomainQueues, keyed by domain, the shared MX
// gates, and one min-heap of wake-up times.
//
// Only the heap's top is ever looked at: Due(now) pops entries whose time
// has come and stops at the first one in the future, so a throttled backlog
// of any size costs nothing between its wake-ups, and the shard's loop sleeps
// until NextWakeup(). Entries are invalidated lazily: a queue records the
// time it is filed under (DomainQueue::scheduled_at) and older entries are
// skipped when popped; the heap is rebuilt when stale entries outnumber the
// live ones.
//
// After the shard works a domain returned by Due (or changes it in any other
// way), it calls Reschedule so the domain is filed under its next wake-up.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "sluice/queue/domain_queue.h"
#include "sluice/queue/retry_schedule.h"
#include "sluice/queue/shaping.h"

namespace sluice::queue {

class QueueSet {
 public:
  QueueSet(ShapingPolicy policy, RetrySchedule retry);
  QueueSet(const QueueSet&) = delete;
  QueueSet& operator=(const QueueSet&) = delete;

  // The domain's queue, created with its policy on first use. Domains are
  // case-insensitive (stored lower-case).
  DomainQueue& Get(std::string_view domain, Micros now);
  DomainQueue* Find(std::string_view domain);

  void Enqueue(std::string_view domain, Job job, Micros now);
  void EnqueueDeferred(std::string_view domain, Job job, Micros when, Micros now);

  // After resolution: if an MX rule matches `mx_host`, the domain also draws
  // from that host's shared gate. A no-op while the domain has connections.
  void BindMx(DomainQueue& q, std::string_view mx_host, Micros now);

  // Appends the domains that can make progress at `now` and takes them out
  // of the heap (Reschedule puts them back).
  void Due(Micros now, std::vector<DomainQueue*>& out);
  // When Due will next have something (kNever: nothing scheduled). May be
  // early by one stale entry, never late.
  Micros NextWakeup() const { return heap_.empty() ? kNever : heap_.front().when; }

  void Reschedule(DomainQueue& q, Micros now);

  // A configuration reload. Every domain's gate follows its rule in
  // `policy` (ShapingGate::Reconfigure) and is rescheduled. An MX gate
  // follows its new MX rule; one whose rule is gone stops limiting (kUnshared)
  // and its domains leave it at their next BindMx without connections; a new
  // MX rule binds domains at their next BindMx (their next resolution).
  void SetPolicy(ShapingPolicy policy, Micros now);
  // Deferred jobs keep their due time; the new schedule decides from their
  // next failure on (and max_age, read by the engine, at once).
  void SetRetry(RetrySchedule retry) { retry_ = std::move(retry); }
  const RetrySchedule& retry() const { return retry_; }
  // Closes a connection and reschedules every domain sharing its gates (a
  // freed slot is usable at once by any of them).
  void CloseConnection(DomainQueue& q, ConnectionId c, Micros now);

  // `until`: when the suspension lifts by itself (kNever: at Resume).
  bool Suspend(std::string_view domain, Micros now, Micros until = kNever);
  bool Resume(std::string_view domain, Micros now);
  bool Flush(std::string_view domain, Micros now);
  void FlushAll(Micros now);

  // Holds by message id (`queue hold --id`): the id joins the shard's held
  // set, which every DomainQueue consults when a job of it is enqueued, and
  // its queued jobs move aside. Both return the recipients moved.
  size_t HoldMessage(base::QueueId id, Micros now);
  size_t ReleaseMessage(base::QueueId id, Micros now);  // 0 also if not held
  bool IsHeldMessage(base::QueueId id) const { return held_ids_.contains(id); }
  const absl::flat_hash_set<base::QueueId>& held_messages() const { return held_ids_; }

  size_t domain_count() const { return queues_.size(); }
  size_t heap_size() const { return heap_.size(); }
  // Heap entries examined by the last Due call (tests: O(1) when nothing is due).
  size_t last_due_touched() const { return last_due_touched_; }

  template <typename F>
  void ForEach(F&& f) {
    for (auto& [name, q] : queues_) f(*q);
  }

 private:
  struct Wake {
    Micros when;
    DomainQueue* q;
  };
  struct SharedGate {
    explicit SharedGate(const ShapeParams& p, Micros now) : gate(p, now) {}
    ShapingGate gate;
    std::vector<DomainQueue*> members;
  };
  void Push(Micros when, DomainQueue* q);
  void PopTop();
  void MaybeCompact();

  // Gates point into the policy: heap-held, so a reload can keep the old
  // one alive while it moves them to the new one.
  std::unique_ptr<ShapingPolicy> policy_;
  RetrySchedule retry_;  // DomainQueues point here: assigned in place, never moved
  // The params of an MX gate whose rule a reload removed: no limit, no backoff.
  ShapeParams unshared_;
  absl::flat_hash_map<std::string, std::unique_ptr<DomainQueue>> queues_;
  absl::flat_hash_map<std::string, std::unique_ptr<SharedGate>> mx_gates_;
  absl::flat_hash_map<DomainQueue*, SharedGate*> membership_;
  absl::flat_hash_set<base::QueueId> held_ids_;  // DomainQueues point here
  std::vector<Wake> heap_;                       // min-heap on when
  size_t live_ = 0;                              // queues with scheduled_at != kNever
  size_t last_due_touched_ = 0;
};

}  // namespace sluice::queue
