#include "sluice/server/connection.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "shard.h"
#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/base/limits.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"
#include "sluice/server/trace_headers.h"

namespace sluice::server {
namespace {

smtp::SessionConfig MakeSessionConfig(const config::Config& c, const std::string& client_ip,
                                      bool relay_allowed, tls::Credentials* creds,
                                      const tls::ListenerPolicy& policy) {
  smtp::SessionConfig s;
  s.hostname = c.hostname;
  s.client_ip = client_ip;
  s.relay_allowed = relay_allowed;
  s.max_line_length = c.max_line_length;
  s.max_data_line_length = c.max_data_line_length;
  s.max_message_size = c.max_message_size;
  s.max_recipients = c.max_recipients;
  s.max_errors = c.max_errors;
  s.max_hops = c.max_hops;
  s.postmaster_address = c.postmaster_address;
  s.require_from = c.require_from;
  if (creds != nullptr) {
    s.tls_available = creds->server_context() != nullptr;
    s.tls_active = policy.implicit_tls;
    s.require_tls = policy.require_tls;
    s.auth_available = creds->verifier() != nullptr;
    s.auth_plaintext = creds->auth_plaintext();
    s.require_auth = policy.require_auth;
  }
  return s;
}

// RFC 3848's protocol names for Received: and the accounting log.
std::string ProtocolName(const smtp::Envelope& e) {
  std::string p = e.esmtp ? "ESMTP" : "SMTP";
  if (e.tls) p += 'S';
  if (!e.auth_user.empty()) p += 'A';
  return p;
}

// How much of a user name a failed AUTH shows in its diagnostic line (the
// line escapes it): enough to recognise it, bounded against a flood of long
// names.
constexpr size_t kUserShownMax = 64;

}  // namespace

Connection::Connection(Shard& shard, int fd, std::string client_ip, bool relay_allowed,
                       tls::ListenerPolicy policy)
    : shard_(shard),
      fd_(fd),
      client_ip_(std::move(client_ip)),
      session_(
          MakeSessionConfig(shard.config(), client_ip_, relay_allowed, shard.credentials(), policy),
          *this),
      policy_(policy) {}

Connection::~Connection() = default;

void Connection::Start() {
  last_input_ms_ = shard_.now_ms();
  started_ms_ = last_input_ms_;
  // On an implicit-TLS listener the greeting waits, queued, until the
  // handshake is done (MaybeSend encrypts only an established session).
  if (policy_.implicit_tls) BeginTls();
  session_.Start();
  if (shard_.stopping()) session_.OnShutdown();
  MaybeSend();
  ArmReceive();
}

void Connection::ArmReceive() {
  if (recv_armed_ || shut_down_ || recv_paused_) return;
  shard_.loop().RecvMultishot(&recv_done_, fd_, shard_.buffers());
  recv_armed_ = true;
}

void Connection::OnReceive(int result, uint32_t flags) {
  if (!io::HasMore(flags)) recv_armed_ = false;
  if (result > 0 && io::HasBuffer(flags)) {
    const uint16_t id = io::BufferId(flags);
    shard_.buffers().Acquire(id);
    if (!shut_down_ && !session_.closed()) {
      const uint64_t progress = session_.progress();
      TakeInput(id, static_cast<size_t>(result));
      if (session_.progress() != progress) last_input_ms_ = shard_.now_ms();
    }
    // Whatever the spool keeps of this buffer, it holds by its own reference.
    shard_.buffers().Release(id);
    if (carried() > kCarryMax && recv_armed_ && !recv_paused_) {
      // The session is waiting (a commit, or a client that does not read
      // its replies) and its unread input reached the cap: stop reading;
      // the socket's own buffer and TCP flow control take it from here.
      recv_paused_ = true;
      shard_.loop().Cancel(nullptr, &recv_done_);
    }
    if (!recv_armed_) ArmReceive();
  } else if (result == -ENOBUFS) {
    if (!shut_down_) shard_.Starved(this);
  } else if (result == -ECANCELED && recv_paused_) {
    // Paused on purpose; ProcessInput re-arms.
  } else if (!recv_armed_ || result <= 0) {
    BeginShutdown();  // EOF or a socket error: the peer is gone
  }
  MaybeDestroy();
}

void Connection::TakeInput(uint16_t buffer, size_t size) {
  const char* data = shard_.buffers().data(buffer);
  size_t used = 0;
  if (carried() == 0) {
    // Nothing older waits: parse in place, body spans may stay in the buffer.
    DropCarry();
    used = Consume(data, size, buffer);
  }
  if (used < size && !shut_down_ && !session_.closed()) {
    if (carry_pos_ > 0) {
      carry_.erase(0, carry_pos_);
      carry_pos_ = 0;
    }
    carry_.append(data + used, size - used);
  }
  ProcessInput();
}

size_t Connection::Consume(const char* data, size_t size, uint16_t buffer) {
  if (tls_ && !tls_failed_) return ConsumeTls(data, size);
  if (tls_) return size;  // failed: nothing more is read
  feeding_buffer_ = buffer;
  const size_t used = session_.Feed(data, size);
  feeding_buffer_ = kNoBuffer;
  if (session_.starttls_pending()) {
    // Whatever the client sent after STARTTLS left it before our 220 could
    // reach it: plaintext injection. Drop it unread (RFC 3207 section 5),
    // this input's rest and everything carried.
    starttls_drop_ = true;
    BeginTls();
    return size;
  }
  return used;
}

size_t Connection::ConsumeTls(const char* data, size_t size) {
  size_t used = 0;
  while (!tls_failed_ && !shut_down_) {
    // Ciphertext into the TLS session, as far as its bounded input takes it.
    size_t took = 0;
    if (used < size && tls_->cipher_room() > 0) {
      took = tls_->PutCiphertext(data + used, size - used);
      used += took;
    }
    if (tls_handshaking_) {
      const tls::Session::Progress progress = tls_->Handshake();
      if (progress == tls::Session::Progress::kFailed) {
        TlsFailed(tls_->error());
        return size;
      }
      if (progress == tls::Session::Progress::kInProgress) {
        if (took > 0 && used < size) continue;  // room appeared: feed more
        return used;
      }
      tls_handshaking_ = false;
      ++shard_.stats().tls_handshakes;
      session_.OnTlsStarted();  // STARTTLS: start over (a no-op when implicit)
    }
    const bool fed = FeedPlaintext();
    if (tls_failed_) return size;
    if (tls_->peer_closed() && !session_.closed()) {
      // close_notify: nothing more will come; finish like an EOF.
      BeginShutdown();
      return size;
    }
    if (took == 0 && !fed) return used;
    if (used == size && !fed) return used;
  }
  return size;  // failed or shut down: the rest is dropped
}

bool Connection::FeedPlaintext() {
  bool fed = false;
  while (!session_.paused() && !session_.closed()) {
    if (plain_pos_ == plain_end_) {
      auto n = tls_->Read(plain_.get(), kPlainBuffer);
      if (!n.ok()) {
        TlsFailed(base::Sv(n.status().message()));
        return fed;
      }
      plain_pos_ = 0;
      plain_end_ = *n;
      if (*n == 0) break;  // needs more ciphertext (or the peer said close_notify)
    }
    const size_t used = session_.Feed(plain_.get() + plain_pos_, plain_end_ - plain_pos_);
    plain_pos_ += used;
    fed = fed || used > 0;
  }
  return fed;
}

void Connection::DropCarry() {
  carry_pos_ = 0;
  if (carry_.capacity() > kCarryKeep) {
    std::string().swap(carry_);  // an idle connection keeps no big buffer
  } else {
    carry_.clear();
  }
}

void Connection::BeginTls() {
  std::shared_ptr<const tls::Context> ctx =
      shard_.credentials() != nullptr ? shard_.credentials()->server_context() : nullptr;
  absl::StatusOr<std::unique_ptr<tls::Session>> s =
      ctx ? tls::Session::NewServer(std::move(ctx))
          : absl::FailedPreconditionError("no TLS context");
  if (!s.ok()) return TlsFailed(base::Sv(s.status().message()));
  tls_ = *std::move(s);
  tls_handshaking_ = true;
  plain_ = std::make_unique<char[]>(kPlainBuffer);
  // Replies so far (ending with STARTTLS's 220) leave in clear, before any
  // byte of the handshake.
  clear_out_.append(session_.output());
  session_.output().clear();
}

void Connection::TlsFailed(std::string_view why) {
  if (tls_failed_) return;
  tls_failed_ = true;
  if (tls_ == nullptr || tls_handshaking_) ++shard_.stats().tls_handshake_failures;
  SLUICE_LOG(kWarning, "tls.failed", "TLS failed; connection closed",
             {{"peer", client_ip_}, {"reason", why}});
  DropCarry();
  // An alert wolfSSL produced may still go out; then the connection closes.
  MaybeSend();
  if (!send_in_flight_) BeginShutdown();
}

void Connection::ProcessInput() {
  // Input carried while the session waited: always copied (the session
  // parses it from carry_, which later input may move).
  while (carried() > 0 && !shut_down_ && !session_.closed()) {
    const size_t used = Consume(carry_.data() + carry_pos_, carried(), kNoBuffer);
    if (starttls_drop_) break;
    carry_pos_ += used;
    if (used == 0) break;
  }
  starttls_drop_ = false;
  // TLS keeps decrypted input of its own (plain_, and records wolfSSL has
  // read ahead): a session that waited goes on with it even when nothing
  // new arrives.
  if (carried() == 0 && tls_ && !tls_failed_ && !tls_handshaking_ && !shut_down_) {
    ConsumeTls(nullptr, 0);
  }
  if (carried() == 0 || session_.closed() || tls_failed_ || shut_down_) DropCarry();
  if (session_.transaction_open()) {
    if (transaction_started_ms_ == 0) transaction_started_ms_ = shard_.now_ms();
  } else {
    transaction_started_ms_ = 0;
  }
  if (recv_paused_ && carried() <= kCarryMax / 2 && !recv_armed_) {
    recv_paused_ = false;
    ArmReceive();
  }
  MaybeSend();
}

void Connection::MaybeSend() {
  if (send_in_flight_ || shut_down_) return;
  if (sent_ == sending_.size()) {
    sending_.clear();
    sent_ = 0;
    if (!clear_out_.empty()) {
      sending_.swap(clear_out_);
    } else if (tls_) {
      if (tls_->established() && !tls_failed_) {
        // Encrypt only once the last ciphertext went: the TLS output then
        // never holds more than one round of replies (<= kOutputHighWater).
        if (!session_.output().empty()) {
          if (absl::Status st = tls_->Write(session_.output()); !st.ok()) {
            session_.output().clear();
            TlsFailed(base::Sv(st.message()));
            return;
          }
          session_.output().clear();
        }
        if (session_.closed() && !tls_closing_) {
          tls_closing_ = true;
          tls_->Shutdown();  // close_notify after the last reply
        }
      }
      sending_.swap(tls_->ciphertext_out());
    } else {
      sending_.swap(session_.output());
    }
  }
  if (sending_.empty()) {
    if (session_.closed() || tls_failed_) BeginShutdown();
    return;
  }
  shard_.loop().Send(&send_done_, fd_, sending_.data() + sent_, sending_.size() - sent_);
  send_in_flight_ = true;
  send_started_ms_ = shard_.now_ms();
}

void Connection::OnSend(int result, uint32_t) {
  send_in_flight_ = false;
  if (result < 0) {
    sending_.clear();
    sent_ = 0;
    BeginShutdown();
  } else {
    sent_ += static_cast<size_t>(result);
    // Replies drained: a session paused on output can go on.
    ProcessInput();
  }
  MaybeDestroy();
}

void Connection::BeginShutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (message_ != nullptr) {
    shard_.spool().Abort(message_);  // a body that never finished
    message_ = nullptr;
  }
  DropCarry();
  // Ends the multishot receive and any send; the fd is closed once they
  // have completed (MaybeDestroy). A plain syscall on purpose: io_uring
  // runs SHUTDOWN from its worker pool, so it could land after our CLOSE
  // and hit a new connection that reused the descriptor number.
  shutdown(fd_, SHUT_RDWR);
  if (recv_armed_) shard_.loop().Cancel(nullptr, &recv_done_);
}

