#include "tools/blast/client_session.h"

#include <gtest/gtest.h>

#include <deque>

namespace sluice::tools {
namespace {

class FakeHandler : public ClientHandler {
 public:
  std::deque<OutMessage> queue;
  bool wait_once = false;
  std::vector<uint64_t> data_sent;
  std::vector<MessageResult> done;
  std::vector<int> codes;

  Next NextMessage(OutMessage& out) override {
    if (wait_once) {
      wait_once = false;
      return Next::kWait;
    }
    if (queue.empty()) return Next::kDone;
    out = queue.front();
    queue.pop_front();
    return Next::kMessage;
  }
  void DataSent(uint64_t id) override { data_sent.push_back(id); }
  void MessageDone(const MessageResult& r) override { done.push_back(r); }
  void ReplySeen(const Reply& r) override { codes.push_back(r.code); }
  void StartTls() override { ++start_tls; }
  int start_tls = 0;
};

OutMessage Msg(uint64_t id, std::vector<std::string> rcpts,
               std::string body = "S: x\r\n\r\n.hi\r\n") {
  OutMessage m;
  m.id = id;
  m.sender = "s@x.example";
  m.recipients = std::move(rcpts);
  m.head = "X-Blast-Id: " + std::to_string(id) + "\r\n";
  auto b = std::make_shared<SharedBody>();
  b->raw = body;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '.' && (i == 0 || body[i - 1] == '\n')) b->stuffed.push_back('.');
    b->stuffed.push_back(body[i]);
  }
  m.body = b;
  return m;
}

std::string Take(ClientSession& s) {
  std::string out;
  out.swap(s.output());
  return out;
}

constexpr char kEhloPipe[] = "250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 1000\r\n";
constexpr char kEhloPlain[] = "250-mx\r\n250 SIZE 1000\r\n";

