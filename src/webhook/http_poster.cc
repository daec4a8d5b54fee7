// Blocking HTTP/1.1 POST with one deadline; see sluice/webhook/http_poster.h.
#include "sluice/webhook/http_poster.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/clock.h"
#include "sluice/http/response_parser.h"

namespace sluice::webhook {
namespace {

absl::Status Errno(std::string_view what, int err) {
  return absl::UnavailableError(absl::StrCat(std::string(what), ": ", std::strerror(err)));
}

// A poll slice: how soon a Stop() is noticed inside a long wait.
constexpr uint64_t kPollSliceMs = 100;

}  // namespace

// Waits for `events` on fd until the deadline: OK, or DeadlineExceeded.
// Once the owner stops, the deadline is at most stop_drain_ms_ away.
absl::Status HttpPoster::Wait(int fd, short events, uint64_t deadline_ms) {
  while (true) {
    const uint64_t now = base::MonotonicMillis();
    if (stop_ != nullptr && stop_->load(std::memory_order_relaxed)) {
      if (stopped_at_ms_ == 0) stopped_at_ms_ = now;
      deadline_ms = std::min(deadline_ms, stopped_at_ms_ + stop_drain_ms_);
    }
    if (now >= deadline_ms) return absl::DeadlineExceededError("timed out");
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min(deadline_ms - now, kPollSliceMs)));
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) return Errno("poll", errno);
  }
}

HttpPoster::HttpPoster(http::Url url, std::string headers, std::shared_ptr<const tls::Context> tls,
                       const std::atomic<bool>* stop, uint64_t stop_drain_ms)
    : url_(std::move(url)),
      tls_(std::move(tls)),
      headers_(std::move(headers)),
      stop_(stop),
      stop_drain_ms_(stop_drain_ms) {}

void HttpPoster::Close() {
  session_.reset();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

// Sends what the TLS session has produced.
absl::Status HttpPoster::FlushTls(uint64_t deadline_ms) {
  std::string& out = session_->ciphertext_out();
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = send(fd_, out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (absl::Status s = Wait(fd_, POLLOUT, deadline_ms); !s.ok()) return s;
    } else {
      return Errno("send", n < 0 ? errno : EPIPE);
    }
  }
  out.clear();
  return absl::OkStatus();
}

