#include "tools/blast/client_session.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::tools {

ClientSession::ClientSession(ClientOptions options, ClientHandler& handler)
    : options_(std::move(options)), handler_(handler) {
  expect_.push_back(Expect::kGreeting);
}

void ClientSession::Feed(std::string_view data) {
  if (state_ == State::kClosed) return;
  replies_.clear();
  const bool ok = parser_.Feed(data, replies_);
  for (const Reply& r : replies_) {
    if (state_ == State::kClosed) break;
    if (state_ == State::kTlsHandshake) {
      // A reply in the same read as the 220 to STARTTLS was sent in the clear
      // after it: the stream is not what the handshake expects.
      protocol_error_ = true;
      Close("bytes after the 220 to STARTTLS");
      break;
    }
    handler_.ReplySeen(r);
    OnReply(r);
  }
  if (state_ == State::kTlsHandshake && parser_.partial()) {
    protocol_error_ = true;
    Close("bytes after the 220 to STARTTLS");
  }
  if (!ok && state_ != State::kClosed) {
    protocol_error_ = true;
    Close("protocol error: malformed reply");
  }
}

void ClientSession::Resume() {
  if (state_ == State::kWaiting) StartTransaction();
}

void ClientSession::ConnectionLost() {
  if (state_ == State::kClosed) return;
  if (in_txn_) FinishMessage(false, nullptr);
  expect_.clear();
  state_ = State::kClosed;
  if (close_reason_.empty()) close_reason_ = "connection lost";
}

void ClientSession::TlsReady() {
  if (state_ != State::kTlsHandshake) return;
  tls_active_ = true;
  // RFC 3207 4.2: discard what the server said before TLS and ask again.
  caps_pipelining_ = caps_chunking_ = caps_starttls_ = false;
  state_ = State::kHello;
  Send(absl::StrCat("EHLO ", options_.helo, "\r\n"));
  expect_.push_back(Expect::kEhlo);
}

void ClientSession::Close(std::string reason) {
  if (in_txn_) FinishMessage(false, failed_ ? &fail_reply_ : nullptr);
  expect_.clear();
  state_ = State::kClosed;
  close_reason_ = std::move(reason);
}

void ClientSession::OnReply(const Reply& r) {
  if (expect_.empty()) {
    protocol_error_ = true;
    return Close(absl::StrCat("unexpected reply ", r.code));
  }
  const Expect e = expect_.front();
  if (r.code == 421 && e != Expect::kQuit) {
    // The server is closing the session: whatever is in flight fails.
    if (in_txn_) FinishMessage(false, &r);
    return Close("421 from server");
  }
  expect_.pop_front();
  switch (e) {
    case Expect::kGreeting:
      if (r.code != 220) return Close(absl::StrCat("greeting ", r.code));
      state_ = State::kHello;
      Send(absl::StrCat("EHLO ", options_.helo, "\r\n"));
      expect_.push_back(Expect::kEhlo);
      return;
    case Expect::kEhlo:
      if (r.code != 250) {
        Send(absl::StrCat("HELO ", options_.helo, "\r\n"));
        expect_.push_back(Expect::kHelo);
        return;
      }
      for (size_t i = 1; i < r.lines.size(); ++i) {
        std::string_view kw = r.lines[i];
        kw = kw.substr(0, kw.find(' '));
        if (base::EqualsIgnoreCase(kw, "PIPELINING")) caps_pipelining_ = true;
        if (base::EqualsIgnoreCase(kw, "CHUNKING")) caps_chunking_ = true;
        if (base::EqualsIgnoreCase(kw, "STARTTLS")) caps_starttls_ = true;
      }
      if (options_.starttls && !tls_active_) {
        if (!caps_starttls_) return Close("STARTTLS not offered");
        state_ = State::kStartTls;
        Send("STARTTLS\r\n");
        expect_.push_back(Expect::kStartTls);
        return;
      }
      return StartTransaction();
    case Expect::kHelo:
      if (r.code != 250) return Close(absl::StrCat("HELO ", r.code));
      // HELO has no extensions: no STARTTLS either.
      if (options_.starttls && !tls_active_) return Close("STARTTLS not offered");
      return StartTransaction();
    case Expect::kStartTls:
      if (r.code != 220) return Close(absl::StrCat("STARTTLS refused: ", r.code));
      state_ = State::kTlsHandshake;
      handler_.StartTls();
      return;
    case Expect::kMail:
      mail_ok_ = r.positive();
      if (!mail_ok_ && !failed_) {
        failed_ = true;
        fail_reply_ = r;
      }
      if (!pipelined_) {
        if (failed_) return FailAndReset(fail_reply_);
        SendRcpt(0);
      }
      return;
    case Expect::kRcpt:
      if (r.positive()) {
        ++rcpt_ok_;
      } else {
        ++rcpt_failed_;
        if (!failed_) fail_reply_ = r;  // reported if no recipient is accepted
      }
      if (!pipelined_) {
        if (next_rcpt_ < msg_.recipients.size()) return SendRcpt(next_rcpt_);
        if (rcpt_ok_ == 0) {
          failed_ = true;
          return FailAndReset(fail_reply_);
        }
        SendDataOrBdat(false);
      }
      return;
    case Expect::kData:
      if (r.code == 354) {
        if (failed_ || rcpt_ok_ == 0) {
          // Should not happen (354 without a valid recipient): end an empty
          // body so the session stays in step, and count the message failed.
          if (!failed_) {
            failed_ = true;
            fail_reply_ = r;
          }
          Send(".\r\n");
          expect_.push_back(Expect::kBody);
          return;
        }
        return SendBody();
      }
      if (!failed_) {
        failed_ = true;
        // With no recipient accepted, the recipient refusal is the reason.
        if (rcpt_ok_ > 0 || rcpt_failed_ == 0) fail_reply_ = r;
      }
      return FailAndReset(fail_reply_);
    case Expect::kBdat:
    case Expect::kBody:
      if (r.positive() && !failed_ && rcpt_ok_ > 0) {
        FinishMessage(true, &r);
        return StartTransaction();
      }
      if (!failed_) {
        failed_ = true;
        // With no recipient accepted, the recipient refusal is the reason.
        if (rcpt_ok_ > 0 || rcpt_failed_ == 0) fail_reply_ = r;
      }
      return FailAndReset(fail_reply_);
    case Expect::kRset:
      return StartTransaction();
    case Expect::kQuit:
      return Close("quit");
  }
}

