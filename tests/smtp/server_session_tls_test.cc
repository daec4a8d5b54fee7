// STARTTLS and AUTH in the inbound session: what is offered when, that
// nothing after STARTTLS is executed, the reset after the handshake, the
// PLAIN and LOGIN exchanges, and the require_tls / require_auth gates.
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "sluice/base/base64.h"
#include "sluice/smtp/server_session.h"

namespace sluice::smtp {
namespace {

using namespace std::string_literals;

class AuthHandler : public SessionHandler {
 public:
  bool SpoolAvailable() override { return true; }
  void BeginMessage(const Envelope&) override {}
  void AppendBody(const char*, size_t) override {}
  void CommitMessage(const Envelope& e, const MessageFacts&) override { envelopes.push_back(e); }
  void AbortMessage() override {}
  void Authenticate(std::string_view user, std::string_view password) override {
    asked.emplace_back(std::string(user) + ":" + std::string(password));
    if (!answer_now) return;
    session->OnAuthResult(user == "alice" && password == "secret" ? AuthVerdict::kOk
                                                                  : verdict_for_bad);
  }

  ServerSession* session = nullptr;
  bool answer_now = true;
  AuthVerdict verdict_for_bad = AuthVerdict::kBad;
  std::vector<std::string> asked;
  std::vector<Envelope> envelopes;
};

SessionConfig TlsConfig() {
  SessionConfig c;
  c.hostname = "mx.test";
  c.client_ip = "192.0.2.7";
  c.relay_allowed = false;
  c.tls_available = true;
  c.auth_available = true;
  return c;
}

class TlsSessionTest : public testing::Test {
 protected:
  void Start(SessionConfig config) {
    handler_ = AuthHandler();
    session_ = std::make_unique<ServerSession>(config, handler_);
    handler_.session = session_.get();
    session_->Start();
    Replies();
  }

  // Feeds until the session stops consuming; returns the bytes used.
  size_t Send(std::string_view bytes) {
    size_t used = 0;
    while (used < bytes.size() && !session_->closed()) {
      const size_t n = session_->Feed(bytes.data() + used, bytes.size() - used);
      used += n;
      if (session_->mode() == ServerSession::Mode::kCommit) session_->OnCommitted("ID"s);
      if (n == 0) break;
    }
    return used;
  }

  std::vector<std::string> Replies() {
    std::string out;
    out.swap(session_->output());
    return absl::StrSplit(out, "\r\n", absl::SkipEmpty());
  }

  std::string Last() {
    auto r = Replies();
    return r.empty() ? "" : r.back();
  }

  // STARTTLS and a completed handshake.
  void StartTls() {
    Send("STARTTLS\r\n");
    ASSERT_EQ(Last(), "220 2.0.0 Ready to start TLS");
    ASSERT_TRUE(session_->starttls_pending());
    session_->OnTlsStarted();
  }

  static bool Has(const std::vector<std::string>& lines, std::string_view want) {
    for (const auto& l : lines) {
      if (l == want) return true;
    }
    return false;
  }

