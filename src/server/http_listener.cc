// The HTTP/1.1 listener on a shard's ring; see sluice/server/http_listener.h.
//
// A connection has at most one receive and one send in flight and never
// both a request being answered and a receive (see Process). It is freed
// only when neither is in flight (Reap, on the tick), so no completion can
// reach freed memory; its descriptor is closed as soon as nothing refers to
// it.
#include "sluice/server/http_listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "shard.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"
#include "sluice/log/accounting_log.h"
#include "sluice/server/http_inject.h"
#include "sluice/server/trace_headers.h"
#include "sluice/tls/credentials.h"

namespace sluice::server {

struct HttpListener::Client {
  HttpListener* owner = nullptr;
  int fd = -1;
  std::string peer;              // the client's address, for the accounting log
  std::unique_ptr<HttpTls> tls;  // http.tls; null on plain HTTP
  bool tls_peer_closed = false;  // the client sent close_notify
  http::RequestParser parser;
  std::string in;   // received and not parsed yet (at most one receive)
  std::string out;  // the response being sent
  size_t sent = 0;
  bool receiving = false;
  bool sending = false;
  bool closing = false;
  bool close_after = false;  // close once `out` is sent
  bool lingering = false;
  bool timing = false;            // a request has started arriving
  AdminFanout* fanout = nullptr;  // the admin call this connection waits for
  AdminCall call;
  bool injecting = false;  // a spool commit for this connection is in flight
  bool keep_alive = true;
  bool head = false;  // the request being answered is a HEAD
  uint64_t accepted_ms = 0;
  uint64_t last_activity_ms = 0;
  uint64_t request_start_ms = 0;
  uint64_t send_start_ms = 0;
  uint64_t admin_deadline_ms = 0;
  uint64_t linger_until_ms = 0;
  char buffer[kReceiveBufferSize];
  struct Op final : io::Completion {
    Client* c = nullptr;
    bool send = false;
    void OnComplete(int result, uint32_t) override {
      if (send) {
        c->owner->OnSent(c, result);
      } else {
        c->owner->OnReceive(c, result);
      }
    }
  };
  Op receive_op;
  Op send_op;
};

HttpListener::HttpListener(Shard& shard, const base::SocketAddress& address)
    : shard_(shard), address_(address) {}

HttpListener::~HttpListener() {
  for (Client* c : clients_) {
    if (c->fd >= 0) close(c->fd);
    delete c;
  }
  for (Client* c : closed_) {
    if (c->fd >= 0) close(c->fd);
    delete c;
  }
  for (AdminFanout* f : fanouts_) delete f;
  if (fd_ >= 0) close(fd_);
}

absl::Status HttpListener::Init() {
  auto fail = [&](std::string_view what) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("http.listen ", address_.ToString(), ": ", base::Av(what),
                                     ": ", std::strerror(errno)));
  };
  fd_ = socket(address_.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return fail("socket");
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Every shard listens on the same address; the kernel spreads clients.
  if (setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return fail("SO_REUSEPORT");
  }
  if (address_.storage.ss_family == AF_INET6) {
    setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (bind(fd_, address_.get(), address_.size) != 0) return fail("bind");
  if (listen(fd_, 1024) != 0) return fail("listen");
  return absl::OkStatus();
}

void HttpListener::Start() {
  if (stopped_ || accepting_ || fd_ < 0) return;
  accepting_ = true;
  shard_.loop().AcceptMultishot(&accept_done_, fd_);
}

void HttpListener::Stop() {
  stopped_ = true;
  if (accepting_) {
    shard_.loop().Cancel(nullptr, &accept_done_);
  }
  if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
  std::vector<Client*> all = clients_;
  for (Client* c : all) Close(c);
  for (AdminFanout* f : fanouts_) f->CheckDeadline(0, /*force=*/true);
}

bool HttpListener::idle() const {
  return !accepting_ && clients_.empty() && closed_.empty() && fanouts_.empty();
}

http::Limits HttpListener::LimitsNow() const {
  const config::Config& c = shard_.config();
  http::Limits limits;
  limits.max_headers = c.http_max_headers;
  limits.max_request_bytes = c.http_max_request_bytes;
  limits.max_head_bytes = std::min(limits.max_head_bytes, limits.max_request_bytes);
  limits.large_path = std::string(kInjectPath);
  limits.max_large_request_bytes = c.http_max_inject_bytes;
  return limits;
}

void HttpListener::OnAccept(int result, uint32_t flags) {
  if (!io::HasMore(flags)) accepting_ = false;
  if (result >= 0) {
    Accepted(result);
  } else if (result != -ECANCELED && result != -EINVAL && result != -EBADF) {
    SLUICE_LOG(kWarning, "http.accept_failed", "HTTP accept failed; still listening",
               {{"error", std::strerror(-result)}});
  }
  if (!accepting_ && !stopped_) Start();
}

void HttpListener::Accepted(int fd) {
  if (stopped_) {
    close(fd);
    return;
  }
  const config::Config& config = shard_.config();
  if (clients_.size() >= config.http_max_clients) {
    ++stats_.refused;
    // A new socket's send buffer is empty: this small write cannot block.
    // An HTTPS client could not read it: it is just closed.
    static const std::string kBusy = http::Serialize(
        http::JsonError(503, "too many HTTP clients on this shard (http.max_clients)"), false);
    if (!config.http_tls) {
      CountResponse(503);
      (void)!send(fd, kBusy.data(), kBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    close(fd);
    return;
  }
  std::unique_ptr<HttpTls> tls;
  if (config.http_tls) {
    tls::Credentials* creds = shard_.credentials();
    auto t = HttpTls::New(creds != nullptr ? creds->server_context() : nullptr);
    if (!t.ok()) {
      ++stats_.tls_failures;
      close(fd);
      return;
    }
    tls = *std::move(t);
  }
  ++stats_.accepted;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_storage peer{};
  socklen_t peer_size = sizeof peer;
  auto* c = new Client();
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) == 0) {
    c->peer = base::IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&peer)).ToString();
  }
  c->owner = this;
  c->fd = fd;
  c->tls = std::move(tls);
  c->receive_op.c = c;
  c->send_op.c = c;
  c->send_op.send = true;
  c->parser.set_limits(LimitsNow());
  c->accepted_ms = shard_.now_ms();
  c->last_activity_ms = c->accepted_ms;
  clients_.push_back(c);
  ArmReceive(c);
}