TEST(ClientSession, PipelinedTwoMessagesThenQuit) {
  FakeHandler h;
  h.queue.push_back(Msg(1, {"a@d0.example", "b@d1.example"}));
  h.queue.push_back(Msg(2, {"c@d0.example"}));
  ClientSession s(ClientOptions{}, h);
  EXPECT_EQ(Take(s), "");
  s.Feed("220 mx ESMTP\r\n");
  EXPECT_EQ(Take(s), "EHLO blast.sluice.test\r\n");
  s.Feed(kEhloPipe);
  EXPECT_TRUE(s.server_pipelining());
  EXPECT_EQ(
      Take(s),
      "MAIL FROM:<s@x.example>\r\nRCPT TO:<a@d0.example>\r\nRCPT TO:<b@d1.example>\r\nDATA\r\n");
  s.Feed("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_EQ(Take(s), "");
  s.Feed("354 go\r\n");
  EXPECT_EQ(Take(s), "X-Blast-Id: 1\r\nS: x\r\n\r\n..hi\r\n.\r\n");
  ASSERT_EQ(h.data_sent.size(), 1u);
  s.Feed("250 2.0.0 Ok: queued as 1\r\n");
  ASSERT_EQ(h.done.size(), 1u);
  EXPECT_TRUE(h.done[0].ok);
  EXPECT_EQ(h.done[0].recipients_ok, 2u);
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\nRCPT TO:<c@d0.example>\r\nDATA\r\n");
  s.Feed("250 ok\r\n250 ok\r\n354 go\r\n");
  Take(s);
  s.Feed("250 ok\r\n");
  EXPECT_EQ(Take(s), "QUIT\r\n");
  EXPECT_EQ(s.state(), ClientSession::State::kQuit);
  s.Feed("221 bye\r\n");
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(s.close_reason(), "quit");
  ASSERT_EQ(h.done.size(), 2u);
  EXPECT_TRUE(h.done[1].ok);
}

TEST(ClientSession, LockstepWithoutServerPipelining) {
  FakeHandler h;
  h.queue.push_back(Msg(7, {"a@x", "tempfail@x", "b@x"}));
  ClientSession s(ClientOptions{}, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloPlain);
  EXPECT_FALSE(s.server_pipelining());
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\n");
  s.Feed("250 ok\r\n");
  EXPECT_EQ(Take(s), "RCPT TO:<a@x>\r\n");
  s.Feed("250 ok\r\n");
  EXPECT_EQ(Take(s), "RCPT TO:<tempfail@x>\r\n");
  s.Feed("451 4.7.1 later\r\n");
  EXPECT_EQ(Take(s), "RCPT TO:<b@x>\r\n");
  s.Feed("250 ok\r\n");
  EXPECT_EQ(Take(s), "DATA\r\n");
  s.Feed("354 go\r\n");
  EXPECT_EQ(Take(s), "X-Blast-Id: 7\r\nS: x\r\n\r\n..hi\r\n.\r\n");
  s.Feed("250 ok\r\n");
  ASSERT_EQ(h.done.size(), 1u);
  EXPECT_TRUE(h.done[0].ok);
  EXPECT_EQ(h.done[0].recipients_ok, 2u);
  EXPECT_EQ(h.done[0].recipients_failed, 1u);
  EXPECT_EQ(Take(s), "QUIT\r\n");
}

TEST(ClientSession, PipeliningOffByOption) {
  FakeHandler h;
  h.queue.push_back(Msg(1, {"a@x"}));
  ClientOptions o;
  o.pipelining = false;
  ClientSession s(o, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloPipe);
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\n");
}

TEST(ClientSession, AllRecipientsRejectedPipelined) {
  FakeHandler h;
  h.queue.push_back(Msg(1, {"permfail@x"}));
  h.queue.push_back(Msg(2, {"a@x"}));
  ClientSession s(ClientOptions{}, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloPipe);
  Take(s);
  s.Feed("250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n");
  ASSERT_EQ(h.done.size(), 1u);
  EXPECT_FALSE(h.done[0].ok);
  EXPECT_EQ(h.done[0].code, 550);  // the recipient refusal decided
  EXPECT_EQ(Take(s), "RSET\r\n");
  s.Feed("250 ok\r\n");
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\nRCPT TO:<a@x>\r\nDATA\r\n");
  EXPECT_TRUE(h.data_sent.empty());
}

TEST(ClientSession, FinalReplyFailureThenRset) {
  FakeHandler h;
  h.queue.push_back(Msg(1, {"a@x"}));
  ClientSession s(ClientOptions{}, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloPipe);
  Take(s);
  s.Feed("250 ok\r\n250 ok\r\n354 go\r\n");
  Take(s);
  s.Feed("452 4.3.1 full\r\n");
  ASSERT_EQ(h.done.size(), 1u);
  EXPECT_EQ(h.done[0].code, 452);
  EXPECT_EQ(Take(s), "RSET\r\n");
  s.Feed("250 ok\r\n");
  EXPECT_EQ(Take(s), "QUIT\r\n");
  EXPECT_EQ(h.codes.back(), 250);
}

TEST(ClientSession, BdatPipelined) {
  FakeHandler h;
  h.queue.push_back(Msg(3, {"a@x"}, "S: y\r\n\r\n.dot\r\n"));
  ClientOptions o;
  o.bdat = true;
  ClientSession s(o, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloPipe);
  const std::string data = "X-Blast-Id: 3\r\nS: y\r\n\r\n.dot\r\n";  // not stuffed
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\nRCPT TO:<a@x>\r\nBDAT " +
                         std::to_string(data.size()) + " LAST\r\n" + data);
  EXPECT_EQ(h.data_sent.size(), 1u);
  s.Feed("250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n");
  ASSERT_EQ(h.done.size(), 1u);
  EXPECT_TRUE(h.done[0].ok);
}