// Ciphertext from the socket into the session: > 0 taken, 0 at EOF, or an error.
absl::StatusOr<size_t> HttpPoster::FeedTls(uint64_t deadline_ms) {
  char buf[16384];
  while (true) {
    const ssize_t n = recv(fd_, buf, std::min(sizeof buf, session_->cipher_room()), 0);
    if (n > 0) {
      session_->PutCiphertext(buf, static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
    if (n == 0) {
      session_->PutEof();
      return 0;
    }
    if (errno != EAGAIN && errno != EINTR) return Errno("recv", errno);
    if (absl::Status s = Wait(fd_, POLLIN, deadline_ms); !s.ok()) return s;
  }
}

absl::Status HttpPoster::Handshake(uint64_t deadline_ms) {
  auto session = tls::Session::NewClient(tls_, url_.host);
  if (!session.ok()) return session.status();
  session_ = *std::move(session);
  while (true) {
    const tls::Session::Progress p = session_->Handshake();
    if (absl::Status s = FlushTls(deadline_ms); !s.ok()) return s;
    if (p == tls::Session::Progress::kEstablished) return absl::OkStatus();
    if (p == tls::Session::Progress::kFailed) {
      return absl::UnavailableError(absl::StrCat("TLS handshake: ", session_->error()));
    }
    auto fed = FeedTls(deadline_ms);
    if (!fed.ok()) return fed.status();
    if (*fed == 0) return absl::UnavailableError("TLS handshake: connection closed");
  }
}

// Plaintext out in pieces, so the ciphertext buffer stays small.
absl::Status HttpPoster::SendTls(std::string_view data, uint64_t deadline_ms) {
  constexpr size_t kPiece = 64 * 1024;
  for (size_t at = 0; at < data.size(); at += kPiece) {
    if (absl::Status s = session_->Write(data.substr(at, kPiece)); !s.ok()) return s;
    if (absl::Status s = FlushTls(deadline_ms); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Like recv(2): plaintext bytes, 0 at the end of the stream, -1 with errno.
ssize_t HttpPoster::RecvTls(char* buf, size_t size, uint64_t deadline_ms) {
  while (true) {
    auto n = session_->Read(buf, size);
    if (!n.ok()) {
      errno = EPROTO;
      return -1;
    }
    if (*n > 0) return static_cast<ssize_t>(*n);
    if (session_->peer_closed()) return 0;
    auto fed = FeedTls(deadline_ms);
    if (!fed.ok()) {
      errno = absl::IsDeadlineExceeded(fed.status()) ? ETIMEDOUT : ECONNRESET;
      return -1;
    }
    if (*fed == 0) return 0;
  }
}

absl::Status HttpPoster::Connect(uint64_t deadline_ms) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const std::string port = absl::StrCat(url_.port);
  if (const int rc = getaddrinfo(url_.host.c_str(), port.c_str(), &hints, &list); rc != 0) {
    return absl::UnavailableError(absl::StrCat("resolve ", url_.host, ": ", gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError("no address");
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = Errno("socket", errno);
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = Errno(absl::StrCat("connect ", url_.HostHeader()), errno);
      close(fd);
      continue;
    }
    absl::Status s = Wait(fd, POLLOUT, deadline_ms);
    int err = 0;
    socklen_t len = sizeof err;
    if (s.ok() && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
      s = Errno(absl::StrCat("connect ", url_.HostHeader()), err);
    }
    if (!s.ok()) {
      last = s;
      close(fd);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd_ = fd;
    freeaddrinfo(list);
    return tls_ == nullptr ? absl::OkStatus() : Handshake(deadline_ms);
  }
  freeaddrinfo(list);
  return last;
}

absl::StatusOr<int> HttpPoster::Exchange(std::string_view head, std::string_view body,
                                         uint64_t deadline_ms, bool& sent_nothing) {
  sent_nothing = true;
  if (session_ != nullptr) {
    if (absl::Status s = SendTls(head, deadline_ms); !s.ok()) return s;
    if (absl::Status s = SendTls(body, deadline_ms); !s.ok()) return s;
    return ReadResponse(deadline_ms, sent_nothing);
  }
  size_t done = 0;
  const size_t total = head.size() + body.size();
  while (done < total) {
    iovec iov[2];
    int count = 0;
    if (done < head.size()) {
      iov[count++] = {const_cast<char*>(head.data() + done), head.size() - done};
      iov[count++] = {const_cast<char*>(body.data()), body.size()};
    } else {
      iov[count++] = {const_cast<char*>(body.data() + done - head.size()), total - done};
    }
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = static_cast<size_t>(count);
    const ssize_t n = sendmsg(fd_, &m, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (absl::Status s = Wait(fd_, POLLOUT, deadline_ms); !s.ok()) return s;
      continue;
    }
    return Errno("send", n < 0 ? errno : EPIPE);
  }
  return ReadResponse(deadline_ms, sent_nothing);
}

absl::StatusOr<int> HttpPoster::ReadResponse(uint64_t deadline_ms, bool& sent_nothing) {
  response_.clear();
  char buf[16384];
  while (true) {
    auto parsed = http::ParseResponse(response_, kMaxResponseBytes);
    if (!parsed.ok()) return parsed.status();
    if (parsed->has_value()) {
      if (!(*parsed)->keep_alive || (*parsed)->consumed != response_.size()) Close();
      return (*parsed)->status;
    }
    if (response_.size() > kMaxResponseBytes) {
      return absl::ResourceExhaustedError("response too long");
    }
    const ssize_t n =
        session_ != nullptr ? RecvTls(buf, sizeof buf, deadline_ms) : recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      sent_nothing = false;
      response_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return absl::UnavailableError("connection closed before a complete response");
    if (errno == EAGAIN || errno == EINTR) {
      if (absl::Status s = Wait(fd_, POLLIN, deadline_ms); !s.ok()) return s;
      continue;
    }
    return Errno("recv", errno);
  }
}

absl::StatusOr<int> HttpPoster::Post(std::string_view body, size_t records, uint32_t timeout_ms) {
  const uint64_t deadline_ms = base::MonotonicMillis() + timeout_ms;
  const std::string head = absl::StrCat(
      "POST ", url_.target, " HTTP/1.1\r\nHost: ", url_.HostHeader(),
      "\r\nUser-Agent: sluice-webhook\r\nContent-Type: application/json\r\nContent-Length: ",
      body.size(), "\r\nX-Sluice-Records: ", records, "\r\n", headers_, "\r\n");
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = fd_ >= 0;
    if (!reused) {
      if (absl::Status s = Connect(deadline_ms); !s.ok()) return s;
    }
    bool sent_nothing = true;
    absl::StatusOr<int> status = Exchange(head, body, deadline_ms, sent_nothing);
    if (status.ok()) return status;
    Close();
    // A keep-alive connection the receiver had closed: once more, afresh.
    if (!(reused && sent_nothing && !absl::IsDeadlineExceeded(status.status()))) return status;
  }
  return absl::UnavailableError("unreachable");
}

}  // namespace sluice::webhook
