// The outbound SMTP client as a pure state machine: reply bytes in (Feed),
// command and body bytes out (output()), outcomes out (ClientHandler). It
// never touches a socket, a file or a clock: the client glue connects, sends
// output(), arms a timer for timeout() whenever timer_epoch() changes, and
// calls OnTimeout(), OnConnectionLost(), OnTlsReady() as things happen.
//
// States and the transitions allowed between them (as in Postfix's
// smtp_proto.c). "reply" is the reply at the head of the expected-reply
// queue; with PIPELINING several commands are outstanding and their replies
// are matched in order.
//
//   kGreeting   --220--> kEhlo          --4xx/5xx--> kQuit (destination refused)
//   kEhlo       --250--> kStartTls      (TLS wanted, offered, not yet on)
//               --250--> kIdle          (emits OnCapabilities, OnSessionReady)
//               --5xx--> kHelo          --4xx--> kQuit
//   kHelo       --250--> kIdle          --other--> kQuit
//   kStartTls   --220--> kTlsHandshake  (emits OnStartTls; nothing more is read)
//               --other--> kIdle (opportunistic) | kQuit (required)
//   kTlsHandshake --OnTlsReady()--> kEhlo (capabilities are forgotten)
//   kIdle       --StartMessage--> kMail (lockstep: MAIL alone)
//                               | kMail (pipelined: MAIL, RCPT..., DATA at once)
//               --Quit()--> kQuit
//   kMail       --2xx--> kRcpt (lockstep sends the first RCPT)
//               --other--> kIdle (message failed; no transaction to reset)
//   kRcpt       --reply--> kRcpt (next RCPT, lockstep)
//               --last reply, some accepted--> kData (DATA or first BDAT)
//               --last reply, none accepted--> kRset (lockstep)
//   kData       --354--> kBody (emits OnBodyWanted)
//               --354 with no recipient accepted (pipelined)--> ".": kRset
//               --other--> kRset
//   kBody       --EndBody()--> kDot (DATA) / kDot after "BDAT n LAST"
//               --BDAT chunk reply 2xx--> kBody  --other--> kRset
//   kDot        --reply--> kIdle (outcome for every accepted recipient;
//                                 no RSET needed: the transaction is over)
//   kRset       --250--> kIdle          --other--> kQuit
//   kQuit       --any reply / loss / timeout--> kClosed
//   any         --421, OnTimeout, OnConnectionLost, malformed reply--> kClosed
//
// Outcomes: every attempted recipient gets exactly one OnRecipientResult:
// 2xx delivered, 4xx transient, 5xx permanent; when the connection is lost,
// times out, answers 421 or breaks the protocol mid-transaction, every
// recipient without a final result is transient. Then one OnMessageDone.
//
// Trust: everything fed in comes from the network. Reply lines are at most
// 4 KiB, replies at most 128 lines / 64 KiB (ReplyParser); anything else is a
// protocol error that closes the session. Output grows only by what the glue
// asks for: commands of one transaction, and body bytes it hands in while
// body_paused() is false.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/smtp/dot_encoder.h"
#include "sluice/smtp/reply_parser.h"

