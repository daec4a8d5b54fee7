// The inbound ESMTP session as a pure state machine: bytes in, replies and
// message events out. It never touches a socket or a file; the server glue
// (src/server) feeds it receive buffers and carries out what it asks for
// through SessionHandler. docs/PROTOCOL.md lists every reply it can make.
//
// Transitions (mode_):
//   kCommand --DATA 354--> kData --CRLF.CRLF--> kCommit --OnCommitted--> kCommand
//   kCommand --BDAT n--> kChunk --n bytes--> kCommand, or kCommit after LAST
//   kCommand --STARTTLS 220--> kStartTls --OnTlsStarted--> kCommand (state reset)
//   kCommand --AUTH with credentials--> kAuth --OnAuthResult--> kCommand
//   any --QUIT / too many errors / timeout / shutdown--> kClosed
//
// STARTTLS (RFC 3207): after "220 2.0.0 Ready to start TLS" the session
// consumes nothing more; the glue discards every plaintext byte that
// followed the command (pipelined plaintext is never executed), sends the
// 220 in clear, runs the handshake and calls OnTlsStarted(), which forgets
// HELO, transaction and authentication as the RFC requires.
//
// Who may send where: a trusted client (SessionConfig::relay_allowed, or
// authenticated) to any recipient; anyone else only to <postmaster>, and
// only when postmaster_address says where that goes. Envelope::trusted tells
// the glue which it was, so no DSN is ever sent for an outsider's message.
//
// Trust: everything fed to it comes from the network. Limits: a command line
// is at most max_line_length bytes (longer ones are dropped whole and
// answered 500 5.5.6); replies waiting to be sent are capped by
// kOutputHighWater, past which Feed stops consuming until the glue
// drains output(); message size, recipients and errors by SessionConfig.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "sluice/smtp/address.h"
#include "sluice/smtp/command.h"
#include "sluice/smtp/dot_decoder.h"
#include "sluice/smtp/header_scanner.h"
#include "sluice/smtp/sasl.h"

