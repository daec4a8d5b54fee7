#include "sluice/smtp/server_session.h"

#include <cstring>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::smtp {
namespace {

// A client's text echoed in a reply: printable ASCII only, bounded.
std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 64)) out.push_back(c > 0x20 && c < 0x7f ? c : '?');
  return out;
}

// RFC 5321 4.5.1: "Postmaster", bare or at our own name.
bool IsPostmaster(const Mailbox& m, std::string_view hostname) {
  return base::EqualsIgnoreCase(m.local_part, "postmaster") &&
         (m.domain.empty() || base::EqualsIgnoreCase(m.domain, hostname));
}

// The duplicate-recipient key: local part exact, domain in lower case.
uint64_t RecipientKey(std::string_view rcpt) {
  std::string key(rcpt);
  const size_t at = key.rfind('@');
  for (size_t i = at == std::string::npos ? 0 : at; i < key.size(); ++i) {
    key[i] = absl::ascii_tolower(static_cast<unsigned char>(key[i]));
  }
  return std::hash<std::string>{}(key);
}

}  // namespace

ServerSession::ServerSession(SessionConfig config, SessionHandler& handler)
    : config_(std::move(config)), handler_(handler), decoder_(config_.max_data_line_length) {
  envelope_.client_ip = config_.client_ip;
  envelope_.tls = config_.tls_active;
}

void ServerSession::Start() { Reply(absl::StrCat("220 ", config_.hostname, " ESMTP Sluice")); }

void ServerSession::Reply(std::string_view text) {
  output_.append(text);
  output_.append("\r\n");
  if (!text.empty() && (text[0] == '4' || text[0] == '5') && !shutdown_requested_) {
    handler_.Rejected(VerbName(verb_), argument_, text);
  }
}

void ServerSession::Error(std::string_view text) {
  Reply(text);
  if (++errors_ >= config_.max_errors) {
    Close(absl::StrCat("421 4.7.0 ", config_.hostname, " Error: too many errors"));
  }
}

void ServerSession::LineTooLong() {
  verb_ = Verb::kUnknown;  // no command was read
  argument_.clear();
  Error("500 5.5.6 Error: line too long");
}

void ServerSession::Close(std::string_view text) {
  if (mode_ == Mode::kClosed) return;
  if (message_begun_) {
    handler_.AbortMessage();
    message_begun_ = false;
  }
  Reply(text);
  mode_ = Mode::kClosed;
}

void ServerSession::ResetTransaction() {
  if (message_begun_) {
    handler_.AbortMessage();
    message_begun_ = false;
  }
  mail_given_ = false;
  used_bdat_ = false;
  body_size_ = 0;
  too_large_ = false;
  envelope_.sender.clear();
  envelope_.recipients.clear();
  envelope_.params = MailParameters();
  envelope_.trusted = false;
  recipient_keys_.clear();
}

size_t ServerSession::Feed(const char* data, size_t size) {
  size_t used = 0;
  while (used < size && !paused() && mode_ != Mode::kClosed) {
    switch (mode_) {
      case Mode::kCommand:
        used += FeedCommands(data + used, size - used);
        break;
      case Mode::kData:
        used += FeedData(data + used, size - used);
        break;
      case Mode::kChunk:
        used += FeedChunk(data + used, size - used);
        break;
      case Mode::kCommit:
      case Mode::kStartTls:
      case Mode::kAuth:
      case Mode::kClosed:
        return used;
    }
  }
  if (shutdown_requested_ && mode_ == Mode::kCommand) {
    Close(absl::StrCat("421 4.3.2 ", config_.hostname, " Service shutting down"));
  }
  return used;
}

size_t ServerSession::FeedCommands(const char* data, size_t size) {
  size_t used = 0;
  // One line per iteration, until the mode changes (DATA/BDAT), the session
  // pauses or closes, or the input runs out.
  while (used < size && mode_ == Mode::kCommand && !paused()) {
    const char* start = data + used;
    const size_t avail = size - used;
    const char* lf = static_cast<const char*>(std::memchr(start, '\n', avail));
    const size_t take = lf ? static_cast<size_t>(lf - start) + 1 : avail;
    used += take;
    if (line_overflow_) {
      if (lf) {
        line_overflow_ = false;
        LineTooLong();
      }
      continue;
    }
    if (line_.size() + take > config_.max_line_length) {
      line_.clear();
      if (lf) {
        LineTooLong();
      } else {
        line_overflow_ = true;
      }
      continue;
    }
    if (!lf) {
      line_.append(start, take);
      continue;
    }
    if (line_.empty()) {
      HandleLine(std::string_view(start, take));  // whole line in this buffer: no copy
    } else {
      line_.append(start, take);
      HandleLine(line_);
      line_.clear();
    }
  }
  return used;
}