void HttpListener::ArmReceive(Client* c) {
  if (c->receiving || c->closing) return;
  c->receiving = true;
  shard_.loop().Recv(&c->receive_op, c->fd, c->buffer, sizeof c->buffer);
}

void HttpListener::OnReceive(Client* c, int result) {
  c->receiving = false;
  if (c->closing) {
    if (!c->sending && c->fd >= 0) {
      close(c->fd);
      c->fd = -1;
    }
    return;
  }
  if (c->lingering) {
    // Discarding what the client still sends after the last response.
    if (result <= 0 || shard_.now_ms() >= c->linger_until_ms) return Close(c);
    return ArmReceive(c);
  }
  if (result <= 0) return Close(c);  // the client closed, or reset
  if (c->tls) return TlsReceived(c, static_cast<size_t>(result));
  c->in.append(c->buffer, static_cast<size_t>(result));
  Process(c);
}

void HttpListener::TlsReceived(Client* c, size_t size) {
  const bool was_established = c->tls->established();
  const HttpTls::Result r = c->tls->Receive(std::string_view(c->buffer, size), c->in);
  if (!was_established && c->tls->established()) ++stats_.tls_handshakes;
  std::string pending = c->tls->TakeOutput();
  if (r == HttpTls::Result::kFailed) {
    // Garbage, or a protocol the context refuses: this connection only.
    if (!c->tls->established()) ++stats_.tls_failures;
    if (pending.empty()) return Close(c);
    c->close_after = true;  // the alert goes out, then the connection closes
  } else if (r == HttpTls::Result::kClosed) {
    // close_notify: nothing more comes; what arrived before it is answered.
    c->tls_peer_closed = true;
  }
  if (!pending.empty()) {
    // Handshake records (or a session ticket) before anything else; the
    // plaintext already in `in` is parsed once they are sent (OnSent).
    c->out = std::move(pending);
    c->sent = 0;
    c->send_start_ms = shard_.now_ms();
    return Send(c);
  }
  Process(c);
}

