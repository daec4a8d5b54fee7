// The main thread's configuration reload; see sluice/server/config_reload.h.
#include "sluice/server/config_reload.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "shard.h"
#include "sluice/config/reload.h"
#include "sluice/diag/diag.h"
#include "sluice/dkim/signer.h"
#include "sluice/server/log_file.h"
#include "sluice/tls/bearer_tokens.h"
#include "sluice/tls/credentials.h"

namespace sluice::server {
namespace {

// <spool>/reload.status, replaced whole (temporary file, then rename).
void WriteStatus(const std::string& spool_dir, uint64_t generation, const char* word,
                 const std::string& line) {
  const std::string path = absl::StrCat(spool_dir, "/", kReloadStatusFileName);
  const std::string temporary = absl::StrCat(path, ".tmp");
  const std::string text = absl::StrCat(getpid(), " ", generation, " ", word, "\n", line, "\n");
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  bool ok = fd >= 0 && write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (fd >= 0) ok = close(fd) == 0 && ok;
  if (!ok || rename(temporary.c_str(), path.c_str()) != 0) {
    SLUICE_LOG(kWarning, "config.reload_status_not_written", "reload status not written",
               {{"file", path}});
  }
}

}  // namespace

ConfigReloader::ConfigReloader(const config::Config& running, ConfigLoader loader,
                               std::vector<Shard*> shards, tls::Credentials* credentials,
                               dkim::KeyStore* dkim_keys, int log_fd,
                               tls::BearerTokenStore* http_tokens)
    : running_(running),
      loader_(std::move(loader)),
      shards_(std::move(shards)),
      credentials_(credentials),
      dkim_keys_(dkim_keys),
      log_fd_(log_fd),
      http_tokens_(http_tokens) {}

bool ConfigReloader::Finish(Outcome outcome, const std::string& line) {
  switch (outcome) {
    case Outcome::kApplied:
      SLUICE_LOG(kNotice, "config.reloaded", line);
      break;
    case Outcome::kRefused:
      SLUICE_LOG(kWarning, "config.reload_refused", line);
      break;
    case Outcome::kFailed:
      SLUICE_LOG(kError, "config.reload_failed", line);
      break;
  }
  const char* word = outcome == Outcome::kApplied   ? "applied"
                     : outcome == Outcome::kRefused ? "refused"
                                                    : "failed";
  WriteStatus(running_.spool_dir, generation_, word, line);
  return outcome == Outcome::kApplied;
}

bool ConfigReloader::Reload() {
  ++generation_;
  if (!loader_) return Finish(Outcome::kFailed, "reload failed: no configuration source");
  absl::StatusOr<config::Config> next = loader_();
  if (!next.ok()) {
    return Finish(Outcome::kFailed, absl::StrCat("reload failed: ", next.status().message(),
                                                 "; still running the previous configuration"));
  }
  const config::ConfigDiff diff = config::DiffConfig(running_, *next);
  if (!diff.restart.empty()) return Finish(Outcome::kRefused, config::RefusedLine(diff));
  std::vector<std::string> files;
  if (absl::Status s = ReloadFiles(files); !s.ok()) {
    return Finish(Outcome::kFailed,
                  absl::StrCat("reload failed: ", s.message(), "; configuration not changed"));
  }
  if (next->log_file != running_.log_file && log_fd_ >= 0) {
    // The shards write through log_fd_, whose number stays (log_file.h).
    if (absl::Status s = ReopenLogFile(next->log_file, log_fd_); !s.ok()) {
      return Finish(Outcome::kFailed,
                    absl::StrCat("reload failed: ", s.message(), "; configuration not changed"));
    }
  }
  const absl::Status applied = ApplyToShards(*next);
  running_ = *std::move(next);  // handed over: a late shard still takes it
  if (!applied.ok())
    return Finish(Outcome::kFailed, absl::StrCat("reload failed: ", applied.message()));
  std::string line = config::ReloadedLine(diff);
  if (!files.empty()) absl::StrAppend(&line, "; re-read ", absl::StrJoin(files, " and "));
  return Finish(Outcome::kApplied, line);
}

absl::Status ConfigReloader::ReloadFiles(std::vector<std::string>& done) {
  // The lines below are the ones SIGHUP printed before whole-configuration
  // reloads existed; scripts and tests look for them.
  const config::Config& c = running_;
  if (credentials_ != nullptr && (!c.tls_cert_file.empty() || !c.auth_password_file.empty())) {
    if (absl::Status r = credentials_->Reload(); !r.ok()) {
      SLUICE_LOG(kError, "tls.reload_failed",
                 "SIGHUP: TLS certificate or password file: reload failed, keeping the previous "
                 "ones",
                 {{"error", r.message()}});
      return absl::Status(r.code(),
                          absl::StrCat("TLS certificate or password file: ", r.message()));
    }
    SLUICE_LOG(kNotice, "tls.reloaded", "SIGHUP: TLS certificate and password file reloaded");
    done.push_back("the TLS certificate and password file");
  }
  if (dkim_keys_ != nullptr && !c.dkim_signers.empty()) {
    if (absl::Status k = dkim_keys_->Reload(); !k.ok()) {
      SLUICE_LOG(kError, "dkim.reload_failed",
                 "SIGHUP: DKIM keys not reloaded, keeping the previous ones",
                 {{"error", k.message()}});
      return absl::Status(k.code(), absl::StrCat("DKIM keys: ", k.message()));
    }
    SLUICE_LOG(kNotice, "dkim.reloaded", "SIGHUP: DKIM keys reloaded");
    done.push_back("the DKIM keys");
  }
  if (http_tokens_ != nullptr && http_tokens_->configured()) {
    if (absl::Status t = http_tokens_->Reload(); !t.ok()) {
      SLUICE_LOG(kError, "http.tokens_reload_failed",
                 "SIGHUP: HTTP tokens not reloaded, keeping the previous ones",
                 {{"error", t.message()}});
      return absl::Status(t.code(), absl::StrCat("http.tokens_file: ", t.message()));
    }
    done.push_back("the HTTP tokens file");
  }
  return absl::OkStatus();
}

absl::Status ConfigReloader::ApplyToShards(const config::Config& next) {
  auto shared = std::make_shared<const config::Config>(next);
  for (Shard* s : shards_) s->RequestReload(shared, generation_);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kReloadApplyTimeoutMs);
  for (Shard* s : shards_) {
    while (s->reload_applied() < generation_) {
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("shard ", s->index(), " has not applied the new configuration after ",
                         kReloadApplyTimeoutMs / 1000, "s (it will when its loop wakes)"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  return absl::OkStatus();
}

}  // namespace sluice::server
