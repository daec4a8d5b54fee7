#include "sluice/smtp/client_session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::smtp {
namespace {

Reply Local(int code, EnhancedCode ec, std::string text) {
  Reply r;
  r.code = code;
  r.local = true;
  r.enhanced = ec;
  r.text = std::move(text);
  r.lines = 1;
  return r;
}

constexpr EnhancedCode Ec(uint8_t c, uint16_t s, uint16_t d) { return EnhancedCode{c, s, d}; }

bool Ok(const Reply& r) { return r.code >= 200 && r.code < 300; }

}  // namespace

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kDelivered:
      return "delivered";
    case Outcome::kTransient:
      return "transient";
    case Outcome::kPermanent:
      return "permanent";
  }
  return "?";
}

const char* CloseReasonName(CloseReason r) {
  switch (r) {
    case CloseReason::kQuit:
      return "quit";
    case CloseReason::kRefused:
      return "refused";
    case CloseReason::kServerClosing:
      return "server closing (421)";
    case CloseReason::kTimeout:
      return "timeout";
    case CloseReason::kConnectionLost:
      return "connection lost";
    case CloseReason::kProtocolError:
      return "protocol error";
    case CloseReason::kTlsUnavailable:
      return "TLS unavailable";
  }
  return "?";
}

const char* ClientSession::StateName(State s) {
  switch (s) {
    case State::kGreeting:
      return "greeting";
    case State::kEhlo:
      return "EHLO";
    case State::kHelo:
      return "HELO";
    case State::kStartTls:
      return "STARTTLS";
    case State::kTlsHandshake:
      return "TLS handshake";
    case State::kIdle:
      return "idle";
    case State::kMail:
      return "MAIL FROM";
    case State::kRcpt:
      return "RCPT TO";
    case State::kData:
      return "DATA";
    case State::kBody:
      return "message body";
    case State::kDot:
      return "end of data";
    case State::kRset:
      return "RSET";
    case State::kQuit:
      return "QUIT";
    case State::kClosed:
      return "closed";
  }
  return "?";
}

Outcome ClientSession::OutcomeOf(const Reply& r) {
  if (r.code >= 200 && r.code < 300) return Outcome::kDelivered;
  if (r.code >= 500) return Outcome::kPermanent;
  return Outcome::kTransient;
}

ClientSession::ClientSession(ClientConfig config, ClientHandler& handler)
    : config_(std::move(config)), handler_(handler) {
  if (config_.max_recipients_per_transaction == 0) config_.max_recipients_per_transaction = 1;
  if (config_.bdat_chunk_size == 0) config_.bdat_chunk_size = 64 * 1024;
  Expect_(Expect::kGreeting);
}

void ClientSession::SetState(State s) {
  state_ = s;
  ++timer_epoch_;
}

std::chrono::milliseconds ClientSession::timeout() const {
  const ClientTimeouts& t = config_.timeouts;
  if (state_ == State::kClosed || state_ == State::kIdle) return std::chrono::milliseconds(0);
  if (state_ == State::kTlsHandshake) return t.starttls;
  if (expect_.empty()) return state_ == State::kBody ? t.data_block : std::chrono::milliseconds(0);
  switch (expect_.front()) {
    case Expect::kGreeting:
      return t.greeting;
    case Expect::kEhlo:
    case Expect::kHelo:
      return t.ehlo;
    case Expect::kStartTls:
      return t.starttls;
    case Expect::kMail:
      return t.mail;
    case Expect::kRcpt:
      return t.rcpt;
    case Expect::kData:
      return t.data_init;
    case Expect::kBdat:
      return t.data_block;
    case Expect::kDataAbort:
    case Expect::kBdatLast:
    case Expect::kDot:
      return t.final_dot;
    case Expect::kRset:
      return t.rset;
    case Expect::kQuit:
      return t.quit;
  }
  return std::chrono::milliseconds(0);
}