void HttpListener::Process(Client* c) {
  if (c->closing || c->fanout != nullptr || c->injecting || c->sending || !c->out.empty()) return;
  const size_t used = c->parser.Feed(c->in);
  c->in.erase(0, used);
  if (!c->timing && c->parser.in_request()) {
    c->timing = true;
    c->request_start_ms = shard_.now_ms();
  }
  if (c->parser.failed()) {
    ++stats_.bad_requests;
    CountInjectRefusal(c->parser.head().path, c->parser.error().status);
    http::Response e = http::JsonError(c->parser.error().status, c->parser.error().message);
    e.close = true;  // what follows cannot be framed
    c->head = false;
    return Respond(c, e, false);
  }
  if (c->parser.awaiting_continue()) return AnswerExpect(c);
  if (c->parser.has_request()) {
    http::Request request = c->parser.TakeRequest();
    c->parser.set_limits(LimitsNow());  // a reload applies from the next request
    c->timing = false;
    return Handle(c, std::move(request));
  }
  if (c->tls_peer_closed) return Close(c);  // nothing more will come
  ArmReceive(c);                            // the parser took everything and wants more
}

ApiContext HttpListener::Context() {
  ApiContext context;
  context.shard = &shard_;
  context.metrics_require_token = shard_.config().http_metrics_require_token;
  context.tokens = shard_.http_tokens();
  return context;
}

void HttpListener::AnswerExpect(Client* c) {
  const http::Request& head = c->parser.head();
  std::optional<http::Response> refusal = RefuseBeforeBody(head, Context());
  if (!refusal && head.path == kInjectPath && head.method == "POST" &&
      injections_in_flight_ >= shard_.config().http_max_inject_in_flight) {
    refusal = InjectBusy();
  }
  c->parser.ContinueSent();
  if (!refusal) {
    CountResponse(100);
    return Transmit(c, "HTTP/1.1 100 Continue\r\n\r\n", false);
  }
  // The final status instead of 100: the body is not read, so what the
  // client may still send cannot be framed and the connection closes.
  ++stats_.requests;
  CountInjectRefusal(head.path, refusal->status);
  refusal->close = true;
  c->head = false;
  c->timing = false;
  Respond(c, *refusal, false);
}

void HttpListener::Handle(Client* c, http::Request request) {
  ++stats_.requests;
  c->keep_alive = request.keep_alive && !stopped_ && !c->tls_peer_closed;
  c->head = request.method == "HEAD";
  Routed routed = Route(request, Context());
  if (routed.response) {
    CountInjectRefusal(request.path, routed.response->status);
    return Respond(c, *routed.response, c->keep_alive);
  }
  if (routed.inject) return Inject(c, request);
  if (fanouts_.size() >= kAdminInFlightMax) {
    http::Response busy = http::JsonError(503, "too many admin requests at once; retry");
    busy.headers.emplace_back("Retry-After", "1");
    return Respond(c, busy, c->keep_alive);
  }
  c->call = std::move(routed.admin);
  const uint64_t now = shard_.now_ms();
  c->admin_deadline_ms = now + kAdminTimeoutMs;
  auto* f = new AdminFanout(
      shard_.loop(), shard_.config().control_dir, shard_.shard_count(), c->call.line,
      c->admin_deadline_ms,
      [this, c](AdminFanout::Replies replies) { AdminDone(c, std::move(replies)); });
  c->fanout = f;
  fanouts_.push_back(f);
  f->Start();  // may complete at once (AdminDone): `f` is not used after this
}

