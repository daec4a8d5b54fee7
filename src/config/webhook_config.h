// [[webhook]]: reading the array of tables and checking the entries (for
// src/config only; the public type is config::WebhookConfig in config.h).
// The registry's reader, ReadWebhookTables, is declared in tables.h with
// the other tables; it hands the array to ReadWebhooks below.
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "sluice/config/config.h"
#include "toml_walk.h"

namespace sluice::config {

// `node` is the root's "webhook" value; errors read
// "<source>:<line>: webhook.<key>: <problem>".
absl::Status ReadWebhooks(std::string_view source, const toml::node& node,
                          std::vector<WebhookConfig>& out);

// Finalize()'s checks: ranges, URLs, names unique, types known, and an
// accounting log to read (log_file is resolved by then).
absl::Status CheckWebhooks(const Config& config);

}  // namespace sluice::config
