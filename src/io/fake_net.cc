// io::FakeLoop's simulated network: fake sockets, endpoints served by a
// FakePeer or a listening descriptor, paced delivery, resets, multishot
// accept and receive, poll. See fake_loop.h.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fake_node.h"
#include "sluice/base/check.h"
#include "sluice/io/fake_loop.h"

namespace sluice::io {
namespace {

// Family, address bytes and port: what identifies an endpoint.
std::string AddressKey(const sockaddr* a, socklen_t size) {
  std::string key;
  if (a->sa_family == AF_INET && size >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(a);
    key = "4";
    key.append(reinterpret_cast<const char*>(&in->sin_addr), sizeof in->sin_addr);
    key.append(reinterpret_cast<const char*>(&in->sin_port), sizeof in->sin_port);
  } else if (a->sa_family == AF_INET6 && size >= sizeof(sockaddr_in6)) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(a);
    key = "6";
    key.append(reinterpret_cast<const char*>(&in->sin6_addr), sizeof in->sin6_addr);
    key.append(reinterpret_cast<const char*>(&in->sin6_port), sizeof in->sin6_port);
  }
  return key;
}

}  // namespace

// ---- the test's side ----

sockaddr_storage FakeLoop::Address(std::string_view ip, uint16_t port, socklen_t* size) {
  sockaddr_storage out{};
  const std::string text(ip);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    if (size != nullptr) *size = sizeof(sockaddr_in);
  } else {
    SLUICE_CHECK(inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    if (size != nullptr) *size = sizeof(sockaddr_in6);
  }
  return out;
}

void FakeLoop::Listen(const sockaddr* address, socklen_t size, FakePeer* peer,
                      FakeEndpointOptions options) {
  const std::string key = AddressKey(address, size);
  SLUICE_CHECK(!key.empty() && peer != nullptr);
  auto e = std::make_unique<Endpoint>();
  e->options = options;
  e->peer = peer;
  endpoints_[key] = std::move(e);
}

void FakeLoop::Listen(std::string_view ip, uint16_t port, FakePeer* peer,
                      FakeEndpointOptions options) {
  socklen_t size = 0;
  const sockaddr_storage a = Address(ip, port, &size);
  Listen(reinterpret_cast<const sockaddr*>(&a), size, peer, options);
}

int FakeLoop::ListenSocket(const sockaddr* address, socklen_t size, FakeEndpointOptions options) {
  const std::string key = AddressKey(address, size);
  SLUICE_CHECK(!key.empty());
  auto node = std::make_shared<Node>();
  node->socket = true;
  node->family = address->sa_family;
  node->listen_key = key;
  auto e = std::make_unique<Endpoint>();
  e->options = options;
  e->listener = node;
  endpoints_[key] = std::move(e);
  return AddDescriptor(node, O_RDWR);
}

void FakeLoop::Unlisten(const sockaddr* address, socklen_t size) {
  endpoints_.erase(AddressKey(address, size));
}

sockaddr_storage FakeLoop::BoundAddress(int fd) {
  Descriptor* d = Find(fd);
  if (d == nullptr || !d->node->bound) return sockaddr_storage{};
  return *d->node->bound;
}

// ---- synchronous socket calls ----

int FakeLoop::Socket(int family, int type) {
  if (family != AF_INET && family != AF_INET6) return -EAFNOSUPPORT;
  if ((type & 0xf) != SOCK_STREAM) return -EPROTONOSUPPORT;
  auto node = std::make_shared<Node>();
  node->socket = true;
  node->family = family;
  return AddDescriptor(node, O_RDWR);
}

int FakeLoop::SetSocketOption(int fd, int, int, int) {
  Descriptor* d = Find(fd);
  if (d == nullptr) return -EBADF;
  return d->node->socket ? 0 : -ENOTSOCK;
}

int FakeLoop::Bind(int fd, const sockaddr* address, socklen_t size) {
  Descriptor* d = Find(fd);
  if (d == nullptr) return -EBADF;
  if (!d->node->socket) return -ENOTSOCK;
  if (d->node->bound || address->sa_family != d->node->family) return -EINVAL;
  sockaddr_storage a{};
  std::memcpy(&a, address, std::min<size_t>(size, sizeof a));
  d->node->bound = a;
  return 0;
}

