// The engine's outcome step: what an attempt's replies mean is decided by
// DecideOutcome (outcome.h, pure); FinishJob applies it. It tells the queue
// (which defers or drops the job and must agree on expiry), writes the
// accounting records, reports final recipients to the record's home shard
// (Host::ReportFinal), queues a DSN to the sender for bounced and expired
// ones (final only once the DSN is durable) and releases the message once
// its last job is done.
//
// Trusts: the engine's bookkeeping (a job's message is known, CHECKed).
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "engine_parts.h"
#include "sluice/base/check.h"
#include "sluice/diag/diag.h"
#include "sluice/dsn/dsn.h"

namespace sluice::delivery {

void Engine::FinishJob(OutboundConnection* c, Active* a, const smtp::Reply& decisive) {
  const uint64_t now_us = ring_.NowWallUs();
  queue::DomainQueue* q = queues_.Find(a->domain);
  SLUICE_CHECK(q != nullptr);
  const spool::Envelope* env = a->parsed ? &a->parsed->envelope : nullptr;
  AttemptInput in;
  in.job = &a->job;
  in.results = &a->results;
  in.decisive = decisive;  // a detached job's preset
  in.reported = a->reported;
  in.deleted = a->deleted;
  in.envelope = env;
  in.body = a->record == nullptr ? std::string_view() : a->body;
  in.retry = &queues_.retry();
  in.now_us = now_us;
  const AttemptOutcome o = DecideOutcome(in);
  if (!a->reported) ReportAttempt(c, *a, *q, decisive, o, now_us);

  const std::string mx = c != nullptr ? c->target().host : a->mx;
  const std::string ip = c != nullptr ? c->target().ip.ToString() : a->ip;
  const std::string tls = c != nullptr ? c->tls_description() : std::string();
  // The batch ids every record of this job carries (Record reads them).
  record_campaign_ = env != nullptr ? env->campaign : std::string();
  record_tenant_ = env != nullptr ? env->tenant : std::string();
  record_tls_resumed_ = c != nullptr && c->tls_resumed();
  record_dkim_ = std::string(a->signatures_json);
  WriteRecords(*a, o, mx, ip, tls, now_us);

  auto m = messages_.find(a->job.message);
  SLUICE_CHECK(m != messages_.end());
  const uint16_t dir = m->second.dir;
  if (!o.delivered.empty()) host_.ReportFinal(a->job.message, dir, o.delivered);
  if (!o.failed.empty()) SettleFailed(*a, o, dir, mx, now_us);
  ReleaseJob(a->job.message, m->second, o.done());
  const bool detached = a->detached;
  delete a;
  --actives_;
  queues_.Reschedule(*q, now_us);
  if (detached) {
    --detached_loading_;
    StartDetachedLoads();
  }
}

void Engine::ReportAttempt(OutboundConnection* c, const Active& a, queue::DomainQueue& q,
                           const smtp::Reply& decisive, const AttemptOutcome& o, uint64_t now_us) {
  // A reply the gate has already seen (the 421 greeting that failed every
  // ready job) is reported as "no reply": it must not back off once per job.
  const queue::Reply qr{a.counted ? 0 : decisive.code, decisive.text};
  // A 421 closes the connection; OnFinished would count it again.
  if (c != nullptr && decisive.code == 421) c->close_reply_counted = true;
  queue::Job pending = o.pending;
  if (!pending.recipients.empty()) pending.last_error = q.InternError(o.defer_reason);
  const queue::ReportResult rr =
      q.Report(c != nullptr ? c->queue_slot : queue::kNoConnection, std::move(pending), qr, now_us);
  // Both asked the same RetrySchedule the same question.
  SLUICE_CHECK((rr.kind == queue::ReportResult::kExpired) == o.expired);
  SLUICE_CHECK(o.expired || o.pending.recipients.empty() || rr.next_attempt == o.retry_at);
}

void Engine::WriteRecords(const Active& a, const AttemptOutcome& o, const std::string& mx,
                          const std::string& ip, const std::string& tls, uint64_t now_us) {
  const spool::Envelope* env = a.parsed ? &a.parsed->envelope : nullptr;
  const std::string sender = env ? env->sender : std::string();
  const uint32_t attempt = a.job.failures + 1u;
  const uint64_t latency_us = now_us - std::min(now_us, a.job.queued_at());
  stats_.deferred += o.transient;
  for (const RecordEntry& r : o.records) {
    switch (r.type) {
      case log::DeliveryType::kDelivery:
        ++stats_.delivered;
        stats_.delivery_latency.Record(latency_us);
        break;
      case log::DeliveryType::kBounce:
        ++stats_.bounced;
        stats_.delivery_latency.Record(latency_us);
        break;
      case log::DeliveryType::kExpiration:
        ++stats_.expired;
        stats_.delivery_latency.Record(latency_us);
        break;
      case log::DeliveryType::kDeletion:
        ++stats_.deleted;
        break;
      case log::DeliveryType::kTransientFailure:  // counted above, expired or not
        break;
    }
    const spool::Recipient* found = env ? env->FindRecipient(r.index) : nullptr;
    const std::string rcpt = found != nullptr ? found->address : std::string();
    Record(r.type, a.job.message, sender, rcpt, a.domain, mx, ip, r.reply, attempt, tls);
  }
}

void Engine::SettleFailed(const Active& a, const AttemptOutcome& o, uint16_t dir,
                          const std::string& mx, uint64_t now_us) {
  std::vector<uint32_t> indexes;
  for (const Final& f : o.failed) indexes.push_back(f.index);
  const spool::Envelope* env = a.parsed ? &a.parsed->envelope : nullptr;
  if (env != nullptr && env->untrusted) {
    // Its sender is whatever an unauthenticated outsider wrote: a DSN
    // would be backscatter. The Bounce records above are all there is.
    SLUICE_LOG(kNotice, "dsn.not_sent_untrusted",
               absl::StrCat("no DSN for ", a.job.message.ToString(), ": untrusted submitter"),
               {{"id", a.job.message.ToString()}});
  }
  if (o.dsn != DsnVerdict::kSend) return host_.ReportFinal(a.job.message, dir, indexes);
  std::string original = env->added_headers;
  original.append(a.body);
  auto built =
      dsn::BuildDsn(DsnInputFor(o, *env, original, hostname_, mx, config_.retry.max_age, now_us));
  if (!built.ok()) {
    SLUICE_LOG(kWarning, "dsn.not_sent", "no DSN could be built",
               {{"id", a.job.message.ToString()}, {"reason", built.status().message()}});
    return host_.ReportFinal(a.job.message, dir, indexes);
  }
  ++stats_.dsns;
  const base::QueueId id = a.job.message;
  host_.QueueLocal(env->sender, std::move(built->message), built->eight_bit,
                   [this, id, dir, indexes](bool ok) {
                     // Not durable: keep the recipients, so the next
                     // start bounces them again rather than silently.
                     if (ok) host_.ReportFinal(id, dir, indexes);
                   });
}

void Engine::ReleaseJob(base::QueueId id, Message& m, bool done) {
  if (done) {
    if (--m.jobs == 0) {
      records_.Forget(id);
      file_names_.Release(m.file);
      messages_.erase(id);
    }
  } else if (m.jobs == 1) {
    // The message's only job waits for a retry minutes or hours away: a
    // cached copy of its record would only hold memory (a deferred backlog
    // kept the cache at its budget: 1.3 KB of RSS per queued recipient).
    records_.Forget(id);
  }
}

void Engine::Record(log::DeliveryType type, base::QueueId id, const std::string& sender,
                    const std::string& recipient, const std::string& domain, const std::string& mx,
                    const std::string& ip, const smtp::Reply& reply, uint32_t attempt,
                    const std::string& tls) {
  const uint64_t now = ring_.NowWallUs();
  const std::string id_text = id.ToString();
  const std::string enhanced = reply.enhanced.valid() ? reply.enhanced.ToString() : std::string();
  log::DeliveryRecord r;
  r.ts_micros = now;
  r.id = id_text;
  r.sender = sender;
  r.recipient = recipient;
  r.domain = domain;
  r.mx = mx;
  r.ip = ip;
  r.code = reply.local ? 0 : reply.code;
  r.enhanced = enhanced;
  r.text = reply.text;
  r.attempt = attempt;
  r.queue_time_micros = now > id.micros() ? now - id.micros() : 0;
  r.tls = tls;
  r.tls_resumed = !tls.empty() && record_tls_resumed_;
  r.campaign = record_campaign_;
  r.tenant = record_tenant_;
  if (type == log::DeliveryType::kDelivery) r.dkim = record_dkim_;
  host_.accounting().Write(type, r);
}

}  // namespace sluice::delivery
