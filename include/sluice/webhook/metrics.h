// The webhooks' counters on /metrics (docs/METRICS.md, "Webhooks"): a
// process-wide list of the running webhooks, registered by
// server/webhook_threads.cc for the life of their threads, and the
// Prometheus text of their WebhookStats, appended to a scrape by
// server/metrics_text.cc. Families appear only when a webhook runs.
// Label values are webhook names ([A-Za-z0-9_-], checked by the
// configuration), so they need no escaping.
#pragma once

#include <string>

namespace sluice::webhook {

class Webhook;

void RegisterForMetrics(const Webhook* hook);
void UnregisterForMetrics(const Webhook* hook);
void AppendMetrics(std::string& out);

}  // namespace sluice::webhook
