#include "sluice/delivery/record_cache.h"

#include <utility>

namespace sluice::delivery {
namespace {

// An envelope this much larger than the body is let go once decoded (a
// batch's: tens of megabytes of recipients); a small one stays with the body
// (dropping it would copy the body).
constexpr size_t kDropTrailerOver = 64 * 1024;

size_t Footprint(const LoadedRecord& r) {
  size_t n = r.bytes.size() + r.parsed.envelope.added_headers.size();
  for (const spool::Recipient& rcpt : r.parsed.envelope.recipients) {
    n += sizeof rcpt + rcpt.address.size();
    for (const std::string& v : rcpt.values) n += sizeof v + v.size();
  }
  return n + r.parsed.envelope.recipient_indexes.size() * sizeof(uint32_t);
}

absl::StatusOr<RecordPtr> Parse(std::string bytes, const RecordCache::Keep& keep) {
  auto record = std::make_shared<LoadedRecord>();
  record->bytes = std::move(bytes);
  spool::DecodeOptions options;
  options.keep = keep;
  auto parsed = spool::ParseFile(record->bytes, options);  // every CRC checked here
  if (!parsed.ok()) return parsed.status();
  record->parsed = *std::move(parsed);
  // The body starts right after the preamble (spool/message_file.h).
  const size_t body_end = spool::kPreambleSize + record->parsed.body.size();
  if (record->bytes.size() - body_end > kDropTrailerOver) {
    record->bytes.resize(body_end);
    record->bytes.shrink_to_fit();
    record->parsed.body = std::string_view(record->bytes).substr(spool::kPreambleSize);
  }
  const spool::Envelope& env = record->parsed.envelope;
  if (env.is_merge()) {
    auto compiled = merge::CompileStored(record->parsed.body, env.merge_fields);
    if (!compiled.ok()) return compiled.status();
    record->compiled = *std::move(compiled);
  }
  record->footprint = Footprint(*record);
  return RecordPtr(std::move(record));
}

}  // namespace

void RecordCache::Get(base::QueueId id, const Reader& read, Done done) {
  if (auto it = entries_.find(id); it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    RecordPtr record = it->second.record;
    return done(std::move(record));
  }
  auto [waiting, first] = loading_.try_emplace(id);
  waiting->second.push_back(std::move(done));
  if (!first) return;  // a read is already on its way
  ++reads_;
  read([this, id](absl::StatusOr<std::string> bytes) { Loaded(id, std::move(bytes)); });
}

void RecordCache::Loaded(base::QueueId id, absl::StatusOr<std::string> bytes) {
  absl::StatusOr<RecordPtr> result =
      bytes.ok() ? Parse(*std::move(bytes), keep_) : absl::StatusOr<RecordPtr>(bytes.status());
  std::vector<Done> waiters;
  if (auto it = loading_.find(id); it != loading_.end()) {
    waiters = std::move(it->second);
    loading_.erase(it);
  }
  if (result.ok()) {
    lru_.push_front(id);
    entries_[id] = Entry{*result, lru_.begin()};
    bytes_ += (*result)->footprint;
    Trim();
  }
  // Failures are not cached: the next attempt reads again.
  for (Done& d : waiters) d(result);
}

void RecordCache::Forget(base::QueueId id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  bytes_ -= it->second.record->footprint;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void RecordCache::Trim() {
  // Oldest first; a record a job still holds is skipped (dropping it from
  // the cache would not free it, and the next job would read it again).
  for (auto it = lru_.end(); bytes_ > budget_ && it != lru_.begin();) {
    --it;
    auto e = entries_.find(*it);
    if (e->second.record.use_count() > 1) continue;
    bytes_ -= e->second.record->footprint;
    entries_.erase(e);
    it = lru_.erase(it);
  }
}

}  // namespace sluice::delivery
