// The shard's note routing over the cross-shard mailboxes (shard_notes.h).
#include "shard_notes.h"

#include <optional>

#include "sluice/base/check.h"
#include "sluice/base/strings.h"

namespace sluice::server {
namespace {

// Domains a message's jobs are grouped by with a linear scan; past this
// many, through a map (a batch may have thousands).
constexpr size_t kLinearDomainsMax = 8;

// A message recovered after a clean stop: its recipients that had failed
// keep their failures and wait for their due time (spool/retry_state.h).
// One note per domain and distinct state; recipients never tried (or
// without saved state) go at once, as before.
std::vector<ShardNote> SplitByRetryState(std::vector<ShardNote> notes,
                                         const std::vector<spool::RetryEntry>& retry) {
  absl::flat_hash_map<uint32_t, const spool::RetryEntry*> state;
  for (const spool::RetryEntry& e : retry) {
    for (uint32_t r : e.recipients) state[r] = &e;
  }
  std::vector<ShardNote> out;
  for (const ShardNote& n : notes) {
    const size_t first = out.size();
    for (uint32_t r : n.recipients) {
      const auto it = state.find(r);
      const uint16_t failures = it == state.end() ? 0 : it->second->failures;
      const uint64_t due = it == state.end() ? 0 : it->second->next_attempt_us;
      size_t k = first;
      while (k < out.size() && (out[k].failures != failures || out[k].due_us != due)) ++k;
      if (k == out.size()) {
        ShardNote split = n;
        split.recipients.clear();
        split.failures = failures;
        split.due_us = due;
        out.push_back(std::move(split));
      }
      out[k].recipients.push_back(r);
    }
  }
  return out;
}

ShardNote JobNote(base::QueueId id, const delivery::RecordRef& where, const std::string& domain) {
  ShardNote n;
  n.kind = ShardNote::Kind::kJob;
  n.id = id;
  n.dir = where.dir;
  n.domain = domain;
  n.file = where.file;
  n.offset = where.offset;
  n.length = where.length;
  return n;
}

}  // namespace

void NoteRouter::AnnounceQueued(base::QueueId id, const std::vector<std::string>& recipients) {
  const std::optional<delivery::RecordRef> where = ledger_->Find(id);
  SLUICE_CHECK(where.has_value());  // the stored hook ran before the commit callback
  std::vector<uint32_t> all(recipients.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  AnnounceJobs(id, *where, recipients, all);
}

void NoteRouter::AnnounceQueued(base::QueueId id, const std::vector<std::string_view>& recipients) {
  const std::optional<delivery::RecordRef> where = ledger_->Find(id);
  SLUICE_CHECK(where.has_value());  // the stored hook ran before the commit callback
  std::vector<uint32_t> all(recipients.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  AnnounceJobs(
      id, *where, [&](uint32_t i) { return recipients[i]; }, all, nullptr);
}

void NoteRouter::AnnounceJobs(base::QueueId id, const delivery::RecordRef& where,
                              const std::vector<std::string>& recipients,
                              const std::vector<uint32_t>& indexes,
                              const std::vector<spool::RetryEntry>* retry) {
  AnnounceJobs(
      id, where, [&](uint32_t i) { return std::string_view(recipients[i]); }, indexes, retry);
}

void NoteRouter::AnnounceJobs(base::QueueId id, const delivery::RecordRef& where,
                              absl::FunctionRef<std::string_view(uint32_t)> recipient,
                              const std::vector<uint32_t>& indexes,
                              const std::vector<spool::RetryEntry>* retry) {
  // One note per distinct domain. A message has few domains, scanned
  // linearly; a batch may have thousands, found through a map once the
  // list grows (a linear scan would cost recipients x domains).
  std::vector<ShardNote> notes;
  absl::flat_hash_map<std::string, size_t> by_domain;
  std::string domain;
  for (uint32_t i : indexes) {
    const std::string_view r = recipient(i);
    const size_t at = r.rfind('@');
    domain.assign(at == std::string_view::npos ? std::string_view() : r.substr(at + 1));
    for (char& c : domain) c = base::AsciiLower(c);
    size_t k = notes.size();
    if (notes.size() <= kLinearDomainsMax) {
      for (size_t j = 0; j < notes.size(); ++j) {
        if (notes[j].domain == domain) k = j;
      }
    } else {
      if (by_domain.empty()) {
        for (size_t j = 0; j < notes.size(); ++j) by_domain.emplace(notes[j].domain, j);
      }
      auto it = by_domain.find(domain);
      if (it != by_domain.end()) k = it->second;
    }
    if (k == notes.size()) {
      if (!by_domain.empty()) by_domain.emplace(domain, k);
      notes.push_back(JobNote(id, where, domain));
    }
    notes[k].recipients.push_back(i);
  }
  if (retry != nullptr && !retry->empty()) notes = SplitByRetryState(std::move(notes), *retry);
  for (ShardNote& n : notes) {
    const int owner = OwnerShard(n.domain, mailboxes_.shards());
    Post(owner, std::move(n));
  }
}

void NoteRouter::ReportFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients) {
  // The engine has just buffered this outcome's records: the ledger hears
  // of it once they reached the file (a crash in between then repeats the
  // attempt rather than leaving a recipient no record accounts for).
  const uint64_t mark = log_->mark();
  if (finals_waiting_log_.empty() && log_->Reached(mark)) {
    return SendFinal(id, dir, std::move(recipients));
  }
  finals_waiting_log_.push_back(WaitingFinal{mark, id, dir, std::move(recipients)});
}

void NoteRouter::ReleaseFinals() {
  while (!finals_waiting_log_.empty() && log_->Reached(finals_waiting_log_.front().log_mark)) {
    WaitingFinal& f = finals_waiting_log_.front();
    SendFinal(f.id, f.dir, std::move(f.recipients));
    finals_waiting_log_.pop_front();
  }
}

void NoteRouter::SendFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients) {
  const int home = dir % mailboxes_.shards();
  if (home == index_) {
    ledger_->Final(id, recipients.data(), recipients.size());
    return;
  }
  ShardNote n;
  n.kind = ShardNote::Kind::kFinal;
  n.id = id;
  n.dir = dir;
  n.recipients = std::move(recipients);
  Post(home, std::move(n));
}

void NoteRouter::Post(int target, ShardNote note) {
  // Order per target is kept: once anything waits in the outbox, new notes
  // queue behind it.
  if (outbox_.empty() && mailboxes_.Post(index_, target, std::move(note))) return;
  outbox_.emplace_back(target, std::move(note));
}

void NoteRouter::FlushOutbox() {
  size_t sent = 0;
  for (; sent < outbox_.size(); ++sent) {
    auto& [target, note] = outbox_[sent];
    if (!mailboxes_.Post(index_, target, std::move(note))) break;
  }
  outbox_.erase(outbox_.begin(), outbox_.begin() + static_cast<long>(sent));
}

uint64_t NoteRouter::Drain() {
  return mailboxes_.Drain(index_, [this](ShardNote note) {
    if (note.kind == ShardNote::Kind::kFinal) {
      // Only while the loop runs: after it the ledger can no longer write.
      if (ledger_) ledger_->Final(note.id, note.recipients.data(), note.recipients.size());
      return;
    }
    OwnedDomain& d = owned_domains_[note.domain];
    ++d.messages;
    d.recipients += note.recipients.size();
    if (engine_) {
      engine_->AddJob(note.id, delivery::RecordRef{note.dir, note.file, note.offset, note.length},
                      note.domain, note.recipients, note.failures, note.due_us);
    }
  });
}

}  // namespace sluice::server
