// The delivery engine's frame (engine.h): construction from the
// configuration, Init (resolver, TLS contexts), reload, the loop hooks
// (NextWakeupMs, Tick) and stopping. The work itself lives beside it:
// engine_destinations.cc (next hops and the connection pool),
// engine_jobs.cc (the job runner), engine_body.cc (what goes out),
// engine_records.cc (spool reads), engine_outcome.cc (outcomes, DSNs,
// accounting; the decision itself is outcome.cc, pure) and engine_admin.cc
// (the control socket's commands).
#include "sluice/delivery/engine.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "engine_parts.h"
#include "sluice/base/check.h"
#include "sluice/diag/diag.h"

namespace sluice::delivery {
namespace {

// Finalize() validated the rules: a failure here is a bug.
queue::ShapingPolicy PolicyFrom(const config::Config& config) {
  auto policy = queue::ShapingPolicy::Create(config.shaping);
  SLUICE_CHECK(policy.ok());
  return std::move(*policy);
}

// What every new outbound connection starts with (engine constructor and
// Reconfigure).
OutboundOptions OptionsFrom(const config::Config& config, const std::string& hostname) {
  OutboundOptions options;
  smtp::ClientConfig& c = options.client;
  c.helo_name = config.helo_name.empty() ? hostname : config.helo_name;
  c.max_recipients_per_transaction = config.max_recipients_per_transaction;
  c.use_pipelining = config.outbound_pipelining;
  c.use_chunking = config.outbound_chunking;
  const config::DeliveryTimeouts& t = config.timeouts;
  using ms = std::chrono::milliseconds;
  c.timeouts.greeting = ms(t.greeting_ms);
  c.timeouts.ehlo = ms(t.ehlo_ms);
  c.timeouts.starttls = ms(t.starttls_ms);
  c.timeouts.mail = ms(t.mail_ms);
  c.timeouts.rcpt = ms(t.rcpt_ms);
  c.timeouts.data_init = ms(t.data_init_ms);
  c.timeouts.data_block = ms(t.data_block_ms);
  c.timeouts.final_dot = ms(t.final_dot_ms);
  c.timeouts.rset = ms(t.rset_ms);
  c.timeouts.quit = ms(t.quit_ms);
  options.connect_timeout_ms = t.connect_ms;
  if (!config.source_address.empty()) {
    auto a = base::SocketAddress::Parse(config.source_address.find(':') == std::string::npos
                                            ? absl::StrCat(config.source_address, ":0")
                                            : absl::StrCat("[", config.source_address, "]:0"));
    if (a.ok()) options.source = *a;
  }
  return options;
}

// Where mail for `domain` goes and how, as a comparable string: a reload
// that changes it makes the destination resolve again.
std::string NextHop(const config::Config& config, const std::string& domain) {
  const config::Route* route = config::FindRoute(config, domain);
  return absl::StrCat(config::OutboundTlsName(config::FindOutboundTls(config, domain)), " ",
                      route != nullptr ? route->host : "", ":",
                      route != nullptr ? route->port : config.mx_port);
}

}  // namespace

Engine::Engine(io::Loop& ring, const config::Config& config, EngineHost& host, std::string hostname,
               dkim::Signer* dkim)
    : ring_(ring),
      config_(config),
      host_(host),
      hostname_(std::move(hostname)),
      dkim_(dkim),
      options_(OptionsFrom(config, hostname_)),
      queues_(PolicyFrom(config), queue::RetrySchedule(config.retry)) {}

Engine::~Engine() {
  for (Active* a : detached_waiting_) delete a;  // a stop past its grace period
  for (OutboundConnection* c : dead_) delete c;
  for (OutboundConnection* c : dying_) delete c;
  for (auto& [k, fd] : dir_fds_) close(fd);
  for (auto& [k, f] : file_fds_) close(f.fd);
}

absl::Status Engine::Init() {
  dns::ResolverConfig rc;
  rc.servers = config_.dns_servers;
  rc.timeout_ms = static_cast<int>(config_.dns_timeout_ms);
  rc.tries = static_cast<int>(config_.dns_tries);
  rc.max_queries_in_flight = config_.dns_max_in_flight;
  auto resolver = dns::Resolver::Create(ring_, rc);
  if (!resolver.ok()) return resolver.status();
  resolver_ = std::move(*resolver);
  own_ = OwnAddresses::FromHost(config_);
  own_name_ = dns::NormalizeDomain(hostname_);
  tls::ContextOptions plain;
  plain.mode = tls::Mode::kClient;
  auto ctx = tls::Context::Create(plain);
  if (!ctx.ok()) return ctx.status();
  tls_plain_ = *std::move(ctx);
  tls::ContextOptions verify = plain;
  verify.verify_peer = true;
  verify.ca_file = config_.outbound_tls_ca_file;
  auto vctx = tls::Context::Create(verify);
  if (vctx.ok()) {
    tls_verify_ = *std::move(vctx);
  } else {
    // Only domains under the "verify" policy need it: they defer (451 4.7.5).
    SLUICE_LOG(kWarning, "delivery.no_tls_context",
               "no verifying TLS context: outbound TLS that must verify will fail",
               {{"reason", vctx.status().message()}});
  }
  return absl::OkStatus();
}

int Engine::NextWakeupMs(uint64_t, int max_ms) {
  int wait = max_ms;
  const queue::Micros next = queues_.NextWakeup();
  if (next != queue::kNever) {
    const uint64_t now_us = ring_.NowWallUs();
    const uint64_t ms = next <= now_us ? 0 : (next - now_us + 999) / 1000;
    wait = static_cast<int>(std::min<uint64_t>(ms, static_cast<uint64_t>(wait)));
  }
  if (resolver_) wait = resolver_->NextTickMs(wait);
  if (!parked_.empty() && FreeSlots() > 0) wait = 0;
  return wait;
}

void Engine::Reconfigure(const config::Config& before) {
  const uint64_t now_us = ring_.NowWallUs();
  options_ = OptionsFrom(config_, hostname_);  // connections hold a reference: same thread
  queues_.SetRetry(queue::RetrySchedule(config_.retry));
  queues_.SetPolicy(PolicyFrom(config_), now_us);  // reschedules every domain
  for (auto& [domain, d] : destinations_) {
    if (NextHop(before, domain) != NextHop(config_, domain)) Retarget(*d);
  }
}

void Engine::Released(OutboundConnection& c) { dying_.push_back(&c); }

void Engine::Tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  for (OutboundConnection* c : std::vector<OutboundConnection*>(connections_)) {
    c->Tick(now_ms);
    if (!c->finished() && c->job == nullptr && c->idle_since_ms() != 0 &&
        (stopping_ || now_ms - c->idle_since_ms() >= config_.idle_connection_ms)) {
      c->set_idle_since_ms(0);
      c->session().Quit();
      c->Send();
    }
  }
  if (resolver_) resolver_->Tick(now_ms);
  CloseUnlinkedFiles();
}

void Engine::BeginStop() {
  stopping_ = true;
  Tick(now_ms_);
}

void Engine::AbortAll() {
  for (OutboundConnection* c : std::vector<OutboundConnection*>(connections_)) c->Abort();
}

bool Engine::idle() const { return connections_.empty() && actives_ == 0 && link_checks_ == 0; }
}  // namespace sluice::delivery
