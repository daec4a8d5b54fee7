// Starting and stopping the webhooks' threads; see
// sluice/server/webhook_threads.h.
#include "sluice/server/webhook_threads.h"

#include <pthread.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "sluice/tls/tls.h"
#include "sluice/webhook/metrics.h"

namespace sluice::server {

absl::Status WebhookThreads::Start(const config::Config& config) {
  if (config.webhooks.empty()) return absl::OkStatus();
  const std::string dir = absl::StrCat(absl::StripSuffix(config.spool_dir, "/"), "/webhook");
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("create ", dir, ": ", std::strerror(errno)));
  }
  for (const config::WebhookConfig& w : config.webhooks) {
    auto hook = std::make_unique<webhook::Webhook>(w, config.log_file, dir);
    if (absl::Status s = hook->Start(); !s.ok()) return s;
    webhooks_.push_back(std::move(hook));
  }
  for (auto& hook : webhooks_) {
    webhook::RegisterForMetrics(hook.get());
    threads_.emplace_back([h = hook.get()] {
      pthread_setname_np(pthread_self(), "webhook");
      h->Run();
      tls::ReleaseThreadState();  // https handshakes leave wolfSSL state per thread
    });
  }
  return absl::OkStatus();
}

void WebhookThreads::Stop() {
  for (auto& hook : webhooks_) hook->Stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  for (auto& hook : webhooks_) webhook::UnregisterForMetrics(hook.get());
}

}  // namespace sluice::server
