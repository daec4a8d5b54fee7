// The HTTP/1.1 listener of one shard (http.listen, docs/HTTP.md): metrics
// and the admin API, served on the shard's own io_uring loop like the SMTP
// listeners and the control socket. Every shard binds the address with
// SO_REUSEPORT, so the kernel spreads clients over the shards; no thread
// per request, nothing blocking: requests are parsed by http::RequestParser
// (pure), answered by server/http_api.h, and an admin request's fan-out to
// every shard's control socket runs on this ring too (server/admin_fanout.h).
// With http.tls every connection is HTTPS (server/http_tls.h: the [tls]
// certificate, wolfSSL driven by these same receives and sends); without
// it, plain HTTP.
//
// Bounds (a client cannot make a shard hold more):
//   - http.max_clients connections per shard; past it a new one gets a 503
//     and is closed.
//   - Per connection: one kReceiveBufferSize receive buffer, the parser's
//     head and body (http.max_request_bytes), unparsed input of at most one
//     receive, and one response. Requests are answered one at a time, in
//     order (pipelining): the next is parsed only when the response to the
//     previous one is fully sent, and nothing is read meanwhile, so a
//     client that never reads its responses stops being read (TCP flow
//     control holds the rest) instead of growing memory.
//   - Time, on the shard's 250 ms tick: a keep-alive connection without a
//     request for http.idle_timeout_s is closed; a request that has not
//     fully arrived within http.request_timeout_s of its first byte gets
//     408; a response not sent within http.request_timeout_s closes the
//     connection; an admin fan-out is cut at kAdminTimeoutMs (504).
//   - kAdminInFlightMax admin fan-outs per shard at once (503 past it).
//   - http.max_inject_in_flight injections per shard waiting for the
//     spool's commit (503 with Retry-After past it), checked before the body
//     is read when the client sent Expect: 100-continue.
//   - http.tls: a handshake not done within http.request_timeout_s of the
//     accept closes the connection; decrypted input adds at most one TLS
//     record (16 KiB) to the unparsed input (server/http_tls.h).
// A connection that must close after an error response stops writing
// (shutdown SHUT_WR) and reads and discards what the client still sends for
// up to kLingerMs, so the client reads the response instead of a reset.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "sluice/base/cidr.h"
#include "sluice/http/request_parser.h"
#include "sluice/http/response.h"
#include "sluice/io/loop.h"
#include "sluice/server/admin_fanout.h"
#include "sluice/server/http_api.h"
#include "sluice/server/http_inject.h"
#include "sluice/server/http_tls.h"

namespace sluice::server {

class Shard;

struct HttpStats {
  uint64_t accepted = 0;
  uint64_t refused = 0;       // past http.max_clients
  uint64_t requests = 0;      // complete requests answered
  uint64_t bad_requests = 0;  // refused by the parser (4xx/5xx, then closed)
  uint64_t timeouts = 0;
  // Responses sent, by class: [0] 1xx (100 Continue) ... [4] 5xx.
  uint64_t responses[5] = {};
  uint64_t tls_handshakes = 0;  // http.tls: handshakes completed
  uint64_t tls_failures = 0;    // ... failed, or not done in http.request_timeout_s
  uint64_t injected = 0;        // POST /api/inject/v1 spooled (200): messages
  uint64_t injected_recipients = 0;
  // Injections refused, by reason (docs/METRICS.md).
  uint64_t inject_bad_request = 0;   // 400 (the document, the framing) or 405
  uint64_t inject_too_large = 0;     // 413: past http.max_inject_bytes
  uint64_t inject_busy = 0;          // 503: http.max_inject_in_flight reached
  uint64_t inject_unauthorized = 0;  // 401/403: no or a bad token
  uint64_t inject_unavailable = 0;   // 503: the spool refused or failed the commit
};

class HttpListener {
 public:
  HttpListener(Shard& shard, const base::SocketAddress& address);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Binds and listens (Shard::Init); Start() arms the accept (Shard::Run).
  absl::Status Init();
  void Start();
  // Stops accepting and closes every connection; in-flight fan-outs are cut.
  void Stop();
  void Tick(uint64_t now_ms);
  // Nothing in flight: the object may be destroyed.
  bool idle() const;
  const HttpStats& stats() const { return stats_; }
  size_t connections_open() const { return clients_.size(); }
  size_t injections_in_flight() const { return injections_in_flight_; }

  static constexpr size_t kReceiveBufferSize = 4096;
  static constexpr size_t kAdminInFlightMax = 4;
  static constexpr uint64_t kAdminTimeoutMs = 10'000;
  static constexpr uint64_t kLingerMs = 2'000;

 private:
  struct Client;
  void OnAccept(int result, uint32_t flags);
  void Accepted(int fd);
  void ArmReceive(Client* c);
  void Inject(Client* c, const http::Request& request);
  void Injected(Client* c, const Injection& inj, base::QueueId id, uint64_t size,
                const absl::Status& status);
  void OnReceive(Client* c, int result);
  // http.tls: ciphertext received; plaintext goes on to Process.
  void TlsReceived(Client* c, size_t size);
  // Expect: 100-continue, head parsed: 100 Continue, or the final refusal.
  void AnswerExpect(Client* c);
  // Sends `bytes` (sealed first on TLS); closes after them if asked.
  void Transmit(Client* c, std::string bytes, bool close_after);
  void CountResponse(int status);
  // A refusal of a request to the injection path, by reason.
  void CountInjectRefusal(std::string_view path, int status);
  ApiContext Context();
  void Send(Client* c);
  void OnSent(Client* c, int result);
  // Parses what was received; answers the next complete request, or reads on.
  void Process(Client* c);
  void Handle(Client* c, http::Request request);
  void AdminDone(Client* c, AdminFanout::Replies replies);
  void Respond(Client* c, const http::Response& response, bool keep_alive);
  void Linger(Client* c);
  void Close(Client* c);
  // Frees closed connections whose operations have all completed.
  void Reap();
  void CheckTimeouts(Client* c, uint64_t now_ms);
  http::Limits LimitsNow() const;

  Shard& shard_;
  const base::SocketAddress address_;
  int fd_ = -1;
  bool accepting_ = false;
  bool stopped_ = false;
  std::vector<Client*> clients_;
  std::vector<Client*> closed_;  // waiting for their operations to complete
  std::vector<AdminFanout*> fanouts_;
  size_t injections_in_flight_ = 0;  // spool commits of injections (http.max_inject_in_flight)
  HttpStats stats_;
  io::MemberCompletion<HttpListener, &HttpListener::OnAccept> accept_done_{this};
};

}  // namespace sluice::server
