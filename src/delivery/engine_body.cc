// What one job sends after MAIL/RCPT: the DKIM-Signature fields, the
// record's added headers and the body (the spooled one, or this recipient's
// rendering of a mail-merge template), with over-long lines re-encoded
// first; handed to the session in kBodyPiece pieces as it asks for them
// (OnBodyWanted), dot-stuffed by smtp::ClientSession.
//
// Trusts: the record (checked by record_cache.h, merge template compiled
// there). Limits: the body is held whole in memory (the record).
#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine_parts.h"
#include "sluice/base/check.h"
#include "sluice/diag/diag.h"
#include "sluice/merge/template.h"
#include "sluice/smtp/long_lines.h"

namespace sluice::delivery {

// RFC 5322 2.1.1: a part with a line over 998 octets (accepted up to
// server.max_data_line_length) leaves re-encoded (smtp/long_lines.h). Runs
// on the final body, before anything that signs it.
static void FitLineLength(std::string_view& body, std::string& storage) {
  if (auto fitted = smtp::ReencodeLongLines(body)) {
    storage = *std::move(fitted);
    body = storage;
  }
}

void Engine::PrepareBody(Active* a) {
  const spool::Envelope& env = a->parsed->envelope;
  a->body = a->parsed->body;
  if (!env.is_merge() || a->job.recipients.empty()) return FitLineLength(a->body, a->rendered);
  // A mail merge: every recipient gets its own rendering, so its own
  // transaction. The job's other recipients become jobs of their own,
  // ready at once and with the same attempt count.
  if (!a->detached && a->job.recipients.size() > 1) {
    queue::DomainQueue* q = queues_.Find(a->domain);
    auto m = messages_.find(a->job.message);
    SLUICE_CHECK(q != nullptr && m != messages_.end());
    for (size_t k = 1; k < a->job.recipients.size(); ++k) {
      // Copied whole, then narrowed: GCC 12 sees a default-built Job's
      // InlinedVector as "maybe uninitialized" when moved (-Werror).
      queue::Job j = a->job;
      j.recipients.assign(1, a->job.recipients[k]);
      q->Enqueue(std::move(j));
      ++m->second.jobs;
    }
    a->job.recipients.resize(1);
    queues_.Reschedule(*q, ring_.NowWallUs());
  }
  // Detached outcomes (a DNS failure for the whole domain) render for the
  // first recipient: the DSN quotes that recipient's headers.
  const uint32_t idx = a->job.recipients.front();
  static const std::vector<std::string> kNoValues;
  const spool::Recipient* rcpt = env.FindRecipient(idx);
  const std::vector<std::string>& values = rcpt != nullptr ? rcpt->values : kNoValues;
  // Compiled once per record (RecordCache checked it against merge_fields).
  SLUICE_CHECK(a->record->compiled.has_value());
  if (env.message_id_host.empty()) {
    a->rendered = merge::Render(*a->record->compiled, values);
  } else {
    // The template has no Message-ID: this recipient's message gets its own.
    a->rendered =
        absl::StrCat("Message-ID: <", env.id.ToString(), ".", idx, "@", env.message_id_host,
                     ">\r\n", merge::Render(*a->record->compiled, values));
  }
  a->body = a->rendered;
  FitLineLength(a->body, a->rendered);
}

void Engine::SignBody(Active* a) {
  if (dkim_ == nullptr) return;
  const uint64_t now_s = ring_.NowWallUs() / 1000000;
  bool shared = !a->parsed->envelope.is_merge();
  // A cached signature past half its x= lifetime is not sent again; this
  // job signs for itself (the cached fields stay: other jobs may be sending
  // them).
  const auto& cached = a->record->dkim;
  if (shared && cached && cached->expires_s != 0 &&
      now_s >= cached->time_s + (cached->expires_s - cached->time_s) / 2) {
    shared = false;
  } else if (shared && cached) {  // signed by an earlier job of this message
    ++stats_.dkim_reused;
    a->signatures = a->record->dkim->fields;
    a->signatures_json = a->record->dkim->json;
    return;
  }
  auto made = dkim_->Sign(a->parsed->envelope.added_headers, a->body, now_s);
  if (!made.ok()) {  // a key that cannot sign: send unsigned, say why
    SLUICE_LOG(kWarning, "dkim.sign_failed", "DKIM signing failed; sent unsigned",
               {{"id", a->job.message.ToString()}, {"reason", made.status().message()}});
    return;
  }
  if (!made->fields.empty()) ++stats_.dkim_signed;
  const dkim::Signed& kept = shared && !cached ? a->record->dkim.emplace(*std::move(made))
                                               : (a->own_signatures = *std::move(made));
  a->signatures = kept.fields;
  a->signatures_json = kept.json;
}

void Engine::OnBodyWanted(OutboundConnection& c) {
  auto* a = static_cast<Active*>(c.job);
  if (a == nullptr || !a->parsed || a->body_ended) return;
  // Sent in order: signatures, the added headers, the body.
  const std::string_view sigs = a->signatures;
  const std::string_view added = a->parsed->envelope.added_headers;
  const std::string_view body = a->body;
  const size_t head_size = sigs.size() + added.size();
  const size_t total = head_size + body.size();
  smtp::ClientSession& s = c.session();
  while (a->body_pos < total && !s.body_paused()) {
    if (a->body_pos < sigs.size()) {
      s.AppendBody(sigs.substr(a->body_pos));
      a->body_pos = sigs.size();
    } else if (a->body_pos < head_size) {
      s.AppendBody(added.substr(a->body_pos - sigs.size()));
      a->body_pos = head_size;
    } else {
      const size_t n = std::min(kBodyPiece, total - a->body_pos);
      s.AppendBody(body.substr(a->body_pos - head_size, n));
      a->body_pos += n;
    }
  }
  if (a->body_pos == total && !a->body_ended && s.state() == smtp::ClientSession::State::kBody) {
    a->body_ended = true;
    s.EndBody();
  }
  c.Send();
}

}  // namespace sluice::delivery