void Connection::MaybeDestroy() {
  if (!shut_down_ || recv_armed_ || send_in_flight_ || commit_in_flight_ || auth_in_flight_ ||
      destroyed_) {
    return;
  }
  destroyed_ = true;
  shard_.loop().Close(nullptr, fd_);
  shard_.Closed(this);  // the shard frees us once our last SQEs were submitted
}

void Connection::Shutdown() {
  // Mid-handshake there is no channel to say 421 on: just close.
  if (tls_handshaking_) return ForceClose();
  session_.OnShutdown();
  MaybeSend();
  MaybeDestroy();
}

void Connection::ForceClose() {
  BeginShutdown();
  MaybeDestroy();
}

void Connection::CheckTimeouts(uint64_t now_ms) {
  if (shut_down_) return;
  const config::Config& c = shard_.config();
  if (send_in_flight_ && now_ms - send_started_ms_ > uint64_t{c.idle_timeout_s} * 1000) {
    return ForceClose();  // the peer stopped reading
  }
  if (commit_in_flight_ || session_.closed()) return;
  // Deadlines in time as well as space: a transaction (MAIL to its reply)
  // and, between transactions, the whole session. Progress does not reset
  // them, so a client trickling a byte every few seconds cannot hold a
  // slot for hours; a message in flight is never cut by the session's.
  const bool over_transaction =
      transaction_started_ms_ != 0 &&
      now_ms - transaction_started_ms_ > uint64_t{c.transaction_timeout_s} * 1000;
  const bool over_session = transaction_started_ms_ == 0 && !tls_handshaking_ &&
                            now_ms - started_ms_ > uint64_t{c.session_timeout_s} * 1000;
  if (over_transaction || over_session) {
    session_.OnTimeout();
    MaybeSend();
    MaybeDestroy();
    return;
  }
  const uint64_t limit_ms =
      uint64_t{session_.in_body() ? c.data_timeout_s : c.idle_timeout_s} * 1000;
  if (tls_handshaking_ && now_ms - last_input_ms_ > limit_ms) return ForceClose();
  if (now_ms - last_input_ms_ > limit_ms) {
    session_.OnTimeout();
    MaybeSend();
    MaybeDestroy();
  }
}

