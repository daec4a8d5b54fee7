// One webhook's thread: tail, filter, batch, POST, save; see
// sluice/webhook/webhook.h.
#include "sluice/webhook/webhook.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "backoff.h"
#include "sluice/base/clock.h"
#include "sluice/diag/diag.h"

namespace sluice::webhook {
namespace {

std::string Headers(const config::WebhookConfig& c) {
  std::string out = absl::StrCat("X-Sluice-Webhook: ", c.name, "\r\n");
  if (!c.authorization.empty()) absl::StrAppend(&out, "Authorization: ", c.authorization, "\r\n");
  return out;
}

}  // namespace

Webhook::Webhook(config::WebhookConfig config, std::string log_path, std::string state_dir)
    : config_(std::move(config)),
      position_path_(absl::StrCat(state_dir, "/", config_.name, ".position")),
      tailer_(std::move(log_path)),
      filter_(config_.types),
      batch_(config_.batch_max_records, config_.batch_max_bytes),
      random_(std::random_device{}()) {}

absl::Status Webhook::Start() {
  auto url = http::ParseUrl(config_.url);
  if (!url.ok()) return url.status();  // Finalize() checked it
  std::shared_ptr<const tls::Context> tls;
  if (url->tls) {
    tls::ContextOptions options;
    options.mode = tls::Mode::kClient;
    options.verify_peer = true;  // a webhook carries the mail log: never to an unverified peer
    options.ca_file = config_.tls_ca_file;
    auto ctx = tls::Context::Create(options);
    if (!ctx.ok()) {
      return absl::Status(ctx.status().code(),
                          absl::StrCat("webhook ", config_.name, ": ", ctx.status().message()));
    }
    tls = *std::move(ctx);
  }
  poster_.emplace(*std::move(url), Headers(config_), std::move(tls), &stop_, kStopDrainMs);
  auto saved = LoadPosition(position_path_);
  if (!saved.ok()) {
    return absl::Status(saved.status().code(),
                        absl::StrCat("webhook ", config_.name, ": ", saved.status().message(),
                                     " (move the file aside to start the webhook at the end of "
                                     "the log)"));
  }
  const uint64_t now = base::MonotonicMillis();
  if (absl::Status s = tailer_.Start(*saved); !s.ok()) return s;
  saved_ = tailer_.position();
  batch_end_ = saved_;
  if (!saved->has_value()) {
    SLUICE_LOG(kNotice, "webhook.first_start", "first start, sending records logged from now on",
               {{"webhook", config_.name}});
    Save(saved_);
  }
  last_save_ms_ = now;
  return absl::OkStatus();
}

void Webhook::Stop() {
  std::lock_guard lock(mu_);
  stop_.store(true);
  wake_.notify_all();
}

bool Webhook::Sleep(uint64_t ms) {
  std::unique_lock lock(mu_);
  wake_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stop_.load(); });
  return !stop_.load();
}

void Webhook::Save(const Position& p) {
  if (absl::Status s = SavePosition(position_path_, p); !s.ok()) {
    // Not fatal: the position stays older, so more is sent again after a crash.
    SLUICE_LOG(kError, "webhook.position_not_saved",
               "position not saved: records may be sent again after a restart",
               {{"webhook", config_.name}, {"reason", s.message()}});
    return;
  }
  saved_ = p;
  last_save_ms_ = base::MonotonicMillis();
}

bool Webhook::Fill(uint64_t now_ms) {
  while (true) {
    const std::optional<std::string_view> line = tailer_.Peek(now_ms);
    if (!line.has_value()) return false;
    if (filter_.Accepts(*line)) {
      if (!batch_.Fits(*line)) return true;
      if (batch_.empty()) batch_first_ms_ = now_ms;
      batch_.Add(*line);
    }
    tailer_.Consume();
    if (!batch_.empty()) batch_end_ = tailer_.position();
  }
}

