// A configuration reload (SIGHUP, `sluice reload`), run by the main thread
// of `sluice serve` between its signals.
//
// It loads the configuration again from the same sources as at start-up
// (the file, then the command-line flags kept from then), and compares it
// with the running one (config/reload.h). A restart-only key that changed
// refuses the whole reload; a file that does not load or check fails it;
// either way nothing changes. Otherwise the TLS certificate, password file
// and DKIM keys are re-read (each keeps its previous set when it fails, and
// the reload then stops), the accounting log moves to a new path, and every
// shard is handed the new Config (Shard::RequestReload), which it applies
// on its own thread at its next wake-up; the reload waits (bounded) until
// every shard says it has.
//
// The outcome is one line on stderr ("sluice: reloaded: ...", "sluice:
// reload refused: ...", "sluice: reload failed: ...") and the same line in
// <spool>/reload.status for `sluice reload`:
//   "<pid> <generation> applied|refused|failed\n<line without 'sluice: '>\n"
// written to a temporary file and renamed, so a reader never sees half.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/config/config.h"

namespace sluice::tls {
class Credentials;
class BearerTokenStore;
}  // namespace sluice::tls
namespace sluice::dkim {
class KeyStore;
}  // namespace sluice::dkim

namespace sluice::server {

class Shard;

inline constexpr const char* kReloadStatusFileName = "reload.status";
// How long a reload waits for every shard to apply it. A shard takes it at
// its next wake-up (an eventfd write wakes it at once), so this is only hit
// by a shard stuck in one loop turn.
inline constexpr uint64_t kReloadApplyTimeoutMs = 10'000;

// Loads and checks the configuration as `serve` did at start-up.
using ConfigLoader = std::function<absl::StatusOr<config::Config>()>;

class ConfigReloader {
 public:
  // `loader` empty: every reload fails ("no configuration source").
  // `log_fd` < 0: no accounting log. The pointers outlive the reloader.
  // `http_tokens`: the HTTP admin tokens file, re-read with the others.
  ConfigReloader(const config::Config& running, ConfigLoader loader, std::vector<Shard*> shards,
                 tls::Credentials* credentials, dkim::KeyStore* dkim_keys, int log_fd,
                 tls::BearerTokenStore* http_tokens = nullptr);

  // One reload; prints and records its outcome. True if it was applied.
  bool Reload();

  const config::Config& running() const { return running_; }

 private:
  enum class Outcome { kApplied, kRefused, kFailed };
  bool Finish(Outcome outcome, const std::string& line);
  // Re-reads the certificate/password file and the DKIM keys; appends what
  // it re-read to `done`. An error names what failed.
  absl::Status ReloadFiles(std::vector<std::string>& done);
  // Hands `next` to every shard and waits until each has applied it.
  absl::Status ApplyToShards(const config::Config& next);

  config::Config running_;
  const ConfigLoader loader_;
  const std::vector<Shard*> shards_;
  tls::Credentials* const credentials_;
  dkim::KeyStore* const dkim_keys_;
  const int log_fd_;
  tls::BearerTokenStore* const http_tokens_;
  uint64_t generation_ = 0;
};

}  // namespace sluice::server
