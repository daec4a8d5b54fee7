// The outcome step of one delivery attempt (outcome.h): pure.
#include "outcome.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"

namespace sluice::delivery {

smtp::Reply MakeReply(int code, std::string_view enhanced, std::string text, bool local) {
  smtp::Reply r;
  r.code = code;
  r.local = local;
  size_t used = 0;
  smtp::EnhancedCode::Parse(enhanced, r.enhanced, used);
  r.text = std::move(text);
  r.lines = 1;
  return r;
}

std::string Diagnostic(const smtp::Reply& r) {
  std::string out = absl::StrCat(r.code);
  if (r.enhanced.valid()) absl::StrAppend(&out, " ", r.enhanced.ToString());
  std::string text = r.text;
  std::replace(text.begin(), text.end(), '\n', ';');
  if (!text.empty()) absl::StrAppend(&out, " ", text);
  return out;
}

std::string StatusOf(const smtp::Reply& r, bool expired) {
  if (r.enhanced.valid() && (r.enhanced.cls == 5 || !expired)) return r.enhanced.ToString();
  if (expired) return "4.4.7";
  return r.code >= 500 ? "5.0.0" : "4.0.0";
}

namespace {

// Recipient k's outcome: its own reply, or the attempt's decisive one.
std::pair<smtp::Outcome, smtp::Reply> ResultOf(const AttemptInput& in, size_t k) {
  if (in.results != nullptr && k < in.results->size() && (*in.results)[k]) {
    return *(*in.results)[k];
  }
  const smtp::Reply& reply = in.decisive;
  smtp::Outcome outcome = reply.code >= 500 ? smtp::Outcome::kPermanent : smtp::Outcome::kTransient;
  if (reply.code >= 200 && reply.code < 300) outcome = smtp::Outcome::kDelivered;
  return {outcome, reply};
}

DsnVerdict DsnFor(const AttemptInput& in) {
  if (in.deleted) return DsnVerdict::kDeleted;
  if (in.envelope == nullptr) return DsnVerdict::kNoRecord;
  if (in.envelope->untrusted) return DsnVerdict::kUntrusted;
  if (dsn::LooksLikeDsn(in.envelope->sender, in.body)) return DsnVerdict::kBounce;
  return DsnVerdict::kSend;
}

// The transient recipients once the retry schedule has spoken: all expire
// (one Expiration record each, with its own last reply) or all wait.
void Settle(const AttemptInput& in, std::vector<Final> transient, AttemptOutcome& out) {
  if (transient.empty() || in.reported) {
    for (Final& t : transient) {
      out.records.push_back(RecordEntry{log::DeliveryType::kTransientFailure, t.index, t.reply});
    }
    return;  // (a reported job is the administrator's 5xx: never transient)
  }
  SLUICE_CHECK(in.retry != nullptr);
  const queue::RetryDecision d =
      in.retry->Next(in.job->message, in.job->failures + 1u, in.job->queued_at(), in.now_us);
  if (!d.expire) {
    out.retry_at = d.next;
    for (Final& t : transient) {
      out.records.push_back(RecordEntry{log::DeliveryType::kTransientFailure, t.index, t.reply});
    }
    return;
  }
  out.expired = true;
  for (Final& t : transient) {
    out.records.push_back(RecordEntry{log::DeliveryType::kExpiration, t.index, t.reply});
    out.failed.push_back(std::move(t));
  }
}

}  // namespace

AttemptOutcome DecideOutcome(const AttemptInput& in) {
  SLUICE_CHECK(in.job != nullptr);
  AttemptOutcome out;
  out.pending = *in.job;
  out.pending.recipients.clear();
  std::vector<Final> transient;
  for (size_t k = 0; k < in.job->recipients.size(); ++k) {
    const uint32_t idx = in.job->recipients[k];
    auto [outcome, reply] = ResultOf(in, k);
    switch (outcome) {
      case smtp::Outcome::kDelivered:
        out.records.push_back(RecordEntry{log::DeliveryType::kDelivery, idx, reply});
        out.delivered.push_back(idx);
        break;
      case smtp::Outcome::kPermanent:
        out.records.push_back(RecordEntry{
            in.deleted ? log::DeliveryType::kDeletion : log::DeliveryType::kBounce, idx, reply});
        out.failed.push_back(Final{idx, std::move(reply)});
        break;
      case smtp::Outcome::kTransient:
        if (transient.empty()) out.defer_reason = Diagnostic(reply);
        out.pending.recipients.push_back(idx);
        transient.push_back(Final{idx, std::move(reply)});
        break;
    }
  }
  out.transient = transient.size();
  Settle(in, std::move(transient), out);
  if (!out.failed.empty()) out.dsn = DsnFor(in);
  return out;
}

dsn::DsnInput DsnInputFor(const AttemptOutcome& outcome, const spool::Envelope& envelope,
                          const std::string& original, const std::string& reporting_mta,
                          const std::string& mx, uint64_t max_age_us, uint64_t now_us) {
  dsn::DsnInput in;
  in.reporting_mta = reporting_mta;
  in.original_id = outcome.pending.message.ToString();
  in.original_sender = envelope.sender;
  in.arrival_micros = envelope.arrival_micros;
  in.now_micros = now_us;
  in.expired = outcome.expired;
  in.max_queue_time_micros = max_age_us;
  in.original_message = original;
  for (const Final& f : outcome.failed) {
    dsn::FailedRecipient r;
    const spool::Recipient* rcpt = envelope.FindRecipient(f.index);
    r.address = rcpt != nullptr ? rcpt->address : "";
    r.status = StatusOf(f.reply, outcome.expired && f.reply.code < 500);
    r.remote_mta = f.reply.local ? std::string() : mx;
    r.diagnostic = f.reply.local ? f.reply.text : Diagnostic(f.reply);
    r.last_attempt_micros = now_us;
    in.recipients.push_back(std::move(r));
  }
  return in;
}

}  // namespace sluice::delivery
