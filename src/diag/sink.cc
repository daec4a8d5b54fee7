// Where diagnostic lines go (see diag/diag.h): per-shard rings drained by
// the `log-writer` thread, a small shared queue for the other threads, and
// a synchronous path before the writer starts and after it stops.
//
// The shared state is one heap object that is never freed, so a writer
// abandoned on a wedged stderr can outlive static destruction at exit.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "byte_ring.h"
#include "rate_limiter.h"
#include "sluice/base/clock.h"
#include "sluice/diag/diag.h"

namespace sluice::diag {
namespace {

constexpr uint64_t kWindowMs = 1000;
// A synchronous write waits at most this long for a non-blocking stderr.
constexpr int kSyncPollMs = 1000;

struct Channel {
  explicit Channel(int index) : shard(index), ring(kShardBufferBytes) {}
  const int shard;
  ByteRing ring;
  std::atomic<uint64_t> dropped{0};  // since the writer last reported
  bool in_use = false;               // guarded by Sink::channels_mu
};

struct Sink {
  std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
  Options options;  // written by Configure on the main thread only

  std::mutex channels_mu;
  std::vector<std::unique_ptr<Channel>> channels;

  std::mutex shared_mu;
  std::string shared;           // other threads' lines while the writer runs
  uint64_t shared_dropped = 0;  // guarded by shared_mu

  std::mutex write_mu;  // one writer of the descriptor at a time
  std::atomic<bool> writer_running{false};
  std::atomic<bool> stop{false};
  std::atomic<bool> wedged{false};
  std::atomic<uint32_t> wake{0};
  std::thread writer;
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;

  std::atomic<uint64_t> lines{0}, dropped{0}, suppressed{0};
};

Sink& S() {
  static Sink* sink = new Sink;  // never freed (see the file comment)
  return *sink;
}

struct ThreadState {
  Channel* channel = nullptr;
  RateLimiter limiter{kDefaultLinesPerKeyPerSecond, kWindowMs};
  uint64_t pending_suppressed = 0;
  std::string line;
};
thread_local ThreadState t_state;

// Writes all of `data`; false if the descriptor refused it. `poll_ms` < 0
// waits as long as it takes (the writer thread); otherwise a non-blocking
// descriptor gets that long.
bool WriteAll(int fd, std::string_view data, int poll_ms) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, poll_ms) <= 0) return false;
    } else {
      return false;
    }
  }
  return true;
}

