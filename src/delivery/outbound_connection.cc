#include "sluice/delivery/outbound_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"

namespace sluice::delivery {
namespace {

// `text` starts with its enhanced code ("4.4.1 connect to ...").
smtp::Reply LocalReply(int code, std::string text) {
  smtp::Reply r;
  r.code = code;
  r.local = true;
  size_t used = 0;
  if (smtp::EnhancedCode::Parse(text, r.enhanced, used)) {
    text.erase(0, std::min(text.size(), used + 1));
  }
  r.text = std::move(text);
  r.lines = 1;
  return r;
}

// A send buffer that was sent whole: emptied, and its memory given back when
// it held more than a small reply needs. Most connections wait for a reply
// most of the time; a body's capacity kept on each of them made up most of
// the relay's memory (docs/ARCHITECTURE.md, "Outbound memory").
void EmptySent(std::string& buffer) {
  constexpr size_t kKeep = 4096;
  if (buffer.capacity() > kKeep) {
    std::string().swap(buffer);
  } else {
    buffer.clear();
  }
}

}  // namespace

std::string TlsSessionCache::Key(const Target& target, bool verified) {
  return absl::StrCat(target.ip.ToString(), " ", target.host, verified ? " verified" : "");
}

const tls::SavedSession* TlsSessionCache::Find(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->second;
}

void TlsSessionCache::Put(const std::string& key, tls::SavedSession session) {
  if (capacity_ == 0) return;
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->second = std::move(session);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (index_.size() >= capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(key, std::move(session));
  index_.emplace(key, lru_.begin());
}

void TlsSessionCache::Erase(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

OutboundConnection::OutboundConnection(io::Loop& ring, ConnectionDelegate& delegate,
                                       const OutboundOptions& options, std::vector<Target> targets,
                                       uint16_t port, OutboundTlsSetup tls)
    : ring_(ring),
      delegate_(delegate),
      options_(options),
      targets_(std::move(targets)),
      port_(port),
      tls_setup_(std::move(tls)) {
  SLUICE_CHECK(!targets_.empty());
}

OutboundConnection::~OutboundConnection() {
  SLUICE_CHECK(ops_ == 0);
  if (fd_ >= 0) ring_.CloseNow(fd_);
}

void OutboundConnection::Start(uint64_t now_ms) {
  now_ms_ = now_ms;
  Connect();
}

void OutboundConnection::Connect() {
  const Target& t = targets_[target_index_];
  smtp::ClientConfig client = options_.client;
  client.tls = tls_fallback_ ? smtp::TlsPolicy::kNone : tls_setup_.policy;
  session_ = std::make_unique<smtp::ClientSession>(std::move(client), *this);
  tls_.reset();
  tls_offered_ = tls_saved_ = false;
  tls_shutdown_sent_ = false;
  timer_epoch_ = ~0ull;
  connected_ = false;
  closing_ = false;
  sending_buffer_.clear();
  sent_ = 0;
  std::memset(&peer_, 0, sizeof peer_);
  if (t.ip.family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&peer_);
    a->sin_family = AF_INET;
    a->sin_port = htons(port_);
    std::memcpy(&a->sin_addr, t.ip.bytes, 4);
    peer_size_ = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&peer_);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port_);
    std::memcpy(&a->sin6_addr, t.ip.bytes, 16);
    peer_size_ = sizeof(sockaddr_in6);
  }
  fd_ = ring_.Socket(t.ip.family, SOCK_STREAM);
  if (fd_ < 0) {
    const int err = -fd_;
    fd_ = -1;
    return NextTargetOrFinish(
        smtp::CloseInfo{smtp::CloseReason::kConnectionLost, smtp::Outcome::kTransient,
                        LocalReply(451, absl::StrCat("4.4.0 socket: ", std::strerror(err)))});
  }
  ring_.SetSocketOption(fd_, IPPROTO_TCP, TCP_NODELAY, 1);
  if (options_.source && options_.source->storage.ss_family == t.ip.family) {
    // Port 0 in the source address: the kernel picks the port.
    if (const int rc = ring_.Bind(fd_, options_.source->get(), options_.source->size); rc != 0) {
      const int err = -rc;
      CloseSocket();
      return NextTargetOrFinish(smtp::CloseInfo{
          smtp::CloseReason::kConnectionLost, smtp::Outcome::kTransient,
          LocalReply(451, absl::StrCat("4.4.0 bind to the source address: ", std::strerror(err)))});
    }
  }
  connecting_ = true;
  ring_.Connect(&connect_op_, fd_, reinterpret_cast<sockaddr*>(&peer_), peer_size_, io::kLinked);
  connect_timeout_.tv_sec = options_.connect_timeout_ms / 1000;
  connect_timeout_.tv_nsec = static_cast<long long>(options_.connect_timeout_ms % 1000) * 1000000;
  ring_.LinkTimeout(&timeout_op_, &connect_timeout_);
  ops_ += 2;
}

