// The real OutboundConnection on io::FakeLoop's simulated network and clock,
// against the scripted SMTP peer (tests/support/smtp_peer.h): a pipelined
// delivery, per-recipient replies, targets that refuse or never answer,
// timeouts in simulated time, a peer that drops the connection mid-body,
// QUIT when there is nothing to send. No real socket, no real time.
#include "sluice/delivery/outbound_connection.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/io/fake_loop.h"
#include "smtp_peer.h"

namespace sluice::delivery {
namespace {

using io::FakeLoop;
using smtp::Outcome;
using testing::ScriptedSmtpPeer;

constexpr char kBody[] = "Subject: test\r\n\r\n.a line that starts with a dot\r\nbye\r\n";

Target V4(const char* host, const char* ip) {
  Target t;
  t.host = host;
  t.ip.family = AF_INET;
  inet_pton(AF_INET, ip, t.ip.bytes);
  return t;
}

// Sends `messages` one after the other, then QUIT; records what it hears.
class Recorder final : public ConnectionDelegate {
 public:
  std::vector<smtp::OutboundMessage> messages;
  std::string body = kBody;
  size_t next = 0;
  bool body_given = false;
  struct Result {
    size_t index;
    Outcome outcome;
    int code;
  };
  std::vector<Result> results;
  std::vector<smtp::MessageResult> done;
  bool finished = false;
  bool released = false;
  bool ever_ready = false;
  smtp::CloseInfo close;

  void OnReady(OutboundConnection& c) override {
    if (next < messages.size()) {
      body_given = false;
      c.session().StartMessage(messages[next++]);
    } else {
      c.session().Quit();
    }
    c.Send();
  }
  void OnBodyWanted(OutboundConnection& c) override {
    if (body_given) return;
    body_given = true;
    c.session().AppendBody(body);
    c.session().EndBody();
    c.Send();
  }
  void OnRecipientResult(OutboundConnection&, size_t index, Outcome outcome,
                         const smtp::Reply& reply) override {
    results.push_back({index, outcome, reply.code});
  }
  void OnMessageDone(OutboundConnection&, const smtp::MessageResult& result) override {
    done.push_back(result);
  }
  void OnFinished(OutboundConnection&, const smtp::CloseInfo& info, bool ready) override {
    finished = true;
    ever_ready = ready;
    close = info;
  }
  void Released(OutboundConnection&) override { released = true; }
};

smtp::OutboundMessage Message(std::vector<std::string> recipients) {
  smtp::OutboundMessage m;
  m.sender = "sender@relay.test";
  m.recipients = std::move(recipients);
  m.size = sizeof kBody - 1;
  return m;
}

struct Harness {
  explicit Harness(uint64_t seed = 1) : loop(seed) {
    options.client.helo_name = "relay.test";
    options.client.timeouts.greeting = std::chrono::seconds(5);
    options.client.timeouts.ehlo = std::chrono::seconds(5);
    options.client.timeouts.final_dot = std::chrono::seconds(5);
    options.connect_timeout_ms = 2000;
  }

  // Drives the connection as the engine does (RunOnce, then Tick) until
  // it released itself; false if it never did.
  bool Run(std::vector<Target> targets) {
    connection =
        std::make_unique<OutboundConnection>(loop, delegate, options, std::move(targets), 25);
    connection->Start(loop.NowMonotonicMs());
    for (int turn = 0; turn < 100000 && !delegate.released; ++turn) {
      loop.RunOnce(100);
      connection->Tick(loop.NowMonotonicMs());
    }
    loop.RunOnce(0);  // peers hear of a close in the next turn
    return delegate.released;
  }
  double seconds() const { return static_cast<double>(loop.elapsed_us()) / 1e6; }

