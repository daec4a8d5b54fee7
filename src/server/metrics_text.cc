// See metrics_text.h.
#include "sluice/server/metrics_text.h"

#include <memory>
#include <vector>

#include "shard.h"
#include "sluice/base/clock.h"
#include "sluice/metrics/render.h"
#include "sluice/metrics/snapshot.h"
#include "sluice/webhook/metrics.h"

namespace sluice::server {

std::string MetricsText(Shard& shard) {
  std::shared_ptr<const metrics::ShardSnapshot> own = shard.PublishMetrics();
  std::vector<std::shared_ptr<const metrics::ShardSnapshot>> held;  // alive while rendering
  std::vector<const metrics::ShardSnapshot*> views;
  const metrics::MetricsBoard* board = shard.metrics_board();
  const int shards = board != nullptr ? board->shards() : 1;
  for (int i = 0; i < shards; ++i) {
    std::shared_ptr<const metrics::ShardSnapshot> s =
        i == shard.index() || board == nullptr ? own : board->Latest(i);
    views.push_back(s.get());
    held.push_back(std::move(s));
  }
  std::string text = metrics::RenderMetrics(views, base::WallMicros());
  webhook::AppendMetrics(text);  // the webhooks' threads, when any run
  return text;
}

}  // namespace sluice::server
