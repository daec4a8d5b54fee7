// What a configuration reload (`sluice reload`, SIGHUP) may change: the
// running configuration compared with a freshly loaded one, key by key.
//
// Every key is either reloadable (the shards and the delivery engine pick up
// the new value while running) or restart-only (listeners, the spool, shard
// count, directories, anything built once at start-up). A reload whose new
// configuration differs in any restart-only key is refused as a whole; the
// keys are named so the operator knows what to undo or when to restart.
//
// Trusts: both configurations went through Finalize(). Limits: a key that is
// in Config but missing from the table in reload.cc is never compared; a
// new Config field must be added there (the table is the one list).
#pragma once

#include <string>
#include <vector>

#include "sluice/config/config.h"

namespace sluice::config {

struct ConfigDiff {
  // Restart-only keys whose value differs, e.g. "server.listen".
  std::vector<std::string> restart;
  // Reloadable differences, one per key or list entry:
  // "delivery.max_outbound_connections 2000 -> 100",
  // "route \"*.example.com\" 127.0.0.1:25 -> 127.0.0.2:25",
  // "shaping \"example.com\" messages_per_second 0 -> 5".
  std::vector<std::string> changes;
};

ConfigDiff DiffConfig(const Config& running, const Config& next);

// The lines the daemon prints (and `sluice reload` shows), without the
// "sluice: " prefix:
//   "reload refused: server.listen, spool.dir need a restart; nothing changed"
//   "reloaded: a 1 -> 2, b ...", or "reloaded: configuration unchanged".
// At most kMaxChangesShown changes are listed, then "and N more".
inline constexpr size_t kMaxChangesShown = 20;
std::string RefusedLine(const ConfigDiff& diff);
std::string ReloadedLine(const ConfigDiff& diff);

}  // namespace sluice::config