bool ClientSession::body_paused() const {
  return state_ != State::kBody || body_ended_ || output_.size() >= config_.output_high_water ||
         (bdat_ && !pipelined_ && bdat_outstanding_ > 0);
}

// ---------------------------------------------------------------- input

bool ClientSession::Feed(const char* data, size_t size) {
  size_t off = 0;
  while (off < size && state_ != State::kClosed) {
    if (state_ == State::kTlsHandshake) {
      // Bytes that arrived in the clear after "220" to STARTTLS would be
      // taken as if they came over TLS: response injection.
      Abort(CloseReason::kProtocolError, "plaintext data after the STARTTLS reply", Ec(4, 7, 0));
      break;
    }
    size_t used = 0;
    const ReplyParser::Status st = parser_.Parse(data + off, size - off, used);
    off += used;
    if (st == ReplyParser::Status::kError) {
      Abort(CloseReason::kProtocolError, absl::StrCat("protocol error: ", parser_.error_text()),
            Ec(4, 5, 0));
      break;
    }
    if (st == ReplyParser::Status::kNeedMore) break;
    ++timer_epoch_;
    OnReply(parser_.reply());
  }
  if (state_ == State::kTlsHandshake && parser_.partial()) {
    Abort(CloseReason::kProtocolError, "plaintext data after the STARTTLS reply", Ec(4, 7, 0));
  }
  return state_ != State::kClosed;
}

void ClientSession::OnReply(const Reply& r) {
  if (expect_.empty()) {
    if (r.code == 421) return Close(CloseReason::kServerClosing, r, Outcome::kTransient);
    return Abort(CloseReason::kProtocolError,
                 absl::StrCat("unexpected reply ", r.code, " in state ", StateName(state_)),
                 Ec(4, 5, 0));
  }
  const Expect e = expect_.front();
  expect_.pop_front();
  if (r.code == 421 && e != Expect::kQuit) {
    // The server is going away: whatever is in flight is transient.
    return Close(CloseReason::kServerClosing, r, Outcome::kTransient);
  }
  switch (e) {
    case Expect::kGreeting:
      if (r.code == 220) return SendEhlo();
      return CloseAfterQuit(CloseReason::kRefused, r, OutcomeOf(r));
    case Expect::kEhlo:
      return OnEhlo(r);
    case Expect::kHelo:
      if (!Ok(r)) return CloseAfterQuit(CloseReason::kRefused, r, OutcomeOf(r));
      caps_ = Capabilities();
      handler_.OnCapabilities(caps_);
      if (config_.tls == TlsPolicy::kRequired && !tls_active_) {
        return CloseAfterQuit(
            CloseReason::kTlsUnavailable,
            Local(451, Ec(4, 7, 0), "TLS required but the server does not speak ESMTP"),
            Outcome::kTransient);
      }
      return GoIdle();
    case Expect::kStartTls:
      if (r.code == 220) {
        SetState(State::kTlsHandshake);
        handler_.OnStartTls();
        return;
      }
      if (config_.tls == TlsPolicy::kRequired) {
        return CloseAfterQuit(CloseReason::kTlsUnavailable, r, Outcome::kTransient);
      }
      return GoIdle();  // opportunistic: go on in the clear
    case Expect::kMail:
      return OnMail(r);
    case Expect::kRcpt:
      return OnRcpt(r);
    case Expect::kData:
      return OnData(r);
    case Expect::kDataAbort:
      // The "." after a 354 that came with no recipient accepted.
      if (mail_accepted_) return SendRset();
      return GoIdle();
    case Expect::kBdat:
      return OnBdat(r, false);
    case Expect::kBdatLast:
      return OnBdat(r, true);
    case Expect::kDot:
      return OnDot(r);
    case Expect::kRset:
      if (Ok(r)) return GoIdle();
      return CloseAfterQuit(CloseReason::kRefused, r, Outcome::kTransient);
    case Expect::kQuit:
      if (close_pending_)
        return Close(pending_close_.reason, pending_close_.reply, pending_close_.outcome);
      return Close(CloseReason::kQuit, r, Outcome::kTransient);
  }
}