namespace sluice::smtp {

struct SessionConfig {
  std::string hostname = "localhost";
  std::string client_ip;
  bool relay_allowed = false;  // the client may send to any domain
  // Loop protection: a message that arrives carrying more Received: fields
  // than this is refused at its end (554 5.4.6), nothing queued.
  size_t max_hops = 50;
  // Where mail for <postmaster> (bare, or @hostname) goes, for anyone;
  // empty: only trusted clients may send to it (it stays postmaster@hostname).
  std::string postmaster_address;
  size_t max_line_length = 2048;
  size_t max_data_line_length = 1000;
  uint64_t max_message_size = 50ull << 20;
  size_t max_recipients = 1000;
  size_t max_errors = 10;
  // TLS and AUTH (docs/PROTOCOL.md). STARTTLS is offered when tls_available
  // and TLS is not already on; tls_active is true from the start on an
  // implicit-TLS listener.
  bool tls_available = false;
  bool tls_active = false;
  bool require_tls = false;     // 530 5.7.0 for MAIL and AUTH before TLS
  bool auth_available = false;  // a password file is configured
  bool auth_plaintext = false;  // offer AUTH without TLS too
  bool require_auth = false;    // 530 5.7.0 for MAIL before AUTH
  // A message without exactly one From: field is refused at the end of DATA
  // (550 5.6.0; RFC 5322 3.6). The daemon sets it from server.require_from
  // (default true).
  bool require_from = false;
};

// The glue's answer to SessionHandler::Authenticate.
enum class AuthVerdict : uint8_t {
  kOk,        // 235 2.7.0
  kBad,       // 535 5.7.8 (counts toward max_errors)
  kLocked,    // too many failures from this address: 421 4.7.0 and close
  kTempFail,  // 454 4.7.0
};

struct Envelope {
  std::string client_ip;
  std::string helo;
  bool esmtp = false;
  std::string sender;  // "" is the null reverse path <>
  MailParameters params;
  std::vector<std::string> recipients;
  bool tls = false;       // the session runs over TLS
  std::string auth_user;  // "" unless AUTH succeeded
  // The client was trusted when it gave MAIL: inside relay_from or
  // authenticated. Mail from anyone else is never answered with a DSN.
  bool trusted = false;
};

struct MessageFacts {
  uint64_t size = 0;  // decoded body bytes
  bool has_date = false;
  bool has_message_id = false;
  bool chunked = false;         // arrived with BDAT
  uint32_t received_count = 0;  // Received: fields in its header section
  size_t from_count = 0;        // From: fields (HeaderScanner)
};

class SessionHandler {
 public:
  virtual ~SessionHandler() = default;
  // Asked at MAIL: false gives 452 4.3.1.
  virtual bool SpoolAvailable() = 0;
  // The body is about to arrive (at 354, or the first BDAT chunk).
  virtual void BeginMessage(const Envelope& envelope) = 0;
  // Body bytes, in order. `data` points into the buffer given to Feed and is
  // valid only during the call; the glue keeps the buffer alive until the
  // bytes are written.
  virtual void AppendBody(const char* data, size_t size) = 0;
  // The body is complete and valid: make it durable, then call
  // ServerSession::OnCommitted. Nothing else is fed until then.
  virtual void CommitMessage(const Envelope& envelope, const MessageFacts& facts) = 0;
  // The message begun with BeginMessage will not be committed.
  virtual void AbortMessage() = 0;
  // AUTH gave credentials: check them and answer with
  // ServerSession::OnAuthResult (now, from inside this call, or later).
  // Called only when SessionConfig::auth_available.
  virtual void Authenticate(std::string_view /*user*/, std::string_view /*password*/) {}
  // The session answered with a 4xx or 5xx reply (not while shutting down):
  // `command` is the verb it answered ("" for a line that was not one, or a
  // timeout), `argument` its argument (at most kRejectedArgumentMax bytes;
  // never AUTH's), `reply` the whole reply line. For the accounting log.
  virtual void Rejected(std::string_view /*command*/, std::string_view /*argument*/,
                        std::string_view /*reply*/) {}
};

class ServerSession {
 public:
  enum class Mode : uint8_t { kCommand, kData, kChunk, kCommit, kStartTls, kAuth, kClosed };

  ServerSession(SessionConfig config, SessionHandler& handler);

  // Queues the 220 greeting.
  void Start();
  // Consumes input; returns how many bytes were used. Fewer than `size` only
  // while paused() or closed: feed the rest again when that clears.
  size_t Feed(const char* data, size_t size);

  // The glue's answer to CommitMessage: a queue id, or why it failed.
  void OnCommitted(const absl::StatusOr<std::string>& queue_id);
  // No input within the allowed time: 421 4.4.2, close.
  void OnTimeout();
  // The server is stopping: 421 4.3.2 now if no message is in flight, or
  // right after the in-flight one is answered.
  void OnShutdown();
  // STARTTLS was answered 220 (mode() == kStartTls): the glue discards the
  // rest of the input, sends output() in clear, then runs the handshake.
  bool starttls_pending() const { return mode_ == Mode::kStartTls; }
  // The handshake completed: commands are accepted again, from scratch.
  void OnTlsStarted();
  // The glue's answer to SessionHandler::Authenticate.
  void OnAuthResult(AuthVerdict verdict);
  bool authenticated() const { return !auth_user_.empty(); }
  bool tls_active() const { return config_.tls_active; }

  // Replies waiting to be sent. The glue sends them and clears the string.
  std::string& output() { return output_; }
  bool paused() const {
    return mode_ == Mode::kCommit || mode_ == Mode::kStartTls || mode_ == Mode::kAuth ||
           output_.size() >= kOutputHighWater;
  }
  bool closed() const { return mode_ == Mode::kClosed; }
  Mode mode() const { return mode_; }
  // True while receiving a message body (the DATA timeout applies).
  bool in_body() const { return mode_ == Mode::kData || mode_ == Mode::kChunk; }
  // Grows with every complete command line and every body byte: the idle
  // timer restarts only on progress, so trickling bytes of a command that
  // never ends does not keep a session alive.
  uint64_t progress() const { return progress_; }
  // MAIL was accepted and the transaction has not ended yet.
  bool transaction_open() const { return mail_given_; }
  // The transaction being committed (valid until OnCommitted returns).
  const Envelope& envelope() const { return envelope_; }