bool Connection::SpoolAvailable() { return shard_.spool_available(); }

void Connection::BeginMessage(const smtp::Envelope&) {
  SLUICE_CHECK(message_ == nullptr);
  message_arrival_us_ = base::WallMicros();
  message_id_ = shard_.NextQueueId();
  message_ = shard_.spool().Begin(message_id_);
}

void Connection::AppendBody(const char* data, size_t size) {
  SLUICE_CHECK(message_ != nullptr);
  // Zero copy only where it pays and the shard can afford it: a span that
  // fills most of its 4 KiB buffer, while this message holds few buffers
  // and the ring keeps a reserve for everyone else's receives. Everything
  // else (trickled lines, MSS-sized segments, carried input, TLS plaintext)
  // is copied into the message's pages, and the buffer goes back at once.
  io::BufferRing& ring = shard_.buffers();
  if (feeding_buffer_ != kNoBuffer && size >= kZeroCopyMinBytes &&
      shard_.spool().HeldBuffers(message_) < kHeldBuffersPerMessageMax &&
      ring.available_estimate() > ring.count() / kBufferReserveFraction) {
    shard_.spool().Append(message_, data, size, feeding_buffer_);
    return;
  }
  shard_.spool().AppendCopy(message_, data, size);
}

void Connection::Authenticate(std::string_view user, std::string_view password) {
  tls::Credentials* creds = shard_.credentials();
  std::shared_ptr<tls::Verifier> verifier = creds != nullptr ? creds->verifier() : nullptr;
  if (verifier == nullptr) return session_.OnAuthResult(smtp::AuthVerdict::kTempFail);
  tls::AuthLimiter& limiter = creds->limiter();
  if (limiter.Locked(client_ip_, shard_.now_ms())) {
    SLUICE_LOG(kWarning, "auth.locked_out", "AUTH refused unchecked: the address is locked out",
               {{"peer", client_ip_}, {"user", user.substr(0, kUserShownMax)}});
    return session_.OnAuthResult(smtp::AuthVerdict::kLocked);
  }
  // A cached success is one HMAC: answered here. Anything else may cost a
  // PBKDF2 run (about 15 ms, tls/password.h), which goes to a helper thread
  // while this connection waits (the session reads no input meanwhile).
  if (verifier->CheckCached(user, password)) return Authenticated(user, true);
  if (shard_.helpers() == nullptr) return Authenticated(user, verifier->Check(user, password));
  auto verdict = std::make_shared<bool>(false);
  io::HelperPool::Job job;
  job.work = [verdict, verifier, user = std::string(user), password = std::string(password)] {
    *verdict = verifier->Check(user, password);
  };
  job.done = [this, verdict, user = std::string(user)] {
    auth_in_flight_ = false;
    if (shut_down_) return MaybeDestroy();
    Authenticated(user, *verdict);
    ProcessInput();  // what the client pipelined behind its credentials
    MaybeDestroy();
  };
  auth_in_flight_ = shard_.helpers()->Submit(shard_.index(), std::move(job));
  if (!auth_in_flight_) session_.OnAuthResult(smtp::AuthVerdict::kTempFail);  // helpers saturated
}