void OutboundConnection::OnReconnect(int) {
  --ops_;
  if (finished_) return MaybeReleased();
  Connect();
}

void OutboundConnection::OnConnectTimeout(int) {
  --ops_;
  MaybeReleased();
}

void OutboundConnection::OnConnect(int result) {
  --ops_;
  connecting_ = false;
  if (finished_) return MaybeReleased();
  if (result < 0) {
    const std::string why =
        result == -ECANCELED ? std::string("connection timed out") : std::strerror(-result);
    CloseSocket();
    return NextTargetOrFinish(
        smtp::CloseInfo{smtp::CloseReason::kConnectionLost, smtp::Outcome::kTransient,
                        LocalReply(451, absl::StrCat("4.4.1 connect to ", target().host, "[",
                                                     target().ip.ToString(), "]: ", why))});
  }
  connected_ = true;
  ArmReceive();
  Tick(now_ms_);  // arms the greeting timeout
}

void OutboundConnection::ArmReceive() {
  if (receiving_ || fd_ < 0 || closing_) return;
  receiving_ = true;
  ++ops_;
  ring_.Recv(&receive_op_, fd_, receive_buffer_, sizeof receive_buffer_);
}

void OutboundConnection::OnReceive(int result) {
  --ops_;
  receiving_ = false;
  if (finished_ || closing_ || session_->closed()) return MaybeReleased();
  bool more = true;
  ++session_depth_;
  if (result <= 0) {
    if (tls_ && !tls_->established()) {
      TlsBroken("connection closed during the TLS handshake");
      more = false;
    } else {
      session_->OnConnectionLost();
    }
  } else if (tls_) {
    more = FeedCiphertext(receive_buffer_, static_cast<size_t>(result));
  } else {
    session_->Feed(receive_buffer_, static_cast<size_t>(result));
  }
  --session_depth_;
  if (more) {
    if (session_ && !session_->closed() && !closing_) ArmReceive();
    Send();
  }
  MaybeReleased();  // now that the session is off the stack
}

void OutboundConnection::Send() {
  if (fd_ < 0 || !connected_ || sending_) return;
  if (sending_buffer_.size() == sent_) {
    EmptySent(sending_buffer_);
    sent_ = 0;
    if (tls_) {
      // Plaintext is encrypted only now, after the previous ciphertext left:
      // the session's flow control (body_paused) keeps bounding the output.
      if (tls_->established() && !session_->output().empty()) {
        if (!tls_->Write(session_->output()).ok()) {
          session_->output().clear();
          ++session_depth_;
          session_->OnConnectionLost();
          --session_depth_;
        }
        session_->output().clear();
      }
      if (closing_ && tls_->established() && !tls_shutdown_sent_ && session_->output().empty()) {
        tls_->Shutdown();
        tls_shutdown_sent_ = true;
      }
      sending_buffer_.swap(tls_->ciphertext_out());
    } else {
      sending_buffer_.swap(session_->output());
    }
    if (sending_buffer_.empty()) {
      EmptySent(sending_buffer_);  // the session's drained output
      if (closing_) CloseSocket(), NextTargetOrFinish(last_close_);
      return;
    }
  }
  sending_ = true;
  ++ops_;
  ring_.Send(&send_op_, fd_, sending_buffer_.data() + sent_, sending_buffer_.size() - sent_);
}

