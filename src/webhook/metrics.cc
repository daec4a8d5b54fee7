// The webhooks' Prometheus families; see sluice/webhook/metrics.h.
#include "sluice/webhook/metrics.h"

#include <algorithm>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sluice/webhook/webhook.h"

namespace sluice::webhook {
namespace {

std::mutex& Mu() {
  static std::mutex mu;
  return mu;
}
std::vector<const Webhook*>& Hooks() {
  static std::vector<const Webhook*> hooks;
  return hooks;
}

void Family(std::string& out, const char* name, const char* type, const char* help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

void RegisterForMetrics(const Webhook* hook) {
  std::lock_guard lock(Mu());
  Hooks().push_back(hook);
}

void UnregisterForMetrics(const Webhook* hook) {
  std::lock_guard lock(Mu());
  std::erase(Hooks(), hook);
}

void AppendMetrics(std::string& out) {
  std::lock_guard lock(Mu());
  if (Hooks().empty()) return;
  auto each = [&](auto&& sample) {
    for (const Webhook* h : Hooks()) sample(h->name(), h->stats());
  };
  Family(out, "sluice_webhook_records_total", "counter",
         "Accounting records acknowledged (2xx) by the webhook's receiver.");
  each([&](const std::string& n, const WebhookStats& s) {
    absl::StrAppend(&out, "sluice_webhook_records_total{webhook=\"", n, "\"} ",
                    s.records_sent.load(std::memory_order_relaxed), "\n");
  });
  Family(out, "sluice_webhook_posts_total", "counter",
         "POSTs of batches by outcome: ok (2xx) or failed (refused, timeout, other status).");
  each([&](const std::string& n, const WebhookStats& s) {
    absl::StrAppend(&out, "sluice_webhook_posts_total{webhook=\"", n, "\",outcome=\"ok\"} ",
                    s.batches_sent.load(std::memory_order_relaxed), "\n",
                    "sluice_webhook_posts_total{webhook=\"", n, "\",outcome=\"failed\"} ",
                    s.batches_failed.load(std::memory_order_relaxed), "\n");
  });
  Family(out, "sluice_webhook_lag_bytes", "gauge",
         "Bytes of the accounting log not yet acknowledged (updated every second).");
  each([&](const std::string& n, const WebhookStats& s) {
    absl::StrAppend(&out, "sluice_webhook_lag_bytes{webhook=\"", n, "\"} ",
                    s.lag_bytes.load(std::memory_order_relaxed), "\n");
  });
  Family(out, "sluice_webhook_failures_in_row", "gauge",
         "Failed attempts since the last acknowledged batch; above 0 the webhook backs off.");
  each([&](const std::string& n, const WebhookStats& s) {
    absl::StrAppend(&out, "sluice_webhook_failures_in_row{webhook=\"", n, "\"} ",
                    s.failures_in_row.load(std::memory_order_relaxed), "\n");
  });
  Family(out, "sluice_webhook_lines_skipped_total", "counter",
         "Log lines that were not whole records (torn or overlong), never sent.");
  each([&](const std::string& n, const WebhookStats& s) {
    absl::StrAppend(&out, "sluice_webhook_lines_skipped_total{webhook=\"", n, "\"} ",
                    s.lines_skipped.load(std::memory_order_relaxed), "\n");
  });
}

}  // namespace sluice::webhook