TEST(ClientSession, BdatFallsBackToDataWithoutChunking) {
  FakeHandler h;
  h.queue.push_back(Msg(3, {"a@x"}));
  ClientOptions o;
  o.bdat = true;
  ClientSession s(o, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed("250-mx\r\n250 PIPELINING\r\n");
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\nRCPT TO:<a@x>\r\nDATA\r\n");
}

TEST(ClientSession, RepliesSplitAnywhere) {
  const std::string wire = std::string("220 mx\r\n") + kEhloPipe +
                           "250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n";
  for (size_t step = 1; step <= 7; ++step) {
    FakeHandler h;
    h.queue.push_back(Msg(1, {"a@x"}));
    ClientSession s(ClientOptions{}, h);
    for (size_t i = 0; i < wire.size(); i += step) s.Feed(std::string_view(wire).substr(i, step));
    EXPECT_TRUE(s.closed()) << step;
    ASSERT_EQ(h.done.size(), 1u);
    EXPECT_TRUE(h.done[0].ok);
  }
}

TEST(ClientSession, Greeting421AndMidTransaction421) {
  {
    FakeHandler h;
    ClientSession s(ClientOptions{}, h);
    s.Feed("421 4.7.0 too many connections\r\n");
    EXPECT_TRUE(s.closed());
    EXPECT_EQ(Take(s), "");
  }
  {
    FakeHandler h;
    h.queue.push_back(Msg(1, {"a@x"}));
    ClientSession s(ClientOptions{}, h);
    s.Feed("220 mx\r\n");
    Take(s);
    s.Feed(kEhloPipe);
    s.Feed("250 ok\r\n421 4.3.2 bye\r\n");
    EXPECT_TRUE(s.closed());
    ASSERT_EQ(h.done.size(), 1u);
    EXPECT_EQ(h.done[0].code, 421);
  }
}

TEST(ClientSession, ConnectionLostMidData) {
  FakeHandler h;
  h.queue.push_back(Msg(1, {"a@x"}));
  ClientSession s(ClientOptions{}, h);
  s.Feed("220 mx\r\n");
  s.Feed(kEhloPipe);
  s.Feed("250 ok\r\n250 ok\r\n354 go\r\n");
  s.ConnectionLost();
  ASSERT_EQ(h.done.size(), 1u);
  EXPECT_FALSE(h.done[0].ok);
  EXPECT_EQ(h.done[0].code, 0);
  EXPECT_TRUE(s.closed());
}

TEST(ClientSession, MalformedReplyIsAProtocolError) {
  FakeHandler h;
  ClientSession s(ClientOptions{}, h);
  s.Feed("HTTP/1.1 400 Bad Request\r\n");
  EXPECT_TRUE(s.closed());
  EXPECT_TRUE(s.protocol_error());
}

TEST(ClientSession, WaitAndResume) {
  FakeHandler h;
  h.wait_once = true;
  h.queue.push_back(Msg(1, {"a@x"}));
  ClientSession s(ClientOptions{}, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloPipe);
  EXPECT_EQ(s.state(), ClientSession::State::kWaiting);
  EXPECT_EQ(Take(s), "");
  s.Resume();
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\nRCPT TO:<a@x>\r\nDATA\r\n");
}

TEST(ClientSession, HeloFallback) {
  FakeHandler h;
  ClientSession s(ClientOptions{}, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed("502 5.5.1 no EHLO\r\n");
  EXPECT_EQ(Take(s), "HELO blast.sluice.test\r\n");
  s.Feed("250 mx\r\n");
  EXPECT_EQ(Take(s), "QUIT\r\n");
}

constexpr char kEhloTls[] = "250-mx\r\n250-STARTTLS\r\n250 SIZE 1000\r\n";

ClientOptions TlsOptions() {
  ClientOptions o;
  o.starttls = true;
  return o;
}

TEST(ClientSession, StartTlsThenEhloAgainThenMail) {
  FakeHandler h;
  h.queue.push_back(Msg(1, {"a@x"}));
  ClientSession s(TlsOptions(), h);
  s.Feed("220 mx\r\n");
  EXPECT_EQ(Take(s), "EHLO blast.sluice.test\r\n");
  s.Feed(kEhloTls);
  EXPECT_TRUE(s.server_starttls());
  EXPECT_EQ(Take(s), "STARTTLS\r\n");
  EXPECT_EQ(h.start_tls, 0);
  s.Feed("220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(h.start_tls, 1);
  EXPECT_EQ(s.state(), ClientSession::State::kTlsHandshake);
  EXPECT_EQ(Take(s), "");  // nothing in the clear until the handshake is done
  s.TlsReady();
  EXPECT_TRUE(s.tls_active());
  EXPECT_FALSE(s.server_starttls());  // forgotten: RFC 3207 4.2
  EXPECT_EQ(Take(s), "EHLO blast.sluice.test\r\n");
  // Over TLS the server offers PIPELINING (and no STARTTLS): no second STARTTLS.
  s.Feed(kEhloPipe);
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\nRCPT TO:<a@x>\r\nDATA\r\n");
  s.Feed("250 ok\r\n250 ok\r\n354 go\r\n");
  Take(s);
  s.Feed("250 ok\r\n");
  ASSERT_EQ(h.done.size(), 1u);
  EXPECT_TRUE(h.done[0].ok);
  EXPECT_EQ(h.start_tls, 1);
}

TEST(ClientSession, StartTlsNotOfferedClosesWithoutSending) {
  FakeHandler h;
  h.queue.push_back(Msg(1, {"a@x"}));
  ClientSession s(TlsOptions(), h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloPipe);
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(s.close_reason(), "STARTTLS not offered");
  EXPECT_EQ(Take(s), "");
  EXPECT_TRUE(h.done.empty());  // no message was taken
  EXPECT_EQ(h.queue.size(), 1u);
}

TEST(ClientSession, StartTlsNotOfferedAfterHeloFallback) {
  FakeHandler h;
  ClientSession s(TlsOptions(), h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed("502 no ehlo\r\n");
  EXPECT_EQ(Take(s), "HELO blast.sluice.test\r\n");
  s.Feed("250 mx\r\n");
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(s.close_reason(), "STARTTLS not offered");
}

TEST(ClientSession, StartTlsRefused) {
  FakeHandler h;
  ClientSession s(TlsOptions(), h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloTls);
  Take(s);
  s.Feed("454 4.7.0 TLS not available\r\n");
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(s.close_reason(), "STARTTLS refused: 454");
  EXPECT_EQ(h.start_tls, 0);
}

TEST(ClientSession, BytesAfterStartTls220AreAProtocolError) {
  for (const char* extra : {"250 injected\r\n", "250 inj"}) {
    FakeHandler h;
    ClientSession s(TlsOptions(), h);
    s.Feed("220 mx\r\n");
    Take(s);
    s.Feed(kEhloTls);
    Take(s);
    s.Feed(std::string("220 go ahead\r\n") + extra);
    EXPECT_TRUE(s.closed()) << extra;
    EXPECT_TRUE(s.protocol_error()) << extra;
    EXPECT_EQ(s.close_reason(), "bytes after the 220 to STARTTLS");
    s.TlsReady();  // too late: stays closed, sends nothing
    EXPECT_EQ(Take(s), "");
  }
}

TEST(ClientSession, WithoutStartTlsOptionStartTlsIsIgnored) {
  FakeHandler h;
  h.queue.push_back(Msg(1, {"a@x"}));
  ClientSession s(ClientOptions{}, h);
  s.Feed("220 mx\r\n");
  Take(s);
  s.Feed(kEhloTls);
  EXPECT_EQ(Take(s), "MAIL FROM:<s@x.example>\r\n");
  EXPECT_EQ(h.start_tls, 0);
}

}  // namespace
}  // namespace sluice::tools