void ClientSession::OnEhlo(const Reply& r) {
  if (r.permanent()) {
    // RFC 5321 4.1.4: an old server that does not know EHLO.
    SetState(State::kHelo);
    output_.append(absl::StrCat("HELO ", config_.helo_name, "\r\n"));
    Expect_(Expect::kHelo);
    return;
  }
  if (!Ok(r)) return CloseAfterQuit(CloseReason::kRefused, r, OutcomeOf(r));
  caps_ = Capabilities();
  caps_.esmtp = true;
  bool first = true;
  r.ForEachLine([&](std::string_view line) {
    if (first) {  // the greeting line of the EHLO reply
      first = false;
      return;
    }
    const size_t sp = line.find(' ');
    const std::string_view kw = line.substr(0, sp);
    const std::string_view arg =
        sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    if (base::EqualsIgnoreCase(kw, "PIPELINING")) {
      caps_.pipelining = true;
    } else if (base::EqualsIgnoreCase(kw, "SIZE")) {
      caps_.size = true;
      uint64_t n = 0;
      if (base::ParseUint64(arg, n)) caps_.size_limit = n;
    } else if (base::EqualsIgnoreCase(kw, "8BITMIME")) {
      caps_.eightbitmime = true;
    } else if (base::EqualsIgnoreCase(kw, "CHUNKING")) {
      caps_.chunking = true;
    } else if (base::EqualsIgnoreCase(kw, "SMTPUTF8")) {
      caps_.smtputf8 = true;
    } else if (base::EqualsIgnoreCase(kw, "STARTTLS")) {
      caps_.starttls = true;
    } else if (base::EqualsIgnoreCase(kw, "ENHANCEDSTATUSCODES")) {
      caps_.enhancedstatuscodes = true;
    }
  });
  handler_.OnCapabilities(caps_);
  if (config_.tls != TlsPolicy::kNone && !tls_active_) {
    if (caps_.starttls) {
      SetState(State::kStartTls);
      output_.append("STARTTLS\r\n");
      Expect_(Expect::kStartTls);
      return;
    }
    if (config_.tls == TlsPolicy::kRequired) {
      return CloseAfterQuit(CloseReason::kTlsUnavailable,
                            Local(451, Ec(4, 7, 0), "TLS required but STARTTLS not offered"),
                            Outcome::kTransient);
    }
  }
  GoIdle();
}

void ClientSession::OnTlsReady() {
  if (state_ != State::kTlsHandshake) return;
  tls_active_ = true;
  caps_ = Capabilities();  // RFC 3207 4.2: forget what was learned in the clear
  parser_.Reset();
  SendEhlo();
}

// ---------------------------------------------------------------- transaction

