// One webhook (a [[webhook]] entry): a thread of its own, not a shard,
// that tails the accounting log (log_tailer.h), keeps the records its type
// filter wants (batch.h), POSTs them as JSON arrays (http_poster.h) and,
// once the receiver answers 2xx, saves the position past them durably
// (position.h). Anything else (refused, timed out, non-2xx) is retried,
// with the same batch, after an exponential backoff with jitter
// (backoff.h). The shards never wait for it: the log file is the queue.
//
// The guarantee (docs/WEBHOOKS.md): at least once. Every record written to
// the log after the webhook's first start reaches the receiver, across
// receiver outages of any length, restarts and kill -9 (the records after
// the last saved position are sent again), and rotations as described in
// log_tailer.h. What it does not cover: records the log itself lost
// (a full disk, log/accounting_log.h), and records in the page cache when
// the machine (not the process) goes down, since the log is not fsynced.
//
// Thread-safety: Start() and the constructor on the main thread, Run() on
// the webhook's thread, Stop() and stats() from anywhere.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "sluice/config/config.h"
#include "sluice/webhook/batch.h"
#include "sluice/webhook/http_poster.h"
#include "sluice/webhook/log_tailer.h"

namespace sluice::webhook {

// While idle at the end of the log, the thread looks for new lines this
// often: 10 ms keeps delivery latency low at ~100 cheap read(2)s a second.
inline constexpr uint64_t kIdlePollMs = 10;
// A position that moved only over filtered-out lines is saved at most this
// often (a crash then re-reads at most this much, sending nothing twice).
inline constexpr uint64_t kIdleSaveMs = 1000;
// At a clean stop, what is logged is sent for at most this long (each POST
// bounded by it too); the rest goes after the restart.
inline constexpr uint64_t kStopDrainMs = 5000;
// While a receiver keeps failing, stderr gets a reminder this often.
inline constexpr uint64_t kFailureReportMs = 60'000;

struct WebhookStats {
  std::atomic<uint64_t> records_sent{0};
  std::atomic<uint64_t> batches_sent{0};     // answered 2xx
  std::atomic<uint64_t> batches_failed{0};   // attempts that failed
  std::atomic<uint64_t> lag_bytes{0};        // logged, not yet acknowledged (approximate)
  std::atomic<uint64_t> failures_in_row{0};  // > 0: backing off
  std::atomic<uint64_t> lines_skipped{0};    // not records (torn or overlong lines)
};

class Webhook {
 public:
  Webhook(config::WebhookConfig config, std::string log_path, std::string state_dir);

  // Loads the saved position and opens the log; before the shards start,
  // so a new webhook begins exactly at the log's end.
  absl::Status Start();
  void Run();
  void Stop();

  const std::string& name() const { return config_.name; }
  const WebhookStats& stats() const { return stats_; }

 private:
  // Moves lines into the batch; true when it is full.
  bool Fill(uint64_t now_ms);
  // One POST of the batch; true on 2xx (and the position saved).
  bool Send(uint32_t timeout_ms);
  void Save(const Position& p);
  void Failed(const std::string& why, uint64_t delay_ms);
  // Sleeps up to ms, waking early for Stop(); false when stopping.
  bool Sleep(uint64_t ms);

  const config::WebhookConfig config_;
  const std::string position_path_;
  LogTailer tailer_;
  TypeFilter filter_;
  Batch batch_;
  std::optional<HttpPoster> poster_;
  Position saved_;
  Position batch_end_;
  uint64_t batch_first_ms_ = 0;
  uint64_t last_save_ms_ = 0;
  uint64_t failing_since_ms_ = 0;
  uint64_t last_report_ms_ = 0;
  std::mt19937_64 random_;
  WebhookStats stats_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<bool> stop_{false};
};

}  // namespace sluice::webhook
