// `sluice serve` (server.h): the process around the shards, its start-up
// and shutdown order written out in Serve() at the end of this file; what
// is recovered from the spool first is startup_recovery.cc.
#include "sluice/server/server.h"

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <latch>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shard.h"
#include "sluice/base/clock.h"
#include "sluice/base/limits.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"
#include "sluice/dkim/signer.h"
#include "sluice/pickup/ingester.h"
#include "sluice/pickup/pickup_directory.h"
#include "sluice/server/client_limiter.h"
#include "sluice/server/config_reload.h"
#include "sluice/server/log_file.h"
#include "sluice/server/memory_trim.h"
#include "sluice/server/sd_notify.h"
#include "sluice/server/startup_report.h"
#include "sluice/server/webhook_threads.h"
#include "sluice/spool/spool_directory.h"
#include "sluice/spool/spool_lock.h"
#include "sluice/tls/bearer_tokens.h"
#include "sluice/tls/credentials.h"
#include "startup_recovery.h"

namespace sluice::server {
namespace {

// 2,000+ concurrent connections need more than the usual 1,024 descriptors.
void RaiseFileLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

void PinToCpu(int shard) {
  const int cpus = static_cast<int>(std::thread::hardware_concurrency());
  if (cpus <= 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(shard % cpus, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void Notify(SystemdNotifier& systemd, std::string_view state) {
  if (absl::Status s = systemd.Notify(state); !s.ok()) {
    SLUICE_LOG(kWarning, "systemd.notify_failed", "cannot notify the service manager",
               {{"error", s.message()}});
  }
}

// The main thread's loop between `ready` and a stop signal, which it
// returns. SIGHUP: the configuration is reloaded (config_reload.h; new
// connections get the re-read certificate and password file, running ones
// keep what they started with). SIGUSR1: the accounting log is reopened
// (log_file.h). With a systemd watchdog, WATCHDOG=1 goes out every half
// period; systemd hears RELOADING=1 and READY=1 around a reload. Every
// server.memory_trim_interval_s it gives the shards' freed memory back to
// the kernel (memory_trim.h): this thread is otherwise idle, so the shards'
// loops never run the trim themselves.
int WaitForStop(const sigset_t& signals, ConfigReloader& reloader, int log_fd,
                SystemdNotifier& systemd) {
  const uint64_t watchdog_ms = systemd.watchdog_interval_us() / 1000;
  uint64_t next_watchdog_ms = base::MonotonicMillis() + watchdog_ms;
  MemoryTrimSchedule trim(reloader.running().memory_trim_interval_s, base::MonotonicMillis());
  while (true) {
    int sig = 0;
    if (watchdog_ms == 0 && !trim.enabled()) {
      if (sigwait(&signals, &sig) != 0) return SIGTERM;
    } else {
      const uint64_t now_ms = base::MonotonicMillis();
      uint64_t wait_ms = trim.MsUntilDue(now_ms);
      if (watchdog_ms != 0) {
        wait_ms = std::min(wait_ms, next_watchdog_ms > now_ms ? next_watchdog_ms - now_ms : 0);
      }
      const timespec wait{static_cast<time_t>(wait_ms / 1000),
                          static_cast<long>(wait_ms % 1000) * 1'000'000};
      sig = sigtimedwait(&signals, nullptr, &wait);
      if (sig < 0) {
        // A timeout or EINTR: whatever is due now.
        const uint64_t after_ms = base::MonotonicMillis();
        if (watchdog_ms != 0 && after_ms >= next_watchdog_ms) {
          Notify(systemd, "WATCHDOG=1");
          next_watchdog_ms = after_ms + watchdog_ms;
        }
        trim.RunIfDue(after_ms);
        continue;
      }
    }
    const config::Config& config = reloader.running();
    if (sig == SIGHUP) {
      Notify(systemd, "RELOADING=1");
      reloader.Reload();
      Notify(systemd, "READY=1");
    } else if (sig == SIGUSR1) {
      if (log_fd < 0) {
        SLUICE_LOG(kWarning, "log.reopen_skipped", "SIGUSR1: no accounting log to reopen");
      } else if (absl::Status r = ReopenLogFile(config.log_file, log_fd); r.ok()) {
        SLUICE_LOG(kNotice, "log.reopened", "SIGUSR1: reopened the accounting log",
                   {{"file", config.log_file}});
      } else {
        SLUICE_LOG(kError, "log.reopen_failed",
                   "SIGUSR1: reopen failed, still writing the old file",
                   {{"file", config.log_file}, {"error", r.message()}});
      }
    } else {
      return sig;
    }
  }
}

// Runs the log-writer thread for a scope; at its end, what is buffered is
// written, waiting at most kDiagFlushMs for a stderr nobody may be reading
// (then the rest is dropped and the process goes on stopping).
class DiagWriterRun {
 public:
  static constexpr uint64_t kDiagFlushMs = 2000;
  DiagWriterRun() { diag::StartWriter(); }
  ~DiagWriterRun() { diag::StopWriter(kDiagFlushMs); }
  DiagWriterRun(const DiagWriterRun&) = delete;
  DiagWriterRun& operator=(const DiagWriterRun&) = delete;
};

// The process's file mode mask, set once by Serve() before any thread
// starts (umask is process-wide: threads setting it race). It leaves every
// mode the code asks for intact (0700 directories, 0600 spool files and
// sockets, the 0640 log) whatever mask the daemon was started with.
constexpr mode_t kUmask = 0027;

// Process-wide settings, made before anything else: the mode mask, where
// diagnostics go, the descriptor limit; then the configuration's warnings.
void PrepareProcess(const config::Config& config) {
  umask(kUmask);
  std::string diag_problem;
  diag::Configure(diag::OptionsFromEnvironment(&diag_problem));
  if (!diag_problem.empty()) SLUICE_LOG(kWarning, "config.log_environment", diag_problem);
  RaiseFileLimit();
  for (const std::string& w : ConfigWarnings(config)) {
    SLUICE_LOG(kWarning, "config.warning", w);
  }
}

// The pickup directory's folders (pickup/pickup_directory.h), group-owned
// by pickup.group when one is named; nothing without a pickup directory.
absl::Status PreparePickup(const config::Config& config) {
  if (config.pickup_dir.empty()) return absl::OkStatus();
  long group = -1;
  if (!config.pickup_group.empty()) {
    const struct group* g = getgrnam(config.pickup_group.c_str());
    if (g == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("pickup.group: no group named ", config.pickup_group));
    }
    group = static_cast<long>(g->gr_gid);
  }
  return pickup::PrepareDirectories(config.pickup_dir, config.spool_dir + "/0", group);
}

// One daemon per spool (spool/spool_lock.h), held until the process
// ends: taken before shard directories, recovery, journals and control
// sockets (only the spool's root must exist for it). Then the shard
// directories and the pickup folders.
absl::StatusOr<spool::SpoolLock> LockAndPrepareSpool(const config::Config& config) {
  if (auto s = spool::PrepareSpool(config.spool_dir, 0); !s.ok()) return s;
  auto spool_lock = spool::SpoolLock::Acquire(config.spool_dir);
  if (!spool_lock.ok()) return spool_lock.status();
  if (auto s = spool::PrepareSpool(config.spool_dir, config.shards); !s.ok()) return s;
  if (auto s = PreparePickup(config); !s.ok()) return s;
  return spool_lock;
}

// The accounting log's descriptor (log_file.h), -1 when there is none.
absl::StatusOr<int> OpenAccountingLog(const config::Config& config) {
  if (config.log_file.empty()) return -1;
  return OpenLogFile(config.log_file);
}

void CloseAccountingLog(int log_fd) {
  if (log_fd >= 0) {
    fsync(log_fd);
    close(log_fd);
  }
}

// What every shard shares and SIGHUP reloads: TLS and AUTH
// (tls/credentials.h: certificate, users and the failure limiter), DKIM keys
// (dkim/signer.h) and the HTTP admin tokens (tls/bearer_tokens.h).
struct SharedStores {
  std::unique_ptr<tls::Credentials> credentials;
  std::unique_ptr<dkim::KeyStore> dkim_keys;
  std::unique_ptr<tls::BearerTokenStore> http_tokens;
};

absl::StatusOr<SharedStores> LoadSharedStores(const config::Config& config) {
  SharedStores stores;
  auto credentials = tls::Credentials::Create(config);
  if (!credentials.ok()) return credentials.status();
  stores.credentials = *std::move(credentials);
  auto dkim_keys = dkim::KeyStore::Create(config);
  if (!dkim_keys.ok()) return dkim_keys.status();
  stores.dkim_keys = *std::move(dkim_keys);
  auto http_tokens = tls::BearerTokenStore::Create(config.http_tokens_file);
  if (!http_tokens.ok()) return http_tokens.status();
  stores.http_tokens = *std::move(http_tokens);
  return stores;
}

// Blocks the stop signals in the calling thread before any thread exists;
// threads inherit the mask, so only WaitForStop's sigwait sees them.
sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);   // not a stop: reloads the configuration (WaitForStop)
  sigaddset(&stop_signals, SIGUSR1);  // not a stop: reopens the log (WaitForStop)
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

// What the shards share, made before them and destroyed after them, in
// the reverse order of the members.
struct ShardCommons {
  ShardCommons(const config::Config& config, int shards)
      : client_limiter(config.max_connections_per_ip, config.max_connection_rate_per_ip),
        mailboxes(shards, limits::kMailboxSlots),
        helpers(WakeFds(mailboxes, shards), limits::kHelperThreads, limits::kHelperSlotsPerShard),
        metrics_board(shards) {
    // The pickup directory's file work runs on a thread of its own
    // (pickup/ingester.h), not on the shared helpers: it is a steady stream.
    if (!config.pickup_dir.empty()) {
      pickup_thread.emplace(WakeFds(mailboxes, shards), pickup::Ingester::kThreads,
                            pickup::Ingester::kJobSlots, "pickup");
    }
  }

  static std::vector<int> WakeFds(io::Mailboxes<ShardNote>& mailboxes, int shards) {
    std::vector<int> wake_fds;
    for (int i = 0; i < shards; ++i) wake_fds.push_back(mailboxes.wake_fd(i));
    return wake_fds;
  }

  std::atomic<int64_t> open_connections{0};
  ClientLimiter client_limiter;
  io::Mailboxes<ShardNote> mailboxes;
  // After the mailboxes (it writes their wake-up eventfds), before the
  // shards (destroyed after them: jobs left unrun are dropped, not run).
  io::HelperPool helpers;
  std::optional<io::HelperPool> pickup_thread;  // with a pickup directory
  // Every shard's latest metrics snapshot, read by whichever shard answers
  // a scrape (metrics/snapshot.h). Outlives the shards.
  metrics::MetricsBoard metrics_board;
};

std::vector<std::unique_ptr<Shard>> CreateShards(const config::Config& config, int log_fd,
                                                 const spool::RecoveryReport& recovered,
                                                 ShardCommons& commons,
                                                 delivery::AdminStore& admin_store,
                                                 const SharedStores& stores) {
  std::vector<std::unique_ptr<Shard>> shard_objects;
  for (int i = 0; i < config.shards; ++i) {
    shard_objects.push_back(std::make_unique<Shard>(i, config, log_fd, recovered.newest,
                                                    commons.open_connections, commons.mailboxes));
    shard_objects.back()->set_credentials(stores.credentials.get());
    shard_objects.back()->set_client_limiter(&commons.client_limiter);
    shard_objects.back()->set_admin_store(&admin_store);
    shard_objects.back()->set_dkim_keys(stores.dkim_keys.get());
    shard_objects.back()->set_http_tokens(stores.http_tokens.get());
    shard_objects.back()->set_metrics_board(&commons.metrics_board);
    shard_objects.back()->set_helpers(&commons.helpers);
    if (i == 0 && commons.pickup_thread) {
      shard_objects.back()->set_pickup_thread(&*commons.pickup_thread);
    }
  }
  return shard_objects;
}

// The shards' threads, each pinned to a CPU, start in two steps: every
// shard's Init (which binds its listeners), then, once the main thread says
// go, its loop (or nothing, when the start was aborted).
class ShardThreads {
 public:
  explicit ShardThreads(int shards) : ready_(shards), init_status_(static_cast<size_t>(shards)) {}

  // Starts a thread per shard and waits until every Init has returned;
  // returns the first failure.
  absl::Status StartAndInit(std::vector<std::unique_ptr<Shard>>& shard_objects) {
    for (size_t i = 0; i < shard_objects.size(); ++i) {
      threads_.emplace_back([this, &shard_objects, i] {
        PinToCpu(static_cast<int>(i));
        diag::ShardScope diag_scope(static_cast<int>(i));  // names the thread shard-N; its buffer
        init_status_[i] = shard_objects[i]->Init();
        ready_.count_down();
        go_.wait();
        if (!abort_start_.load()) shard_objects[i]->Run();
      });
    }
    ready_.wait();
    absl::Status failed;
    for (const absl::Status& s : init_status_) {
      if (!s.ok() && failed.ok()) failed = s;
    }
    return failed;
  }

  // Lets every shard run its loop, or, when `abort`, return at once.
  void Go(bool abort) {
    if (abort) abort_start_.store(true);
    go_.count_down();
  }

  void Join() {
    for (std::thread& t : threads_) t.join();
  }

 private:
  std::latch ready_;
  std::vector<absl::Status> init_status_;
  std::atomic<bool> abort_start_{false};
  std::latch go_{1};
  std::vector<std::thread> threads_;
};

// From ready to stop: the service manager hears READY=1 (it may start what
// depends on us), reloads and log reopens are served (WaitForStop) until a
// stop signal, then every shard is asked to stop.
void ServeUntilStop(const config::Config& config, ConfigLoader loader, const sigset_t& stop_signals,
                    std::vector<std::unique_ptr<Shard>>& shard_objects, const SharedStores& stores,
                    int log_fd, const std::string& ready_line) {
  SystemdNotifier systemd = SystemdNotifier::FromEnvironment();
  Notify(systemd, absl::StrCat("READY=1\nSTATUS=", ready_line));
  std::vector<Shard*> shards_for_reload;
  for (auto& s : shard_objects) shards_for_reload.push_back(s.get());
  ConfigReloader reloader(config, std::move(loader), std::move(shards_for_reload),
                          stores.credentials.get(), stores.dkim_keys.get(), log_fd,
                          stores.http_tokens.get());
  const int sig = WaitForStop(stop_signals, reloader, log_fd, systemd);
  SLUICE_LOG(kNotice, "server.stopping", "stopping",
             {{"signal", sig}, {"grace_s", reloader.running().shutdown_grace_s}});
  Notify(systemd, "STOPPING=1\nSTATUS=stopping: finishing in-flight work");
  for (auto& s : shard_objects) s->RequestStop();
}

// Logs what shard `i` owned, queued and delivered in this run.
void ReportShard(size_t i, Shard& s) {
  uint64_t messages = 0, recipients = 0;
  for (const auto& [domain, d] : s.owned_domains()) {
    messages += d.messages;
    recipients += d.recipients;
  }
  SLUICE_LOG(kInfo, "server.shard_owned",
             absl::StrCat("shard ", i, " owns ", s.owned_domains().size(), " destination domains: ",
                          messages, " message jobs, ", recipients, " recipients queued"));
  SLUICE_LOG(kInfo, "server.shard_queued",
             absl::StrCat("shard ", i, " queued ", s.stats().messages_queued, " messages with ",
                          s.segment_flushes(), " segment flushes"));
  if (s.engine() != nullptr) {
    const delivery::EngineStats& e = s.engine()->stats();
    SLUICE_LOG(kInfo, "server.shard_delivered",
               absl::StrCat("shard ", i, " delivered ", e.delivered, ", deferred ", e.deferred,
                            ", bounced ", e.bounced, ", expired ", e.expired, " recipients over ",
                            e.connections_opened, " connections (", e.connection_failures,
                            " failed); ", e.dsns, " DSNs"));
  }
}

// Every shard's report; returns the messages all of them queued.
uint64_t ReportShards(std::vector<std::unique_ptr<Shard>>& shard_objects) {
  uint64_t queued = 0;
  for (size_t i = 0; i < shard_objects.size(); ++i) {
    queued += shard_objects[i]->stats().messages_queued;
    ReportShard(i, *shard_objects[i]);
  }
  return queued;
}

}  // namespace

// The start-up order matters and is kept here, step by step: the spool lock
// before anything touches the spool; recovery, the log, the admin store and
// the shared stores before any thread; the signals blocked before the first
// thread (the log writer's); the shards made, given the recovered queue,
// initialised (listeners bound) and only then let run. Stopping runs the
// other way: shards joined, webhooks stopped (every record logged), late
// notes drained, the report, the shards destroyed, the log closed.
absl::Status Serve(const config::Config& config, ConfigLoader loader) {
  PrepareProcess(config);
  auto spool_lock = LockAndPrepareSpool(config);
  if (!spool_lock.ok()) return spool_lock.status();
  auto recovered = RecoverSpool(config);
  if (!recovered.ok()) return recovered.status();
  auto claimed = RecoverClaimed(config, *recovered);
  if (!claimed.ok()) return claimed.status();
  auto opened_log = OpenAccountingLog(config);
  if (!opened_log.ok()) return opened_log.status();
  const int log_fd = *opened_log;
  delivery::AdminStore admin_store(config.spool_dir);
  if (auto s = LoadAdminStore(admin_store, *recovered); !s.ok()) return s;
  auto stores = LoadSharedStores(config);
  if (!stores.ok()) return stores.status();

  const sigset_t stop_signals = BlockStopSignals();
  // From here to the end of the shards, diagnostics of shard threads go
  // through their own buffers and the log-writer thread (diag/diag.h).
  DiagWriterRun diag_writer;
  ShardCommons commons(config, config.shards);
  std::vector<std::unique_ptr<Shard>> shard_objects =
      CreateShards(config, log_fd, *recovered, commons, admin_store, *stores);
  if (auto s = AdoptRecovered(config, *recovered, *std::move(claimed), shard_objects); !s.ok()) {
    return s;
  }
  std::atomic<int> stop_barrier{config.shards};
  for (auto& s : shard_objects) s->set_stop_barrier(&stop_barrier);
  ShardThreads threads(config.shards);
  absl::Status failed = threads.StartAndInit(shard_objects);
  // Webhooks (webhook/webhook.h) take their place in the log before any
  // shard writes to it.
  WebhookThreads webhooks;
  if (failed.ok()) failed = webhooks.Start(config);
  // Every listener is bound (Shard::Init). The line is queued before the
  // shards run, so it comes before anything they say, even a line written
  // at once just before an abort (diag::EmitNow writes queued lines first).
  const std::string ready_line = failed.ok() ? ReadyLine(config) : "";
  if (failed.ok()) SLUICE_LOG(kNotice, "server.ready", absl::StrCat("ready: ", ready_line));
  threads.Go(/*abort=*/!failed.ok());
  if (failed.ok()) {
    ServeUntilStop(config, std::move(loader), stop_signals, shard_objects, *stores, log_fd,
                   ready_line);
  }
  threads.Join();
  webhooks.Stop();  // after the shards: every record of the run is logged
  // Notes posted after their owner left its loop: the threads have joined,
  // so this thread may consume them (for the counts below; finals that
  // arrive this late are simply delivered again after the restart).
  for (auto& s : shard_objects) s->DrainNotes();
  const uint64_t queued = ReportShards(shard_objects);
  shard_objects.clear();
  CloseAccountingLog(log_fd);
  if (!failed.ok()) return failed;
  SLUICE_LOG(kNotice, "server.stopped", "stopped cleanly", {{"messages_queued", queued}});
  return absl::OkStatus();
}

}  // namespace sluice::server