bool ClientSession::StartMessage(const OutboundMessage& m) {
  if (state_ != State::kIdle || m.recipients.empty()) return false;
  attempted_ = std::min(m.recipients.size(), config_.max_recipients_per_transaction);
  sender_ = m.sender;
  recipients_.assign(m.recipients.begin(),
                     m.recipients.begin() + static_cast<ptrdiff_t>(attempted_));
  size_ = m.size;
  eight_bit_ = m.eight_bit;
  smtputf8_ = m.smtputf8;
  rcpt_.assign(attempted_, Rcpt::kPending);
  result_ = MessageResult();
  result_.attempted = attempted_;
  in_txn_ = true;
  pipelined_ = config_.use_pipelining && caps_.pipelining;
  bdat_ = config_.use_chunking && caps_.chunking;
  mail_accepted_ = failed_ = body_ended_ = last_pending_ = false;
  next_rcpt_ = rcpt_reply_ = accepted_ = 0;
  bdat_outstanding_ = 0;
  chunk_.clear();
  rcpt_failure_ = Reply();

  if (smtputf8_ && !caps_.smtputf8) {
    // RFC 6531 3.4: no downgrade here; the message cannot go this way.
    const Reply r =
        Local(554, Ec(5, 6, 7), "SMTPUTF8 is required, but was not offered by the host");
    FailTransaction(r);
    FinishMessage(r);
    return true;
  }
  if (caps_.size_limit != 0 && size_ > caps_.size_limit) {
    const Reply r = Local(552, Ec(5, 3, 4),
                          absl::StrCat("message size ", size_, " exceeds the size limit ",
                                       caps_.size_limit, " of the host"));
    FailTransaction(r);
    FinishMessage(r);
    return true;
  }
  SetState(State::kMail);
  SendMail();
  if (pipelined_) {
    // RFC 2920: MAIL, every RCPT and DATA in one write. BDAT waits for the
    // RCPT replies, so no body bytes go out for a message nobody accepts.
    while (next_rcpt_ < attempted_) SendRcpt();
    if (!bdat_) SendData();
  }
  return true;
}

void ClientSession::SendEhlo() {
  SetState(State::kEhlo);
  output_.append(absl::StrCat("EHLO ", config_.helo_name, "\r\n"));
  Expect_(Expect::kEhlo);
}

void ClientSession::SendMail() {
  output_.append("MAIL FROM:<");
  output_.append(sender_);
  output_.push_back('>');
  if (caps_.size) absl::StrAppend(&output_, " SIZE=", size_);
  if (eight_bit_ && caps_.eightbitmime) output_.append(" BODY=8BITMIME");
  if (smtputf8_ && caps_.smtputf8) output_.append(" SMTPUTF8");
  output_.append("\r\n");
  Expect_(Expect::kMail);
}

void ClientSession::SendRcpt() {
  output_.append("RCPT TO:<");
  output_.append(recipients_[next_rcpt_++]);
  output_.append(">\r\n");
  Expect_(Expect::kRcpt);
}

void ClientSession::SendData() {
  output_.append("DATA\r\n");
  Expect_(Expect::kData);
}

void ClientSession::SendRset() {
  SetState(State::kRset);
  output_.append("RSET\r\n");
  Expect_(Expect::kRset);
}

void ClientSession::SendQuit() {
  SetState(State::kQuit);
  output_.append("QUIT\r\n");
  Expect_(Expect::kQuit);
}

void ClientSession::OnMail(const Reply& r) {
  if (Ok(r)) {
    mail_accepted_ = true;
    SetState(State::kRcpt);
    if (!pipelined_) SendRcpt();
    return;
  }
  // Every recipient fails with the MAIL reply. Pipelined, the RCPT and DATA
  // replies that follow (503) are read and ignored.
  failed_ = true;
  FailTransaction(r);
  result_.reply = r;
  if (pipelined_) {  // finished once the last RCPT (BDAT) or DATA reply is in
    SetState(State::kRcpt);
    return;
  }
  FinishMessage(r);
  GoIdle();  // no transaction was opened: nothing to reset
}

void ClientSession::OnRcpt(const Reply& r) {
  const size_t i = rcpt_reply_++;
  if (i < rcpt_.size() && rcpt_[i] != Rcpt::kFinal) {
    if (Ok(r)) {
      rcpt_[i] = Rcpt::kAccepted;
      ++accepted_;
    } else {
      rcpt_failure_ = r;
      Result(i, r);
    }
  }
  if (!pipelined_ && next_rcpt_ < attempted_) return SendRcpt();
  if (rcpt_reply_ >= attempted_) AfterRcpts();
}

