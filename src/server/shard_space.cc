// The spool's free-space check (shard_space.h).
#include "shard_space.h"

#include <sys/statvfs.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sluice::server {
namespace {

struct SpaceFigures {
  bool ok = false;
  uint64_t free_bytes = 0;
  uint64_t size_bytes = 0;
};

SpaceFigures StatSpool(const std::string& dir) {
  struct statvfs st;
  if (statvfs(dir.c_str(), &st) != 0) return {};
  return {true, static_cast<uint64_t>(st.f_bavail) * st.f_frsize,
          static_cast<uint64_t>(st.f_blocks) * st.f_frsize};
}

}  // namespace

void SpoolSpace::Check(io::HelperPool* helpers, bool inline_now) {
  std::string dir = absl::StrCat(config_.spool_dir, "/", index_);
  if (inline_now || helpers == nullptr) {
    const SpaceFigures f = StatSpool(dir);
    return Apply(f.ok, f.free_bytes, f.size_bytes);
  }
  if (in_flight_) return;  // a slow disk: one check at a time
  auto result = std::make_shared<SpaceFigures>();
  io::HelperPool::Job job;
  job.work = [result, dir = std::move(dir)] { *result = StatSpool(dir); };
  job.done = [this, result] {
    in_flight_ = false;
    Apply(result->ok, result->free_bytes, result->size_bytes);
  };
  // No free slot: the figures stay as they are until the next tick.
  in_flight_ = helpers->Submit(index_, std::move(job));
}

void SpoolSpace::Apply(bool ok, uint64_t free_bytes, uint64_t size_bytes) {
  if (!ok) {
    available_ = false;
    return;
  }
  available_ = free_bytes >= config_.spool_min_free_bytes;
  free_bytes_ = free_bytes;
  size_bytes_ = size_bytes;
}

}  // namespace sluice::server