int FakeLoop::Shutdown(int fd, int) {
  Descriptor* d = Find(fd);
  if (d == nullptr) return -EBADF;
  if (!d->node->socket) return -ENOTSOCK;
  if (!d->node->connected) return -ENOTCONN;
  ShutdownNode(d->node);
  return 0;
}

int FakeLoop::CloseNow(int fd) {
  Descriptor* d = Find(fd);
  if (d == nullptr) return -EBADF;
  if (d->node->socket) ShutdownNode(d->node);
  fds_.erase(fd);
  return 0;
}

void FakeLoop::ShutdownNode(const std::shared_ptr<Node>& node) {
  if (!node->listen_key.empty()) {
    auto it = endpoints_.find(node->listen_key);
    if (it != endpoints_.end() && it->second->listener == node) endpoints_.erase(it);
  }
  if (node->shut) return;
  node->shut = true;
  std::shared_ptr<Node> peer = node->peer.lock();
  if (!peer || peer->eof) return;
  peer->eof = true;
  if (Connection* conn = peer->connection) {
    Schedule(now_us_, [conn] { conn->peer().OnClientClosed(*conn); });
  }
}

// ---- delivery ----

void FakeLoop::Deliver(const std::shared_ptr<Node>& to, std::string bytes) {
  if (to->error != 0 || to->shut || bytes.empty()) return;
  if (Connection* conn = to->connection) {  // to a scripted peer: at once
    conn->Received(bytes.size());
    conn->peer().OnBytes(*conn, bytes);
    return;
  }
  if (!to->pacing) {
    to->inbox.insert(to->inbox.end(), bytes.begin(), bytes.end());
    return;
  }
  // Paced: each piece at its own time, so a receive sees one at a time.
  const FakeEndpointOptions& o = *to->pacing;
  const size_t piece = o.chunk_bytes != 0 ? o.chunk_bytes : bytes.size();
  const uint64_t gap = std::max<uint64_t>(o.chunk_delay_us, o.chunk_bytes != 0 ? 1 : 0);
  uint64_t at = std::max(now_us_, to->paced_until);
  std::weak_ptr<Node> weak = to;
  for (size_t off = 0; off < bytes.size(); off += piece) {
    at += gap;
    Schedule(at, [weak, part = bytes.substr(off, piece)] {
      std::shared_ptr<Node> n = weak.lock();
      if (n && n->error == 0 && !n->shut) n->inbox.insert(n->inbox.end(), part.begin(), part.end());
    });
  }
  to->paced_until = at;
}

void FakeLoop::Connection::Send(std::string_view bytes) {
  if (closed_) return;
  if (std::shared_ptr<Node> client = mine_->peer.lock()) loop_.Deliver(client, std::string(bytes));
}

void FakeLoop::Connection::Close() {
  if (closed_) return;
  closed_ = true;
  mine_->shut = true;
  std::shared_ptr<Node> client = mine_->peer.lock();
  if (!client) return;
  // After the bytes still on their way.
  std::weak_ptr<Node> weak = client;
  loop_.Schedule(client->paced_until, [weak] {
    if (std::shared_ptr<Node> n = weak.lock()) n->eof = true;
  });
}

void FakeLoop::Connection::Reset() {
  if (closed_) return;
  closed_ = true;
  mine_->shut = true;
  if (std::shared_ptr<Node> client = mine_->peer.lock()) {
    client->error = ECONNRESET;
    client->inbox.clear();
  }
}

// ---- connect ----