void ClientSession::AfterRcpts() {
  SetState(State::kData);
  if (failed_) {
    // MAIL was refused (pipelined). DATA's reply is still to come, unless
    // BDAT was going to be used, in which case nothing is outstanding.
    if (bdat_) {
      FinishMessage(result_.reply);
      GoIdle();
    }
    return;
  }
  if (accepted_ == 0) {
    if (pipelined_ && !bdat_) return;  // wait for DATA's 554/503 (RFC 2920 3.1)
    FinishMessage(rcpt_failure_);
    return SendRset();
  }
  if (bdat_) {
    SetState(State::kBody);
    encoder_.Reset(false);
    handler_.OnBodyWanted();
    return;
  }
  if (!pipelined_) SendData();
}

void ClientSession::OnData(const Reply& r) {
  if (r.code == 354) {
    if (failed_ || accepted_ == 0) {
      // RFC 2920 3.1: DATA was accepted although no recipient was; end the
      // empty message with "." and throw the transaction away.
      FinishMessage(failed_ ? result_.reply : rcpt_failure_);
      SetState(State::kDot);
      output_.append(".\r\n");
      Expect_(Expect::kDataAbort);
      return;
    }
    SetState(State::kBody);
    encoder_.Reset(true);
    handler_.OnBodyWanted();
    return;
  }
  if (failed_) {  // MAIL refused: no transaction to reset
    FinishMessage(result_.reply);
    return GoIdle();
  }
  if (accepted_ == 0) {  // the expected 554/503 after every RCPT failed
    FinishMessage(rcpt_failure_);
    return SendRset();
  }
  FailTransaction(r);
  FinishMessage(r);
  SendRset();
}

void ClientSession::AppendBody(const char* data, size_t size) {
  if (state_ != State::kBody || body_ended_) return;
  // Room for the piece and a little stuffing at once: a body grows the
  // buffer by one allocation, not by a doubling per line.
  std::string& out = bdat_ ? chunk_ : output_;
  if (out.capacity() - out.size() < size) out.reserve(out.size() + size + size / 32 + 8);
  if (!bdat_) {
    encoder_.Encode(data, size, output_);
    return;
  }
  encoder_.Encode(data, size, chunk_);
  if (chunk_.size() >= config_.bdat_chunk_size && !(!pipelined_ && bdat_outstanding_ > 0))
    EmitBdat(false);
}

void ClientSession::EndBody() {
  if (state_ != State::kBody || body_ended_) return;
  body_ended_ = true;
  if (!bdat_) {
    encoder_.Finish(output_);
    SetState(State::kDot);
    Expect_(Expect::kDot);
    return;
  }
  encoder_.Finish(chunk_);
  if (!pipelined_ && bdat_outstanding_ > 0) {
    last_pending_ = true;  // lockstep: wait for the chunk's reply first
    return;
  }
  SetState(State::kDot);
  EmitBdat(true);
}

void ClientSession::EmitBdat(bool last) {
  absl::StrAppend(&output_, "BDAT ", chunk_.size(), last ? " LAST\r\n" : "\r\n");
  output_.append(chunk_);
  if (last) {
    std::string().swap(chunk_);  // an idle session keeps no chunk's memory
  } else {
    chunk_.clear();
  }
  ++bdat_outstanding_;
  ++timer_epoch_;
  Expect_(last ? Expect::kBdatLast : Expect::kBdat);
}

void ClientSession::OnBdat(const Reply& r, bool last) {
  if (bdat_outstanding_ > 0) --bdat_outstanding_;
  if (!in_txn_) return;  // the transaction already failed on an earlier chunk
  if (last) return OnDot(r);
  if (!Ok(r)) {
    // RFC 3030 2: a failed chunk fails the transaction; later chunks that
    // were pipelined get 503 and are ignored above.
    FailTransaction(r);
    FinishMessage(r);
    body_ended_ = true;
    last_pending_ = false;
    chunk_.clear();
    return SendRset();
  }
  if (last_pending_) {
    last_pending_ = false;
    SetState(State::kDot);
    return EmitBdat(true);
  }
  if (!pipelined_ && chunk_.size() >= config_.bdat_chunk_size) EmitBdat(false);
  if (state_ == State::kBody && !body_paused()) handler_.OnBodyWanted();
}