bool Webhook::Send(uint32_t timeout_ms) {
  auto status = poster_->Post(batch_.Body(), batch_.records(), timeout_ms);
  if (status.ok() && *status >= 200 && *status < 300) {
    stats_.records_sent.fetch_add(batch_.records(), std::memory_order_relaxed);
    stats_.batches_sent.fetch_add(1, std::memory_order_relaxed);
    batch_.Clear();
    Save(batch_end_);
    if (const uint64_t failures = stats_.failures_in_row.exchange(0); failures > 0) {
      SLUICE_LOG(kNotice, "webhook.receiver_back",
                 absl::StrCat("receiver back after ", failures, " failed attempts"),
                 {{"webhook", config_.name},
                  {"failures", failures},
                  {"failing_ms", base::MonotonicMillis() - failing_since_ms_}});
    }
    return true;
  }
  stats_.batches_failed.fetch_add(1, std::memory_order_relaxed);
  const uint64_t failures = stats_.failures_in_row.fetch_add(1) + 1;
  const uint64_t delay = BackoffMs(static_cast<uint32_t>(std::min<uint64_t>(failures, 64)),
                                   config_.backoff_min_ms, config_.backoff_max_ms, random_());
  Failed(
      status.ok() ? absl::StrCat("HTTP status ", *status) : std::string(status.status().message()),
      delay);
  return false;
}

void Webhook::Failed(const std::string& why, uint64_t delay_ms) {
  const uint64_t now = base::MonotonicMillis();
  const uint64_t failures = stats_.failures_in_row.load();
  if (failures == 1) failing_since_ms_ = now;
  if (failures == 1 || now - last_report_ms_ >= kFailureReportMs) {
    last_report_ms_ = now;
    SLUICE_LOG(kWarning, "webhook.post_failed", "POST failed; the batch is sent again",
               {{"webhook", config_.name},
                {"url", config_.url},
                {"records", batch_.records()},
                {"reason", why},
                {"attempt", failures},
                {"next_ms", delay_ms}});
  }
  // Wait, but keep noticing rotations so none is skipped (log_tailer.h).
  uint64_t left = delay_ms;
  while (left > 0 && !stop_.load()) {
    const uint64_t step = std::min<uint64_t>(left, 500);
    Sleep(step);
    left -= step;
    tailer_.Poll(base::MonotonicMillis());
  }
}

void Webhook::Run() {
  uint64_t stop_deadline = 0;
  uint64_t last_lag_ms = 0;
  while (true) {
    const uint64_t now = base::MonotonicMillis();
    const bool stopping = stop_.load();
    if (stopping && stop_deadline == 0) stop_deadline = now + kStopDrainMs;
    if (stopping && (now >= stop_deadline || stats_.failures_in_row.load() > 0)) break;
    tailer_.Poll(now);
    // A failed batch is sent again as it was: no lines join it meanwhile.
    const bool full = stats_.failures_in_row.load() == 0 ? Fill(now) : true;
    if (now - last_lag_ms >= 1000) {
      const Position at = tailer_.position();
      const bool same_file =
          at.dev == saved_.dev && at.ino == saved_.ino && at.offset >= saved_.offset;
      stats_.lag_bytes.store(tailer_.lag_bytes() + (same_file ? at.offset - saved_.offset : 0),
                             std::memory_order_relaxed);
      stats_.lines_skipped.store(tailer_.lines_skipped(), std::memory_order_relaxed);
      last_lag_ms = now;
    }
    if (batch_.empty()) {
      const Position at = tailer_.position();
      if (!(at == saved_) && (stopping || now - last_save_ms_ >= kIdleSaveMs)) Save(at);
      if (stopping) break;
      Sleep(kIdlePollMs);
      continue;
    }
    const uint64_t waited = now - batch_first_ms_;
    if (!full && !stopping && waited < config_.batch_max_wait_ms) {
      Sleep(std::min<uint64_t>(kIdlePollMs, config_.batch_max_wait_ms - waited));
      continue;
    }
    const uint64_t timeout_ms =
        stopping ? std::min<uint64_t>(config_.timeout_s * 1000ull, stop_deadline - now)
                 : config_.timeout_s * 1000ull;
    Send(static_cast<uint32_t>(std::max<uint64_t>(timeout_ms, 1)));
  }
  if (!batch_.empty() || tailer_.lag_bytes() > 0) {
    SLUICE_LOG(kNotice, "webhook.stopped_behind",
               "stopped with records not yet acknowledged; they are sent after the restart",
               {{"webhook", config_.name}});
  }
}

}  // namespace sluice::webhook