void Connection::Authenticated(std::string_view user, bool ok) {
  tls::AuthLimiter& limiter = shard_.credentials()->limiter();
  if (ok) {
    limiter.Succeeded(client_ip_);
    return session_.OnAuthResult(smtp::AuthVerdict::kOk);
  }
  const bool locked = limiter.Failed(client_ip_, shard_.now_ms());
  SLUICE_LOG(
      kWarning, "auth.failed", locked ? "AUTH failed; address locked out" : "AUTH failed",
      {{"peer", client_ip_}, {"user", user.substr(0, kUserShownMax)}, {"locked_out", locked}});
  session_.OnAuthResult(locked ? smtp::AuthVerdict::kLocked : smtp::AuthVerdict::kBad);
}

void Connection::Rejected(std::string_view command, std::string_view argument,
                          std::string_view reply) {
  ++shard_.stats().replies_refused;
  if (command == "DATA" || command == "BDAT") ++shard_.stats().messages_rejected;
  const smtp::Envelope& e = session_.envelope();
  log::RejectionRecord r;
  r.ts_micros = base::WallMicros();
  r.source = "smtp";
  r.client = client_ip_;
  r.helo = e.helo;
  r.sender = session_.transaction_open() ? std::string_view(e.sender) : std::string_view();
  r.command = command;
  r.argument = argument;
  r.reply = reply;
  shard_.accounting().Rejection(r);
}