void ClientSession::OnDot(const Reply& r) {
  FailTransaction(r);  // every accepted recipient gets the final reply
  FinishMessage(r);
  GoIdle();  // the transaction is over either way: no RSET
}

void ClientSession::Quit() {
  if (state_ != State::kIdle) return;
  SendQuit();
}

// ---------------------------------------------------------------- endings

void ClientSession::GoIdle() {
  SetState(State::kIdle);
  handler_.OnSessionReady();
}

void ClientSession::Result(size_t i, const Reply& r) {
  rcpt_[i] = Rcpt::kFinal;
  const Outcome o = OutcomeOf(r);
  switch (o) {
    case Outcome::kDelivered:
      ++result_.delivered;
      break;
    case Outcome::kTransient:
      ++result_.transient;
      break;
    case Outcome::kPermanent:
      ++result_.permanent;
      break;
  }
  handler_.OnRecipientResult(i, o, r);
}

void ClientSession::FailTransaction(const Reply& r) {
  for (size_t i = 0; i < rcpt_.size(); ++i) {
    if (rcpt_[i] != Rcpt::kFinal) Result(i, r);
  }
}

void ClientSession::FinishMessage(const Reply& decisive) {
  if (!in_txn_) return;
  in_txn_ = false;
  if (&decisive != &result_.reply) result_.reply = decisive;
  MessageResult& m = result_;
  if (m.delivered == m.attempted) {
    m.outcome = MessageOutcome::kDelivered;
  } else if (m.delivered > 0) {
    m.outcome = MessageOutcome::kPartial;
  } else if (m.transient > 0) {
    m.outcome = MessageOutcome::kTransient;
  } else {
    m.outcome = MessageOutcome::kPermanent;
  }
  handler_.OnMessageDone(m);
}

void ClientSession::CloseAfterQuit(CloseReason why, const Reply& r, Outcome outcome) {
  close_pending_ = true;
  pending_close_.reason = why;
  pending_close_.reply = r;
  pending_close_.outcome = outcome;
  expect_.clear();
  SendQuit();
}

void ClientSession::Close(CloseReason why, const Reply& r, Outcome outcome) {
  if (state_ == State::kClosed) return;
  if (in_txn_) {
    // Not-yet-final recipients are transient whatever happened.
    const Reply t = r.code >= 400 && r.code < 500 ? r : Local(451, Ec(4, 4, 2), r.text);
    FailTransaction(t);
    FinishMessage(t);
  }
  expect_.clear();
  chunk_.clear();
  SetState(State::kClosed);
  CloseInfo info;
  info.reason = why;
  info.outcome = outcome;
  info.reply = r;
  handler_.OnClosed(info);
}

void ClientSession::Abort(CloseReason why, std::string_view text, EnhancedCode ec) {
  Close(why, Local(451, ec, std::string(text)), Outcome::kTransient);
}

void ClientSession::OnTimeout() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kQuit && close_pending_) {
    return Close(pending_close_.reason, pending_close_.reply, pending_close_.outcome);
  }
  if (state_ == State::kQuit) {
    return Close(CloseReason::kQuit, Local(221, {}, "no reply to QUIT"), Outcome::kTransient);
  }
  Abort(CloseReason::kTimeout, absl::StrCat("conversation timed out in state ", StateName(state_)),
        Ec(4, 4, 2));
}

void ClientSession::OnConnectionLost() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kQuit && close_pending_) {
    return Close(pending_close_.reason, pending_close_.reply, pending_close_.outcome);
  }
  if (state_ == State::kQuit) {
    return Close(CloseReason::kQuit, Local(221, {}, "closed after QUIT"), Outcome::kTransient);
  }
  Abort(CloseReason::kConnectionLost, absl::StrCat("lost connection in state ", StateName(state_)),
        Ec(4, 4, 2));
}

}  // namespace sluice::smtp