void ServerSession::HandleLine(std::string_view line) {
  ++progress_;
  if (auth_step_ != AuthStep::kNone) return HandleAuthResponse(line);
  const Command cmd = ParseCommand(line);
  verb_ = cmd.verb;
  // Never AUTH's argument: it may carry credentials.
  argument_.assign(cmd.verb == Verb::kAuth ? std::string_view()
                                           : cmd.argument.substr(0, kRejectedArgumentMax));
  switch (cmd.verb) {
    case Verb::kEhlo:
      return HandleEhlo(cmd, true);
    case Verb::kHelo:
      return HandleEhlo(cmd, false);
    case Verb::kMail:
      return HandleMail(cmd);
    case Verb::kRcpt:
      return HandleRcpt(cmd);
    case Verb::kData:
      if (!cmd.argument.empty()) return Error("501 5.5.4 Syntax: DATA");
      return HandleData();
    case Verb::kBdat:
      return HandleBdat(cmd);
    case Verb::kRset:
      ResetTransaction();
      return Reply("250 2.0.0 Ok");
    case Verb::kNoop:
      return Reply("250 2.0.0 Ok");
    case Verb::kQuit:
      ResetTransaction();
      return Close("221 2.0.0 Bye");
    case Verb::kVrfy:
      if (cmd.argument.empty()) return Error("501 5.5.4 Syntax: VRFY address");
      return Reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
    case Verb::kHelp:
      return Reply("214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
    case Verb::kStartTls:
      return HandleStartTls(cmd);
    case Verb::kAuth:
      return HandleAuth(cmd);
    case Verb::kExpn:
    case Verb::kEtrn:
    case Verb::kTurn:
      return Error("502 5.5.1 Error: command not implemented");
    case Verb::kBadSyntax:
      return Error("500 5.5.2 Error: bad command syntax");
    case Verb::kUnknown:
      return Error("500 5.5.2 Error: command not recognized");
  }
}

void ServerSession::HandleEhlo(const Command& cmd, bool esmtp) {
  if (cmd.argument.empty()) {
    return Error(esmtp ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
  }
  // Anything else would be echoed below, and go into Received: and the log.
  if (!IsAcceptableHeloArgument(cmd.argument)) {
    return Error(esmtp ? "501 5.5.4 Error: invalid EHLO argument (a domain or address literal)"
                       : "501 5.5.4 Error: invalid HELO argument (a domain or address literal)");
  }
  // RFC 5321 4.1.4: EHLO/HELO resets any transaction.
  ResetTransaction();
  greeted_ = true;
  envelope_.helo = std::string(cmd.argument);
  envelope_.esmtp = esmtp;
  if (!esmtp) return Reply(absl::StrCat("250 ", config_.hostname));
  Reply(absl::StrCat("250-", config_.hostname, " Hello ", envelope_.helo));
  Reply("250-PIPELINING");
  Reply(absl::StrCat("250-SIZE ", config_.max_message_size));
  Reply("250-8BITMIME");
  Reply("250-ENHANCEDSTATUSCODES");
  Reply("250-CHUNKING");
  if (config_.tls_available && !config_.tls_active) Reply("250-STARTTLS");
  if (auth_offered()) Reply("250-AUTH PLAIN LOGIN");
  Reply("250 SMTPUTF8");
}

void ServerSession::HandleMail(const Command& cmd) {
  if (!greeted_) return Error("503 5.5.1 Error: send HELO/EHLO first");
  if (mail_given_) return Error("503 5.5.1 Error: nested MAIL command");
  if (config_.require_tls && !config_.tls_active) {
    return Error("530 5.7.0 Must issue a STARTTLS command first");
  }
  if (config_.require_auth && !authenticated()) {
    return Error("530 5.7.0 Authentication required");
  }
  if (!cmd.has_prefix) return Error("501 5.5.4 Syntax: MAIL FROM:<address>");
  // Parameters first, so SMTPUTF8 can widen the address syntax. The path
  // ends at the first '>' that is outside quotes; ParsePath finds it.
  auto path_ascii = ParsePath(cmd.argument, PathKind::kReversePath, /*utf8=*/true);
  if (!path_ascii.ok()) return Error("501 5.1.7 Bad sender address syntax");
  MailParameters params;
  const ParamResult pr = ParseMailParameters(path_ascii->rest, params);
  switch (pr.error) {
    case ParamError::kNone:
      break;
    case ParamError::kUnknown:
      return Error(absl::StrCat("555 5.5.4 Unsupported option: ", Printable(pr.name)));
    case ParamError::kDuplicate:
      return Error(absl::StrCat("555 5.5.4 Duplicate parameter: ",
                                absl::AsciiStrToUpper(base::Av(pr.name))));
    case ParamError::kBadValue:
      return Error(absl::StrCat("501 5.5.4 Bad value for parameter ",
                                absl::AsciiStrToUpper(base::Av(pr.name))));
    case ParamError::kSyntax:
      return Error("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]");
  }
  if (!params.smtputf8) {
    auto strict = ParsePath(cmd.argument, PathKind::kReversePath, /*utf8=*/false);
    if (!strict.ok()) return Error("501 5.1.7 Bad sender address syntax");
  }
  if (params.size > config_.max_message_size) {
    return Error("552 5.3.4 Error: message size exceeds fixed limit");
  }
  if (!handler_.SpoolAvailable()) return Reply("452 4.3.1 Insufficient system storage");
  mail_given_ = true;
  envelope_.sender = path_ascii->mailbox.ToString();
  envelope_.params = params;
  envelope_.trusted = trusted();
  Reply("250 2.1.0 Ok");
}

void ServerSession::HandleRcpt(const Command& cmd) {
  if (!mail_given_) return Error("503 5.5.1 Error: need MAIL command");
  if (!cmd.has_prefix) return Error("501 5.5.4 Syntax: RCPT TO:<address>");
  auto path = ParsePath(cmd.argument, PathKind::kForwardPath, envelope_.params.smtputf8);
  if (!path.ok()) return Error("501 5.1.3 Bad recipient address syntax");
  const ParamResult pr = ParseRcptParameters(path->rest);
  if (pr.error != ParamError::kNone) {
    return Error(absl::StrCat("555 5.5.4 Unsupported option: ", Printable(pr.name)));
  }
  std::string rcpt;
  if (!RecipientFor(path->mailbox, rcpt)) return;
  // The same mailbox twice is one recipient: one copy, one delivery.
  const uint64_t key = RecipientKey(rcpt);
  if (recipient_keys_.contains(key)) {
    for (const std::string& r : envelope_.recipients) {
      if (SameMailbox(r, rcpt)) return Reply("250 2.1.5 Ok");
    }
  }
  if (envelope_.recipients.size() >= config_.max_recipients) {
    return Reply("452 4.5.3 Error: too many recipients");
  }
  recipient_keys_.insert(key);
  envelope_.recipients.push_back(std::move(rcpt));
  Reply("250 2.1.5 Ok");
}

bool ServerSession::RecipientFor(const Mailbox& mailbox, std::string& rcpt) {
  if (IsPostmaster(mailbox, config_.hostname)) {
    // Sluice has no mailboxes: postmaster_address stands in for ours. Without
    // one, only trusted clients may write to it (it goes to our name's MX).
    if (!config_.postmaster_address.empty()) {
      rcpt = config_.postmaster_address;
      return true;
    }
    if (trusted()) {
      rcpt = absl::StrCat("postmaster@", config_.hostname);  // one spelling: one recipient
      return true;
    }
  } else if (trusted()) {
    rcpt = mailbox.ToString();
    return true;
  }
  Error(absl::StrCat("550 5.7.1 <", mailbox.ToString(), ">: Relay access denied"));
  return false;
}

void ServerSession::HandleData() {
  if (!mail_given_) return Error("503 5.5.1 Error: need MAIL command");
  if (used_bdat_) return Error("503 5.5.1 Error: DATA after BDAT");
  if (envelope_.recipients.empty()) return Error("554 5.5.1 Error: no valid recipients");
  decoder_.Reset(config_.max_data_line_length);
  headers_.Reset();
  body_size_ = 0;
  too_large_ = false;
  handler_.BeginMessage(envelope_);
  message_begun_ = true;
  mode_ = Mode::kData;
  Reply("354 End data with <CR><LF>.<CR><LF>");
}

void ServerSession::AppendBody(const char* data, size_t size) {
  if (too_large_) return;
  if (body_size_ + size > config_.max_message_size) {
    too_large_ = true;  // keep reading to the end, store nothing more
    return;
  }
  body_size_ += size;
  headers_.Feed(std::string_view(data, size));
  handler_.AppendBody(data, size);
}

size_t ServerSession::FeedData(const char* data, size_t size) {
  const DotDecoder::Result r =
      decoder_.Decode(data, size, [this](const char* p, size_t n) { AppendBody(p, n); });
  progress_ += r.consumed;
  if (r.done) FinishData();
  return r.consumed;
}

void ServerSession::FinishData() {
  mode_ = Mode::kCommand;
  const char* rejection = nullptr;
  if (decoder_.bare_line_ending()) {
    rejection = "550 5.6.0 Error: bare CR or LF in message (RFC 5321 2.3.8)";
  } else if (too_large_) {
    rejection = "552 5.3.4 Error: message size exceeds fixed limit";
  } else if (decoder_.line_too_long()) {
    rejection = "550 5.6.0 Error: message line too long";
  }
  if (rejection == nullptr) rejection = HopRejection();
  if (rejection == nullptr) rejection = FromRejection();
  if (rejection != nullptr) {
    ResetTransaction();
    return Reply(rejection);
  }
  Commit(/*chunked=*/false);
}

const char* ServerSession::HopRejection() const {
  if (headers_.received_count() > config_.max_hops) {
    return "554 5.4.6 Too many hops";
  }
  return nullptr;
}

void ServerSession::Commit(bool chunked) {
  MessageFacts facts;
  facts.size = body_size_;
  facts.has_date = headers_.has_date();
  facts.has_message_id = headers_.has_message_id();
  facts.received_count = headers_.received_count();
  facts.from_count = headers_.from_count();
  facts.chunked = chunked;
  mode_ = Mode::kCommit;
  handler_.CommitMessage(envelope_, facts);
}

// server.require_from: RFC 5322 3.6 asks for exactly one From: field, and
// receivers refuse messages without one (Gmail also refuses several). A
// header section longer than the scanner looks at is given the benefit of
// the doubt for a missing From, never for a second one.
const char* ServerSession::FromRejection() const {
  if (!config_.require_from) return nullptr;
  if (headers_.from_count() > 1) {
    return "550 5.6.0 Error: message has more than one From: header field (RFC 5322 3.6)";
  }
  if (headers_.from_count() == 0 && !headers_.truncated()) {
    return "550 5.6.0 Error: message has no From: header field (RFC 5322 3.6)";
  }
  return nullptr;
}

void ServerSession::HandleBdat(const Command& cmd) {
  uint64_t size = 0;
  bool last = false;
  bool size_ok = false;
  const bool syntax_ok = ParseBdatArgument(cmd.argument, size, last, size_ok);
  if (!size_ok) return Error("501 5.5.4 Syntax: BDAT size [LAST]");
  chunk_size_ = size;
  chunk_remaining_ = size;
  chunk_last_ = last;
  chunk_discard_ = false;
  chunk_error_.clear();
  if (!syntax_ok) {
    chunk_discard_ = true;
    chunk_error_ = "501 5.5.4 Syntax: BDAT size [LAST]";
  } else if (!mail_given_) {
    chunk_discard_ = true;
    chunk_error_ = "503 5.5.1 Error: need MAIL command";
  } else if (envelope_.recipients.empty()) {
    chunk_discard_ = true;
    chunk_error_ = "554 5.5.1 Error: no valid recipients";
  } else if (!used_bdat_) {
    used_bdat_ = true;
    headers_.Reset();
    body_size_ = 0;
    too_large_ = false;
    handler_.BeginMessage(envelope_);
    message_begun_ = true;
  }
  mode_ = Mode::kChunk;
  if (chunk_remaining_ == 0) FinishChunk();
}

size_t ServerSession::FeedChunk(const char* data, size_t size) {
  const size_t take = chunk_remaining_ < size ? static_cast<size_t>(chunk_remaining_) : size;
  if (!chunk_discard_) AppendBody(data, take);
  progress_ += take;
  chunk_remaining_ -= take;
  if (chunk_remaining_ == 0) FinishChunk();
  return take;
}

void ServerSession::FinishChunk() {
  mode_ = Mode::kCommand;
  if (chunk_discard_) {
    // A transaction that was open stays as it was (RFC 3030 leaves this to
    // us); a chunk without a transaction is simply answered.
    return Error(chunk_error_);
  }
  if (too_large_) {
    ResetTransaction();
    return Reply("552 5.3.4 Error: message size exceeds fixed limit");
  }
  if (!chunk_last_) return Reply(absl::StrCat("250 2.0.0 ", chunk_size_, " octets received"));
  if (const char* rejection = HopRejection()) {
    ResetTransaction();
    return Reply(rejection);
  }
  if (const char* rejection = FromRejection()) {
    ResetTransaction();
    return Reply(rejection);
  }
  Commit(/*chunked=*/true);
}

void ServerSession::OnCommitted(const absl::StatusOr<std::string>& queue_id) {
  if (mode_ != Mode::kCommit) return;  // closed meanwhile
  message_begun_ = false;              // committed or failed: no abort due
  mode_ = Mode::kCommand;
  if (queue_id.ok()) {
    Reply(absl::StrCat("250 2.0.0 Ok: queued as ", *queue_id));
  } else {
    Reply("451 4.3.0 Error: queue file write error");
  }
  ResetTransaction();
  if (shutdown_requested_) {
    Close(absl::StrCat("421 4.3.2 ", config_.hostname, " Service shutting down"));
  }
}

void ServerSession::HandleStartTls(const Command& cmd) {
  if (!config_.tls_available && !config_.tls_active) {
    return Error("502 5.5.1 Error: command not implemented");
  }
  if (config_.tls_active) return Error("503 5.5.1 Error: TLS already active");
  if (!cmd.argument.empty()) return Error("501 5.5.4 Syntax: STARTTLS");
  ResetTransaction();
  Reply("220 2.0.0 Ready to start TLS");
  // Nothing more is consumed: whatever followed the command in this read
  // was sent before the client could see the 220, and the glue drops it.
  mode_ = Mode::kStartTls;
}

void ServerSession::OnTlsStarted() {
  if (mode_ != Mode::kStartTls) return;
  mode_ = Mode::kCommand;
  config_.tls_active = true;
  // RFC 3207 4.2: discard all knowledge obtained from the client before.
  ResetTransaction();
  greeted_ = false;
  envelope_.helo.clear();
  envelope_.esmtp = false;
  envelope_.tls = true;
  envelope_.auth_user.clear();
  auth_user_.clear();
  auth_step_ = AuthStep::kNone;
  line_.clear();
  line_overflow_ = false;
  if (shutdown_requested_) {
    Close(absl::StrCat("421 4.3.2 ", config_.hostname, " Service shutting down"));
  }
}

void ServerSession::HandleAuth(const Command& cmd) {
  if (!config_.auth_available) return Error("502 5.5.1 Error: command not implemented");
  if (!greeted_) return Error("503 5.5.1 Error: send HELO/EHLO first");
  if (config_.require_tls && !config_.tls_active) {
    return Error("530 5.7.0 Must issue a STARTTLS command first");
  }
  if (!auth_offered()) {
    return Error("538 5.7.11 Encryption required for requested authentication mechanism");
  }
  if (authenticated()) return Error("503 5.5.1 Error: already authenticated");
  if (mail_given_) return Error("503 5.5.1 Error: MAIL transaction in progress");
  const AuthArgument a = ParseAuthArgument(cmd.argument);
  if (!a.syntax_ok) return Error("501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  if (a.mechanism == SaslMechanism::kUnknown) {
    return Error("504 5.5.4 Error: unsupported authentication mechanism");
  }
  if (a.mechanism == SaslMechanism::kPlain) {
    if (!a.has_initial) {
      auth_step_ = AuthStep::kPlain;
      return Reply("334 ");
    }
    const auto decoded = DecodeSaslResponse(a.initial);
    const auto creds = decoded ? ParsePlain(*decoded) : std::nullopt;
    if (!creds) return Error("501 5.5.2 Error: cannot decode response");
    if (!creds->authzid.empty() && creds->authzid != creds->user) {
      return Error("535 5.7.8 Error: authentication failed");  // no proxy logins
    }
    return FinishAuth(creds->user, creds->password);
  }
  // LOGIN: an initial response is the user name.
  if (!a.has_initial) {
    auth_step_ = AuthStep::kLoginUser;
    return Reply(absl::StrCat("334 ", base::Av(kLoginUserPrompt)));
  }
  const auto user = DecodeSaslResponse(a.initial);
  if (!user || user->empty() || user->size() > kSaslFieldMax) {
    return Error("501 5.5.2 Error: cannot decode response");
  }
  auth_login_user_ = *user;
  auth_step_ = AuthStep::kLoginPassword;
  Reply(absl::StrCat("334 ", base::Av(kLoginPasswordPrompt)));
}

void ServerSession::HandleAuthResponse(std::string_view line) {
  const AuthStep step = auth_step_;
  auth_step_ = AuthStep::kNone;
  if (line.size() < 2 || line.substr(line.size() - 2) != "\r\n") {
    auth_login_user_.clear();
    return Error("501 5.5.2 Error: cannot decode response");
  }
  line.remove_suffix(2);
  if (line == "*") {
    auth_login_user_.clear();
    return Error("501 5.0.0 Error: authentication cancelled");
  }
  const auto decoded = DecodeSaslResponse(line);
  if (!decoded) {
    auth_login_user_.clear();
    return Error("501 5.5.2 Error: cannot decode response");
  }
  switch (step) {
    case AuthStep::kPlain: {
      const auto creds = ParsePlain(*decoded);
      if (!creds) return Error("501 5.5.2 Error: cannot decode response");
      if (!creds->authzid.empty() && creds->authzid != creds->user) {
        return Error("535 5.7.8 Error: authentication failed");
      }
      return FinishAuth(creds->user, creds->password);
    }
    case AuthStep::kLoginUser:
      if (decoded->empty() || decoded->size() > kSaslFieldMax) {
        return Error("501 5.5.2 Error: cannot decode response");
      }
      auth_login_user_ = *decoded;
      auth_step_ = AuthStep::kLoginPassword;
      return Reply(absl::StrCat("334 ", base::Av(kLoginPasswordPrompt)));
    case AuthStep::kLoginPassword: {
      const std::string user = std::move(auth_login_user_);
      auth_login_user_.clear();
      if (decoded->size() > kSaslFieldMax) return Error("501 5.5.2 Error: cannot decode response");
      return FinishAuth(user, *decoded);
    }
    case AuthStep::kNone:
      break;
  }
}

void ServerSession::FinishAuth(std::string_view user, std::string_view password) {
  auth_pending_user_ = std::string(user);
  mode_ = Mode::kAuth;
  handler_.Authenticate(user, password);  // may answer before it returns
}

void ServerSession::OnAuthResult(AuthVerdict verdict) {
  if (mode_ != Mode::kAuth) return;  // closed meanwhile
  mode_ = Mode::kCommand;
  switch (verdict) {
    case AuthVerdict::kOk:
      auth_user_ = std::move(auth_pending_user_);
      envelope_.auth_user = auth_user_;
      Reply("235 2.7.0 Authentication successful");
      break;
    case AuthVerdict::kBad:
      Error("535 5.7.8 Error: authentication failed");
      break;
    case AuthVerdict::kLocked:
      Close(absl::StrCat("421 4.7.0 ", config_.hostname,
                         " Error: too many failed authentication attempts"));
      break;
    case AuthVerdict::kTempFail:
      Reply("454 4.7.0 Temporary authentication failure");
      break;
  }
  auth_pending_user_.clear();
  if (shutdown_requested_ && mode_ == Mode::kCommand) {
    Close(absl::StrCat("421 4.3.2 ", config_.hostname, " Service shutting down"));
  }
}

void ServerSession::OnTimeout() {
  if (mode_ == Mode::kCommit) return;  // our fault, not the client's
  verb_ = Verb::kUnknown;              // answers no command
  argument_.clear();
  Close(absl::StrCat("421 4.4.2 ", config_.hostname, " Error: timeout exceeded"));
}

void ServerSession::OnShutdown() {
  shutdown_requested_ = true;
  // A message on its way in is finished and answered first, then the
  // session closes; the glue's grace timer bounds how long that may take.
  if (mode_ == Mode::kCommit || mode_ == Mode::kAuth || in_body()) return;
  Close(absl::StrCat("421 4.3.2 ", config_.hostname, " Service shutting down"));
}

}  // namespace sluice::smtp