void WriteNow(std::string_view line) {
  Sink& s = S();
  if (s.wedged.load(std::memory_order_relaxed)) {
    s.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::lock_guard lock(s.write_mu);
  if (!WriteAll(s.options.fd, line, kSyncPollMs)) s.dropped.fetch_add(1, std::memory_order_relaxed);
}

void Wake() {
  Sink& s = S();
  s.wake.fetch_add(1, std::memory_order_release);
  s.wake.notify_one();
}

void AppendDropNote(int shard, uint64_t count, std::string& out) {
  const Field fields[] = {{"count", count}};
  AppendLine(
      Event{Level::kWarning, "diag.dropped", shard,
            "diagnostic lines dropped: the buffer was full (stderr slow or not read)", fields, 0},
      S().options.prefix, base::WallMicros(), out);
}

// Everything buffered, in order per source, plus drop notes.
void Collect(std::string& batch) {
  Sink& s = S();
  {
    std::lock_guard lock(s.channels_mu);
    for (auto& c : s.channels) {
      c->ring.DrainTo(batch);
      if (const uint64_t n = c->dropped.exchange(0, std::memory_order_relaxed); n > 0) {
        AppendDropNote(c->shard, n, batch);
      }
    }
  }
  std::lock_guard lock(s.shared_mu);
  batch += s.shared;
  s.shared.clear();
  if (s.shared_dropped > 0) AppendDropNote(-1, s.shared_dropped, batch);
  s.shared_dropped = 0;
}

void WriterLoop() {
  NameThisThread("log-writer");
  Sink& s = S();
  std::string batch;
  while (true) {
    const uint32_t seen = s.wake.load(std::memory_order_acquire);
    const bool stopping = s.stop.load(std::memory_order_acquire);
    batch.clear();
    {
      // Held from taking the lines to writing them, so that EmitNow (which
      // takes it too) never overtakes lines already taken.
      std::lock_guard lock(s.write_mu);
      Collect(batch);
      if (!batch.empty() && !WriteAll(s.options.fd, batch, -1)) {
        s.dropped.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (stopping) break;
    if (batch.empty()) s.wake.wait(seen, std::memory_order_acquire);
  }
  std::lock_guard lock(s.done_mu);
  s.done = true;
  s.done_cv.notify_all();
}

void Deliver(std::string_view line) {
  Sink& s = S();
  s.lines.fetch_add(1, std::memory_order_relaxed);
  if (!s.writer_running.load(std::memory_order_acquire)) return WriteNow(line);
  if (Channel* c = t_state.channel; c != nullptr) {
    if (c->ring.TryPush(line)) {
      Wake();
    } else {
      c->dropped.fetch_add(1, std::memory_order_relaxed);
      s.dropped.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  {
    std::lock_guard lock(s.shared_mu);
    if (s.shared.size() + line.size() > kSharedBufferBytes) {
      ++s.shared_dropped;
      s.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    s.shared += line;
  }
  Wake();
}

// JOURNAL_STREAM names stderr itself (not an inherited leftover).
bool StderrIsJournal(int fd) {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  const std::string_view text(env);
  const char* const end = text.data() + text.size();
  uint64_t dev = 0, ino = 0;
  const auto d = std::from_chars(text.data(), end, dev);
  if (d.ec != std::errc() || d.ptr == end || *d.ptr != ':') return false;
  const auto i = std::from_chars(d.ptr + 1, end, ino);
  if (i.ec != std::errc() || i.ptr != end) return false;
  struct stat st {};
  return fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_dev) == dev &&
         static_cast<uint64_t>(st.st_ino) == ino;
}

}  // namespace

void Key::NotAKey() {}

Options OptionsFromEnvironment(std::string* problem) {
  Options o;
  if (const char* level = std::getenv("SLUICE_LOG_LEVEL"); level != nullptr) {
    if (std::optional<Level> l = ParseLevel(level)) {
      o.min_level = *l;
    } else if (problem != nullptr) {
      *problem = absl::StrCat("SLUICE_LOG_LEVEL=", level,
                              " is not error, warning, notice, info or debug; using info");
    }
  }
  if (const char* rate = std::getenv("SLUICE_LOG_RATE"); rate != nullptr) {
    if (!absl::SimpleAtoi(rate, &o.lines_per_key_per_second) && problem != nullptr) {
      *problem = absl::StrCat("SLUICE_LOG_RATE=", rate, " is not a number of lines; using ",
                              kDefaultLinesPerKeyPerSecond);
      o.lines_per_key_per_second = kDefaultLinesPerKeyPerSecond;
    }
  }
  o.prefix = StderrIsJournal(o.fd) ? Prefix::kJournald : Prefix::kTimestamp;
  return o;
}

void Configure(const Options& options) {
  Sink& s = S();
  s.options = options;
  s.min_level.store(static_cast<int>(options.min_level), std::memory_order_relaxed);
}

const Options& CurrentOptions() { return S().options; }

void StartWriter() {
  Sink& s = S();
  if (s.writer_running.load()) return;
  s.stop.store(false);
  s.wedged.store(false);
  s.done = false;
  s.writer = std::thread(WriterLoop);
  // Named from here too, so the name is there when StartWriter returns
  // (the thread's own NameThisThread may not have run yet).
  pthread_setname_np(s.writer.native_handle(), "log-writer");
  s.writer_running.store(true, std::memory_order_release);
}

void StopWriter(uint64_t timeout_ms) {
  Sink& s = S();
  if (!s.writer_running.load()) return;
  s.stop.store(true, std::memory_order_release);
  Wake();
  std::unique_lock lock(s.done_mu);
  const bool finished =
      s.done_cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return s.done; });
  lock.unlock();
  // Lines from now on are written synchronously (or dropped if wedged).
  s.writer_running.store(false, std::memory_order_release);
  if (finished) {
    s.writer.join();
  } else {
    s.wedged.store(true);
    s.writer.detach();
  }
}

void NameThisThread(std::string_view name) {
  char buf[16];
  const size_t n = std::min(name.size(), sizeof buf - 1);
  std::copy_n(name.data(), n, buf);
  buf[n] = '\0';
  pthread_setname_np(pthread_self(), buf);
}

ShardScope::ShardScope(int shard) {
  NameThisThread(absl::StrCat("shard-", shard));
  Sink& s = S();
  std::lock_guard lock(s.channels_mu);
  Channel* channel = nullptr;
  for (auto& c : s.channels) {
    if (c->shard == shard && !c->in_use) channel = c.get();
  }
  if (channel == nullptr) {
    s.channels.push_back(std::make_unique<Channel>(shard));
    channel = s.channels.back().get();
  }
  channel->in_use = true;
  t_state.channel = channel;
  t_state.limiter = RateLimiter(s.options.lines_per_key_per_second, kWindowMs);
}

ShardScope::~ShardScope() {
  Sink& s = S();
  std::lock_guard lock(s.channels_mu);
  t_state.channel->in_use = false;
  t_state.channel = nullptr;
}

bool Admit(Level level, Key key) {
  Sink& s = S();
  if (static_cast<int>(level) > s.min_level.load(std::memory_order_relaxed)) return false;
  if (t_state.channel == nullptr) return true;
  const RateLimiter::Verdict v = t_state.limiter.Admit(key.view(), base::MonotonicMillis());
  if (!v.admit) {
    s.suppressed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  t_state.pending_suppressed = v.suppressed;
  return true;
}

void Emit(Level level, Key key, std::string_view msg, std::initializer_list<Field> fields) {
  ThreadState& t = t_state;
  const int shard = t.channel != nullptr ? t.channel->shard : -1;
  t.line.clear();
  AppendLine(Event{level, key.view(), shard, msg,
                   std::span<const Field>(fields.begin(), fields.size()), t.pending_suppressed},
             S().options.prefix, base::WallMicros(), t.line);
  t.pending_suppressed = 0;
  Deliver(t.line);
}

void EmitNow(Level level, Key key, std::string_view msg, std::initializer_list<Field> fields) {
  if (static_cast<int>(level) > S().min_level.load(std::memory_order_relaxed)) return;
  ThreadState& t = t_state;
  std::string line;
  AppendLine(Event{level, key.view(), t.channel != nullptr ? t.channel->shard : -1, msg,
                   std::span<const Field>(fields.begin(), fields.size()), 0},
             S().options.prefix, base::WallMicros(), line);
  Sink& s = S();
  s.lines.fetch_add(1, std::memory_order_relaxed);
  if (s.wedged.load(std::memory_order_relaxed)) return;
  // The other threads' queued lines first (the ready line, say): the
  // process is about to end and the writer would never get to them. Lines
  // still in the shards' rings are the writer's alone to take; they are lost.
  std::lock_guard lock(s.write_mu);
  std::string out;
  {
    std::lock_guard shared_lock(s.shared_mu);
    out.swap(s.shared);
  }
  out += line;
  if (!WriteAll(s.options.fd, out, kSyncPollMs)) s.dropped.fetch_add(1, std::memory_order_relaxed);
}

void Tick() {
  ThreadState& t = t_state;
  if (t.channel == nullptr) return;
  if (static_cast<int>(Level::kNotice) > S().min_level.load(std::memory_order_relaxed)) return;
  t.limiter.TakeQuiet(base::MonotonicMillis(), [&](std::string_view key, uint64_t count) {
    const Field fields[] = {{"suppressed_key", key}, {"count", count}};
    t.line.clear();
    AppendLine(Event{Level::kNotice, "diag.suppressed", t.channel->shard,
                     "lines held back by the per-key rate limit", fields, 0},
               S().options.prefix, base::WallMicros(), t.line);
    Deliver(t.line);
  });
}

Counters GetCounters() {
  Sink& s = S();
  return Counters{s.lines.load(), s.dropped.load(), s.suppressed.load()};
}

}  // namespace sluice::diag
