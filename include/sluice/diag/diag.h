// Diagnostics: one line per event, with a level and a stable dotted key
// (docs/DIAGNOSTICS.md lists them), that never blocks a shard.
//
//   SLUICE_LOG(kWarning, "tls.handshake_failed", "TLS handshake failed",
//              {{"peer", client_ip_}, {"reason", why}});
//
// The line format is diag/format.h. Where it goes:
//   - A shard thread (inside a ShardScope) while the writer runs: the line
//     is copied into the shard's own ByteRing and the `log-writer` thread
//     writes it to stderr. A full ring drops the line and counts it; the
//     writer then writes `diag.dropped count=N`. A shard never waits for
//     stderr, whatever is (not) reading it.
//   - Any other thread while the writer runs (the main thread: reload,
//     signals): a small mutex-guarded queue, also written by the writer.
//   - Before StartWriter / after StopWriter (start-up, the final summary,
//     `sluice` commands, unit tests): written at once, synchronously.
// On a shard thread each key is rate-limited (RateLimiter): at most
// lines_per_key_per_second lines per key and second, the rest counted as
// `suppressed=N` on the next line of the key or in a `diag.suppressed`
// summary from Tick().
//
// Trust: messages and field values may hold anything a peer sent; the
// formatter escapes them. Keys are compile-time literals of [a-z0-9_.].
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "sluice/diag/format.h"

namespace sluice::diag {

// A message key: a string literal of [a-z0-9_.], checked when it compiles.
class Key {
 public:
  template <size_t N>
  consteval Key(const char (&text)[N]) : text_(text, N - 1) {
    if (N <= 1) NotAKey();
    for (size_t i = 0; i + 1 < N; ++i) {
      const char c = text[i];
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
      if (!ok) NotAKey();
    }
  }
  constexpr std::string_view view() const { return text_; }

 private:
  // Not constexpr: reaching it while a key is checked fails the build.
  static void NotAKey();
  std::string_view text_;
};

// At most this many lines per key per second on one shard by default
// (SLUICE_LOG_RATE overrides; 0 = no limit): enough to see the shape of a
// problem, few enough that a flood of bad clients cannot flood journald.
inline constexpr uint32_t kDefaultLinesPerKeyPerSecond = 10;
// Each shard's buffer: about 500 lines of 250 bytes, room for a burst
// while the writer is busy; memory is fixed per shard.
inline constexpr size_t kShardBufferBytes = 128 * 1024;
// The other threads' shared queue (the main thread writes little).
inline constexpr size_t kSharedBufferBytes = 64 * 1024;

struct Options {
  Level min_level = Level::kInfo;
  Prefix prefix = Prefix::kTimestamp;
  uint32_t lines_per_key_per_second = kDefaultLinesPerKeyPerSecond;
  int fd = 2;  // stderr; tests pass a pipe
};

// Options from the environment: SLUICE_LOG_LEVEL (error, warning, notice,
// info, debug), SLUICE_LOG_RATE (lines per key per second per shard), and
// journald detection: JOURNAL_STREAM ("<dev>:<inode>", systemd.exec(5))
// naming the very file stderr is. A bad value keeps the default and is
// described in `*problem`.
Options OptionsFromEnvironment(std::string* problem);

// From the main thread, before StartWriter (or between runs).
void Configure(const Options& options);
const Options& CurrentOptions();

// Starts the `log-writer` thread. Call with signals already blocked (the
// thread inherits the mask).
void StartWriter();
// Writes what is buffered and joins the writer. If stderr does not take
// the lines within `timeout_ms` (nobody reads the pipe), the writer is
// abandoned and later lines are dropped, so shutdown never hangs on it.
void StopWriter(uint64_t timeout_ms);

// Names the calling thread (`top -H`, `ps -L`, strace), cut to the 15
// bytes Linux keeps.
void NameThisThread(std::string_view name);

// For a shard thread's lifetime: names it `shard-N`, gives it a ByteRing
// and a rate limiter, and adds `shard=N` to its lines.
class ShardScope {
 public:
  explicit ShardScope(int shard);
  ~ShardScope();
  ShardScope(const ShardScope&) = delete;
  ShardScope& operator=(const ShardScope&) = delete;
};

// On a shard's tick: a `diag.suppressed` summary for every key that went
// quiet with lines suppressed. No-op off a shard.
void Tick();

// Counters since the process started (tests, and a metrics hook later).
struct Counters {
  uint64_t lines = 0;       // lines handed to a buffer or written synchronously
  uint64_t dropped = 0;     // lines lost to a full buffer or a wedged stderr
  uint64_t suppressed = 0;  // lines held back by the rate limit
};
Counters GetCounters();

// The macro's two halves: Admit (level and rate, before any formatting),
// then Emit.
bool Admit(Level level, Key key);
void Emit(Level level, Key key, std::string_view msg, std::initializer_list<Field> fields = {});
// Written synchronously from any thread, past the rate limit, after the
// other threads' queued lines: only for a line that must be out before the
// process ends (an abort hook). It may block on stderr.
void EmitNow(Level level, Key key, std::string_view msg, std::initializer_list<Field> fields = {});

}  // namespace sluice::diag

// SLUICE_LOG(kWarning, "key.name", msg [, {{"field", value}, ...}])
#define SLUICE_LOG(level, key, ...)                                         \
  do {                                                                      \
    if (::sluice::diag::Admit(::sluice::diag::Level::level, key)) {         \
      ::sluice::diag::Emit(::sluice::diag::Level::level, key, __VA_ARGS__); \
    }                                                                       \
  } while (0)

// The same, written at once (EmitNow): only right before the process ends.
#define SLUICE_LOG_NOW(level, key, ...) \
  ::sluice::diag::EmitNow(::sluice::diag::Level::level, key, __VA_ARGS__)