  AuthHandler handler_;
  std::unique_ptr<ServerSession> session_;
};

std::string Plain(std::string_view authzid, std::string_view user, std::string_view pass) {
  return base::Base64Encode(std::string(authzid) + '\0' + std::string(user) + '\0' +
                            std::string(pass));
}

TEST_F(TlsSessionTest, EhloOffersStartTlsThenAuthAfterTls) {
  Start(TlsConfig());
  Send("EHLO c\r\n");
  auto r = Replies();
  EXPECT_TRUE(Has(r, "250-STARTTLS"));
  EXPECT_FALSE(Has(r, "250-AUTH PLAIN LOGIN"));
  StartTls();
  Send("EHLO c\r\n");
  r = Replies();
  EXPECT_FALSE(Has(r, "250-STARTTLS"));
  EXPECT_TRUE(Has(r, "250-AUTH PLAIN LOGIN"));
  EXPECT_EQ(r.back(), "250 SMTPUTF8");
}

TEST_F(TlsSessionTest, NothingOfferedWithoutCertificateOrUsers) {
  SessionConfig c = TlsConfig();
  c.tls_available = false;
  c.auth_available = false;
  Start(c);
  Send("EHLO c\r\n");
  auto r = Replies();
  EXPECT_FALSE(Has(r, "250-STARTTLS"));
  EXPECT_FALSE(Has(r, "250-AUTH PLAIN LOGIN"));
  Send("STARTTLS\r\n");
  EXPECT_EQ(Last(), "502 5.5.1 Error: command not implemented");
  Send("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(Last(), "502 5.5.1 Error: command not implemented");
}

TEST_F(TlsSessionTest, PlaintextAfterStartTlsIsNeverExecuted) {
  Start(TlsConfig());
  const std::string injected = "STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<a@b>\r\n";
  const size_t used = Send(injected);
  EXPECT_EQ(used, std::string("STARTTLS\r\n").size());  // the rest is the glue's to drop
  EXPECT_EQ(Last(), "220 2.0.0 Ready to start TLS");
  EXPECT_TRUE(session_->paused());
  EXPECT_EQ(session_->Feed("NOOP\r\n", 6), 0u);  // still nothing until the handshake
  session_->OnTlsStarted();
  // The session starts over: no HELO, no transaction.
  Send("MAIL FROM:<a@b>\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: send HELO/EHLO first");
}

TEST_F(TlsSessionTest, StartTlsResetsTheTransactionAndAuth) {
  SessionConfig c = TlsConfig();
  c.auth_plaintext = true;
  Start(c);
  Send("EHLO c\r\nAUTH PLAIN " + Plain("", "alice", "secret") + "\r\nMAIL FROM:<a@b>\r\n");
  auto r = Replies();
  ASSERT_TRUE(Has(r, "235 2.7.0 Authentication successful"));
  EXPECT_TRUE(session_->authenticated());
  StartTls();
  EXPECT_FALSE(session_->authenticated());
  Send("EHLO c\r\nRCPT TO:<x@y>\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: need MAIL command");
}

TEST_F(TlsSessionTest, StartTlsTwiceAndWithArgument) {
  Start(TlsConfig());
  Send("STARTTLS now\r\n");
  EXPECT_EQ(Last(), "501 5.5.4 Syntax: STARTTLS");
  StartTls();
  Send("EHLO c\r\nSTARTTLS\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: TLS already active");
  EXPECT_FALSE(session_->starttls_pending());
}

TEST_F(TlsSessionTest, ImplicitTlsListener) {
  SessionConfig c = TlsConfig();
  c.tls_active = true;
  Start(c);
  Send("EHLO c\r\n");
  auto r = Replies();
  EXPECT_FALSE(Has(r, "250-STARTTLS"));
  EXPECT_TRUE(Has(r, "250-AUTH PLAIN LOGIN"));
  Send("STARTTLS\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: TLS already active");
}

TEST_F(TlsSessionTest, AuthPlainInitialResponseAndRelay) {
  Start(TlsConfig());
  StartTls();
  Send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@elsewhere.example>\r\n");
  EXPECT_EQ(Last(), "550 5.7.1 <x@elsewhere.example>: Relay access denied");
  Send("RSET\r\nAUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(Last(), "235 2.7.0 Authentication successful");
  EXPECT_EQ(handler_.asked, std::vector<std::string>{"alice:secret"});
  Send("MAIL FROM:<a@b>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\nhi\r\n.\r\n");
  auto r = Replies();
  EXPECT_TRUE(Has(r, "250 2.1.5 Ok"));
  ASSERT_EQ(handler_.envelopes.size(), 1u);
  EXPECT_EQ(handler_.envelopes[0].auth_user, "alice");
  EXPECT_TRUE(handler_.envelopes[0].tls);
  Send("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: already authenticated");
}

TEST_F(TlsSessionTest, AuthPlainWithChallenge) {
  Start(TlsConfig());
  StartTls();
  Send("EHLO c\r\nAUTH PLAIN\r\n");
  EXPECT_EQ(Last(), "334 ");
  Send(Plain("alice", "alice", "secret") + "\r\n");  // authzid == user is fine
  EXPECT_EQ(Last(), "235 2.7.0 Authentication successful");
}

TEST_F(TlsSessionTest, AuthLogin) {
  Start(TlsConfig());
  StartTls();
  Send("EHLO c\r\nAUTH LOGIN\r\n");
  EXPECT_EQ(Last(), "334 VXNlcm5hbWU6");
  Send(base::Base64Encode("alice") + "\r\n");
  EXPECT_EQ(Last(), "334 UGFzc3dvcmQ6");
  Send(base::Base64Encode("secret") + "\r\n");
  EXPECT_EQ(Last(), "235 2.7.0 Authentication successful");
}

TEST_F(TlsSessionTest, AuthLoginWithInitialUser) {
  Start(TlsConfig());
  StartTls();
  Send("EHLO c\r\nAUTH LOGIN " + base::Base64Encode("alice") + "\r\n");
  EXPECT_EQ(Last(), "334 UGFzc3dvcmQ6");
  Send(base::Base64Encode("wrong") + "\r\n");
  EXPECT_EQ(Last(), "535 5.7.8 Error: authentication failed");
  EXPECT_FALSE(session_->authenticated());
}

TEST_F(TlsSessionTest, AuthErrors) {
  SessionConfig c = TlsConfig();
  c.max_errors = 100;
  Start(c);
  Send("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: send HELO/EHLO first");
  Send("EHLO c\r\nAUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(Last(), "538 5.7.11 Encryption required for requested authentication mechanism");
  StartTls();
  Send("EHLO c\r\nAUTH CRAM-MD5\r\n");
  EXPECT_EQ(Last(), "504 5.5.4 Error: unsupported authentication mechanism");
  Send("AUTH\r\n");
  EXPECT_EQ(Last(), "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  Send("AUTH PLAIN not-base64!\r\n");
  EXPECT_EQ(Last(), "501 5.5.2 Error: cannot decode response");
  Send("AUTH PLAIN " + base::Base64Encode("no-nuls") + "\r\n");
  EXPECT_EQ(Last(), "501 5.5.2 Error: cannot decode response");
  Send("AUTH PLAIN " + Plain("bob", "alice", "secret") + "\r\n");
  EXPECT_EQ(Last(), "535 5.7.8 Error: authentication failed");
  Send("AUTH LOGIN\r\n*\r\n");
  EXPECT_EQ(Last(), "501 5.0.0 Error: authentication cancelled");
  Send("AUTH PLAIN\r\n=\r\n");
  EXPECT_EQ(Last(), "501 5.5.2 Error: cannot decode response");
  Send("MAIL FROM:<a@b>\r\nAUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: MAIL transaction in progress");
  EXPECT_TRUE(handler_.asked.empty());  // none of these reached the password check
}

TEST_F(TlsSessionTest, AuthResponseIsNotACommand) {
  Start(TlsConfig());
  StartTls();
  // "QUIT" is valid base64: it is taken as the user name, not executed.
  Send("EHLO c\r\nAUTH LOGIN\r\nQUIT\r\n");
  EXPECT_EQ(Last(), "334 UGFzc3dvcmQ6");
  EXPECT_FALSE(session_->closed());
  Send("MAIL FROM:<a@b>\r\n");  // not base64: the exchange fails, nothing runs
  EXPECT_EQ(Last(), "501 5.5.2 Error: cannot decode response");
  EXPECT_TRUE(handler_.asked.empty());
}

TEST_F(TlsSessionTest, AsyncAnswerPausesInput) {
  Start(TlsConfig());
  StartTls();
  handler_.answer_now = false;
  const std::string cmds = "EHLO c\r\nAUTH PLAIN " + Plain("", "alice", "secret") + "\r\nNOOP\r\n";
  const size_t used = Send(cmds);
  EXPECT_EQ(used, cmds.size() - 6);  // NOOP waits for the verdict
  EXPECT_TRUE(session_->paused());
  session_->OnAuthResult(AuthVerdict::kOk);
  Send("NOOP\r\n");
  auto r = Replies();
  EXPECT_EQ(r[r.size() - 2], "235 2.7.0 Authentication successful");
  EXPECT_EQ(r.back(), "250 2.0.0 Ok");
}

TEST_F(TlsSessionTest, LockedAndTemporaryVerdicts) {
  Start(TlsConfig());
  StartTls();
  handler_.verdict_for_bad = AuthVerdict::kTempFail;
  Send("EHLO c\r\nAUTH PLAIN " + Plain("", "alice", "x") + "\r\n");
  EXPECT_EQ(Last(), "454 4.7.0 Temporary authentication failure");
  handler_.verdict_for_bad = AuthVerdict::kLocked;
  Send("AUTH PLAIN " + Plain("", "alice", "x") + "\r\n");
  EXPECT_EQ(Last(), "421 4.7.0 mx.test Error: too many failed authentication attempts");
  EXPECT_TRUE(session_->closed());
}

TEST_F(TlsSessionTest, RequireTls) {
  SessionConfig c = TlsConfig();
  c.require_tls = true;
  c.auth_plaintext = true;
  Start(c);
  Send("EHLO c\r\nMAIL FROM:<a@b>\r\n");
  EXPECT_EQ(Last(), "530 5.7.0 Must issue a STARTTLS command first");
  Send("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(Last(), "530 5.7.0 Must issue a STARTTLS command first");
  Send("NOOP\r\n");
  EXPECT_EQ(Last(), "250 2.0.0 Ok");
  StartTls();
  Send("EHLO c\r\nMAIL FROM:<a@b>\r\n");
  EXPECT_EQ(Last(), "250 2.1.0 Ok");
}

TEST_F(TlsSessionTest, RequireAuth) {
  SessionConfig c = TlsConfig();
  c.require_auth = true;
  c.relay_allowed = true;
  Start(c);
  StartTls();
  Send("EHLO c\r\nMAIL FROM:<a@b>\r\n");
  EXPECT_EQ(Last(), "530 5.7.0 Authentication required");
  Send("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\nMAIL FROM:<a@b>\r\n");
  EXPECT_EQ(Last(), "250 2.1.0 Ok");
}

}  // namespace
}  // namespace sluice::smtp
