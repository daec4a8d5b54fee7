// Per-key diagnostic rate limit (see diag/rate_limiter.h).
#include "rate_limiter.h"

namespace sluice::diag {

RateLimiter::Verdict RateLimiter::Admit(std::string_view key, uint64_t now_ms) {
  if (lines_per_window_ == 0) return {true, 0};
  Entry* entry = nullptr;
  for (Entry& e : entries_) {
    if (e.key == key) {
      entry = &e;
      break;
    }
  }
  if (entry == nullptr) {
    if (entries_.size() >= kMaxKeys) return {true, 0};
    entries_.push_back(Entry{key, now_ms, 0, 0});
    entry = &entries_.back();
  }
  if (now_ms >= entry->window_start_ms + window_ms_) {
    entry->window_start_ms = now_ms;
    entry->count = 0;
  }
  if (entry->count >= lines_per_window_) {
    ++entry->suppressed;
    return {false, 0};
  }
  ++entry->count;
  const uint64_t reported = entry->suppressed;
  entry->suppressed = 0;
  return {true, reported};
}

}  // namespace sluice::diag