void ClientSession::StartTransaction() {
  state_ = State::kIdle;
  msg_ = OutMessage();
  switch (handler_.NextMessage(msg_)) {
    case Next::kWait:
      state_ = State::kWaiting;
      return;
    case Next::kDone:
      state_ = State::kQuit;
      Send("QUIT\r\n");
      expect_.push_back(Expect::kQuit);
      return;
    case Next::kMessage:
      break;
  }
  state_ = State::kTransaction;
  in_txn_ = true;
  pipelined_ = options_.pipelining && caps_pipelining_;
  mail_ok_ = false;
  failed_ = false;
  fail_reply_ = Reply();
  next_rcpt_ = 0;
  rcpt_ok_ = 0;
  rcpt_failed_ = 0;
  Send(absl::StrCat("MAIL FROM:<", msg_.sender, ">\r\n"));
  expect_.push_back(Expect::kMail);
  if (pipelined_) {
    while (next_rcpt_ < msg_.recipients.size()) SendRcpt(next_rcpt_);
    SendDataOrBdat(true);
  }
}

void ClientSession::SendRcpt(size_t i) {
  Send(absl::StrCat("RCPT TO:<", msg_.recipients[i], ">\r\n"));
  expect_.push_back(Expect::kRcpt);
  next_rcpt_ = i + 1;
}

void ClientSession::SendDataOrBdat(bool) {
  if (options_.bdat && caps_chunking_) {
    Send(absl::StrCat("BDAT ", msg_.size(), " LAST\r\n"));
    Send(msg_.head);
    Send(msg_.body->raw);
    expect_.push_back(Expect::kBdat);
    handler_.DataSent(msg_.id);
  } else {
    Send("DATA\r\n");
    expect_.push_back(Expect::kData);
  }
}

void ClientSession::SendBody() {
  Send(msg_.head);
  Send(msg_.body->stuffed);
  Send(".\r\n");
  expect_.push_back(Expect::kBody);
  handler_.DataSent(msg_.id);
}

void ClientSession::FailAndReset(const Reply& r) {
  FinishMessage(false, &r);
  Send("RSET\r\n");
  expect_.push_back(Expect::kRset);
}

void ClientSession::FinishMessage(bool ok, const Reply* r) {
  if (!in_txn_) return;
  in_txn_ = false;
  MessageResult m;
  m.id = msg_.id;
  m.ok = ok;
  m.code = r ? r->code : 0;
  m.text = r ? r->first() : (protocol_error_ ? "protocol error" : "connection lost");
  m.recipients_ok = rcpt_ok_;
  m.recipients_failed = rcpt_failed_;
  m.bytes = msg_.body ? msg_.size() : 0;
  handler_.MessageDone(m);
}

}  // namespace sluice::tools
