#include "sluice/queue/domain_queue.h"

#include <algorithm>

#include "sluice/base/check.h"

namespace sluice::queue {
namespace {

bool Later(const auto& a, const auto& b) { return a.when > b.when; }

}  // namespace

DomainQueue::DomainQueue(std::string domain, const ShapeParams& params, const RetrySchedule* retry,
                         Micros now)
    : domain_(std::move(domain)), gate_(params, now), retry_(retry) {
  SLUICE_CHECK(retry_ != nullptr);
}

void DomainQueue::BindSharedGate(ShapingGate* gate) {
  SLUICE_CHECK(open_ == 0);
  shared_ = gate;
}

uint32_t DomainQueue::Store(Job job) {
  queued_recipients_ += job.recipients.size();
  oldest_ = std::min(oldest_, job.queued_at());
  if (!free_.empty()) {
    const uint32_t slot = free_.back();
    free_.pop_back();
    slots_[slot] = std::move(job);
    return slot;
  }
  slots_.push_back(std::move(job));
  return static_cast<uint32_t>(slots_.size() - 1);
}

Job DomainQueue::Release(uint32_t slot) {
  Job job = std::move(slots_[slot]);
  Forget(job);
  slots_[slot].recipients.clear();
  slots_[slot].recipients.shrink_to_fit();
  if (slot + 1 == slots_.size()) {
    slots_.pop_back();
  } else {
    free_.push_back(slot);
  }
  if (ready_count() == 0 && deferred_.empty() && held_.empty()) {  // all gone: give it back
    slots_.clear();
    free_.clear();
    queued_recipients_ = 0;
    oldest_ = kNever;
    oldest_stale_ = false;
  }
  return job;
}

void DomainQueue::Forget(const Job& job) {
  queued_recipients_ -= std::min(queued_recipients_, job.recipients.size());
  if (job.queued_at() <= oldest_) oldest_stale_ = true;
}

Micros DomainQueue::OldestQueued() {
  if (!oldest_stale_) return oldest_;
  oldest_ = kNever;
  ForEachQueued([this](const Job& j, Micros) { oldest_ = std::min(oldest_, j.queued_at()); });
  oldest_stale_ = false;
  return oldest_;
}

void DomainQueue::Enqueue(Job job) {
  SLUICE_CHECK(!job.recipients.empty());
  if (IsHeld(job.message)) {
    held_.push_back(Store(std::move(job)));
    return;
  }
  ready_.push_back(Store(std::move(job)));
}

void DomainQueue::EnqueueDeferred(Job job, Micros when) {
  SLUICE_CHECK(!job.recipients.empty());
  if (IsHeld(job.message)) {
    held_.push_back(Store(std::move(job)));
    return;
  }
  deferred_.push_back({when, Store(std::move(job))});
  std::push_heap(deferred_.begin(), deferred_.end(), Later<Deferred, Deferred>);
}

void DomainQueue::Promote(Micros now) {
  while (!deferred_.empty() && deferred_.front().when <= now) {
    std::pop_heap(deferred_.begin(), deferred_.end(), Later<Deferred, Deferred>);
    ready_.push_back(deferred_.back().slot);
    deferred_.pop_back();
  }
}

void DomainQueue::Flush() {
  std::sort_heap(deferred_.begin(), deferred_.end(), Later<Deferred, Deferred>);  // descending when
  for (auto it = deferred_.rbegin(); it != deferred_.rend(); ++it) ready_.push_back(it->slot);
  deferred_.clear();
}

std::vector<Job> DomainQueue::DrainAll() {
  Flush();
  std::vector<Job> out;
  out.reserve(ready_count() + held_.size());
  for (size_t i = ready_head_; i < ready_.size(); ++i) out.push_back(std::move(slots_[ready_[i]]));
  for (uint32_t slot : held_) out.push_back(std::move(slots_[slot]));
  ready_.clear();
  ready_head_ = 0;
  held_.clear();
  slots_.clear();
  free_.clear();
  queued_recipients_ = 0;
  oldest_ = kNever;
  oldest_stale_ = false;
  if (in_flight_ == 0) errors_.clear();
  return out;
}

std::vector<Job> DomainQueue::TakeAllReady() {
  std::vector<uint32_t> slots(ready_.begin() + static_cast<ptrdiff_t>(ready_head_), ready_.end());
  ready_.clear();
  ready_head_ = 0;
  std::vector<Job> out;
  out.reserve(slots.size());
  for (uint32_t slot : slots) out.push_back(Release(slot));
  in_flight_ += out.size();
  return out;
}

void DomainQueue::ForEachQueued(absl::FunctionRef<void(const Job&, Micros due)> fn) const {
  for (size_t i = ready_head_; i < ready_.size(); ++i) fn(slots_[ready_[i]], 0);
  for (const Deferred& d : deferred_) fn(slots_[d.slot], d.when);
  for (uint32_t slot : held_) fn(slots_[slot], 0);
}

void DomainQueue::ForEachJob(absl::FunctionRef<void(const Job&, JobState, Micros due)> fn) const {
  for (size_t i = ready_head_; i < ready_.size(); ++i) {
    fn(slots_[ready_[i]], JobState::kReady, 0);
  }
  for (const Deferred& d : deferred_) fn(slots_[d.slot], JobState::kDeferred, d.when);
  for (uint32_t slot : held_) fn(slots_[slot], JobState::kHeld, 0);
}

size_t DomainQueue::HoldWhere(absl::FunctionRef<bool(const Job&)> pick) {
  size_t recipients = 0;
  auto take = [&](uint32_t slot) {
    if (!pick(slots_[slot])) return false;
    recipients += slots_[slot].recipients.size();
    held_.push_back(slot);
    return true;
  };
  std::vector<uint32_t> ready;
  for (size_t i = ready_head_; i < ready_.size(); ++i) {
    if (!take(ready_[i])) ready.push_back(ready_[i]);
  }
  ready_.swap(ready);
  ready_head_ = 0;
  std::vector<Deferred> deferred;
  for (const Deferred& d : deferred_) {
    if (!take(d.slot)) deferred.push_back(d);
  }
  deferred_.swap(deferred);
  std::make_heap(deferred_.begin(), deferred_.end(), Later<Deferred, Deferred>);
  return recipients;
}

size_t DomainQueue::ReleaseWhere(absl::FunctionRef<bool(const Job&)> pick) {
  size_t recipients = 0;
  std::vector<uint32_t> still;
  for (uint32_t slot : held_) {
    if (pick(slots_[slot])) {
      recipients += slots_[slot].recipients.size();
      ready_.push_back(slot);
    } else {
      still.push_back(slot);
    }
  }
  held_.swap(still);
  return recipients;
}

size_t DomainQueue::HoldAll() {
  hold_all_ = true;
  return HoldWhere([](const Job&) { return true; });
}

size_t DomainQueue::HoldMessage(base::QueueId id) {
  return HoldWhere([id](const Job& j) { return j.message == id; });
}

size_t DomainQueue::ReleaseAll() {
  hold_all_ = false;
  return ReleaseWhere([this](const Job& j) { return !IsHeld(j.message); });
}

size_t DomainQueue::ReleaseMessage(base::QueueId id) {
  if (hold_all_) return 0;
  return ReleaseWhere([&](const Job& j) { return j.message == id && !IsHeld(id); });
}

uint16_t DomainQueue::InternError(std::string_view text) {
  for (size_t i = 0; i < errors_.size(); ++i) {
    if (errors_[i] == text) return static_cast<uint16_t>(i + 1);
  }
  if (errors_.size() < kMaxErrorTexts) {
    errors_.emplace_back(text);
  } else {
    errors_.back().assign(text.data(), text.size());
  }
  return static_cast<uint16_t>(errors_.size());
}

std::string_view DomainQueue::ErrorText(uint16_t index) const {
  if (index == 0 || index > errors_.size()) return {};
  return errors_[index - 1];
}

std::vector<Job> DomainQueue::RemoveMessage(base::QueueId id) {
  std::vector<Job> out;
  std::vector<uint32_t> ready;
  for (size_t i = ready_head_; i < ready_.size(); ++i) {
    if (slots_[ready_[i]].message == id) {
      out.push_back(std::move(slots_[ready_[i]]));
      free_.push_back(ready_[i]);
    } else {
      ready.push_back(ready_[i]);
    }
  }
  ready_.swap(ready);
  ready_head_ = 0;
  std::vector<Deferred> deferred;
  for (const Deferred& d : deferred_) {
    if (slots_[d.slot].message == id) {
      out.push_back(std::move(slots_[d.slot]));
      free_.push_back(d.slot);
    } else {
      deferred.push_back(d);
    }
  }
  deferred_.swap(deferred);
  std::make_heap(deferred_.begin(), deferred_.end(), Later<Deferred, Deferred>);
  std::vector<uint32_t> held;
  for (uint32_t slot : held_) {
    if (slots_[slot].message == id) {
      out.push_back(std::move(slots_[slot]));
      free_.push_back(slot);
    } else {
      held.push_back(slot);
    }
  }
  held_.swap(held);
  for (uint32_t slot : free_) slots_[slot].recipients.clear();
  for (const Job& j : out) Forget(j);
  return out;
}

uint32_t DomainQueue::MessageLimit() const {
  uint32_t limit = gate_.params().max_messages_per_connection;
  if (shared_ != nullptr) {
    const uint32_t other = shared_->params().max_messages_per_connection;
    if (limit == 0 || (other != 0 && other < limit)) limit = other;
  }
  return limit;
}

Micros DomainQueue::MessageAvailableAt(Micros now) const {
  Micros at = gate_.MessageAvailableAt(now);
  if (shared_ != nullptr) at = std::max(at, shared_->MessageAvailableAt(now));
  return at;
}

Micros DomainQueue::ConnectionAvailableAt(Micros now) const {
  Micros at = gate_.ConnectionAvailableAt(now);
  if (shared_ != nullptr) at = std::max(at, shared_->ConnectionAvailableAt(now));
  return at;
}

bool DomainQueue::HasIdleUsableConnection() const { return idle_usable_ > 0; }

Micros DomainQueue::NextWakeup(Micros now) {
  if (suspended_) {
    if (now < suspended_until_) return suspended_until_;  // kNever: until resumed
    Resume();                                             // the suspension's time is up
  }
  Promote(now);
  if (ready_count() == 0) return deferred_.empty() ? kNever : deferred_.front().when;
  const Micros msg = MessageAvailableAt(now);
  if (HasIdleUsableConnection()) return msg;
  const Micros conn = ConnectionAvailableAt(now);
  if (conn == kNever) return kNever;  // a close or a report will reschedule
  return std::max(msg, conn);
}

GateDecision DomainQueue::MayOpenConnection(Micros now) const {
  if (suspended_at(now)) return {Gate::kSuspended};
  if (ready_count() == 0) return {Gate::kNoWork};
  const Micros at = ConnectionAvailableAt(now);
  if (at == kNever) return {Gate::kSlotsFull};
  // A connection that could carry nothing until the next message token
  // would idle out and be opened again and again: wait for the token.
  const Micros when = std::max(at, MessageAvailableAt(now));
  if (when > now) return {Gate::kWait, when};
  return {Gate::kYes, now};
}

ConnectionId DomainQueue::OpenConnection(Micros now) {
  SLUICE_CHECK(MayOpenConnection(now).ok());
  gate_.TakeConnection(now);
  if (shared_ != nullptr) shared_->TakeConnection(now);
  ConnectionId id = 0;
  while (id < conns_.size() && conns_[id].open) ++id;
  if (id == conns_.size()) conns_.emplace_back();
  conns_[id] = Conn{.sent = 0, .open = true, .busy = false};
  ++open_;
  ++idle_usable_;
  return id;
}

void DomainQueue::CloseConnection(ConnectionId c) {
  SLUICE_CHECK(c < conns_.size() && conns_[c].open);
  Conn& conn = conns_[c];
  const uint32_t limit = MessageLimit();
  if (!conn.busy && (limit == 0 || conn.sent < limit)) --idle_usable_;
  conn = Conn{};
  --open_;
  gate_.ReleaseConnection();
  if (shared_ != nullptr) shared_->ReleaseConnection();
  while (!conns_.empty() && !conns_.back().open) conns_.pop_back();
}

GateDecision DomainQueue::MaySend(ConnectionId c, Micros now) const {
  SLUICE_CHECK(c < conns_.size() && conns_[c].open);
  const Conn& conn = conns_[c];
  if (conn.busy) return {Gate::kBusy};
  const uint32_t limit = MessageLimit();
  if (limit != 0 && conn.sent >= limit) return {Gate::kConnectionDone};
  // Backoff lowered the connection cap below what is open: shed this one.
  if (gate_.open_connections() > gate_.max_connections() ||
      (shared_ != nullptr && shared_->open_connections() > shared_->max_connections())) {
    return {Gate::kConnectionDone};
  }
  if (suspended_at(now)) return {Gate::kSuspended};
  if (ready_count() == 0) return {Gate::kNoWork};
  const Micros at = MessageAvailableAt(now);
  if (at > now) return {Gate::kWait, at};
  return {Gate::kYes, now};
}

std::optional<Job> DomainQueue::TakeReady(ConnectionId c, Micros now) {
  if (!MaySend(c, now).ok()) return std::nullopt;
  gate_.TakeMessage(now);
  if (shared_ != nullptr) shared_->TakeMessage(now);
  Conn& conn = conns_[c];
  conn.busy = true;
  ++conn.sent;
  --idle_usable_;
  const uint32_t slot = ready_[ready_head_++];
  if (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
  } else if (ready_head_ >= 1024 && ready_head_ * 2 >= ready_.size()) {
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<ptrdiff_t>(ready_head_));
    ready_head_ = 0;
  }
  ++in_flight_;
  return Release(slot);
}