std::optional<int> FakeLoop::Establish(Descriptor& d, Endpoint& e) {
  std::shared_ptr<Node> client = d.node;
  auto server = std::make_shared<Node>();
  server->socket = true;
  server->family = client->family;
  server->connected = client->connected = true;
  client->peer = server;
  server->peer = client;
  if (e.options.chunk_bytes != 0 || e.options.chunk_delay_us != 0) client->pacing = e.options;
  if (e.listener) {
    e.listener->backlog.push_back(server);
    return 0;
  }
  connections_.push_back(std::make_unique<Connection>(*this, *e.peer, server, connections_.size()));
  Connection* conn = connections_.back().get();
  server->connection = conn;
  e.peer->OnConnect(*conn);
  return 0;
}

void FakeLoop::Connect(Completion* c, int fd, const sockaddr* address, socklen_t size, Op op) {
  const std::string key = AddressKey(address, size);
  Queue(c, Kind::kOther, op,
        [this, fd, key, started = false,
         ready_at = uint64_t{0}](bool&) mutable -> std::optional<int> {
          Descriptor* d = Find(fd);
          if (d == nullptr) return -EBADF;
          if (!d->node->socket) return -ENOTSOCK;
          if (!started) {
            started = true;
            ++connects_;
            if (d->node->connected) return -EISCONN;
            auto it = endpoints_.find(key);
            if (it == endpoints_.end()) return -ECONNREFUSED;
            const FakeEndpointOptions& o = it->second->options;
            ready_at = o.hang_connect ? ~0ull : now_us_ + o.connect_delay_us;
            if (!o.hang_connect && ready_at > now_us_) Schedule(ready_at, [] {});
          }
          if (now_us_ < ready_at) return std::nullopt;
          if (d->node->shut) return -ECONNABORTED;
          auto it = endpoints_.find(key);
          if (it == endpoints_.end()) return -ECONNREFUSED;
          return Establish(*d, *it->second);
        });
}

// ---- one-shot operations ----

void FakeLoop::Send(Completion* c, int fd, const void* data, size_t size, Op op) {
  Queue(c, Kind::kSend, op, [this, fd, data, size](bool&) -> std::optional<int> {
    if (std::optional<int> f = Injected(Kind::kSend); f && *f < 0) return *f;
    Descriptor* d = Find(fd);
    if (d == nullptr || !d->node->socket) return -ENOTSOCK;
    Node& n = *d->node;
    if (n.error != 0) return -n.error;
    if (!n.connected) return -ENOTCONN;
    std::shared_ptr<Node> peer = n.peer.lock();
    if (n.shut || !peer || peer->shut) return -EPIPE;
    Deliver(peer, std::string(static_cast<const char*>(data), size));
    return static_cast<int>(size);
  });
}

void FakeLoop::Recv(Completion* c, int fd, void* data, size_t size, Op op) {
  Queue(c, Kind::kRecv, op, [this, fd, data, size](bool&) -> std::optional<int> {
    if (std::optional<int> f = Injected(Kind::kRecv); f && *f < 0) return *f;
    Descriptor* d = Find(fd);
    if (d == nullptr || !d->node->socket) return -ENOTSOCK;
    Node& n = *d->node;
    if (n.error != 0) return -n.error;
    if (!n.connected) return -ENOTCONN;
    std::deque<char>& in = n.inbox;
    if (in.empty()) {
      if (n.shut || n.eof || n.peer.expired()) return 0;  // EOF
      return std::nullopt;                                // waits for bytes
    }
    const size_t k = std::min(size, in.size());
    std::copy_n(in.begin(), k, static_cast<char*>(data));
    in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(k));
    return static_cast<int>(k);
  });
}

void FakeLoop::PollAdd(Completion* c, int fd, unsigned events) {
  Queue(c, Kind::kOther, {}, [this, fd, events](bool&) -> std::optional<int> {
    Descriptor* d = Find(fd);
    if (d == nullptr) return -EBADF;
    const Node& n = *d->node;
    if (!n.socket) return static_cast<int>(events & (POLLIN | POLLOUT));  // files: always ready
    unsigned ready = 0;
    if (!n.inbox.empty() || n.eof || n.shut || !n.backlog.empty()) ready |= POLLIN;
    if (n.connected && !n.shut && n.error == 0) ready |= POLLOUT;
    if (n.error != 0) ready |= POLLERR;
    if (n.eof && n.shut) ready |= POLLHUP;
    ready &= events | POLLERR | POLLHUP;
    if (ready == 0) return std::nullopt;
    return static_cast<int>(ready);
  });
}