void OutboundConnection::OnSent(int result) {
  --ops_;
  sending_ = false;
  if (finished_) return MaybeReleased();
  if (result <= 0) {
    sending_buffer_.clear();
    sent_ = 0;
    if (closing_) {
      CloseSocket();
      NextTargetOrFinish(last_close_);
      return MaybeReleased();
    }
    ++session_depth_;
    session_->OnConnectionLost();
    --session_depth_;
    Send();
    return MaybeReleased();
  }
  sent_ += static_cast<size_t>(result);
  // A long body goes out in pieces: the session takes more once its output
  // fell below the high-water mark.
  if (sent_ == sending_buffer_.size() && session_->state() == smtp::ClientSession::State::kBody &&
      !session_->body_paused()) {
    delegate_.OnBodyWanted(*this);
  }
  Send();
  MaybeReleased();
}

void OutboundConnection::Tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  if (finished_ || !connected_ || closing_ || !session_) return;
  if (session_->timer_epoch() != timer_epoch_) {
    timer_epoch_ = session_->timer_epoch();
    const auto t = session_->timeout();
    deadline_ms_ = t.count() == 0 ? 0 : now_ms + static_cast<uint64_t>(t.count());
    return;
  }
  if (deadline_ms_ != 0 && now_ms >= deadline_ms_) {
    ++session_depth_;
    session_->OnTimeout();
    --session_depth_;
    Send();
    MaybeReleased();
  }
}

void OutboundConnection::Abort() {
  if (finished_) return;
  if (fd_ >= 0 && connected_ && session_ && !session_->closed()) {
    ++session_depth_;
    session_->OnConnectionLost();
    --session_depth_;
  }
  if (fd_ >= 0) ring_.Shutdown(fd_, SHUT_RDWR);
  if (connecting_) ring_.Cancel(nullptr, &connect_op_);
  MaybeReleased();
}

void OutboundConnection::CloseSocket() {
  if (fd_ < 0) return;
  // shutdown(2) ends a pending receive; the descriptor itself is closed once
  // no operation can still name it.
  ring_.Shutdown(fd_, SHUT_RDWR);
  if (ops_ == 0) {
    ring_.CloseNow(fd_);
    fd_ = -1;
  } else {
    closed_fds_.push_back(fd_);
    fd_ = -1;
  }
}

void OutboundConnection::OnStartTls() {
  // The server said 220 to STARTTLS: from here on the socket carries TLS.
  if (!tls_setup_.context) return TlsBroken("no TLS client context (see the start-up log)");
  auto session = tls::Session::NewClient(tls_setup_.context, target().host);
  if (!session.ok()) return TlsBroken(std::string(session.status().message()));
  tls_ = std::move(*session);
  if (tls_setup_.sessions != nullptr) {
    tls_key_ = TlsSessionCache::Key(target(), tls_setup_.context->verify_peer());
    if (const tls::SavedSession* saved = tls_setup_.sessions->Find(tls_key_)) {
      // A peer that no longer knows it answers with a full handshake.
      tls_offered_ = tls_->Offer(*saved);
    }
  }
  DriveHandshake();
}

void OutboundConnection::DriveHandshake() {
  const tls::Session::Progress p = tls_->Handshake();
  // A copy: TlsBroken frees the session that owns error().
  if (p == tls::Session::Progress::kFailed) return TlsBroken(std::string(tls_->error()));
  if (p == tls::Session::Progress::kEstablished) {
    if (tls_setup_.handshakes != nullptr) ++*tls_setup_.handshakes;
    session_->OnTlsReady();  // EHLO again, over TLS
  }
  Send();
}

bool OutboundConnection::FeedCiphertext(const char* data, size_t size) {
  char plain[16384];
  size_t off = 0;
  while (off < size || tls_->established()) {
    const size_t took = off < size ? tls_->PutCiphertext(data + off, size - off) : 0;
    off += took;
    if (!tls_->established()) {
      DriveHandshake();
      if (tls_ == nullptr || session_->closed()) return false;
      if (!tls_->established()) {
        if (took == 0 && off < size) {
          TlsBroken("TLS input overflow during the handshake");
          return false;
        }
        continue;
      }
    }
    // Established: decrypt all that is complete.
    size_t got_total = 0;
    for (;;) {
      absl::StatusOr<size_t> got = tls_->Read(plain, sizeof plain);
      if (!got.ok()) {
        session_->OnConnectionLost();
        return false;
      }
      if (*got == 0) break;
      got_total += *got;
      if (tls_setup_.sessions != nullptr && !tls_saved_) {
        // The first reply over TLS has been read, so a TLS 1.3 ticket sent
        // after the handshake has been taken in. A resumed session gives
        // nothing (tls::Session::Save): the cached one stays.
        tls::SavedSession saved = tls_->Save();
        tls_saved_ = !saved.empty() || tls_->resumed();
        if (!saved.empty()) tls_setup_.sessions->Put(tls_key_, std::move(saved));
      }
      if (!session_->Feed(plain, *got)) return false;
    }
    if (off >= size) break;
    if (took == 0 && got_total == 0) {
      session_->OnConnectionLost();  // cannot make progress: a broken peer
      return false;
    }
  }
  if (tls_->peer_closed()) session_->OnConnectionLost();
  return !session_->closed();
}