namespace sluice::smtp {

// RFC 5321 4.5.3.2 defaults.
struct ClientTimeouts {
  std::chrono::milliseconds greeting{std::chrono::minutes(5)};
  std::chrono::milliseconds ehlo{std::chrono::minutes(5)};      // also HELO
  std::chrono::milliseconds starttls{std::chrono::minutes(5)};  // reply and handshake
  std::chrono::milliseconds mail{std::chrono::minutes(5)};
  std::chrono::milliseconds rcpt{std::chrono::minutes(5)};
  std::chrono::milliseconds data_init{std::chrono::minutes(2)};
  std::chrono::milliseconds data_block{std::chrono::minutes(3)};  // each body send
  std::chrono::milliseconds final_dot{std::chrono::minutes(10)};
  std::chrono::milliseconds rset{std::chrono::minutes(5)};
  std::chrono::milliseconds quit{std::chrono::minutes(5)};
};

enum class TlsPolicy : uint8_t { kNone, kOpportunistic, kRequired };

struct ClientConfig {
  std::string helo_name = "localhost";
  size_t max_recipients_per_transaction = 100;
  bool use_pipelining = true;  // when the server offers PIPELINING
  bool use_chunking = false;   // BDAT when the server offers CHUNKING
  size_t bdat_chunk_size = 32 * 1024;
  TlsPolicy tls = TlsPolicy::kNone;
  // body_paused() turns true while this much output waits to be sent. With
  // body pieces of P bytes (encoded: at most 2P), the output stays below
  // output_high_water + 2P, plus one chunk with BDAT.
  size_t output_high_water = 32 * 1024;
  ClientTimeouts timeouts;
};

struct Capabilities {
  bool esmtp = false;  // EHLO answered 250 (false after a HELO fallback)
  bool pipelining = false;
  bool size = false;
  uint64_t size_limit = 0;  // 0: no limit announced
  bool eightbitmime = false;
  bool chunking = false;
  bool smtputf8 = false;
  bool starttls = false;
  bool enhancedstatuscodes = false;
};

enum class Outcome : uint8_t { kDelivered, kTransient, kPermanent };
const char* OutcomeName(Outcome o);

struct OutboundMessage {
  std::string sender;                   // "" is <>
  std::vector<std::string> recipients;  // only the first max_recipients_per_transaction are tried
  uint64_t size = 0;                    // body bytes incl. added headers, for SIZE=
  bool eight_bit = false;               // body has 8-bit bytes: BODY=8BITMIME if offered
  bool smtputf8 = false;                // UTF-8 addresses/headers: needs SMTPUTF8
};

enum class MessageOutcome : uint8_t { kDelivered, kPartial, kTransient, kPermanent };

struct MessageResult {
  MessageOutcome outcome = MessageOutcome::kTransient;
  size_t attempted = 0;  // recipients tried; the rest go in a later transaction
  size_t delivered = 0, transient = 0, permanent = 0;
  Reply reply;  // the reply that decided the message (final dot, or the failure)
};

enum class CloseReason : uint8_t {
  kQuit,           // we said QUIT
  kRefused,        // greeting, EHLO/HELO or RSET refused (see reply)
  kServerClosing,  // 421
  kTimeout,
  kConnectionLost,
  kProtocolError,   // malformed or unexpected reply, STARTTLS injection
  kTlsUnavailable,  // TLS required but not offered or refused
};
const char* CloseReasonName(CloseReason r);

struct CloseInfo {
  CloseReason reason = CloseReason::kQuit;
  // What the glue should do with messages it meant for this connection.
  Outcome outcome = Outcome::kTransient;
  Reply reply;  // the server's reply, or a local one (reply.local)
};

class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  virtual void OnCapabilities(const Capabilities&) {}
  // Start the TLS handshake on the socket now; call OnTlsReady() when done
  // (or OnConnectionLost() if it failed).
  virtual void OnStartTls() {}
  // The session is idle and can take StartMessage() (or Quit()).
  // Start the next message from here (not from OnMessageDone).
  virtual void OnSessionReady() = 0;
  // Hand the body in with AppendBody() while !body_paused(), then EndBody().
  // Called again each time the session unpauses.
  virtual void OnBodyWanted() = 0;
  // `index` is into OutboundMessage::recipients. A reply made up locally
  // (timeout, lost connection, protocol error, 5.6.7, 5.3.4) has local set.
  virtual void OnRecipientResult(size_t index, Outcome outcome, const Reply& reply) = 0;
  virtual void OnMessageDone(const MessageResult&) = 0;
  // Nothing more will happen; send what output() holds, then close.
  virtual void OnClosed(const CloseInfo&) = 0;
};

class ClientSession {
 public:
  enum class State : uint8_t {
    kGreeting,
    kEhlo,
    kHelo,
    kStartTls,
    kTlsHandshake,
    kIdle,
    kMail,
    kRcpt,
    kData,
    kBody,
    kDot,
    kRset,
    kQuit,
    kClosed,
  };
  static const char* StateName(State s);

  ClientSession(ClientConfig config, ClientHandler& handler);

  // Bytes from the server, any split. Returns false once the session is
  // closed (the rest of the input is ignored).
  bool Feed(const char* data, size_t size);
  bool Feed(std::string_view data) { return Feed(data.data(), data.size()); }