void FakeLoop::PostMessage(int, Completion*, Completion* on_failure) {
  Queue(on_failure, Kind::kOther, {}, [](bool&) -> std::optional<int> { return -EOPNOTSUPP; });
}

// ---- multishot operations ----

void FakeLoop::AcceptMultishot(Completion* c, int fd) {
  multishots_.push_back(Multishot{c, fd, true, nullptr, nullptr});
}

void FakeLoop::RecvMultishot(Completion* c, int fd, const BufferRing& buffers) {
  auto it = buffer_pools_.find(buffers.group_id());
  SLUICE_CHECK(it != buffer_pools_.end());  // made by this loop's CreateBufferRing
  multishots_.push_back(Multishot{c, fd, false, it->second, const_cast<BufferRing*>(&buffers)});
}

// What an armed multishot produces this turn; a value ends it.
std::optional<int> FakeLoop::RunMultishot(Multishot& m, std::vector<Done>& done) {
  if (m.cancelled) return -ECANCELED;
  Descriptor* d = Find(m.fd);
  if (d == nullptr) return -EBADF;
  Node& n = *d->node;
  if (!n.socket) return -ENOTSOCK;
  if (m.accept) {
    if (n.listen_key.empty()) return -EINVAL;
    while (!n.backlog.empty()) {
      std::shared_ptr<Node> s = std::move(n.backlog.front());
      n.backlog.pop_front();
      done.push_back({m.completion, AddDescriptor(std::move(s), O_RDWR), kCompletionMore});
    }
    return std::nullopt;
  }
  if (n.error != 0) return -n.error;
  while (!n.inbox.empty()) {
    if (m.buffers->free.empty()) return -ENOBUFS;
    const uint16_t id = m.buffers->free.front();
    m.buffers->free.pop_front();
    const size_t k = std::min<size_t>(n.inbox.size(), m.ring->buffer_size());
    std::copy_n(n.inbox.begin(), k, m.ring->data(id));
    n.inbox.erase(n.inbox.begin(), n.inbox.begin() + static_cast<std::ptrdiff_t>(k));
    done.push_back({m.completion, static_cast<int>(k),
                    kCompletionBuffer | kCompletionMore |
                        (static_cast<uint32_t>(id) << kCompletionBufferShift)});
  }
  if (n.shut || n.eof || n.peer.expired()) return 0;
  return std::nullopt;
}

void FakeLoop::RunMultishots(std::vector<Done>& done) {
  for (size_t i = 0; i < multishots_.size();) {
    if (std::optional<int> end = RunMultishot(multishots_[i], done)) {
      done.push_back({multishots_[i].completion, *end, 0});
      multishots_.erase(multishots_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

namespace {

// Released buffers go back to the pool once published, as with the kernel.
class FakeProvider final : public BufferRing::Provider {
 public:
  explicit FakeProvider(std::shared_ptr<FakeLoop::BufferPool> pool) : pool_(std::move(pool)) {}
  void Add(char*, uint32_t, uint16_t id, uint32_t) override { pool_->queued.push_back(id); }
  void Publish(uint32_t) override {
    pool_->free.insert(pool_->free.end(), pool_->queued.begin(), pool_->queued.end());
    pool_->queued.clear();
  }

 private:
  std::shared_ptr<FakeLoop::BufferPool> pool_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BufferRing>> FakeLoop::CreateBufferRing(uint16_t group_id,
                                                                       uint32_t count,
                                                                       uint32_t size) {
  auto b = std::make_unique<BufferRing>(group_id, count, size);
  auto pool = std::make_shared<BufferPool>();
  for (uint32_t id = 0; id < count; ++id) pool->free.push_back(static_cast<uint16_t>(id));
  b->set_provider(std::make_unique<FakeProvider>(pool));
  buffer_pools_[group_id] = std::move(pool);
  return b;
}

}  // namespace sluice::io