void OutboundConnection::TlsBroken(const std::string& why) {
  tls_failed_ = true;
  if (tls_setup_.handshake_failures != nullptr) ++*tls_setup_.handshake_failures;
  if (tls_setup_.policy == smtp::TlsPolicy::kOpportunistic) tls_fallback_ = true;
  // A peer that chokes on the offered session must not get it again: the
  // next attempt does a full handshake.
  if (tls_offered_ && tls_setup_.sessions != nullptr) tls_setup_.sessions->Erase(tls_key_);
  // Nothing more goes over the broken layer, in either form.
  tls_.reset();
  sending_buffer_.clear();
  sent_ = 0;
  session_->output().clear();
  tls_error_ = LocalReply(451, absl::StrCat("4.7.5 TLS handshake with ", target().host, ": ", why));
  if (!session_->closed()) session_->OnConnectionLost();  // OnClosed takes tls_error_
  MaybeReleased();
}

bool OutboundConnection::tls_resumed() const {
  return tls_ != nullptr && tls_->established() && tls_->resumed();
}

std::string OutboundConnection::tls_description() const {
  if (!tls_ || !tls_->established()) return std::string();
  return absl::StrCat(tls_->version(), " ", tls_->cipher());
}

void OutboundConnection::OnSessionReady() {
  ever_ready_ = true;
  delegate_.OnReady(*this);
}

void OutboundConnection::OnBodyWanted() { delegate_.OnBodyWanted(*this); }

void OutboundConnection::OnRecipientResult(size_t index, smtp::Outcome outcome,
                                           const smtp::Reply& reply) {
  delegate_.OnRecipientResult(*this, index, outcome, reply);
}

void OutboundConnection::OnMessageDone(const smtp::MessageResult& result) {
  delegate_.OnMessageDone(*this, result);
}

void OutboundConnection::OnClosed(const smtp::CloseInfo& info) {
  // Send what the session still has (QUIT), then close.
  last_close_ = info;
  if (tls_error_) {
    last_close_.reply = *std::move(tls_error_);
    tls_error_.reset();
  }
  closing_ = true;
  if (!sending_) Send();
}

void OutboundConnection::NextTargetOrFinish(const smtp::CloseInfo& info) {
  if (finished_) return;
  if (!ever_ready_ && tls_fallback_ && !fallback_used_ &&
      info.outcome == smtp::Outcome::kTransient) {
    // Opportunistic TLS failed: the same target once more, in the clear.
    fallback_used_ = true;
    pending_next_ = true;
    return MaybeReleased();
  }
  if (!ever_ready_ && target_index_ + 1 < targets_.size() &&
      info.outcome == smtp::Outcome::kTransient) {
    // RFC 5321 5.1: try the next MX (or address) when one cannot be used.
    // The old socket's operations must end first: their completions share
    // this object's records.
    ++target_index_;
    last_failure_ = info;
    pending_next_ = true;
    return MaybeReleased();
  }
  finished_ = true;
  delegate_.OnFinished(*this, info, ever_ready_);
  MaybeReleased();
}

void OutboundConnection::MaybeReleased() {
  if (ops_ != 0 || session_depth_ != 0) return;
  for (int fd : closed_fds_) ring_.CloseNow(fd);
  closed_fds_.clear();
  if (pending_next_) {
    // Not from here: this may run inside the old session's Feed (a 421 that
    // closed it), and Connect replaces the session. A no-op through the
    // ring comes back once the stack has unwound.
    pending_next_ = false;
    ++ops_;
    ring_.Nop(&reconnect_op_);
    return;
  }
  if (finished_ && !released_) {
    released_ = true;
    if (fd_ >= 0) {
      ring_.CloseNow(fd_);
      fd_ = -1;
    }
    delegate_.Released(*this);
  }
}

}  // namespace sluice::delivery
