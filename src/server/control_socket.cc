#include "sluice/server/control_socket.h"

#include <liburing.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/delivery/engine.h"
#include "sluice/log/json.h"
#include "sluice/server/shard.h"

namespace sluice::server {

struct ControlSocket::Client {
  ControlSocket* owner;
  int fd;
  std::string in;
  std::string out;
  size_t sent = 0;
  char buffer[512];
  struct Op final : io::Completion {
    Client* c;
    bool send;
    void OnComplete(int result, uint32_t) override {
      if (send) {
        c->owner->OnSent(c, result);
      } else {
        c->owner->OnReceive(c, result);
      }
    }
  };
  Op receive{};
  Op send{};
};

ControlSocket::ControlSocket(Shard& shard, std::string path)
    : shard_(shard), path_(std::move(path)) {}

ControlSocket::~ControlSocket() {
  for (Client* c : clients_) {
    close(c->fd);
    delete c;
  }
  if (fd_ >= 0) close(fd_);
}

absl::Status ControlSocket::Init() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat("control socket path too long: ", path_));
  }
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  unlink(path_.c_str());  // a stale socket of an earlier run
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const mode_t old = umask(0177);
  const int rc = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0 || listen(fd_, 64) != 0) {
    return absl::InternalError(absl::StrCat("control socket ", path_, ": ", std::strerror(errno)));
  }
  Arm();
  return absl::OkStatus();
}

void ControlSocket::Arm() {
  if (stopped_ || accepting_) return;
  accepting_ = true;
  io_uring_sqe* sqe = shard_.ring().Prepare(&accept_done_);
  io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
}

void ControlSocket::Stop() {
  stopped_ = true;
  if (fd_ >= 0) {
    shutdown(fd_, SHUT_RDWR);
    unlink(path_.c_str());
  }
  if (accepting_) {
    io_uring_sqe* sqe = shard_.ring().Prepare(nullptr);
    io_uring_prep_cancel(sqe, &accept_done_, 0);
  }
}

void ControlSocket::OnAccept(int result, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) accepting_ = false;
  if (result >= 0) {
    if (stopped_ || clients_.size() >= kMaxClients) {
      close(result);
    } else {
      auto* c = new Client();
      c->owner = this;
      c->fd = result;
      c->receive.c = c;
      c->receive.send = false;
      c->send.c = c;
      c->send.send = true;
      clients_.push_back(c);
      io_uring_sqe* sqe = shard_.ring().Prepare(&c->receive);
      io_uring_prep_recv(sqe, c->fd, c->buffer, sizeof c->buffer, 0);
    }
  }
  if (!accepting_) Arm();
}

void ControlSocket::OnReceive(Client* c, int result) {
  if (result <= 0) return Finish(c);
  c->in.append(c->buffer, static_cast<size_t>(result));
  const size_t nl = c->in.find('\n');
  if (nl == std::string::npos) {
    if (c->in.size() > kMaxLine) {
      c->out = "error: command line too long\n";
    } else {
      io_uring_sqe* sqe = shard_.ring().Prepare(&c->receive);
      io_uring_prep_recv(sqe, c->fd, c->buffer, sizeof c->buffer, 0);
      return;
    }
  } else {
    std::string_view line(c->in.data(), nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    c->out = Execute(line);
    if (c->out.empty() || c->out.back() != '\n') c->out += '\n';
  }
  io_uring_sqe* sqe = shard_.ring().Prepare(&c->send);
  io_uring_prep_send(sqe, c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
}

void ControlSocket::OnSent(Client* c, int result) {
  if (result <= 0) return Finish(c);
  c->sent += static_cast<size_t>(result);
  if (c->sent < c->out.size()) {
    io_uring_sqe* sqe = shard_.ring().Prepare(&c->send);
    io_uring_prep_send(sqe, c->fd, c->out.data() + c->sent, c->out.size() - c->sent, MSG_NOSIGNAL);
    return;
  }
  Finish(c);
}

void ControlSocket::Finish(Client* c) {
  close(c->fd);
  clients_.erase(std::remove(clients_.begin(), clients_.end(), c), clients_.end());
  delete c;
}

std::string ControlSocket::Execute(std::string_view line) {
  std::string_view verb = line.substr(0, line.find(' '));
  std::string_view arg = verb.size() < line.size() ? line.substr(verb.size() + 1) : "";
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  while (!arg.empty() && arg.back() == ' ') arg.remove_suffix(1);
  delivery::Engine* engine = shard_.engine();
  if (verb == "list") {
    return engine != nullptr ? engine->ListJson() : "[]";
  }
  if (verb == "stats") {
    std::string out = absl::StrCat("{\"shard\":", shard_.index());
    if (engine != nullptr) {
      const delivery::EngineStats& s = engine->stats();
      absl::StrAppend(&out, ",\"jobs_received\":", s.jobs_received, ",\"delivered\":", s.delivered,
                      ",\"deferred\":", s.deferred, ",\"bounced\":", s.bounced,
                      ",\"expired\":", s.expired, ",\"dsns\":", s.dsns,
                      ",\"connections_opened\":", s.connections_opened,
                      ",\"connection_failures\":", s.connection_failures,
                      ",\"dkim_signed\":", s.dkim_signed, ",\"dkim_reused\":", s.dkim_reused);
    }
    const delivery::LedgerStats& l = shard_.ledger().stats();
    absl::StrAppend(&out, ",\"live_messages\":", shard_.ledger().live_messages(),
                    ",\"messages_retired\":", l.messages_retired,
                    ",\"journal_entries\":", l.journal_entries,
                    ",\"segments_removed\":", l.segments_removed, "}");
    return out;
  }
  // Unknown verbs first, so that a typo is not answered "needs an argument".
  if (verb != "flush" && verb != "suspend" && verb != "resume" && verb != "bounce") {
    return absl::StrCat("error: unknown command \"", std::string(verb).substr(0, 32), "\"");
  }
  if (engine == nullptr) return "error: delivery is disabled (--no-delivery)";
  if (verb == "flush") return absl::StrCat("ok ", engine->Flush(arg), " domains flushed");
  if (arg.empty()) return absl::StrCat("error: ", base::Av(verb), " needs an argument");
  if (verb == "suspend") return engine->Suspend(arg) ? "ok suspended" : "ok suspended (empty)";
  if (verb == "resume") return engine->Resume(arg) ? "ok resumed" : "ok not queued here";
  return absl::StrCat("ok ", engine->BounceQueued(arg), " recipients bounced");
}

}  // namespace sluice::server
