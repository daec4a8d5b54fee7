// The shard's SMTP listeners and admission (shard_listener.h).
#include "shard_listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shard.h"
#include "sluice/base/cidr.h"
#include "sluice/diag/diag.h"
#include "sluice/server/client_limiter.h"
#include "sluice/server/connection.h"
#include "sluice/tls/credentials.h"

namespace sluice::server {
namespace {

// The kernel's accept queue per listening socket (capped by somaxconn).
constexpr int kListenBacklog = 4096;

absl::Status Errno(std::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(std::string(what), ": ", std::strerror(errno)));
}

}  // namespace

struct ShardListener::Socket {
  ShardListener* owner;
  int fd = -1;
  bool armed = false;
  tls::ListenerPolicy policy;  // implicit TLS, require_tls, require_auth
  struct Done final : io::Completion {
    Socket* s;
    void OnComplete(int result, uint32_t flags) override { s->owner->OnAccept(s, result, flags); }
  } done;
};

// A connection refused at accept: its one reply is sent, then it is closed
// whatever happened to the send (a client that already reset makes the
// send fail; a close linked to it would be cancelled and the descriptor
// leak).
struct ShardListener::Refusal final : io::Completion {
  ShardListener* owner = nullptr;
  int fd = -1;
  std::string reply;
  void OnComplete(int, uint32_t) override {
    owner->shard_.loop().Close(nullptr, fd);
    owner->refusals_.erase(this);
    delete this;
  }
};

ShardListener::ShardListener(Shard& shard, std::atomic<int64_t>& open_connections)
    : shard_(shard),
      open_connections_(open_connections),
      too_many_connections_(absl::StrCat("421 4.7.0 ", shard.config().hostname,
                                         " Error: too many connections\r\n")) {}

ShardListener::~ShardListener() { Close(); }

void ShardListener::Close() {
  for (Refusal* r : refusals_) {
    close(r->fd);
    delete r;
  }
  refusals_.clear();
  for (auto& s : sockets_) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
  }
}

absl::Status ShardListener::Open() {
  // Plain listeners, then the implicit-TLS ones (tls.listen / --listen-tls).
  const tls::Credentials* credentials = shard_.credentials();
  std::vector<std::pair<base::SocketAddress, bool>> addresses;
  for (const base::SocketAddress& addr : shard_.config().listen_addresses)
    addresses.emplace_back(addr, false);
  if (credentials != nullptr) {
    for (const base::SocketAddress& addr : credentials->implicit_tls_addresses()) {
      addresses.emplace_back(addr, true);
    }
  }
  for (const auto& [addr, implicit_tls] : addresses) {
    auto s = std::make_unique<Socket>();
    s->owner = this;
    s->done.s = s.get();
    if (credentials != nullptr) s->policy = credentials->PolicyFor(addr, implicit_tls);
    s->fd = socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0) return Errno("socket");
    sockets_.push_back(std::move(s));  // closed by Close() from here on
    const int fd = sockets_.back()->fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      return Errno("SO_REUSEPORT");
    }
    if (addr.storage.ss_family == AF_INET6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (bind(fd, addr.get(), addr.size) != 0) {
      return Errno(absl::StrCat("bind ", addr.ToString()));
    }
    if (listen(fd, kListenBacklog) != 0) return Errno(absl::StrCat("listen ", addr.ToString()));
  }
  return absl::OkStatus();
}

void ShardListener::Start() {
  for (auto& s : sockets_) Arm(s.get());
}

void ShardListener::Stop() {
  for (auto& s : sockets_) {
    // Closing the listener socket ends the multishot accept.
    if (s->armed) shard_.loop().Cancel(nullptr, &s->done);
    shutdown(s->fd, SHUT_RDWR);
  }
}

void ShardListener::Arm(Socket* s) {
  if (shard_.stopping() || s->armed) return;
  // The peer address of a multishot accept is not reported per connection;
  // getpeername() on the new socket supplies it.
  shard_.loop().AcceptMultishot(&s->done, s->fd);
  s->armed = true;
}

void ShardListener::OnAccept(Socket* s, int result, uint32_t flags) {
  if (!io::HasMore(flags)) s->armed = false;
  if (result >= 0) {
    Accepted(s, result);
  } else if (result != -ECANCELED && result != -EINVAL && result != -EBADF) {
    // EMFILE/ENFILE and the like: the accept stays usable; re-arm below.
    SLUICE_LOG(kWarning, "server.accept_failed", "accept failed; still listening",
               {{"error", std::strerror(-result)}});
  }
  if (!s->armed && !shard_.stopping()) Arm(s);
}

void ShardListener::Accepted(Socket* s, int fd) {
  if (shard_.stopping()) {
    close(fd);
    return;
  }
  const config::Config& config = shard_.config();
  if (open_connections_.fetch_add(1, std::memory_order_relaxed) >=
      static_cast<int64_t>(config.max_connections)) {
    open_connections_.fetch_sub(1, std::memory_order_relaxed);
    return Refuse(fd, too_many_connections_);
  }
  sockaddr_storage peer{};
  socklen_t peer_size = sizeof peer;
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size);
  const base::IpAddress ip = base::IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&peer));
  const bool relay_allowed = config.relay_networks.Contains(ip);
  // Clients outside relay_from are limited per address (Postfix exempts
  // $mynetworks from its anvil limits the same way).
  const bool limited = client_limiter_ != nullptr && !relay_allowed;
  if (limited) {
    const ClientLimiter::Verdict v = client_limiter_->Admit(ip, shard_.now_ms());
    if (v != ClientLimiter::Verdict::kAdmitted) {
      open_connections_.fetch_sub(1, std::memory_order_relaxed);
      const bool fast = v == ClientLimiter::Verdict::kTooFast;
      return Refuse(fd, absl::StrCat("421 4.7.0 ", config.hostname, " Error: too ",
                                     fast ? "many connections per minute" : "many connections",
                                     " from ", ip.ToString(), "\r\n"));
    }
  }
  ++shard_.stats().connections_accepted;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto* c = new Connection(shard_, fd, ip.ToString(), relay_allowed, s->policy);
  c->peer = ip;
  c->counted_by_limiter = limited;
  shard_.connections().Add(c);
  c->Start();
}

void ShardListener::Release(const Connection& c) {
  open_connections_.fetch_sub(1, std::memory_order_relaxed);
  if (c.counted_by_limiter) client_limiter_->Release(c.peer);
}

void ShardListener::Refuse(int fd, std::string reply) {
  ++shard_.stats().connections_refused;
  auto* r = new Refusal();
  r->owner = this;
  r->fd = fd;
  r->reply = std::move(reply);
  refusals_.insert(r);
  shard_.loop().Send(r, fd, r->reply.data(), r->reply.size());
}

}  // namespace sluice::server
