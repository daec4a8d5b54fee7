// The inbound session state machine, driven by bytes with a recording
// handler in place of the spool.
#include "sluice/smtp/server_session.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace sluice::smtp {
namespace {

class RecordingHandler : public SessionHandler {
 public:
  bool SpoolAvailable() override { return spool_available; }
  void BeginMessage(const Envelope&) override {
    ++begun;
    body.clear();
  }
  void AppendBody(const char* data, size_t size) override { body.append(data, size); }
  void CommitMessage(const Envelope& e, const MessageFacts& f) override {
    committed.push_back(body);
    envelopes.push_back(e);
    facts.push_back(f);
  }
  void AbortMessage() override { ++aborted; }

  bool spool_available = true;
  int begun = 0;
  int aborted = 0;
  std::string body;
  std::vector<std::string> committed;
  std::vector<Envelope> envelopes;
  std::vector<MessageFacts> facts;
};

class SessionTest : public testing::Test {
 protected:
  SessionTest() { Restart(SessionConfig{.hostname = "mx.test", .relay_allowed = true}); }

  void Restart(SessionConfig config) {
    handler_ = RecordingHandler();
    session_ = std::make_unique<ServerSession>(config, handler_);
    session_->Start();
    Take();
  }

  // Feeds everything, committing messages as the session asks.
  void Send(std::string_view bytes) {
    size_t used = 0;
    int guard = 0;
    while (used < bytes.size() && !session_->closed() && ++guard < 100000) {
      used += session_->Feed(bytes.data() + used, bytes.size() - used);
      if (session_->mode() == ServerSession::Mode::kCommit) {
        session_->OnCommitted("ID" + std::to_string(handler_.committed.size() - 1));
      }
      if (session_->paused()) replies_ += Take();
    }
  }

  std::string Take() {
    std::string out;
    out.swap(session_->output());
    return out;
  }

  std::vector<std::string> Replies() {
    replies_ += Take();
    std::vector<std::string> lines = absl::StrSplit(replies_, "\r\n", absl::SkipEmpty());
    replies_.clear();
    return lines;
  }

  std::string Last() { return Replies().back(); }

  RecordingHandler handler_;
  std::unique_ptr<ServerSession> session_;
  std::string replies_;
};

TEST_F(SessionTest, WholeTransactionInOnePacket) {
  Send(
      "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nRCPT TO:<z@y.test>\r\n"
      "DATA\r\nSubject: t\r\n\r\n..dot\r\n.\r\nQUIT\r\n");
  auto r = Replies();
  ASSERT_EQ(r.size(), 13u);
  EXPECT_EQ(r[0], "250-mx.test Hello c.test");
  EXPECT_EQ(r[6], "250 SMTPUTF8");
  EXPECT_EQ(r[7], "250 2.1.0 Ok");
  EXPECT_EQ(r[10], "354 End data with <CR><LF>.<CR><LF>");
  EXPECT_EQ(r[11], "250 2.0.0 Ok: queued as ID0");
  EXPECT_EQ(r[12], "221 2.0.0 Bye");
  ASSERT_EQ(handler_.committed.size(), 1u);
  EXPECT_EQ(handler_.committed[0], "Subject: t\r\n\r\n.dot\r\n");
  EXPECT_EQ(handler_.envelopes[0].recipients, (std::vector<std::string>{"x@y.test", "z@y.test"}));
  EXPECT_FALSE(handler_.facts[0].has_date);
  EXPECT_TRUE(session_->closed());
}

TEST_F(SessionTest, ByteAtATimeIsTheSame) {
  std::string script =
      "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nDate: now\r\n"
      "Message-ID: <1@c>\r\n\r\nhi\r\n.\r\n";
  for (char c : script) Send(std::string_view(&c, 1));
  EXPECT_EQ(Last(), "250 2.0.0 Ok: queued as ID0");
  EXPECT_EQ(handler_.envelopes[0].sender, "");
  EXPECT_TRUE(handler_.facts[0].has_date);
  EXPECT_TRUE(handler_.facts[0].has_message_id);
}

TEST_F(SessionTest, SequenceErrors) {
  Send("MAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: send HELO/EHLO first");
  Send("EHLO c\r\nRCPT TO:<x@y.test>\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: need MAIL command");
  Send("DATA\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: need MAIL command");
  Send("MAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: nested MAIL command");
  Send("DATA\r\n");
  EXPECT_EQ(Last(), "554 5.5.1 Error: no valid recipients");
}

TEST_F(SessionTest, SyntaxAndParameterErrors) {
  Restart(SessionConfig{.hostname = "mx.test", .relay_allowed = true, .max_errors = 100});
  Send("EHLO c\r\nMAIL <a@b.test>\r\n");
  EXPECT_EQ(Last(), "501 5.5.4 Syntax: MAIL FROM:<address>");
  Send("MAIL FROM:<a@@b.test>\r\n");
  EXPECT_EQ(Last(), "501 5.1.7 Bad sender address syntax");
  Send("MAIL FROM:<a@b.test> FOO=1\r\n");
  EXPECT_EQ(Last(), "555 5.5.4 Unsupported option: FOO");
  Send("MAIL FROM:<a@b.test> SIZE=x\r\n");
  EXPECT_EQ(Last(), "501 5.5.4 Bad value for parameter SIZE");
  Send("MAIL FROM:<a@b.test> SIZE=999999999999\r\n");
  EXPECT_EQ(Last(), "552 5.3.4 Error: message size exceeds fixed limit");
  Send("MAIL FROM:<a@b.test>\r\nRCPT TO:<bad>\r\n");
  EXPECT_EQ(Last(), "501 5.1.3 Bad recipient address syntax");
  Send("RCPT TO:<x@y.test> NOTIFY=NEVER\r\n");
  EXPECT_EQ(Last(), "555 5.5.4 Unsupported option: NOTIFY");
  Send("FROB\r\n");
  EXPECT_EQ(Last(), "500 5.5.2 Error: command not recognized");
  Send("NOOP\n");
  EXPECT_EQ(Last(), "500 5.5.2 Error: bad command syntax");
  Send("EXPN list\r\n");
  EXPECT_EQ(Last(), "502 5.5.1 Error: command not implemented");
}

TEST_F(SessionTest, TooManyErrorsCloses) {
  Restart(SessionConfig{.hostname = "mx.test", .max_errors = 3});
  Send("X\r\nY\r\nZ\r\nNOOP\r\n");
  auto r = Replies();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[3], "421 4.7.0 mx.test Error: too many errors");
  EXPECT_TRUE(session_->closed());
}