  FakeLoop loop;
  OutboundOptions options;
  Recorder delegate;
  std::unique_ptr<OutboundConnection> connection;
};

TEST(OutboundConnection, PipelinesAMessageToSeveralRecipientsThenQuits) {
  Harness h;
  ScriptedSmtpPeer peer;
  h.loop.Listen("192.0.2.10", 25, &peer);
  h.delegate.messages = {Message({"a@example.org", "b@example.org", "c@example.org"})};
  ASSERT_TRUE(h.Run({V4("mx.example.org", "192.0.2.10")}));

  ASSERT_EQ(peer.transactions().size(), 1u);
  const auto& t = peer.transactions()[0];
  EXPECT_EQ(t.sender, "sender@relay.test");
  EXPECT_EQ(t.recipients,
            (std::vector<std::string>{"a@example.org", "b@example.org", "c@example.org"}));
  EXPECT_EQ(t.body, kBody);  // dot-stuffed on the wire, unstuffed by the peer
  ASSERT_EQ(h.delegate.results.size(), 3u);
  for (const auto& r : h.delegate.results) EXPECT_EQ(r.outcome, Outcome::kDelivered);
  ASSERT_EQ(h.delegate.done.size(), 1u);
  EXPECT_EQ(h.delegate.done[0].outcome, smtp::MessageOutcome::kDelivered);
  // PIPELINING: MAIL, the RCPTs and DATA reach the peer in one piece.
  bool pipelined = false;
  for (const auto& group : peer.command_groups()) {
    if (group.size() == 5 && group.front().rfind("MAIL FROM:", 0) == 0 && group.back() == "DATA") {
      pipelined = true;
    }
  }
  EXPECT_TRUE(pipelined);
  EXPECT_EQ(peer.quits(), 1u);
  EXPECT_TRUE(h.delegate.finished);
  EXPECT_TRUE(h.delegate.ever_ready);
  EXPECT_EQ(h.delegate.close.reason, smtp::CloseReason::kQuit);
  EXPECT_EQ(peer.client_closes(), 1u);  // the socket was closed after QUIT
}

TEST(OutboundConnection, ReportsEachRecipientsTransientAndPermanentRefusal) {
  Harness h;
  ScriptedSmtpPeer peer;
  peer.options().rcpt_replies = {{"b@example.org", "450 4.2.1 mailbox busy"},
                                 {"c@example.org", "550 5.1.1 no such user"}};
  h.loop.Listen("192.0.2.10", 25, &peer);
  h.delegate.messages = {Message({"a@example.org", "b@example.org", "c@example.org"})};
  ASSERT_TRUE(h.Run({V4("mx.example.org", "192.0.2.10")}));

  ASSERT_EQ(h.delegate.results.size(), 3u);
  std::vector<Outcome> by_index(3);
  std::vector<int> codes(3);
  for (const auto& r : h.delegate.results) {
    by_index[r.index] = r.outcome;
    codes[r.index] = r.code;
  }
  EXPECT_EQ(by_index[0], Outcome::kDelivered);
  EXPECT_EQ(by_index[1], Outcome::kTransient);
  EXPECT_EQ(by_index[2], Outcome::kPermanent);
  EXPECT_EQ(codes[1], 450);
  EXPECT_EQ(codes[2], 550);
  ASSERT_EQ(peer.transactions().size(), 1u);
  EXPECT_EQ(peer.transactions()[0].recipients, std::vector<std::string>{"a@example.org"});
  EXPECT_EQ(h.delegate.done[0].outcome, smtp::MessageOutcome::kPartial);
}

TEST(OutboundConnection, A421GreetingMovesOnToTheNextTarget) {
  Harness h;
  ScriptedSmtpPeer closing;
  closing.options().greeting = "421 4.3.2 too busy";
  ScriptedSmtpPeer good;
  h.loop.Listen("192.0.2.10", 25, &closing);
  h.loop.Listen("192.0.2.11", 25, &good);
  h.delegate.messages = {Message({"a@example.org"})};
  ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10"), V4("mx2.example.org", "192.0.2.11")}));

  EXPECT_EQ(closing.connections(), 1u);
  EXPECT_TRUE(closing.transactions().empty());
  ASSERT_EQ(good.transactions().size(), 1u);
  EXPECT_EQ(h.connection->target().host, "mx2.example.org");
  EXPECT_TRUE(h.delegate.ever_ready);
}

TEST(OutboundConnection, A421GreetingOnTheOnlyTargetFinishesNeverReady) {
  Harness h;
  ScriptedSmtpPeer closing;
  closing.options().greeting = "421 4.3.2 too busy";
  h.loop.Listen("192.0.2.10", 25, &closing);
  h.delegate.messages = {Message({"a@example.org"})};
  ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10")}));
  EXPECT_FALSE(h.delegate.ever_ready);
  EXPECT_EQ(h.delegate.close.reason, smtp::CloseReason::kServerClosing);
  EXPECT_EQ(h.delegate.close.outcome, Outcome::kTransient);
  EXPECT_EQ(h.delegate.close.reply.code, 421);
}

TEST(OutboundConnection, ARefusedConnectMovesOnToTheNextTarget) {
  Harness h;
  ScriptedSmtpPeer good;
  h.loop.Listen("192.0.2.11", 25, &good);  // nothing listens on .10
  h.delegate.messages = {Message({"a@example.org"})};
  ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10"), V4("mx2.example.org", "192.0.2.11")}));
  EXPECT_EQ(h.loop.connects(), 2u);
  ASSERT_EQ(good.transactions().size(), 1u);
  EXPECT_EQ(h.delegate.done[0].outcome, smtp::MessageOutcome::kDelivered);
}

TEST(OutboundConnection, AConnectThatHangsTimesOutInSimulatedTime) {
  Harness h;
  ScriptedSmtpPeer never;
  h.loop.Listen("192.0.2.10", 25, &never, {.hang_connect = true});
  ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10")}));
  EXPECT_FALSE(h.delegate.ever_ready);
  EXPECT_EQ(h.delegate.close.reply.code, 451);
  EXPECT_NE(h.delegate.close.reply.text.find("connection timed out"), std::string::npos)
      << h.delegate.close.reply.text;
  EXPECT_GE(h.seconds(), 2.0);  // connect_timeout_ms
  EXPECT_LT(h.seconds(), 2.5);
  EXPECT_EQ(never.connections(), 0u);
}

TEST(OutboundConnection, ASilentPeerHitsTheGreetingTimeout) {
  Harness h;
  ScriptedSmtpPeer silent;
  silent.options().silent = true;
  h.loop.Listen("192.0.2.10", 25, &silent);
  h.delegate.messages = {Message({"a@example.org"})};
  ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10")}));
  EXPECT_FALSE(h.delegate.ever_ready);
  EXPECT_EQ(h.delegate.close.reason, smtp::CloseReason::kTimeout);
  EXPECT_GE(h.seconds(), 5.0);  // the greeting timeout
  EXPECT_LT(h.seconds(), 6.0);
  EXPECT_EQ(silent.client_closes(), 1u);
}

TEST(OutboundConnection, APeerThatClosesMidDataLeavesEveryRecipientTransient) {
  for (bool reset : {false, true}) {
    Harness h;
    ScriptedSmtpPeer peer;
    peer.options().close_after_body_bytes = 20;
    peer.options().reset_instead_of_close = reset;
    h.loop.Listen("192.0.2.10", 25, &peer);
    h.delegate.messages = {Message({"a@example.org", "b@example.org"})};
    h.delegate.body = "Subject: long\r\n\r\n" + std::string(5000, 'x') + "\r\n";
    ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10")})) << reset;
    EXPECT_TRUE(peer.transactions().empty());
    ASSERT_EQ(h.delegate.results.size(), 2u) << reset;
    for (const auto& r : h.delegate.results) EXPECT_EQ(r.outcome, Outcome::kTransient) << reset;
    ASSERT_EQ(h.delegate.done.size(), 1u);
    EXPECT_EQ(h.delegate.done[0].outcome, smtp::MessageOutcome::kTransient);
    EXPECT_EQ(h.delegate.close.reason, smtp::CloseReason::kConnectionLost) << reset;
    EXPECT_TRUE(h.delegate.ever_ready);
  }
}

TEST(OutboundConnection, QuitsWhenThereIsNothingToSend) {
  Harness h;
  ScriptedSmtpPeer peer;
  h.loop.Listen("192.0.2.10", 25, &peer);
  ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10")}));
  EXPECT_EQ(peer.quits(), 1u);
  EXPECT_EQ(peer.commands(), (std::vector<std::string>{"EHLO relay.test", "QUIT"}));
  EXPECT_EQ(h.delegate.close.reason, smtp::CloseReason::kQuit);
  EXPECT_TRUE(h.delegate.ever_ready);
}

TEST(OutboundConnection, ASlowPeerInSmallPiecesStillDelivers) {
  Harness h;
  ScriptedSmtpPeer peer;
  h.loop.Listen("192.0.2.10", 25, &peer, {.chunk_bytes = 3, .chunk_delay_us = 1000});
  h.delegate.messages = {Message({"a@example.org", "b@example.org"})};
  ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10")}));
  ASSERT_EQ(peer.transactions().size(), 1u);
  EXPECT_EQ(h.delegate.done[0].outcome, smtp::MessageOutcome::kDelivered);
  EXPECT_GT(h.seconds(), 0.05);  // each 3 bytes of ~190 bytes of replies took 1 ms
}

TEST(OutboundConnection, ChunkingSendsBdat) {
  Harness h;
  h.options.client.use_chunking = true;
  ScriptedSmtpPeer peer;
  peer.options().chunking = true;
  h.loop.Listen("192.0.2.10", 25, &peer);
  h.delegate.messages = {Message({"a@example.org"})};
  ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10")}));
  ASSERT_EQ(peer.transactions().size(), 1u);
  EXPECT_TRUE(peer.transactions()[0].bdat);
  EXPECT_EQ(peer.transactions()[0].body, kBody);  // BDAT carries the body unstuffed
}

TEST(OutboundConnection, AbortEndsAConnectionWaitingForItsGreeting) {
  Harness h;
  ScriptedSmtpPeer silent;
  silent.options().silent = true;
  h.loop.Listen("192.0.2.10", 25, &silent);
  h.connection = std::make_unique<OutboundConnection>(
      h.loop, h.delegate, h.options, std::vector<Target>{V4("mx1.example.org", "192.0.2.10")}, 25);
  h.connection->Start(h.loop.NowMonotonicMs());
  h.loop.RunUntil([&] { return silent.connections() == 1; });
  h.connection->Abort();
  EXPECT_TRUE(h.loop.RunUntil([&] { return h.delegate.released; }));
  EXPECT_EQ(h.delegate.close.reason, smtp::CloseReason::kConnectionLost);
  EXPECT_LT(h.seconds(), 1.0);
}

TEST(OutboundConnection, EveryScheduleGivesTheSameConversation) {
  std::vector<std::string> first;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Harness h(seed);
    ScriptedSmtpPeer peer;
    peer.options().rcpt_replies = {{"b@example.org", "451 4.3.0 later"}};
    h.loop.Listen("192.0.2.10", 25, &peer, {.chunk_bytes = 7, .chunk_delay_us = 10});
    h.delegate.messages = {Message({"a@example.org", "b@example.org"}), Message({"c@example.org"})};
    ASSERT_TRUE(h.Run({V4("mx1.example.org", "192.0.2.10")})) << seed;
    if (seed == 1) first = peer.commands();
    EXPECT_EQ(peer.commands(), first) << seed;
    EXPECT_EQ(peer.transactions().size(), 2u) << seed;
  }
}

}  // namespace
}  // namespace sluice::delivery
