// The engine's administration (engine.h "Administration"): queue listings
// as JSON, flush, suspend/resume, hold/release, and the administrator's
// bounce and delete of queued jobs (decided without a connection, through
// the outcome step). Each call is O(jobs) at most.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine_parts.h"
#include "sluice/base/check.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"

namespace sluice::delivery {
std::string Engine::ListJson() {
  const uint64_t now_us = ring_.NowWallUs();
  std::string out = "[";
  bool first = true;
  queues_.ForEach([&](queue::DomainQueue& q) {
    const queue::DomainStats s = q.Stats();
    const bool suspended = q.suspended_at(now_us);
    if (s.ready + s.deferred + s.in_flight + s.held == 0 && s.connections == 0 && !suspended &&
        !s.held_all) {
      return;
    }
    if (!first) out += ",";
    first = false;
    absl::StrAppend(&out, "{\"domain\":");
    log::AppendJsonString(out, q.domain());
    absl::StrAppend(
        &out, ",\"ready\":", s.ready, ",\"deferred\":", s.deferred, ",\"in_flight\":", s.in_flight,
        ",\"held\":", s.held, ",\"recipients\":", s.recipients, ",\"connections\":", s.connections,
        ",\"oldest_us\":", s.oldest == queue::kNever ? 0 : s.oldest,
        ",\"next_attempt_us\":", s.next_attempt == queue::kNever ? 0 : s.next_attempt,
        ",\"rate_permille\":", s.scale_permille, ",\"suspended\":", suspended ? "true" : "false",
        ",\"held_domain\":", s.held_all ? "true" : "false", "}");
  });
  out += "]";
  return out;
}

size_t Engine::Flush(std::string_view domain) {
  const uint64_t now_us = ring_.NowWallUs();
  if (domain.empty()) {
    queues_.FlushAll(now_us);
    return queues_.domain_count();
  }
  return queues_.Flush(domain, now_us) ? 1 : 0;
}

void Engine::ApplyAdminState(const AdminState& state,
                             absl::FunctionRef<bool(std::string_view domain)> owned) {
  const uint64_t now_us = ring_.NowWallUs();
  for (const Suspension& s : state.suspensions) {
    if (!owned(s.domain) || (s.until_us != 0 && s.until_us <= now_us)) continue;
    queues_.Get(s.domain, now_us);
    queues_.Suspend(s.domain, now_us, s.until_us == 0 ? queue::kNever : s.until_us);
    suspensions_[s.domain] = s;
  }
  for (base::QueueId id : state.held_ids) queues_.HoldMessage(id, now_us);
  for (const std::string& d : state.held_domains) {
    if (owned(d)) queues_.Get(d, now_us).HoldAll();
  }
}

size_t Engine::Suspend(std::string_view domain, uint64_t until_us, std::string reason) {
  // Also before any mail for it arrived: the suspension waits for it.
  const uint64_t now_us = ring_.NowWallUs();
  queue::DomainQueue& q = queues_.Get(domain, now_us);
  queues_.Suspend(domain, now_us, until_us == 0 ? queue::kNever : until_us);
  suspensions_[q.domain()] = Suspension{q.domain(), now_us, until_us, std::move(reason)};
  return q.Stats().recipients;
}

bool Engine::Resume(std::string_view domain) {
  const uint64_t now_us = ring_.NowWallUs();
  queue::DomainQueue* q = queues_.Find(domain);
  if (q == nullptr) return false;
  const bool was = q->suspended_at(now_us);
  suspensions_.erase(q->domain());
  queues_.Resume(domain, now_us);
  return was;
}

std::string Engine::SuspensionsJson() {
  const uint64_t now_us = ring_.NowWallUs();
  std::string out = "[";
  for (auto it = suspensions_.begin(); it != suspensions_.end();) {
    queue::DomainQueue* q = queues_.Find(it->first);
    if (q == nullptr || !q->suspended_at(now_us)) {
      suspensions_.erase(it++);  // over (or resumed): forget the reason
      continue;
    }
    const Suspension& s = it->second;
    if (out.size() > 1) out += ",";
    out += "{\"domain\":";
    log::AppendJsonString(out, s.domain);
    absl::StrAppend(&out, ",\"since_us\":", s.since_us, ",\"until_us\":", s.until_us,
                    ",\"recipients\":", q->Stats().recipients, ",\"reason\":");
    log::AppendJsonString(out, s.reason);
    out += "}";
    ++it;
  }
  out += "]";
  return out;
}

template <typename F>
void Engine::ForEachActive(F&& f) const {
  for (const OutboundConnection* c : connections_) {
    if (c->job != nullptr) f(*static_cast<const Active*>(c->job));
  }
  for (const Active* a : detached_waiting_) f(*a);
}

size_t Engine::InFlight(const Selector& what) const {
  size_t n = 0;
  ForEachActive([&](const Active& a) {
    if (what.id ? a.job.message == *what.id : base::EqualsIgnoreCase(a.domain, what.domain)) {
      n += a.job.recipients.size();
    }
  });
  return n;
}

Engine::Touched Engine::DecideQueued(const Selector& what, bool deleted) {
  std::vector<std::pair<std::string, queue::Job>> jobs;
  queues_.ForEach([&](queue::DomainQueue& q) {
    if (what.id) {
      for (queue::Job& j : q.RemoveMessage(*what.id)) jobs.emplace_back(q.domain(), std::move(j));
    } else if (base::EqualsIgnoreCase(q.domain(), what.domain)) {
      for (queue::Job& j : q.DrainAll()) jobs.emplace_back(q.domain(), std::move(j));
    }
  });
  // The message is gone from this shard's queues: its hold has nothing left to hold.
  if (what.id) queues_.ReleaseMessage(*what.id, ring_.NowWallUs());
  Touched t;
  t.in_flight = InFlight(what);
  for (auto& [domain, job] : jobs) {
    t.recipients += job.recipients.size();
    auto* a = new Active();
    ++actives_;
    a->domain = domain;
    a->detached = true;
    a->reported = true;
    a->deleted = deleted;
    a->preset = deleted
                    ? MakeReply(550, "5.0.0", "deleted by the administrator (sluice queue delete)")
                    : MakeReply(550, "5.0.0", "bounced by the administrator (sluice queue bounce)");
    a->job = std::move(job);
    LoadDetached(a);
  }
  return t;
}

Engine::Touched Engine::BounceQueued(const Selector& what) { return DecideQueued(what, false); }

Engine::Touched Engine::DeleteQueued(const Selector& what) { return DecideQueued(what, true); }

Engine::Touched Engine::Hold(const Selector& what) {
  const uint64_t now_us = ring_.NowWallUs();
  Touched t;
  t.in_flight = InFlight(what);
  if (what.id) {
    t.recipients = queues_.HoldMessage(*what.id, now_us);
    // Nothing of it here: no hold to keep (an unknown id is not remembered).
    if (t.recipients == 0 && t.in_flight == 0) queues_.ReleaseMessage(*what.id, now_us);
  } else {
    queue::DomainQueue& q = queues_.Get(what.domain, now_us);
    t.recipients = q.HoldAll();
    queues_.Reschedule(q, now_us);
  }
  return t;
}

std::optional<Engine::Touched> Engine::Release(const Selector& what) {
  const uint64_t now_us = ring_.NowWallUs();
  Touched t;
  if (what.id) {
    if (!queues_.IsHeldMessage(*what.id)) return std::nullopt;
    t.recipients = queues_.ReleaseMessage(*what.id, now_us);
  } else {
    queue::DomainQueue* q = queues_.Find(what.domain);
    if (q == nullptr || !q->held_all()) return std::nullopt;
    t.recipients = q->ReleaseAll();
    queues_.Reschedule(*q, now_us);
  }
  return t;
}

std::string Engine::JobsJson(size_t max, std::optional<base::QueueId> only, bool& truncated) {
  std::string out = "[";
  size_t count = 0;
  truncated = false;
  auto add = [&](const queue::Job& job, std::string_view domain, std::string_view state,
                 uint64_t due, std::string_view error) {
    if (only && job.message != *only) return;
    if (count++ >= max) {
      truncated = true;
      return;
    }
    if (out.size() > 1) out += ",";
    absl::StrAppend(&out, "{\"id\":\"", job.message.ToString(), "\",\"domain\":");
    log::AppendJsonString(out, domain);
    absl::StrAppend(&out, ",\"state\":\"", base::Av(state), "\",\"attempts\":", job.failures,
                    ",\"next_us\":", due, ",\"recipients\":[");
    for (size_t i = 0; i < job.recipients.size(); ++i) {
      absl::StrAppend(&out, i > 0 ? "," : "", job.recipients[i]);
    }
    out += "],\"error\":";
    log::AppendJsonString(out, error);
    out += "}";
  };
  queues_.ForEach([&](queue::DomainQueue& q) {
    q.ForEachJob([&](const queue::Job& job, queue::JobState state, queue::Micros due) {
      const std::string_view name = state == queue::JobState::kReady      ? "ready"
                                    : state == queue::JobState::kDeferred ? "deferred"
                                                                          : "held";
      add(job, q.domain(), name, due, q.ErrorText(job.last_error));
    });
  });
  ForEachActive([&](const Active& a) {
    const queue::DomainQueue* q = queues_.Find(a.domain);
    add(a.job, a.domain, "in-flight", 0, q != nullptr ? q->ErrorText(a.job.last_error) : "");
  });
  out += "]";
  return out;
}

std::string Engine::ShapeJson(const std::vector<uint64_t>& edges_s) {
  const uint64_t now_us = ring_.NowWallUs();
  absl::flat_hash_map<std::string, std::vector<uint64_t>> counts;
  auto add = [&](const std::string& domain, const queue::Job& job) {
    std::vector<uint64_t>& c = counts[domain];
    c.resize(edges_s.size() + 1);
    const uint64_t age_s = now_us > job.queued_at() ? (now_us - job.queued_at()) / 1000000 : 0;
    size_t b = 0;
    while (b < edges_s.size() && age_s >= edges_s[b]) ++b;
    c[b] += job.recipients.size();
  };
  queues_.ForEach([&](queue::DomainQueue& q) {
    q.ForEachQueued([&](const queue::Job& job, queue::Micros) { add(q.domain(), job); });
  });
  ForEachActive([&](const Active& a) { add(a.domain, a.job); });
  std::string out = "[";
  for (const auto& [domain, c] : counts) {
    if (out.size() > 1) out += ",";
    out += "{\"domain\":";
    log::AppendJsonString(out, domain);
    out += ",\"counts\":[";
    for (size_t i = 0; i < c.size(); ++i) absl::StrAppend(&out, i > 0 ? "," : "", c[i]);
    out += "]}";
  }
  out += "]";
  return out;
}

}  // namespace sluice::delivery
