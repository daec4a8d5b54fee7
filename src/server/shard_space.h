// The free space of a shard's spool directory, checked on every tick:
// statvfs runs on a helper thread (a busy disk can block it, and the shard
// must not), one check at a time; at start-up, inline. Below
// spool_min_free_bytes, or when statvfs fails, the spool is unavailable and
// new mail waits (452). Shard thread only.
#pragma once

#include <cstdint>

#include "sluice/config/config.h"
#include "sluice/io/helper_pool.h"

namespace sluice::server {

class SpoolSpace {
 public:
  // `config`: the shard's own copy (a reload changes it in place); kept.
  SpoolSpace(int index, const config::Config& config) : index_(index), config_(config) {}

  // Starts a check. `helpers` null, or `inline_now`: runs it here and now.
  // With a check still in flight, or no helper slot free, the figures stay
  // as they are until the next call.
  void Check(io::HelperPool* helpers, bool inline_now = false);

  bool available() const { return available_; }
  uint64_t free_bytes() const { return free_bytes_; }
  uint64_t size_bytes() const { return size_bytes_; }

 private:
  void Apply(bool ok, uint64_t free_bytes, uint64_t size_bytes);

  const int index_;
  const config::Config& config_;
  bool available_ = true;
  uint64_t free_bytes_ = 0;
  uint64_t size_bytes_ = 0;
  bool in_flight_ = false;  // a statvfs job is on a helper
};

}  // namespace sluice::server