  // Begins a transaction; only in kIdle. Returns false if the session is
  // not idle. A message that cannot go over this session (SMTPUTF8 needed but
  // not offered: 5.6.7; larger than SIZE: 5.3.4) is finished at once with
  // its results and the session stays idle.
  bool StartMessage(const OutboundMessage& message);
  // Body bytes (added headers, then the body), any split. Only after
  // OnBodyWanted and before EndBody; ignored otherwise (for instance after
  // the message already failed on a BDAT chunk).
  void AppendBody(const char* data, size_t size);
  void AppendBody(std::string_view data) { AppendBody(data.data(), data.size()); }
  void EndBody();
  // Idle: send QUIT.
  void Quit();

  void OnTlsReady();
  void OnTimeout();
  void OnConnectionLost();

  // Bytes to send. The glue sends them and clears (or erases a prefix).
  std::string& output() { return output_; }
  State state() const { return state_; }
  bool closed() const { return state_ == State::kClosed; }
  bool idle() const { return state_ == State::kIdle; }
  bool tls_active() const { return tls_active_; }
  bool body_paused() const;
  const Capabilities& capabilities() const { return caps_; }
  // How long to wait for the current event; zero: no timer (idle, closed,
  // or waiting on the glue). Re-arm whenever timer_epoch() changes.
  std::chrono::milliseconds timeout() const;
  uint64_t timer_epoch() const { return timer_epoch_; }

 private:
  enum class Expect : uint8_t {
    kGreeting,
    kEhlo,
    kHelo,
    kStartTls,
    kMail,
    kRcpt,
    kData,
    kDataAbort,
    kBdat,
    kBdatLast,
    kDot,
    kRset,
    kQuit,
  };
  enum class Rcpt : uint8_t { kPending, kAccepted, kFinal };

  void OnReply(const Reply& r);
  void OnEhlo(const Reply& r);
  void OnMail(const Reply& r);
  void OnRcpt(const Reply& r);
  void OnData(const Reply& r);
  void OnBdat(const Reply& r, bool last);
  void OnDot(const Reply& r);
  void AfterRcpts();
  void SendEhlo();
  void SendMail();
  void SendRcpt();
  void SendData();
  void SendRset();
  void SendQuit();
  void EmitBdat(bool last);
  void Expect_(Expect e) { expect_.push_back(e); }
  void SetState(State s);
  void GoIdle();
  void FailTransaction(const Reply& r);  // rejected: final for all not-final
  void FinishMessage(const Reply& decisive);
  void Close(CloseReason why, const Reply& r, Outcome outcome);
  void CloseAfterQuit(CloseReason why, const Reply& r, Outcome outcome);
  void Abort(CloseReason why, std::string_view text, EnhancedCode ec);
  void Result(size_t i, const Reply& r);
  static Outcome OutcomeOf(const Reply& r);

  ClientConfig config_;
  ClientHandler& handler_;
  ReplyParser parser_;
  State state_ = State::kGreeting;
  std::deque<Expect> expect_;
  std::string output_;
  Capabilities caps_;
  bool tls_active_ = false;
  uint64_t timer_epoch_ = 0;
  // Set while a close reason waits for the QUIT reply.
  bool close_pending_ = false;
  CloseInfo pending_close_;

  // The transaction.
  bool in_txn_ = false;
  bool pipelined_ = false;
  bool bdat_ = false;
  bool mail_accepted_ = false;
  bool failed_ = false;  // decided before the final reply
  size_t attempted_ = 0;
  size_t next_rcpt_ = 0;   // next RCPT to send
  size_t rcpt_reply_ = 0;  // next RCPT reply to expect
  size_t accepted_ = 0;
  std::vector<Rcpt> rcpt_;
  std::string sender_;
  std::vector<std::string> recipients_;
  uint64_t size_ = 0;
  bool eight_bit_ = false;
  bool smtputf8_ = false;
  MessageResult result_;
  DotEncoder encoder_;
  std::string chunk_;  // BDAT: encoded bytes of the next chunk
  size_t bdat_outstanding_ = 0;
  bool body_ended_ = false;
  bool last_pending_ = false;  // lockstep BDAT: LAST waits for the chunk reply
  Reply rcpt_failure_;         // the last RCPT refusal (reported if none accepted)
};

}  // namespace sluice::smtp