TEST_F(SessionTest, OverlongLineIsDroppedWhole) {
  Send("EHLO c\r\n");
  Replies();
  std::string huge(5000, 'A');
  Send("NOOP " + huge.substr(0, 1000));
  Send(huge + "\r\nNOOP\r\n");
  auto r = Replies();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], "500 5.5.6 Error: line too long");
  EXPECT_EQ(r[1], "250 2.0.0 Ok");
  // Exactly at the limit is fine.
  std::string at_limit = "NOOP " + std::string(2048 - 7, 'x') + "\r\n";
  ASSERT_EQ(at_limit.size(), 2048u);
  Send(at_limit);
  EXPECT_EQ(Last(), "250 2.0.0 Ok");
  Send("NOOP " + std::string(2048 - 6, 'x') + "\r\n");
  EXPECT_EQ(Last(), "500 5.5.6 Error: line too long");
}

TEST_F(SessionTest, RelayDeniedOutsideRelayNetworks) {
  Restart(SessionConfig{.hostname = "mx.test", .relay_allowed = false});
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
  auto r = Replies();
  EXPECT_EQ(r[r.size() - 2], "550 5.7.1 <x@y.test>: Relay access denied");
  EXPECT_EQ(r.back(), "554 5.5.1 Error: no valid recipients");
  EXPECT_EQ(handler_.begun, 0);
}

TEST_F(SessionTest, RecipientLimit) {
  Restart(SessionConfig{.hostname = "mx.test", .relay_allowed = true, .max_recipients = 2});
  Send(
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<1@y.test>\r\nRCPT TO:<2@y.test>\r\n"
      "RCPT TO:<3@y.test>\r\n");
  EXPECT_EQ(Last(), "452 4.5.3 Error: too many recipients");
}

TEST_F(SessionTest, SmugglingLookAlikesAreRejectedAfterTheRealEnd) {
  Send(
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"
      "hello\n.\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\nevil\r\n.\r\n");
  auto r = Replies();
  EXPECT_EQ(r.back(), "550 5.6.0 Error: bare CR or LF in message (RFC 5321 2.3.8)");
  EXPECT_TRUE(handler_.committed.empty());
  EXPECT_EQ(handler_.aborted, 1);
}

