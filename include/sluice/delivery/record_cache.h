// Spool records read back for delivery, shared by every job of a message.
//
// A bulk batch is one record for up to a million recipients (docs/PICKUP.md):
// ~100 MB with its envelope. Each job (a domain's share, or one merged
// recipient) needs the record; reading and parsing it once per job would be
// a million reads of 100 MB. The cache keeps each loaded record (bytes, the
// parsed envelope, the compiled merge template) while any job holds it, plus
// recently used ones up to a byte budget; concurrent loads of one record
// share one read.
//
// A shard keeps only the recipients whose domains it owns (`keep`,
// spool::DecodeOptions): the others are checked and counted, not stored, and
// the envelope's bytes are dropped once decoded when they are large, so a
// batch costs each shard its own recipients and the body.
//
// Pure bookkeeping: the engine supplies the read (Engine::ReadRecord) and
// calls back on the shard thread.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "sluice/base/queue_id.h"
#include "sluice/dkim/signer.h"
#include "sluice/merge/template.h"
#include "sluice/spool/message_file.h"

namespace sluice::delivery {

struct LoadedRecord {
  std::string bytes;         // the record, or only its preamble and body (see above)
  spool::ParsedFile parsed;  // views into bytes
  // A merge batch: the stored template, compiled once.
  std::optional<merge::CompiledTemplate> compiled;
  // Not a merge batch: the message's DKIM signatures, made by the first job
  // that sends it and reused by its other jobs and retries while the record
  // stays cached (the engine's shard is the only user, so mutable is safe).
  mutable std::optional<dkim::Signed> dkim;
  // What the cache counts against its budget: bytes and kept recipients.
  size_t footprint = 0;
};
using RecordPtr = std::shared_ptr<const LoadedRecord>;

class RecordCache {
 public:
  using Reader = std::function<void(std::function<void(absl::StatusOr<std::string>)>)>;
  using Done = std::function<void(absl::StatusOr<RecordPtr>)>;

  using Keep = std::function<bool(std::string_view address)>;
  // `keep` null: every recipient.
  explicit RecordCache(size_t idle_budget_bytes, Keep keep = nullptr)
      : budget_(idle_budget_bytes), keep_(std::move(keep)) {}

  // The record of `id`: from the cache (done runs before Get returns), or
  // read with `read` and parsed (done runs when the read completes; other
  // Gets for the same id meanwhile wait for that one read).
  void Get(base::QueueId id, const Reader& read, Done done);
  // The message is finished: drop its record now.
  void Forget(base::QueueId id);

  size_t size() const { return entries_.size(); }
  size_t bytes() const { return bytes_; }
  uint64_t reads() const { return reads_; }

 private:
  struct Entry {
    RecordPtr record;
    std::list<base::QueueId>::iterator lru;
  };
  void Loaded(base::QueueId id, absl::StatusOr<std::string> bytes);
  void Trim();

  size_t budget_;
  Keep keep_;
  absl::flat_hash_map<base::QueueId, Entry> entries_;
  std::list<base::QueueId> lru_;  // front: most recently used
  absl::flat_hash_map<base::QueueId, std::vector<Done>> loading_;
  size_t bytes_ = 0;
  uint64_t reads_ = 0;
};

}  // namespace sluice::delivery
