// The webhooks' threads (webhook/webhook.h), one per [[webhook]] entry,
// named "webhook" (pthread_setname_np). Serve() starts them after the
// shards are initialised and before they run, and stops them after the
// shards have joined, so every record of the run is in the log by then and
// each webhook may send what is left (for at most webhook::kStopDrainMs).
// Their state lives in <spool>/webhook/<name>.position.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "sluice/config/config.h"
#include "sluice/webhook/webhook.h"

namespace sluice::server {

class WebhookThreads {
 public:
  WebhookThreads() = default;
  ~WebhookThreads() { Stop(); }
  WebhookThreads(const WebhookThreads&) = delete;
  WebhookThreads& operator=(const WebhookThreads&) = delete;

  absl::Status Start(const config::Config& config);
  void Stop();
  const std::vector<std::unique_ptr<webhook::Webhook>>& webhooks() const { return webhooks_; }

 private:
  std::vector<std::unique_ptr<webhook::Webhook>> webhooks_;
  std::vector<std::thread> threads_;
};

}  // namespace sluice::server