  static constexpr size_t kRejectedArgumentMax = 256;
  // Replies a client may leave unread before its input stops being parsed:
  // ~500 pipelined replies. Bounds what a client that never reads costs.
  static constexpr size_t kOutputHighWater = 32 * 1024;

 private:
  size_t FeedCommands(const char* data, size_t size);
  size_t FeedData(const char* data, size_t size);
  size_t FeedChunk(const char* data, size_t size);

  void HandleLine(std::string_view line);
  void HandleEhlo(const Command& cmd, bool esmtp);
  void HandleMail(const Command& cmd);
  void HandleRcpt(const Command& cmd);
  void HandleData();
  void HandleBdat(const Command& cmd);
  void HandleStartTls(const Command& cmd);
  void HandleAuth(const Command& cmd);
  void HandleAuthResponse(std::string_view line);
  void FinishAuth(std::string_view user, std::string_view password);
  bool auth_offered() const {
    return config_.auth_available && (config_.tls_active || config_.auth_plaintext);
  }
  void FinishData();
  void FinishChunk();
  // What a complete body becomes: a rejection reply, or nullptr to commit.
  const char* HopRejection() const;
  void Commit(bool chunked);
  // The address a RCPT's mailbox is stored as (postmaster rewritten), or
  // false after answering 550 5.7.1 (a client that may not send there).
  bool RecipientFor(const Mailbox& mailbox, std::string& rcpt);
  bool trusted() const { return config_.relay_allowed || authenticated(); }
  // The 550 reply for a message without exactly one From: (require_from), or null.
  const char* FromRejection() const;
  void AppendBody(const char* data, size_t size);

  void Reply(std::string_view text);  // a success or informational reply
  void Error(std::string_view text);  // counts toward max_errors
  void Close(std::string_view text);
  void LineTooLong();
  void ResetTransaction();

  SessionConfig config_;
  SessionHandler& handler_;
  Mode mode_ = Mode::kCommand;
  std::string output_;

  // Command assembly across buffers (a command split by the network).
  std::string line_;
  bool line_overflow_ = false;

  size_t errors_ = 0;
  uint64_t progress_ = 0;
  // The command being answered, for SessionHandler::Rejected.
  Verb verb_ = Verb::kUnknown;
  std::string argument_;
  bool greeted_ = false;
  bool shutdown_requested_ = false;

  // AUTH: the exchange in progress, and who logged in.
  enum class AuthStep : uint8_t { kNone, kPlain, kLoginUser, kLoginPassword };
  AuthStep auth_step_ = AuthStep::kNone;
  std::string auth_login_user_;  // LOGIN: the user name, until the password
  std::string auth_pending_user_;
  std::string auth_user_;

  // The transaction.
  Envelope envelope_;
  // Hashes of the recipients' canonical forms (SameMailbox), so a duplicate
  // RCPT costs a lookup, not a scan of up to max_recipients addresses.
  absl::flat_hash_set<uint64_t> recipient_keys_;
  bool mail_given_ = false;
  bool message_begun_ = false;  // BeginMessage called, not yet committed/aborted
  bool used_bdat_ = false;
  uint64_t body_size_ = 0;
  bool too_large_ = false;
  DotDecoder decoder_;
  HeaderScanner headers_;

  // The current BDAT chunk.
  uint64_t chunk_remaining_ = 0;
  uint64_t chunk_size_ = 0;
  bool chunk_last_ = false;
  bool chunk_discard_ = false;
  std::string chunk_error_;  // reply for a discarded chunk
};

}  // namespace sluice::smtp
