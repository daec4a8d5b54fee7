// The engine's job runner: jobs arrive (AddJob) and wait in the pure
// queue::QueueSet; Pump works the domains whose time has come (Work: idle
// connections first, then new ones within the shaping gate and the shard's
// cap, parking what waits for a slot); a ready connection takes the next
// job (OnReady), whose record is loaded and handed to the session
// (StartJob, OnRecord). Jobs decided without a connection (FailReady,
// DecideQueued) load their records at most kMaxDetachedLoads at a time.
//
// Trusts: the queue's decisions; records parsed by record_cache.h.
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "engine_parts.h"
#include "sluice/base/check.h"
#include "sluice/diag/diag.h"
#include "sluice/spool/retry_state.h"

namespace sluice::delivery {

void Engine::AddJob(base::QueueId id, const RecordRef& where, const std::string& domain,
                    const std::vector<uint32_t>& recipients, uint16_t failures, uint64_t due_us) {
  // No job: nothing would ever finish (and erase) the message.
  if (recipients.empty()) return;
  const uint64_t now_us = ring_.NowWallUs();
  Message& m = messages_[id];
  if (m.jobs == 0) {
    // Released when the message's last job finishes (FinishJob).
    m.file = file_names_.Acquire(where.file);
    m.dir = where.dir;
    SLUICE_CHECK(where.offset <= UINT32_MAX && where.length <= UINT32_MAX);
    m.offset = static_cast<uint32_t>(where.offset);
    m.length = static_cast<uint32_t>(where.length);
  }
  // One job per transaction's worth of recipients.
  const size_t per = std::max<size_t>(1, config_.max_recipients_per_transaction);
  for (size_t i = 0; i < recipients.size(); i += per) {
    queue::Job job;
    job.message = id;
    job.failures = failures;
    for (size_t k = i; k < std::min(recipients.size(), i + per); ++k) {
      job.recipients.push_back(recipients[k]);
    }
    ++m.jobs;
    ++stats_.jobs_received;
    if (due_us > now_us) {
      queues_.EnqueueDeferred(domain, std::move(job), due_us, now_us);
    } else {
      queues_.Enqueue(domain, std::move(job), now_us);
    }
  }
  // Enqueue filed the domain under "now" (or the deferral's time): Pump
  // works it then.
}

std::string Engine::RetryState() {
  std::string out;
  spool::RetryEntry entry;
  queues_.ForEach([&](queue::DomainQueue& q) {
    q.ForEachQueued([&](const queue::Job& job, queue::Micros due) {
      if (job.failures == 0) return;  // never tried, or tried and not failed
      entry.id = job.message;
      entry.failures = job.failures;
      entry.next_attempt_us = due;
      entry.recipients.assign(job.recipients.begin(), job.recipients.end());
      spool::AppendRetryEntry(out, entry);
    });
  });
  return out;
}

void Engine::Pump(uint64_t now_ms) {
  now_ms_ = now_ms;
  if (resolver_) resolver_->RunDueTimeouts(now_ms);
  for (OutboundConnection* c : dead_) delete c;
  dead_.swap(dying_);
  dying_.clear();
  const uint64_t now_us = ring_.NowWallUs();
  // Parked domains take the slots freed since, first come first served.
  // One that no longer needs its slot leaves it free for the next Pump
  // (NextWakeupMs returns 0 while that can happen).
  for (size_t free = FreeSlots(); free > 0 && !parked_.empty();) {
    queue::DomainQueue* q = parked_.front();
    parked_.pop_front();
    if (parked_set_.erase(q) == 0) continue;  // worked (unparked) since
    queues_.Reschedule(*q, now_us);
    --free;
  }
  due_.clear();
  queues_.Due(now_us, due_);
  for (queue::DomainQueue* q : due_) {
    if (parked_set_.contains(q)) continue;  // out of the heap until a slot frees
    Work(*q, now_us);
    // A doubtful destination is woken by its connections (OnReady,
    // OnFinished), not by the clock, which would say "now" until they do.
    if (DestinationFor(*q).doubtful) continue;
    queues_.Reschedule(*q, now_us);
  }
}

void Engine::Work(queue::DomainQueue& q, uint64_t now_us) {
  Destination& d = DestinationFor(q);
  parked_set_.erase(&q);  // parks again below if still blocked (its deque entry goes stale)
  if (q.shared_gate() != nullptr) {
    if (auto w = shared_waiting_.find(q.shared_gate()); w != shared_waiting_.end()) {
      w->second.erase(&q);
    }
  }
  if (stopping_ || q.ready_count() == 0) return;
  if (d.expires_ms <= now_ms_) {
    if (!d.resolving) Resolve(d);
    if (d.targets.empty() || d.resolving) return;
  }
  // Idle connections take work first.
  for (OutboundConnection* c : std::vector<OutboundConnection*>(d.conns)) {
    if (q.ready_count() == 0) break;
    if (!c->finished() && c->job == nullptr && c->idle_since_ms() != 0) {
      c->set_idle_since_ms(0);
      OnReady(*c);
    }
  }
  // Then new connections, one per ready job not yet covered by a connection
  // that is still opening, within the shaping gate and the shard's limit.
  auto unbusy = [&] {
    size_t n = 0;
    for (OutboundConnection* c : d.conns) n += (!c->finished() && c->job == nullptr && !c->retired);
    return n;
  };
  while (!d.doubtful && q.ready_count() > unbusy() &&
         connections_.size() < config_.max_outbound_connections &&
         q.MayOpenConnection(now_us).ok()) {
    OpenConnection(d, q, now_us);
  }
  const size_t uncovered = q.ready_count() > unbusy() ? q.ready_count() - unbusy() : 0;
  if (uncovered == 0 || d.doubtful) return;
  const queue::GateDecision gate = q.MayOpenConnection(now_us);
  if (gate.ok()) {
    // Only the shard's cap stops it. Without parking, the queue's own
    // wake-up time would stay "now" and the shard would spin until a
    // connection closed.
    if (parked_set_.insert(&q).second) parked_.push_back(&q);
    ReclaimIdle(q, uncovered, nullptr);
  } else if (gate.gate == queue::Gate::kSlotsFull && q.shared_gate() != nullptr &&
             q.shared_gate()->ConnectionAvailableAt(now_us) == queue::kNever &&
             q.gate().ConnectionAvailableAt(now_us) != queue::kNever) {
    // The by_mx budget is what is full: its other domains' idle connections
    // would hold it for idle_connection. (A close reschedules every domain
    // of the gate: QueueSet::CloseConnection.)
    shared_waiting_[q.shared_gate()].insert(&q);
    ReclaimIdle(q, uncovered, q.shared_gate());
  }
}

void Engine::FailReady(queue::DomainQueue& q, const smtp::Reply& reply, bool permanent,
                       const std::string& mx, const std::string& ip, bool counted) {
  for (queue::Job& job : q.TakeAllReady()) {
    auto* a = new Active();
    a->counted = counted;
    ++actives_;
    a->domain = q.domain();
    a->mx = mx;
    a->ip = ip;
    a->detached = true;
    a->preset = reply;
    a->preset.code = permanent ? std::max(reply.code, 550) : reply.code;
    a->job = std::move(job);
    LoadDetached(a);
  }
}

void Engine::LoadDetached(Active* a) {
  detached_waiting_.push_back(a);
  StartDetachedLoads();
}

void Engine::StartDetachedLoads() {
  // A load can complete at once (a cached record) and finish its job, which
  // calls back here: the outer loop carries on instead.
  if (starting_detached_) return;
  starting_detached_ = true;
  while (!detached_waiting_.empty() && detached_loading_ < kMaxDetachedLoads) {
    Active* a = detached_waiting_.front();
    detached_waiting_.pop_front();
    ++detached_loading_;
    auto m = messages_.find(a->job.message);
    SLUICE_CHECK(m != messages_.end());
    LoadRecord(a, WhereOf(m->second));
  }
  starting_detached_ = false;
}

void Engine::OnReady(OutboundConnection& c) {
  auto& d = *static_cast<Destination*>(c.owner);
  queue::DomainQueue& q = *d.q;
  if (stopping_ || c.retired) {
    c.session().Quit();
    c.Send();
    return;
  }
  const uint64_t now_us = ring_.NowWallUs();
  if (!c.seen_ready) {
    c.seen_ready = true;
    if (d.doubtful) {
      d.doubtful = false;  // the host answers: more connections may try
      queues_.Reschedule(q, now_us);
    }
  }
  std::optional<queue::Job> job = q.TakeReady(c.queue_slot, now_us);
  if (!job) {
    const queue::GateDecision why = q.MaySend(c.queue_slot, now_us);
    // Out of work while another domain waits for the slot this connection
    // holds: give it up now rather than after idle_connection.
    if (why.gate == queue::Gate::kConnectionDone || why.gate == queue::Gate::kSuspended ||
        (why.gate == queue::Gate::kNoWork && SlotWanted(q))) {
      c.session().Quit();
      c.Send();
    } else {
      c.set_idle_since_ms(std::max<uint64_t>(now_ms_, 1));
    }
    queues_.Reschedule(q, now_us);
    return;
  }
  c.set_idle_since_ms(0);
  StartJob(c, std::move(*job));
}

void Engine::StartJob(OutboundConnection& c, queue::Job job) {
  auto* a = new Active();
  ++actives_;
  a->domain = static_cast<Destination*>(c.owner)->domain;
  a->conn = &c;
  a->job = std::move(job);
  c.job = a;
  auto m = messages_.find(a->job.message);
  SLUICE_CHECK(m != messages_.end());
  LoadRecord(a, WhereOf(m->second));
}

void Engine::LoadRecord(Active* a, const RecordRef& where) {
  records_.Get(
      a->job.message,
      [this, where](std::function<void(absl::StatusOr<std::string>)> done) {
        ReadRecord(where, std::move(done));
      },
      [this, a](absl::StatusOr<RecordPtr> record) { OnRecord(a, std::move(record)); });
}

void Engine::OnRecord(Active* a, absl::StatusOr<RecordPtr> record) {
  if (record.ok()) {
    a->record = *std::move(record);
    a->parsed = &a->record->parsed;
  } else {
    ++stats_.record_errors;
    SLUICE_LOG(kError, "delivery.record_unreadable", "a queued record could not be read",
               {{"id", a->job.message.ToString()}, {"reason", record.status().message()}});
  }
  if (a->parsed) PrepareBody(a);
  if (a->parsed && !a->detached && !a->abandoned) SignBody(a);
  a->results.resize(a->job.recipients.size());
  if (a->detached || a->abandoned || !a->parsed) {
    smtp::Reply reply = a->preset;
    if (!a->detached) {
      reply = MakeReply(
          451, "4.3.0",
          a->parsed ? "connection ended before the message started" : "spool record unreadable");
    }
    OutboundConnection* c = a->detached || a->abandoned ? nullptr : a->conn;
    if (c != nullptr) c->job = nullptr;
    FinishJob(c, a, reply);
    if (c != nullptr) OnReady(*c);  // the session is still idle
    return;
  }
  // Build the transaction.
  const spool::Envelope& env = a->parsed->envelope;
  smtp::OutboundMessage msg;
  msg.sender = env.sender;
  for (uint32_t idx : a->job.recipients) {
    const spool::Recipient* rcpt = env.FindRecipient(idx);
    msg.recipients.push_back(rcpt != nullptr ? rcpt->address : std::string());
  }
  msg.size = a->signatures.size() + env.added_headers.size() + a->body.size();
  msg.eight_bit = env.eight_bit;
  msg.smtputf8 = env.smtputf8;
  OutboundConnection& c = *a->conn;
  if (!c.session().StartMessage(msg)) {
    c.job = nullptr;
    FinishJob(&c, a, MakeReply(451, "4.3.0", "session not ready"));
    return;
  }
  c.Send();
}

void Engine::OnRecipientResult(OutboundConnection& c, size_t index, smtp::Outcome outcome,
                               const smtp::Reply& reply) {
  auto* a = static_cast<Active*>(c.job);
  if (a == nullptr || index >= a->results.size()) return;
  a->results[index] = std::make_pair(outcome, reply);
}

void Engine::OnMessageDone(OutboundConnection& c, const smtp::MessageResult& result) {
  auto* a = static_cast<Active*>(c.job);
  if (a == nullptr) return;
  c.job = nullptr;
  FinishJob(&c, a, result.reply);
}

}  // namespace sluice::delivery