void Connection::AbortMessage() {
  if (message_ == nullptr) return;
  shard_.spool().Abort(message_);
  message_ = nullptr;
}

std::string Connection::AddedHeaders(const smtp::Envelope& e, const smtp::MessageFacts& facts,
                                     const std::string& id) const {
  const std::string from = absl::StrCat(PrintableHeaderText(e.helo), " (", client_ip_, ")");
  TraceFacts t;
  t.from = from;
  const std::string with = ProtocolName(e);
  t.with = with;
  t.hostname = shard_.config().hostname;
  t.queue_id = id;
  t.recipients = &e.recipients;
  t.arrival_micros = message_arrival_us_;
  t.has_date = facts.has_date;
  t.has_message_id = facts.has_message_id;
  return TraceHeaders(t);
}

void Connection::CommitMessage(const smtp::Envelope& e, const smtp::MessageFacts& facts) {
  SLUICE_CHECK(message_ != nullptr);
  const std::string id = message_id_.ToString();
  spool::Envelope env;
  env.arrival_micros = message_arrival_us_;
  env.client_ip = client_ip_;
  env.helo = e.helo;
  env.protocol = ProtocolName(e);
  env.sender = e.sender;
  env.eight_bit = e.params.body == smtp::BodyType::k8BitMime;
  env.smtputf8 = e.params.smtputf8;
  env.untrusted = !e.trusted;  // no DSN ever goes back to it (backscatter)
  env.added_headers = AddedHeaders(e, facts, id);
  env.recipients.reserve(e.recipients.size());
  for (const std::string& r : e.recipients) env.recipients.push_back(spool::Recipient{r});
  commit_in_flight_ = true;
  spool::SpoolWriter::Message* m = message_;
  message_ = nullptr;
  const uint64_t size = facts.size;
  shard_.spool().Commit(m, std::move(env), [this, id, size](const absl::Status& status) {
    OnCommitted(status, id, size);
  });
}

void Connection::OnCommitted(const absl::Status& status, const std::string& id, uint64_t size) {
  commit_in_flight_ = false;
  if (status.ok()) {
    ++shard_.stats().messages_queued;
    const smtp::Envelope& e = session_.envelope();
    log::ReceptionRecord r;
    r.ts_micros = base::WallMicros();
    r.id = id;
    r.sender = e.sender;
    r.recipients = &e.recipients;
    r.size = size;
    r.client = client_ip_;
    r.helo = e.helo;
    const std::string protocol = ProtocolName(e);
    r.protocol = protocol;
    shard_.accounting().Reception(r);
    if (auto qid = base::QueueId::Parse(id)) shard_.AnnounceQueued(*qid, e.recipients);
    session_.OnCommitted(id);
  } else {
    ++shard_.stats().messages_failed;
    SLUICE_LOG(kError, "spool.commit_failed", "spool commit failed; the client got a 4xx",
               {{"peer", client_ip_}, {"error", status.message()}});
    session_.OnCommitted(status);
  }
  if (!shut_down_) ProcessInput();
  MaybeDestroy();
}

}  // namespace sluice::server
