#include "sluice/delivery/record_cache.h"

#include <utility>

namespace sluice::delivery {
namespace {

absl::StatusOr<RecordPtr> Parse(std::string bytes) {
  auto record = std::make_shared<LoadedRecord>();
  record->bytes = std::move(bytes);
  auto parsed = spool::ParseFile(record->bytes);
  if (!parsed.ok()) return parsed.status();
  record->parsed = *std::move(parsed);
  const spool::Envelope& env = record->parsed.envelope;
  if (env.is_merge()) {
    auto compiled = merge::CompileStored(record->parsed.body, env.merge_fields);
    if (!compiled.ok()) return compiled.status();
    record->compiled = *std::move(compiled);
  }
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
      bytes.ok() ? Parse(*std::move(bytes)) : absl::StatusOr<RecordPtr>(bytes.status());
  std::vector<Done> waiters;
  if (auto it = loading_.find(id); it != loading_.end()) {
    waiters = std::move(it->second);
    loading_.erase(it);
  }
  if (result.ok()) {
    lru_.push_front(id);
    entries_[id] = Entry{*result, lru_.begin()};
    bytes_ += (*result)->bytes.size();
    Trim();
  }
  // Failures are not cached: the next attempt reads again.
  for (Done& d : waiters) d(result);
}

void RecordCache::Forget(base::QueueId id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  bytes_ -= it->second.record->bytes.size();
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
    bytes_ -= e->second.record->bytes.size();
    entries_.erase(e);
    it = lru_.erase(it);
  }
}

}  // namespace sluice::delivery