ReportResult DomainQueue::Report(ConnectionId c, Job job, const Reply& reply, Micros now) {
  SLUICE_CHECK(in_flight_ > 0);
  --in_flight_;
  if (c != kNoConnection) {
    SLUICE_CHECK(c < conns_.size() && conns_[c].open && conns_[c].busy);
    Conn& conn = conns_[c];
    conn.busy = false;
    const uint32_t limit = MessageLimit();
    if (limit == 0 || conn.sent < limit) ++idle_usable_;
  }
  ReportResult result;
  result.backoff = gate_.OnReply(reply, now);
  if (shared_ != nullptr) result.backoff = shared_->OnReply(reply, now) || result.backoff;
  if (job.recipients.empty()) {  // done: delivered or bounced
    if (empty()) errors_.clear();
    return result;
  }
  ++job.failures;
  const RetryDecision d = retry_->Next(job.message, job.failures, job.queued_at(), now);
  if (d.expire) {
    result.kind = ReportResult::kExpired;
    result.expired = std::move(job);
    if (empty()) errors_.clear();
    return result;
  }
  result.kind = ReportResult::kDeferred;
  result.next_attempt = d.next;
  EnqueueDeferred(std::move(job), d.next);
  return result;
}

bool DomainQueue::ReportConnectionReply(const Reply& reply, Micros now) {
  bool backoff = gate_.OnReply(reply, now);
  if (shared_ != nullptr) backoff = shared_->OnReply(reply, now) || backoff;
  return backoff;
}

DomainStats DomainQueue::Stats() const {
  DomainStats s;
  s.ready = ready_count();
  s.deferred = deferred_.size();
  s.in_flight = in_flight_;
  s.connections = open_;
  s.scale_permille = gate_.scale_permille();
  s.suspended = suspended_;
  s.suspended_until = suspended_until_;
  s.held = held_.size();
  s.held_all = hold_all_;
  s.next_attempt = deferred_.empty() ? kNever : deferred_.front().when;
  auto count = [&](uint32_t slot) {
    s.recipients += slots_[slot].recipients.size();
    s.oldest = std::min(s.oldest, slots_[slot].queued_at());
  };
  for (size_t i = ready_head_; i < ready_.size(); ++i) count(ready_[i]);
  for (const Deferred& d : deferred_) count(d.slot);
  for (uint32_t slot : held_) count(slot);
  return s;
}

}  // namespace sluice::queue