void HttpListener::Inject(Client* c, const http::Request& request) {
  const config::Config& config = shard_.config();
  if (injections_in_flight_ >= config.http_max_inject_in_flight) {
    ++stats_.inject_busy;
    return Respond(c, InjectBusy(), c->keep_alive);
  }
  if (!shard_.spool_available()) {
    ++stats_.inject_unavailable;
    http::Response busy = http::JsonError(503, "the spool is not accepting messages; retry");
    busy.headers.emplace_back("Retry-After", "5");
    return Respond(c, busy, c->keep_alive);
  }
  auto inj = std::make_shared<Injection>();
  std::string error;
  if (!BuildInjection(request.body, config, *inj, error)) {
    ++stats_.inject_bad_request;
    return Respond(c, http::JsonError(400, error), c->keep_alive);
  }
  inj->env.client_ip = c->peer;
  const base::QueueId id = shard_.NextQueueId();
  const std::string text = id.ToString();
  const uint64_t now = base::WallMicros();
  TraceFacts trace;
  trace.with = "HTTP";
  trace.hostname = config.hostname;
  trace.queue_id = text;
  if (!inj->batch) trace.recipients = &inj->recipients;
  trace.arrival_micros = now;
  trace.has_date = inj->has_date;
  trace.has_message_id = inj->has_message_id;
  inj->env.arrival_micros = now;
  inj->env.added_headers = TraceHeaders(trace);
  const uint64_t size = inj->body.size();
  spool::SpoolWriter& spool = shard_.spool();
  spool::SpoolWriter::Message* m = spool.Begin(id);
  spool.AppendOwned(m, std::move(inj->body));
  c->injecting = true;
  ++injections_in_flight_;
  spool.Commit(m, std::move(inj->env), [this, c, inj, id, size](const absl::Status& status) {
    Injected(c, *inj, id, size, status);
  });
}

void HttpListener::Injected(Client* c, const Injection& inj, base::QueueId id, uint64_t size,
                            const absl::Status& status) {
  c->injecting = false;
  --injections_in_flight_;
  if (!status.ok()) {
    ++stats_.inject_unavailable;
    ++shard_.stats().messages_failed;
    SLUICE_LOG(kError, "http.inject_commit_failed",
               "an injection could not be made durable (the client got a 503)",
               {{"peer", c->peer}, {"error", status.message()}});
    if (c->closing) return;
    return Respond(c, http::JsonError(503, "the spool could not store the message; retry"),
                   c->keep_alive);
  }
  ++stats_.injected;
  stats_.injected_recipients += inj.recipient_count();
  ++shard_.stats().messages_queued;
  const std::string text = id.ToString();
  const std::vector<std::string_view> addresses = inj.Addresses();
  log::ReceptionRecord r;
  r.ts_micros = base::WallMicros();
  r.id = text;
  r.sender = inj.sender;
  r.campaign = inj.campaign;
  r.tenant = inj.tenant;
  r.recipient_views = &addresses;
  r.size = size;
  r.client = c->peer;  // the HTTP peer, as SMTP logs its client
  r.helo = "";
  r.protocol = "http";
  shard_.accounting().Reception(r);
  shard_.AnnounceQueued(id, addresses);
  if (c->closing) return;  // durable and queued; the client just does not hear it
  http::Response ok;
  ok.body = absl::StrCat("{\"queue_id\":", http::JsonQuote(text),
                         ",\"recipients\":", inj.recipient_count(), "}\n");
  Respond(c, ok, c->keep_alive);
}

void HttpListener::AdminDone(Client* c, AdminFanout::Replies replies) {
  AdminFanout* f = c->fanout;
  c->fanout = nullptr;
  fanouts_.erase(std::remove(fanouts_.begin(), fanouts_.end(), f), fanouts_.end());
  Respond(c, AdminResponse(std::move(replies), c->call), c->keep_alive);
  c->call = AdminCall();
  delete f;  // last: its Complete() returns without touching itself
}

void HttpListener::Respond(Client* c, const http::Response& response, bool keep_alive) {
  if (c->closing) return;
  CountResponse(response.status);
  Transmit(c, http::Serialize(response, keep_alive, c->head), !keep_alive || response.close);
}

void HttpListener::Transmit(Client* c, std::string bytes, bool close_after) {
  if (c->closing) return;
  if (c->tls) {
    absl::Status sealed = c->tls->Seal(bytes);
    if (!sealed.ok()) return Close(c);    // no handshake yet (a timeout): nothing to say
    if (close_after) c->tls->Shutdown();  // close_notify after the last response
    bytes = c->tls->TakeOutput();
  }
  c->out = std::move(bytes);
  c->sent = 0;
  c->close_after = close_after;
  c->send_start_ms = shard_.now_ms();
  Send(c);
}

void HttpListener::CountResponse(int status) {
  if (status >= 100 && status < 600) ++stats_.responses[status / 100 - 1];
}

void HttpListener::CountInjectRefusal(std::string_view path, int status) {
  if (path != kInjectPath || status < 400) return;
  if (status == 401 || status == 403) {
    ++stats_.inject_unauthorized;
  } else if (status == 413) {
    ++stats_.inject_too_large;
  } else if (status == 503) {
    ++stats_.inject_busy;
  } else {
    ++stats_.inject_bad_request;
  }
}

