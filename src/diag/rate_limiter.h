// Per-key rate limit for diagnostic lines, one instance per shard thread:
// at most `lines_per_window` lines of one key per window; the rest are
// counted, and the count rides on the key's next admitted line
// (`suppressed=N`) or, if the key goes quiet, on a `diag.suppressed`
// summary that TakeQuiet reports. A flood of bad clients therefore costs
// journald a few lines per second per key and shard, not one per client.
//
// Pure: time is passed in. Keys are the string literals the SLUICE_LOG
// macro insists on, so entries keep views into them. Limit: kMaxKeys keys
// are tracked per thread (there are fewer call sites than that); a key
// beyond them is admitted unlimited rather than lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sluice::diag {

class RateLimiter {
 public:
  static constexpr size_t kMaxKeys = 256;

  struct Verdict {
    bool admit = false;
    uint64_t suppressed = 0;  // to report on this line (admit only)
  };

  RateLimiter(uint32_t lines_per_window, uint64_t window_ms)
      : lines_per_window_(lines_per_window), window_ms_(window_ms) {}

  // lines_per_window 0: no limit.
  void set_lines_per_window(uint32_t lines) { lines_per_window_ = lines; }

  Verdict Admit(std::string_view key, uint64_t now_ms);

  // Calls f(key, count) for every key whose window has ended with lines
  // suppressed and not yet reported, and forgets the count.
  template <typename F>
  void TakeQuiet(uint64_t now_ms, F&& f) {
    for (Entry& e : entries_) {
      if (e.suppressed > 0 && now_ms >= e.window_start_ms + window_ms_) {
        f(e.key, e.suppressed);
        e.suppressed = 0;
      }
    }
  }

 private:
  struct Entry {
    std::string_view key;
    uint64_t window_start_ms = 0;
    uint32_t count = 0;
    uint64_t suppressed = 0;
  };

  uint32_t lines_per_window_;
  uint64_t window_ms_;
  std::vector<Entry> entries_;
};

}  // namespace sluice::diag
