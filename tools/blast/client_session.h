// The blast SMTP client as a pure state machine: reply bytes in (Feed),
// command bytes out (output()) and message events out (ClientHandler). No
// sockets, no clocks: the driver in main.cc owns those, which is what makes
// this unit-testable byte by byte.
//
// One session runs many transactions: after each final reply it asks the
// handler for the next message (NextMessage), and sends QUIT when there is
// none. When the server advertises PIPELINING (and it is enabled), MAIL, every
// RCPT and DATA leave in one write (RFC 2920), or with --bdat MAIL, RCPTs,
// "BDAT n LAST" and the n bytes of the message (RFC 3030). Without it, each
// command waits for its reply. A failed transaction is followed by RSET.
//
// Expected replies are kept in order in `expect_`; a 421 anywhere ends the
// session (the message in flight fails with 421); a reply that does not parse
// ends it with a protocol error.
//
// With `starttls`, the session sends STARTTLS after the first EHLO (and
// closes, failing nothing yet, when the server does not offer it or refuses
// it); after the 220 it calls ClientHandler::StartTls() and waits: the
// driver runs the TLS handshake over its socket and calls TlsReady(), and
// the session says EHLO again, now over TLS (RFC 3207: the first EHLO's
// capabilities are forgotten).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tools/blast/reply_parser.h"

namespace sluice::tools {

// A message body shared by many messages: `raw` is the part after the
// per-message headers (other headers, the empty line, the body) as it should
// arrive, `stuffed` the same bytes dot-stuffed for DATA. Both end in CRLF.
struct SharedBody {
  std::string raw;
  std::string stuffed;
};

struct OutMessage {
  uint64_t id = 0;
  std::string sender;
  std::vector<std::string> recipients;
  std::string head;  // per-message header lines (none starts with '.'), CRLF each
  std::shared_ptr<const SharedBody> body;

  size_t size() const { return head.size() + body->raw.size(); }
};

enum class Next { kMessage, kWait, kDone };

struct MessageResult {
  uint64_t id = 0;
  bool ok = false;
  int code = 0;  // the reply that decided; 0: connection lost / protocol error
  std::string text;
  size_t recipients_ok = 0;
  size_t recipients_failed = 0;
  size_t bytes = 0;
};

class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  // Fill `out` and return kMessage, or kWait (ask again after Resume()), or
  // kDone (the session quits).
  virtual Next NextMessage(OutMessage& out) = 0;
  // The end of the message (final dot, or the BDAT LAST chunk) was appended
  // to output(): latency starts here.
  virtual void DataSent(uint64_t id) = 0;
  virtual void MessageDone(const MessageResult& result) = 0;
  // Every reply, in order (for counting codes).
  virtual void ReplySeen(const Reply&) {}
  // The server said 220 to STARTTLS: the next bytes on the socket are a TLS
  // handshake. Call TlsReady() once it is established.
  virtual void StartTls() {}
};

struct ClientOptions {
  std::string helo = "blast.sluice.test";
  bool pipelining = true;  // use PIPELINING when the server offers it
  bool bdat = false;       // use BDAT when the server offers CHUNKING
  bool starttls = false;   // STARTTLS before the first transaction (required)
};

class ClientSession {
 public:
  enum class State {
    kGreeting,
    kHello,
    kStartTls,
    kTlsHandshake,
    kIdle,
    kWaiting,
    kTransaction,
    kQuit,
    kClosed
  };

  ClientSession(ClientOptions options, ClientHandler& handler);

  // Feeds bytes received from the server.
  void Feed(std::string_view data);
  // A kWait from NextMessage may now be retried.
  void Resume();
  // The connection went away: a message in flight fails with code 0.
  void ConnectionLost();
  // The TLS handshake after StartTls() completed: EHLO again.
  void TlsReady();

  std::string& output() { return output_; }
  State state() const { return state_; }
  // Nothing more will be sent; the driver closes once output() drained.
  bool closed() const { return state_ == State::kClosed; }
  bool server_pipelining() const { return caps_pipelining_; }
  bool server_chunking() const { return caps_chunking_; }
  bool server_starttls() const { return caps_starttls_; }
  bool tls_active() const { return tls_active_; }
  bool protocol_error() const { return protocol_error_; }
  const std::string& close_reason() const { return close_reason_; }

 private:
  enum class Expect {
    kGreeting,
    kEhlo,
    kHelo,
    kStartTls,
    kMail,
    kRcpt,
    kData,
    kBdat,
    kBody,
    kRset,
    kQuit
  };

  void OnReply(const Reply& r);
  void StartTransaction();
  void SendRcpt(size_t i);
  void SendDataOrBdat(bool pipelined);
  void SendBody();
  void FinishMessage(bool ok, const Reply* r);
  void FailAndReset(const Reply& r);
  void Close(std::string reason);
  void Send(std::string_view a) { output_.append(a); }

  ClientOptions options_;
  ClientHandler& handler_;
  ReplyParser parser_;
  std::vector<Reply> replies_;
  std::deque<Expect> expect_;
  std::string output_;
  State state_ = State::kGreeting;
  bool caps_pipelining_ = false;
  bool caps_chunking_ = false;
  bool caps_starttls_ = false;
  bool tls_active_ = false;
  bool protocol_error_ = false;
  std::string close_reason_;

  // The transaction in flight.
  OutMessage msg_;
  bool in_txn_ = false;
  bool pipelined_ = false;
  bool mail_ok_ = false;
  bool failed_ = false;  // decided, waiting for the remaining replies
  Reply fail_reply_;
  size_t next_rcpt_ = 0;
  size_t rcpt_ok_ = 0;
  size_t rcpt_failed_ = 0;
};

}  // namespace sluice::tools