TEST_F(SessionTest, MessageTooLargeIsReadToTheEnd) {
  Restart(SessionConfig{.hostname = "mx.test", .relay_allowed = true, .max_message_size = 10});
  Send(
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"
      "0123456789abcdef\r\n.\r\nNOOP\r\n");
  auto r = Replies();
  EXPECT_EQ(r[r.size() - 2], "552 5.3.4 Error: message size exceeds fixed limit");
  EXPECT_EQ(r.back(), "250 2.0.0 Ok");
  EXPECT_TRUE(handler_.committed.empty());
}

TEST_F(SessionTest, BdatChunks) {
  Send(
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nBDAT 5\r\nhel\r\n"
      "BDAT 7 LAST\r\nlo\r\n.\r\n");
  auto r = Replies();
  EXPECT_EQ(r[r.size() - 2], "250 2.0.0 5 octets received");
  EXPECT_EQ(r.back(), "250 2.0.0 Ok: queued as ID0");
  EXPECT_EQ(handler_.committed[0], "hel\r\nlo\r\n.\r\n");  // counted, never unstuffed
  EXPECT_TRUE(handler_.facts[0].chunked);
}

TEST_F(SessionTest, BdatWithoutTransactionSwallowsTheChunk) {
  Send("EHLO c\r\nBDAT 12\r\nQUIT\r\nQUIT\r\nNOOP\r\n");
  auto r = Replies();
  EXPECT_EQ(r[r.size() - 2], "503 5.5.1 Error: need MAIL command");
  EXPECT_EQ(r.back(), "250 2.0.0 Ok");
  EXPECT_FALSE(session_->closed());
}

TEST_F(SessionTest, DataAfterBdat) {
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nBDAT 1\r\nxDATA\r\n");
  EXPECT_EQ(Last(), "503 5.5.1 Error: DATA after BDAT");
}

TEST_F(SessionTest, SpoolUnavailable) {
  handler_.spool_available = false;
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(Last(), "452 4.3.1 Insufficient system storage");
}

TEST_F(SessionTest, CommitFailureIs451) {
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nx\r\n.\r\n");
  // Send() commits successfully; do one by hand that fails.
  Send("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
  std::string body = "y\r\n.\r\n";
  session_->Feed(body.data(), body.size());
  ASSERT_EQ(session_->mode(), ServerSession::Mode::kCommit);
  EXPECT_TRUE(session_->paused());
  session_->OnCommitted(absl::InternalError("disk"));
  EXPECT_EQ(Last(), "451 4.3.0 Error: queue file write error");
}

TEST_F(SessionTest, PipelinedInputWaitsForTheCommit) {
  std::string bytes =
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n";
  size_t used = session_->Feed(bytes.data(), bytes.size());
  EXPECT_EQ(bytes.substr(used), "NOOP\r\n");
  session_->OnCommitted(std::string("Q1"));
  used += session_->Feed(bytes.data() + used, bytes.size() - used);
  EXPECT_EQ(used, bytes.size());
  EXPECT_EQ(Last(), "250 2.0.0 Ok");
}

TEST_F(SessionTest, ShutdownAndTimeout) {
  Send("EHLO c\r\n");
  session_->OnShutdown();
  EXPECT_EQ(Last(), "421 4.3.2 mx.test Service shutting down");
  EXPECT_TRUE(session_->closed());
  Restart(SessionConfig{.hostname = "mx.test"});
  session_->OnTimeout();
  EXPECT_EQ(Last(), "421 4.4.2 mx.test Error: timeout exceeded");
}

TEST_F(SessionTest, ShutdownDuringDataFinishesTheMessageFirst) {
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\npart");
  session_->OnShutdown();
  EXPECT_FALSE(session_->closed());
  Send("\r\n.\r\n");
  auto r = Replies();
  EXPECT_EQ(r[r.size() - 2], "250 2.0.0 Ok: queued as ID0");
  EXPECT_EQ(r.back(), "421 4.3.2 mx.test Service shutting down");
}

TEST_F(SessionTest, ThousandPipelinedCommands) {
  std::string burst;
  for (int i = 0; i < 1000; ++i) burst += "NOOP\r\n";
  Send(burst);
  EXPECT_EQ(Replies().size(), 1000u);
}

}  // namespace
}  // namespace sluice::smtp
