// A scripted SMTP server for unit tests, served through io::FakeLoop's
// network (FakeLoop::Listen): greets, answers EHLO with the extensions it
// is told to offer, answers MAIL/RCPT/DATA/BDAT/RSET/QUIT with configurable
// replies (per recipient for RCPT), and records every transaction: the
// envelope and the body as the client meant it (dot-unstuffed DATA, or the
// BDAT chunks joined). Faults: a silent peer (no greeting), a 421 greeting
// that closes, silence after a given command, a close or reset once a
// number of body bytes arrived. One object serves any number of
// connections, each with its own session state.
//
// Trusts: the test. Replies are single lines ("250 2.1.5 ok") except the
// EHLO reply, which is built from the options.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/io/fake_loop.h"

namespace sluice::testing {

struct SmtpTransaction {
  uint64_t connection = 0;              // FakeConnection::id()
  std::string mail_from;                // the MAIL FROM parameter line ("<a@b> SIZE=12")
  std::string sender;                   // the address inside <>
  std::vector<std::string> recipients;  // accepted
  std::vector<std::string> refused;     // answered 4xx/5xx
  std::string body;                     // unstuffed DATA body (CRLF lines) or BDAT bytes
  bool bdat = false;
  std::string final_reply;  // the reply to "." or to BDAT LAST
};

class ScriptedSmtpPeer final : public io::FakePeer {
 public:
  struct Options {
    std::string name = "mx.example";
    std::string greeting = "220 mx.example ESMTP";  // a 421 greeting closes after it
    bool silent = false;                            // accept, then never say anything
    bool pipelining = true;
    bool eightbitmime = true;
    bool chunking = false;
    uint64_t size = 0;  // SIZE n when > 0
    bool enhanced_status_codes = true;
    std::string ehlo_reply;  // replaces the built EHLO reply when set (one line)
    std::string mail_reply = "250 2.1.0 ok";
    std::string rcpt_reply = "250 2.1.5 ok";
    std::map<std::string, std::string> rcpt_replies;  // by address: overrides rcpt_reply
    std::string data_reply = "354 go ahead";
    std::string dot_reply = "250 2.0.0 queued";
    std::string bdat_reply = "250 2.0.0 chunk ok";  // for chunks before LAST
    std::string rset_reply = "250 2.0.0 reset";
    std::string quit_reply = "221 2.0.0 bye";
    // After the command with this verb ("DATA", "MAIL", ...) was read,
    // nothing more is answered on that connection.
    std::string silent_after;
    // Once this many body bytes (DATA or BDAT, as sent) arrived: close the
    // connection (or reset it). 0: never.
    size_t close_after_body_bytes = 0;
    bool reset_instead_of_close = false;
  };

  ScriptedSmtpPeer() = default;
  explicit ScriptedSmtpPeer(Options options) : options_(std::move(options)) {}

  Options& options() { return options_; }
  // Transactions that reached their final reply (any code), in order.
  const std::vector<SmtpTransaction>& transactions() const { return transactions_; }
  // Every command line received, on any connection, without CRLF.
  const std::vector<std::string>& commands() const { return commands_; }
  // Command lines per OnBytes call (a pipelined group arrives in one).
  const std::vector<std::vector<std::string>>& command_groups() const { return groups_; }
  size_t connections() const { return sessions_.size(); }
  size_t client_closes() const { return client_closes_; }
  size_t quits() const { return quits_; }

  // io::FakePeer
  void OnConnect(io::FakeConnection& c) override;
  void OnBytes(io::FakeConnection& c, std::string_view bytes) override;
  void OnClientClosed(io::FakeConnection& c) override;

 private:
  enum class Mode { kCommand, kData, kBdat, kDone };
  struct Session {
    Mode mode = Mode::kCommand;
    std::string input;
    SmtpTransaction txn;
    bool in_transaction = false;
    uint64_t bdat_left = 0;
    bool bdat_last = false;
    size_t body_bytes = 0;
  };

  void Command(io::FakeConnection& c, Session& s, const std::string& line);
  void Reply(io::FakeConnection& c, Session& s, const std::string& reply);
  void Rcpt(io::FakeConnection& c, Session& s, const std::string& arg);
  void Bdat(io::FakeConnection& c, Session& s, const std::string& arg);
  // Consumes body bytes; false when a fault ended the connection.
  bool CountBody(io::FakeConnection& c, Session& s, size_t n);
  void Finish(io::FakeConnection& c, Session& s, const std::string& reply);
  std::string EhloReply() const;

  Options options_;
  std::map<uint64_t, Session> sessions_;
  std::vector<SmtpTransaction> transactions_;
  std::vector<std::string> commands_;
  std::vector<std::vector<std::string>> groups_;
  size_t client_closes_ = 0;
  size_t quits_ = 0;
};

}  // namespace sluice::testing