void HttpListener::Send(Client* c) {
  c->sending = true;
  shard_.loop().Send(&c->send_op, c->fd, c->out.data() + c->sent, c->out.size() - c->sent);
}

void HttpListener::OnSent(Client* c, int result) {
  c->sending = false;
  if (c->closing) {
    if (!c->receiving && c->fd >= 0) {
      close(c->fd);
      c->fd = -1;
    }
    return;
  }
  if (result <= 0) return Close(c);
  c->sent += static_cast<size_t>(result);
  if (c->sent < c->out.size()) return Send(c);
  c->out.clear();
  c->out.shrink_to_fit();  // a large listing is not kept for the connection's life
  c->sent = 0;
  c->last_activity_ms = shard_.now_ms();
  if (c->close_after) return Linger(c);
  Process(c);  // the next pipelined request, or read on
}

void HttpListener::Linger(Client* c) {
  c->lingering = true;
  c->linger_until_ms = shard_.now_ms() + kLingerMs;
  c->in.clear();
  shutdown(c->fd, SHUT_WR);  // the client sees the end of the response
  ArmReceive(c);
}

void HttpListener::Close(Client* c) {
  if (c->closing) return;
  c->closing = true;
  if (c->fanout != nullptr) {
    c->fanout->Detach();  // swept by Tick once it finishes
    c->fanout = nullptr;
  }
  clients_.erase(std::remove(clients_.begin(), clients_.end(), c), clients_.end());
  closed_.push_back(c);
  if (!c->receiving && !c->sending) {
    close(c->fd);
    c->fd = -1;
  } else {
    shutdown(c->fd, SHUT_RDWR);  // the operations in flight complete now
  }
}

void HttpListener::Reap() {
  std::erase_if(closed_, [](Client* c) {
    if (c->receiving || c->sending || c->injecting) return false;
    if (c->fd >= 0) close(c->fd);
    delete c;
    return true;
  });
  // Fan-outs whose connection went away: done once their sockets are.
  std::erase_if(fanouts_, [](AdminFanout* f) {
    if (!f->finished()) return false;
    delete f;
    return true;
  });
}

void HttpListener::CheckTimeouts(Client* c, uint64_t now_ms) {
  const config::Config& config = shard_.config();
  const uint64_t request_ms = uint64_t{config.http_request_timeout_s} * 1000;
  if (c->injecting) return;  // the spool's commit answers
  if (c->fanout != nullptr) {
    if (now_ms < c->admin_deadline_ms + 1000) return;
    // The fan-out's own deadline should have ended it: answer regardless.
    ++stats_.timeouts;
    c->fanout->Detach();
    c->fanout = nullptr;
    return Respond(c, http::JsonError(504, "the shards did not answer in time"), c->keep_alive);
  }
  if (c->lingering) {
    if (now_ms >= c->linger_until_ms) Close(c);
    return;
  }
  if (c->tls && !c->tls->established() && now_ms - c->accepted_ms >= request_ms) {
    // A handshake that never finishes holds a slot of http.max_clients.
    ++stats_.timeouts;
    ++stats_.tls_failures;
    return Close(c);
  }
  if (c->sending || !c->out.empty()) {
    // A client that does not read its response is not kept.
    if (now_ms - c->send_start_ms >= request_ms) {
      ++stats_.timeouts;
      Close(c);
    }
    return;
  }
  if (c->parser.in_request()) {
    if (now_ms - c->request_start_ms >= request_ms) {
      ++stats_.timeouts;
      http::Response e = http::JsonError(
          408, absl::StrCat("the request did not arrive within ", config.http_request_timeout_s,
                            "s (http.request_timeout_s)"));
      e.close = true;
      c->head = false;
      Respond(c, e, false);
    }
    return;
  }
  if (now_ms - c->last_activity_ms >= uint64_t{config.http_idle_timeout_s} * 1000) Close(c);
}

void HttpListener::Tick(uint64_t now_ms) {
  for (AdminFanout* f : fanouts_) f->CheckDeadline(now_ms);
  std::vector<Client*> all = clients_;
  for (Client* c : all) CheckTimeouts(c, now_ms);
  Reap();
}

}  // namespace sluice::server
