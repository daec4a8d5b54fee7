// The outbound client state machine against a scripted fake server: the
// server's whole byte stream is fixed in advance (the machine is synchronous,
// so a lockstep conversation is as predictable as a pipelined one), fed at
// every split point, and the commands the client writes are checked write by
// write. Also the reply parser and the body encoder (against DotDecoder).
#include "sluice/smtp/client_session.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sluice/smtp/dot_decoder.h"
#include "sluice/smtp/dot_encoder.h"
#include "sluice/smtp/reply_parser.h"

namespace sluice::smtp {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;

// ------------------------------------------------------------ ReplyParser

std::vector<Reply> ParseAll(std::string_view in, size_t piece, bool* error = nullptr) {
  ReplyParser p;
  std::vector<Reply> out;
  for (size_t off = 0; off < in.size();) {
    const size_t len = std::min(piece, in.size() - off);
    size_t used_total = 0;
    while (used_total < len) {
      size_t used = 0;
      const auto st = p.Parse(in.data() + off + used_total, len - used_total, used);
      used_total += used;
      if (st == ReplyParser::Status::kError) {
        if (error) *error = true;
        return out;
      }
      if (st == ReplyParser::Status::kReply) out.push_back(p.reply());
      if (st == ReplyParser::Status::kNeedMore) break;
    }
    off += len;
  }
  if (error) *error = false;
  return out;
}

TEST(ReplyParser, MultiLineAndEnhancedCodesAtEveryPieceSize) {
  const std::string in =
      "250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
      "550-5.1.1 <bob@example.org>: no such user\r\n550 5.1.1 try again never\r\n"
      "451 4.3.0 temporary\r\n250\r\n354 go ahead\n";
  for (size_t piece = 1; piece <= in.size(); ++piece) {
    bool error = true;
    const auto r = ParseAll(in, piece, &error);
    ASSERT_FALSE(error) << piece;
    ASSERT_EQ(r.size(), 5u) << piece;
    EXPECT_EQ(r[0].code, 250);
    EXPECT_EQ(r[0].lines, 4u);
    EXPECT_EQ(r[0].text, "mx.example.org Hello\nPIPELINING\nSIZE 1000\n8BITMIME");
    EXPECT_FALSE(r[0].enhanced.valid());
    EXPECT_EQ(r[1].code, 550);
    EXPECT_EQ(r[1].enhanced.ToString(), "5.1.1");
    EXPECT_EQ(r[1].text, "<bob@example.org>: no such user\ntry again never");
    EXPECT_EQ(r[2].enhanced.ToString(), "4.3.0");
    EXPECT_EQ(r[2].text, "temporary");
    EXPECT_EQ(r[3].code, 250);
    EXPECT_EQ(r[3].text, "");
    EXPECT_EQ(r[4].code, 354);
  }
}

TEST(ReplyParser, EnhancedCodeClassMustMatch) {
  const auto r = ParseAll("250 5.1.1 odd\r\n550 5.1.10 null mx\r\n", 100);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_FALSE(r[0].enhanced.valid());
  EXPECT_EQ(r[0].text, "5.1.1 odd");
  EXPECT_EQ(r[1].enhanced, (EnhancedCode{5, 1, 10}));
}

TEST(ReplyParser, Malformed) {
  for (const std::string bad :
       {"hello\r\n", "25\r\n", "2500 x\r\n", "250x\r\n", "650 no\r\n", "150 no\r\n",
        "250-a\r\n251 b\r\n", "abc def\r\n", "\r\n", "2a0 x\r\n"}) {
    bool error = false;
    ParseAll(bad, 3, &error);
    EXPECT_TRUE(error) << bad;
  }
}

TEST(ReplyParser, Bounds) {
  bool error = false;
  std::string ok_line = "250 " + std::string(ReplyParser::kMaxLine - 6, 'x') + "\r\n";
  ASSERT_EQ(ok_line.size(), ReplyParser::kMaxLine);
  EXPECT_EQ(ParseAll(ok_line, 7, &error).size(), 1u);
  EXPECT_FALSE(error);
  ParseAll("250 " + std::string(ReplyParser::kMaxLine, 'x') + "\r\n", 7, &error);
  EXPECT_TRUE(error);
  // No line end at all: the parser stops at the limit instead of buffering.
  ReplyParser p;
  size_t used = 0;
  const std::string junk(ReplyParser::kMaxLine + 1, '2');
  EXPECT_EQ(p.Parse(junk.data(), junk.size(), used), ReplyParser::Status::kError);
  std::string many;
  for (size_t i = 0; i < ReplyParser::kMaxLines + 1; ++i) many += "250-x\r\n";
  ParseAll(many + "250 x\r\n", 64, &error);
  EXPECT_TRUE(error);
}

// ------------------------------------------------------------ DotEncoder

std::string Encode(std::string_view in, bool stuff, size_t piece) {
  DotEncoder e(stuff);
  std::string out;
  for (size_t off = 0; off < in.size(); off += piece) {
    e.Encode(in.data() + off, std::min(piece, in.size() - off), out);
  }
  e.Finish(out);
  return out;
}

// Every CRLF, bare CR and bare LF as CRLF; a last line without one gets one.
std::string Normalise(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out += "\r\n";
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else if (in[i] == '\n') {
      out += "\r\n";
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

std::string Decode(const std::string& wire, bool* done, bool* bare) {
  DotDecoder d(1u << 30);
  std::string body;
  const auto r =
      d.Decode(wire.data(), wire.size(), [&](const char* p, size_t n) { body.append(p, n); });
  *done = r.done && r.consumed == wire.size();
  *bare = d.bare_line_ending();
  return body;
}

TEST(DotEncoder, StuffsAndNormalises) {
  EXPECT_EQ(Encode("", true, 1), ".\r\n");
  EXPECT_EQ(Encode("a", true, 1), "a\r\n.\r\n");
  EXPECT_EQ(Encode(".\r\n", true, 1), "..\r\n.\r\n");
  EXPECT_EQ(Encode("a\n.\nb", true, 1), "a\r\n..\r\nb\r\n.\r\n");
  EXPECT_EQ(Encode("a\r.b\r\n..c\r\n", true, 2), "a\r\n..b\r\n...c\r\n.\r\n");
  EXPECT_EQ(Encode("x\r", true, 1), "x\r\n.\r\n");
  EXPECT_EQ(Encode("x\r\r\n", true, 1), "x\r\n\r\n.\r\n");
  // The smuggling shapes come out as plain lines.
  EXPECT_EQ(Encode("a\n.\r\nb", true, 3), "a\r\n..\r\nb\r\n.\r\n");
  EXPECT_EQ(Encode("a\r\n.\nb", true, 3), "a\r\n..\r\nb\r\n.\r\n");
  // BDAT: no stuffing, no terminator, still normalised.
  EXPECT_EQ(Encode(".a\nb", false, 1), ".a\r\nb\r\n");
  EXPECT_EQ(Encode("", false, 1), "");
}

TEST(DotEncoder, RoundTripThroughDotDecoderAtRandomSplits) {
  std::mt19937 rng(7);
  const char alphabet[] = {'a', '.', '\r', '\n', 'b', '.', '\r', '\n'};
  for (int iter = 0; iter < 20000; ++iter) {
    std::string in;
    const size_t len = rng() % 40;
    for (size_t i = 0; i < len; ++i) in += alphabet[rng() % sizeof(alphabet)];
    const size_t piece = 1 + rng() % 8;
    const std::string wire = Encode(in, true, piece);
    ASSERT_EQ(wire, Encode(in, true, in.size() + 1)) << "split-dependent: " << absl::CEscape(in);
    bool done = false, bare = true;
    const std::string body = Decode(wire, &done, &bare);
    ASSERT_TRUE(done) << absl::CEscape(in);
    ASSERT_FALSE(bare) << absl::CEscape(in);
    ASSERT_EQ(body, Normalise(in)) << absl::CEscape(in);
    ASSERT_EQ(Encode(in, false, piece), Normalise(in));
  }
}

// The 64-byte block fast path: long, mostly clean CRLF text with a bare CR or
// LF, a line-leading dot or a CRLF split across blocks here and there gives
// the same wire bytes whole as a byte at a time (which never takes it).
TEST(DotEncoder, BlockFastPathMatchesByteAtATime) {
  std::mt19937 rng(11);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string in;
    const size_t lines = 1 + rng() % 12;
    for (size_t l = 0; l < lines; ++l) {
      if (rng() % 8 == 0) in += '.';
      in += std::string(rng() % 90, static_cast<char>('a' + rng() % 26));
      switch (rng() % 10) {
        case 0:
          in += "\n";
          break;
        case 1:
          in += "\r";
          break;
        case 2:
          in += ".\r\n";
          break;
        default:
          in += "\r\n";
      }
    }
    for (bool stuff : {true, false}) {
      const std::string slow = Encode(in, stuff, 1);
      ASSERT_EQ(Encode(in, stuff, in.size() + 1), slow) << absl::CEscape(in);
      ASSERT_EQ(Encode(in, stuff, 1 + rng() % 200), slow) << absl::CEscape(in);
    }
    bool done = false, bare = true;
    ASSERT_EQ(Decode(Encode(in, true, 4096), &done, &bare), Normalise(in)) << absl::CEscape(in);
    ASSERT_TRUE(done);
    ASSERT_FALSE(bare);
  }
}

// ------------------------------------------------------------ ClientSession

struct Recorder : ClientHandler {
  ClientSession* s = nullptr;
  std::vector<std::string> log;
  std::vector<std::string> writes;     // output() at each handler event, for batching checks
  std::vector<OutboundMessage> queue;  // started from OnSessionReady
  std::string body = "Subject: hi\r\n\r\nhello\r\n";
  size_t body_piece = 1000000;
  size_t body_off = 0;
  bool quit_when_empty = true;
  Capabilities caps;
  CloseInfo close;
  int closed = 0, ready = 0, tls = 0;
  std::vector<MessageResult> messages;

  void Mark(std::string e) { log.push_back(std::move(e)); }
  void OnCapabilities(const Capabilities& c) override {
    caps = c;
    Mark("caps");
  }
  void OnStartTls() override { ++tls, Mark("starttls"); }
  void OnSessionReady() override {
    ++ready;
    Mark("ready");
    // A message refused before anything was sent (5.6.7, 5.3.4) leaves the
    // session idle: go on with the next one.
    while (!queue.empty()) {
      OutboundMessage m = queue.front();
      queue.erase(queue.begin());
      body_off = 0;
      ASSERT_TRUE(s->StartMessage(m));
      if (!s->idle()) return;
    }
    if (quit_when_empty) s->Quit();
  }
  void OnBodyWanted() override {
    Mark("body");
    while (body_off < body.size() && !s->body_paused()) {
      s->AppendBody(std::string_view(body).substr(body_off, body_piece));
      body_off += std::min(body_piece, body.size() - body_off);
    }
    if (body_off >= body.size()) s->EndBody();
  }
  void OnRecipientResult(size_t i, Outcome o, const Reply& r) override {
    Mark(absl::StrCat("rcpt ", i, " ", OutcomeName(o), " ", r.code, r.local ? "L" : "", " ",
                      r.enhanced.ToString()));
  }
  void OnMessageDone(const MessageResult& m) override {
    messages.push_back(m);
    Mark(absl::StrCat("done ", static_cast<int>(m.outcome), " ", m.reply.code, " ", m.delivered,
                      "/", m.attempted));
  }
  void OnClosed(const CloseInfo& c) override {
    ++closed;
    close = c;
    Mark(absl::StrCat("closed ", CloseReasonName(c.reason), " ", OutcomeName(c.outcome), " ",
                      c.reply.code));
  }
};

OutboundMessage Msg(std::vector<std::string> rcpts, std::string from = "a@x.test") {
  OutboundMessage m;
  m.sender = std::move(from);
  m.recipients = std::move(rcpts);
  m.size = 100;
  return m;
}

const char kEhloPipe[] =
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250 "
    "ENHANCEDSTATUSCODES\r\n";
const char kEhloPlain[] = "250-mx.test\r\n250 SIZE\r\n";

struct Conversation {
  std::string out;  // everything the client wrote
  std::vector<std::string> log;
  Recorder rec;
};

// Feeds `server` in two pieces split at `split` (or byte by byte when
// split == SIZE_MAX), draining output after each Feed.
void Drive(ClientConfig cfg, Recorder& rec, std::string& out, std::string_view server,
           size_t split) {
  ClientSession s(cfg, rec);
  rec.s = &s;
  auto feed = [&](std::string_view part) {
    s.Feed(part);
    out += s.output();
    s.output().clear();
  };
  if (split == SIZE_MAX) {
    for (char c : server) feed(std::string_view(&c, 1));
  } else {
    feed(server.substr(0, split));
    feed(server.substr(split));
  }
  if (!s.closed()) s.OnConnectionLost();
  out += s.output();
}

// Runs the conversation at every split point and byte by byte; all runs must
// give the same writes and events. Returns the reference run.
Conversation EverySplit(const ClientConfig& cfg, const std::vector<OutboundMessage>& msgs,
                        std::string_view server,
                        const std::string& body = "Subject: hi\r\n\r\nhello\r\n") {
  Conversation ref;
  ref.rec.queue = msgs;
  ref.rec.body = body;
  Drive(cfg, ref.rec, ref.out, server, server.size());
  for (size_t split = 0; split <= server.size() + 1; ++split) {
    Recorder rec;
    rec.queue = msgs;
    rec.body = body;
    std::string out;
    Drive(cfg, rec, out, server, split > server.size() ? SIZE_MAX : split);
    EXPECT_EQ(out, ref.out) << "split " << split;
    EXPECT_EQ(rec.log, ref.rec.log) << "split " << split;
    if (testing::Test::HasFailure()) break;
  }
  return ref;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += e + "|";
  return s;
}

TEST(ClientSession, PipelinedTransactionAtEverySplit) {
  const std::string server =
      absl::StrCat("220 mx.test ESMTP\r\n", kEhloPipe,
                   "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 unknown\r\n"
                   "250 2.1.5 ok\r\n354 go\r\n250 2.0.0 queued as X\r\n221 bye\r\n");
  ClientConfig cfg{.helo_name = "relay.test"};
  Conversation r = EverySplit(cfg, {Msg({"b@y.test", "c@y.test", "d@y.test"})}, server);
  EXPECT_EQ(r.out,
            "EHLO relay.test\r\n"
            "MAIL FROM:<a@x.test> SIZE=100\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
            "RCPT TO:<d@y.test>\r\nDATA\r\n"
            "Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(Joined(r.rec.log),
            "caps|ready|rcpt 1 permanent 550 5.1.1|body|rcpt 0 delivered 250 2.0.0|"
            "rcpt 2 delivered 250 2.0.0|done 1 250 2/3|ready|closed quit transient 221|");
  EXPECT_TRUE(r.rec.caps.pipelining && r.rec.caps.eightbitmime && r.rec.caps.enhancedstatuscodes);
  EXPECT_EQ(r.rec.caps.size_limit, 10000u);
}

TEST(ClientSession, PipelinedCommandsLeaveInOneWrite) {
  Recorder rec;
  ClientSession s(ClientConfig{.helo_name = "h"}, rec);
  rec.s = &s;
  rec.quit_when_empty = false;
  s.Feed("220 hi\r\n");
  EXPECT_EQ(s.output(), "EHLO h\r\n");
  s.output().clear();
  rec.queue = {Msg({"b@y", "c@y"})};
  s.Feed(kEhloPipe);
  EXPECT_EQ(s.output(),
            "MAIL FROM:<a@x.test> SIZE=100\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n");
  s.output().clear();
  s.Feed("250 ok\r\n250 ok\r\n");
  EXPECT_EQ(s.output(), "");  // nothing until DATA's reply
  s.Feed("250 ok\r\n354 go\r\n");
  EXPECT_EQ(s.output(), "Subject: hi\r\n\r\nhello\r\n.\r\n");
}

TEST(ClientSession, LockstepWithoutPipeliningAtEverySplit) {
  const std::string server =
      absl::StrCat("220 mx\r\n", kEhloPlain,
                   "250 ok\r\n250 ok\r\n450 4.2.0 busy\r\n354 go\r\n"
                   "250 ok\r\n"                                        // message 1
                   "250 ok\r\n250 ok\r\n354 go\r\n452 4.3.1 full\r\n"  // message 2
                   "221 bye\r\n");
  ClientConfig cfg{.helo_name = "h"};
  Conversation r = EverySplit(cfg, {Msg({"b@y", "c@y"}), Msg({"d@y"}, "")}, server, "x\n.y\n");
  EXPECT_EQ(r.out,
            "EHLO h\r\nMAIL FROM:<a@x.test> SIZE=100\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n"
            "x\r\n..y\r\n.\r\n"
            "MAIL FROM:<> SIZE=100\r\nRCPT TO:<d@y>\r\nDATA\r\nx\r\n..y\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(Joined(r.rec.log),
            "caps|ready|rcpt 1 transient 450 4.2.0|body|rcpt 0 delivered 250 |done 1 250 1/2|ready|"
            "body|rcpt 0 transient 452 4.3.1|done 2 452 0/1|ready|closed quit transient 221|");
}

TEST(ClientSession, LockstepWritesOneCommandAtATime) {
  Recorder rec;
  rec.quit_when_empty = false;
  ClientSession s(ClientConfig{.helo_name = "h"}, rec);
  rec.s = &s;
  rec.queue = {Msg({"b@y", "c@y"})};
  s.Feed(absl::StrCat("220 hi\r\n", kEhloPlain));
  EXPECT_EQ(s.output(), "EHLO h\r\nMAIL FROM:<a@x.test> SIZE=100\r\n");
  s.output().clear();
  s.Feed("250 ok\r\n");
  EXPECT_EQ(s.output(), "RCPT TO:<b@y>\r\n");
  s.output().clear();
  s.Feed("250 ok\r\n");
  EXPECT_EQ(s.output(), "RCPT TO:<c@y>\r\n");
}

TEST(ClientSession, HeloFallbackOn5xx) {
  const std::string server =
      "220 old\r\n502 5.5.2 what\r\n250 old.test\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 "
      "x\r\n";
  OutboundMessage m = Msg({"b@y"});
  m.eight_bit = true;
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {m}, server);
  EXPECT_EQ(r.out,
            "EHLO h\r\nHELO h\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
            "Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n");
  EXPECT_FALSE(r.rec.caps.esmtp);
  EXPECT_EQ(r.rec.messages.at(0).outcome, MessageOutcome::kDelivered);
}

TEST(ClientSession, Ehlo4xxClosesTransient) {
  Conversation r =
      EverySplit(ClientConfig{.helo_name = "h"}, {}, "220 x\r\n451 4.3.2 later\r\n221 bye\r\n");
  EXPECT_EQ(r.out, "EHLO h\r\nQUIT\r\n");
  EXPECT_EQ(r.rec.close.reason, CloseReason::kRefused);
  EXPECT_EQ(r.rec.close.outcome, Outcome::kTransient);
  EXPECT_EQ(r.rec.close.reply.code, 451);
}

TEST(ClientSession, BannerRefusals) {
  Conversation perm = EverySplit(ClientConfig{}, {}, "554 5.7.1 go away\r\n221 bye\r\n");
  EXPECT_EQ(perm.out, "QUIT\r\n");
  EXPECT_EQ(perm.rec.close.reason, CloseReason::kRefused);
  EXPECT_EQ(perm.rec.close.outcome, Outcome::kPermanent);
  EXPECT_EQ(perm.rec.close.reply.code, 554);
  Conversation temp = EverySplit(ClientConfig{}, {}, "450 busy\r\n");  // then the server hangs up
  EXPECT_EQ(temp.rec.close.outcome, Outcome::kTransient);
  EXPECT_EQ(temp.rec.close.reply.code, 450);
  Conversation closing = EverySplit(ClientConfig{}, {}, "421 4.3.2 shutting down\r\n");
  EXPECT_EQ(closing.out, "");
  EXPECT_EQ(closing.rec.close.reason, CloseReason::kServerClosing);
  EXPECT_EQ(closing.rec.closed, 1);
}

TEST(ClientSession, AllRecipientsRefusedLockstepSendsRsetNotData) {
  const std::string server =
      absl::StrCat("220 x\r\n", kEhloPlain,
                   "250 ok\r\n550 5.1.1 no\r\n551 5.1.6 moved\r\n250 reset\r\n221 x\r\n");
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {Msg({"b@y", "c@y"})}, server);
  EXPECT_EQ(r.out,
            "EHLO h\r\nMAIL FROM:<a@x.test> SIZE=100\r\nRCPT TO:<b@y>\r\nRCPT "
            "TO:<c@y>\r\nRSET\r\nQUIT\r\n");
  EXPECT_EQ(r.rec.messages.at(0).outcome, MessageOutcome::kPermanent);
  EXPECT_EQ(r.rec.messages.at(0).reply.code, 551);
}

TEST(ClientSession, AllRecipientsRefusedPipelinedDataRejected) {
  const std::string server =
      absl::StrCat("220 x\r\n", kEhloPipe,
                   "250 ok\r\n550 5.1.1 no\r\n450 4.2.1 later\r\n554 5.5.1 no valid recipients\r\n"
                   "250 reset\r\n221 x\r\n");
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {Msg({"b@y", "c@y"})}, server);
  EXPECT_EQ(r.out,
            "EHLO h\r\nMAIL FROM:<a@x.test> SIZE=100\r\nRCPT TO:<b@y>\r\nRCPT "
            "TO:<c@y>\r\nDATA\r\nRSET\r\nQUIT\r\n");
  EXPECT_EQ(Joined(r.rec.log),
            "caps|ready|rcpt 0 permanent 550 5.1.1|rcpt 1 transient 450 4.2.1|done 2 450 0/2|ready|"
            "closed quit transient 221|");
}

TEST(ClientSession, AllRecipientsRefusedPipelinedDataAcceptedAnyway) {
  // RFC 2920 3.1: a 354 with no valid recipient: send "." alone, then RSET.
  const std::string server =
      absl::StrCat("220 x\r\n", kEhloPipe,
                   "250 ok\r\n550 5.1.1 no\r\n354 go\r\n554 no message\r\n250 reset\r\n221 x\r\n");
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {Msg({"b@y"})}, server);
  EXPECT_EQ(
      r.out,
      "EHLO h\r\nMAIL FROM:<a@x.test> SIZE=100\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\nRSET\r\nQUIT\r\n");
  EXPECT_EQ(r.rec.messages.at(0).outcome, MessageOutcome::kPermanent);
}

TEST(ClientSession, MailRefusedPipelined) {
  const std::string server =
      absl::StrCat("220 x\r\n", kEhloPipe,
                   "553 5.7.1 sender refused\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n"
                   "250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 x\r\n");
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {Msg({"b@y"}), Msg({"c@y"})}, server);
  EXPECT_EQ(Joined(r.rec.log),
            "caps|ready|rcpt 0 permanent 553 5.7.1|done 3 553 0/1|ready|body|rcpt 0 delivered 250 |"
            "done 0 250 1/1|ready|closed quit transient 221|");
  // No RSET: MAIL failed, so no transaction was open; the next one follows at once.
  EXPECT_EQ(r.out.find("RSET"), std::string::npos);
}

TEST(ClientSession, Reply421MidTransaction) {
  const std::string server =
      absl::StrCat("220 x\r\n", kEhloPipe, "250 ok\r\n250 ok\r\n421 4.3.2 closing\r\n");
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {Msg({"b@y", "c@y", "d@y"})}, server);
  EXPECT_EQ(
      Joined(r.rec.log),
      "caps|ready|rcpt 0 transient 421 4.3.2|rcpt 1 transient 421 4.3.2|rcpt 2 transient 421 4.3.2|"
      "done 2 421 0/3|closed server closing (421) transient 421|");
  EXPECT_EQ(r.out.find("QUIT"), std::string::npos);
}

TEST(ClientSession, Reply421AfterDot) {
  const std::string server =
      absl::StrCat("220 x\r\n", kEhloPipe, "250 ok\r\n250 ok\r\n354 go\r\n421 bye\r\n");
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {Msg({"b@y"})}, server);
  EXPECT_EQ(r.rec.messages.at(0).outcome, MessageOutcome::kTransient);
  EXPECT_EQ(r.rec.close.reason, CloseReason::kServerClosing);
}

TEST(ClientSession, MultiLineFinalReply) {
  const std::string server = absl::StrCat(
      "220-x\r\n220-welcome\r\n220 really\r\n", kEhloPipe,
      "250 ok\r\n250 ok\r\n354 go\r\n"
      "550-5.7.1 rejected by policy\r\n550-5.7.1 see http://x\r\n550 5.7.1 bye\r\n221 x\r\n");
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {Msg({"b@y"})}, server);
  const MessageResult& m = r.rec.messages.at(0);
  EXPECT_EQ(m.outcome, MessageOutcome::kPermanent);
  EXPECT_EQ(m.reply.code, 550);
  EXPECT_EQ(m.reply.enhanced.ToString(), "5.7.1");
  EXPECT_EQ(m.reply.text, "rejected by policy\nsee http://x\nbye");
}

TEST(ClientSession, MalformedReplyIsAProtocolError) {
  for (const std::string& bad : std::vector<std::string>{("25O ok\r\n"), "250-ok\r\n550 no\r\n",
                                                         "hello\r\n", std::string(5000, '2')}) {
    const std::string server = absl::StrCat("220 x\r\n", kEhloPipe, "250 ok\r\n", bad);
    Recorder rec;
    rec.queue = {Msg({"b@y"})};
    std::string out;
    Drive(ClientConfig{}, rec, out, server, server.size());
    EXPECT_EQ(rec.close.reason, CloseReason::kProtocolError) << bad;
    EXPECT_EQ(rec.closed, 1);
    ASSERT_EQ(rec.messages.size(), 1u);
    EXPECT_EQ(rec.messages[0].outcome, MessageOutcome::kTransient);
    EXPECT_TRUE(rec.messages[0].reply.local);
    EXPECT_EQ(rec.messages[0].reply.enhanced.ToString(), "4.5.0");
  }
}

TEST(ClientSession, UnexpectedReplyIsAProtocolError) {
  Recorder rec;
  rec.quit_when_empty = false;
  ClientSession s(ClientConfig{}, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", kEhloPipe, "250 what\r\n"));
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(rec.close.reason, CloseReason::kProtocolError);
}

TEST(ClientSession, BodyIsStuffedAndNormalised) {
  const std::string server =
      absl::StrCat("220 x\r\n", kEhloPipe, "250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 x\r\n");
  const std::string body = ".lead\n\rmid\r.\r\n..\nlast.";
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {Msg({"b@y"})}, server, body);
  const std::string expect_body = "..lead\r\n\r\nmid\r\n..\r\n...\r\nlast.\r\n.\r\n";
  EXPECT_NE(r.out.find("DATA\r\n" + expect_body + "QUIT"), std::string::npos) << r.out;
  // Through the inbound decoder: the CRLF-normalised body.
  Recorder rec;
  rec.queue = {Msg({"b@y"})};
  rec.body = body;
  rec.body_piece = 1;
  std::string out;
  Drive(ClientConfig{.helo_name = "h"}, rec, out, server, SIZE_MAX);
  const std::string wire = out.substr(out.find("DATA\r\n") + 6);
  bool done = false, bare = true;
  DotDecoder d(1000);
  std::string decoded;
  const auto res =
      d.Decode(wire.data(), wire.size(), [&](const char* p, size_t n) { decoded.append(p, n); });
  done = res.done;
  bare = d.bare_line_ending();
  EXPECT_TRUE(done);
  EXPECT_FALSE(bare);
  EXPECT_EQ(decoded, Normalise(body));
  EXPECT_EQ(wire.substr(res.consumed), "QUIT\r\n");
}

TEST(ClientSession, EightBitAndSmtpUtf8Parameters) {
  const std::string ehlo = "250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
  const std::string server =
      absl::StrCat("220 x\r\n", ehlo, "250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 x\r\n");
  OutboundMessage m = Msg({"b@y"});
  m.eight_bit = m.smtputf8 = true;
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {m}, server);
  EXPECT_NE(r.out.find("MAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8\r\n"), std::string::npos)
      << r.out;
}

TEST(ClientSession, SmtpUtf8NotOfferedIsPermanent567) {
  const std::string server =
      absl::StrCat("220 x\r\n", kEhloPipe, "250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 x\r\n");
  OutboundMessage utf8 = Msg({"b@y", "c@y"});
  utf8.smtputf8 = true;
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"}, {utf8, Msg({"d@y"})}, server);
  EXPECT_EQ(Joined(r.rec.log),
            "caps|ready|rcpt 0 permanent 554L 5.6.7|rcpt 1 permanent 554L 5.6.7|done 3 554 0/2|"
            "body|rcpt 0 delivered 250 |done 0 250 1/1|ready|closed quit transient 221|");
  // The refused message sent nothing; the next one went out at once.
  EXPECT_EQ(r.out.find("b@y"), std::string::npos);
}

TEST(ClientSession, SizeLimitIsPermanent534) {
  Recorder rec;
  rec.quit_when_empty = false;
  ClientSession s(ClientConfig{}, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", kEhloPipe));
  s.output().clear();
  OutboundMessage big = Msg({"b@y"});
  big.size = 10001;
  ASSERT_TRUE(s.StartMessage(big));
  EXPECT_TRUE(s.idle());
  EXPECT_EQ(s.output(), "");
  EXPECT_EQ(rec.messages.at(0).reply.enhanced.ToString(), "5.3.4");
  EXPECT_EQ(rec.messages.at(0).outcome, MessageOutcome::kPermanent);
}

TEST(ClientSession, MaxRecipientsPerTransaction) {
  const std::string server = absl::StrCat(
      "220 x\r\n", kEhloPipe, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 x\r\n");
  ClientConfig cfg{.helo_name = "h", .max_recipients_per_transaction = 2};
  Conversation r = EverySplit(cfg, {Msg({"b@y", "c@y", "d@y"})}, server);
  EXPECT_EQ(r.out.find("d@y"), std::string::npos);
  EXPECT_EQ(r.rec.messages.at(0).attempted, 2u);
  EXPECT_EQ(r.rec.messages.at(0).outcome, MessageOutcome::kDelivered);
}

TEST(ClientSession, BdatChunkingPipelined) {
  const std::string ehlo = "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n";
  // 3 chunks: 10 + 10 (+ the rest, LAST).
  const std::string server = absl::StrCat(
      "220 x\r\n", ehlo, "250 ok\r\n250 ok\r\n250 c1\r\n250 c2\r\n250 2.0.0 done\r\n221 x\r\n");
  ClientConfig cfg{.helo_name = "h", .use_chunking = true, .bdat_chunk_size = 10};
  Recorder rec;
  rec.queue = {Msg({"b@y"})};
  rec.body = ".abcdefgh\nijklmnopqrst\nuv";
  rec.body_piece = 10;
  std::string out;
  Drive(cfg, rec, out, server, server.size());
  EXPECT_EQ(out,
            "EHLO h\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y>\r\n"
            "BDAT 11\r\n.abcdefgh\r\n"
            "BDAT 10\r\nijklmnopqr"  // a chunk is sent once it reaches the chunk size
            "BDAT 8 LAST\r\nst\r\nuv\r\n"
            "QUIT\r\n");
  EXPECT_EQ(rec.messages.at(0).outcome, MessageOutcome::kDelivered);
}

TEST(ClientSession, BdatLockstepWaitsForEachChunk) {
  const std::string ehlo = "250-mx\r\n250 CHUNKING\r\n";
  ClientConfig cfg{.helo_name = "h", .use_chunking = true, .bdat_chunk_size = 4};
  Recorder rec;
  rec.quit_when_empty = false;
  rec.queue = {Msg({"b@y"})};
  rec.body = "aaaa\nbbbb\n";
  rec.body_piece = 5;
  ClientSession s(cfg, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", ehlo, "250 ok\r\n"));
  s.output().clear();
  s.Feed("250 ok\r\n");  // RCPT accepted: the body starts
  EXPECT_EQ(s.output(), "BDAT 6\r\naaaa\r\n");
  EXPECT_TRUE(s.body_paused());
  EXPECT_EQ(s.timeout(), milliseconds(minutes(3)));
  s.output().clear();
  s.Feed("250 c1\r\n");  // OnBodyWanted again: the rest and the end
  EXPECT_EQ(s.output(), "BDAT 6\r\nbbbb\r\n");
  s.output().clear();
  s.Feed("250 c2\r\n");
  EXPECT_EQ(s.output(), "BDAT 0 LAST\r\n");
  EXPECT_EQ(s.timeout(), milliseconds(minutes(10)));
  s.Feed("250 done\r\n");
  EXPECT_TRUE(s.idle());
  EXPECT_EQ(rec.messages.at(0).outcome, MessageOutcome::kDelivered);
}

TEST(ClientSession, BdatChunkFailureFailsTheMessage) {
  const std::string ehlo = "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n";
  const std::string server = absl::StrCat(
      "220 x\r\n", ehlo,
      "250 ok\r\n250 ok\r\n552 5.3.4 too big\r\n503 5.5.1 no\r\n250 reset\r\n221 x\r\n");
  ClientConfig cfg{.helo_name = "h", .use_chunking = true, .bdat_chunk_size = 4};
  Recorder rec;
  rec.queue = {Msg({"b@y"})};
  rec.body = "aaaa\nbbbb\n";
  rec.body_piece = 5;
  std::string out;
  Drive(cfg, rec, out, server, server.size());
  EXPECT_EQ(
      Joined(rec.log),
      "caps|ready|body|rcpt 0 permanent 552 5.3.4|done 3 552 0/1|ready|closed quit transient 221|");
  EXPECT_NE(out.find("RSET\r\n"), std::string::npos);
}

TEST(ClientSession, TimeoutValuesPerState) {
  ClientConfig cfg{.helo_name = "h"};
  Recorder rec;
  rec.quit_when_empty = false;
  rec.body.clear();
  ClientSession s(cfg, rec);
  rec.s = &s;
  EXPECT_EQ(s.timeout(), minutes(5));  // greeting
  s.Feed("220 x\r\n");
  EXPECT_EQ(s.timeout(), minutes(5));  // EHLO
  s.Feed(kEhloPlain);
  EXPECT_EQ(s.timeout(), milliseconds(0));  // idle: no timer
  const uint64_t epoch = s.timer_epoch();
  s.StartMessage(Msg({"b@y"}));
  EXPECT_NE(s.timer_epoch(), epoch);
  EXPECT_EQ(s.timeout(), minutes(5));  // MAIL
  s.Feed("250 ok\r\n");
  EXPECT_EQ(s.timeout(), minutes(5));  // RCPT
  s.Feed("250 ok\r\n");
  EXPECT_EQ(s.timeout(), minutes(2));  // DATA
  rec.body = "x";                      // OnBodyWanted sends it and ends it
  s.Feed("354 go\r\n");
  EXPECT_EQ(s.timeout(), minutes(10));  // final dot
  s.Feed("250 ok\r\n");
  EXPECT_EQ(s.timeout(), milliseconds(0));

  // Custom values come from the config.
  ClientConfig c2;
  c2.timeouts.greeting = milliseconds(1234);
  Recorder r2;
  ClientSession s2(c2, r2);
  r2.s = &s2;
  EXPECT_EQ(s2.timeout(), milliseconds(1234));
}

TEST(ClientSession, TimeoutMidTransactionIsTransientForTheRest) {
  Recorder rec;
  rec.quit_when_empty = false;
  ClientSession s(ClientConfig{}, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", kEhloPipe));
  s.StartMessage(Msg({"b@y", "c@y", "d@y"}));
  s.Feed("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n");
  s.OnTimeout();
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(Joined(rec.log),
            "caps|ready|rcpt 1 permanent 550 5.1.1|rcpt 0 transient 451L 4.4.2|rcpt 2 transient "
            "451L 4.4.2|"
            "done 2 451 0/3|closed timeout transient 451|");
  EXPECT_EQ(s.timeout(), milliseconds(0));
}

TEST(ClientSession, ConnectionLostDuringBody) {
  Recorder rec;
  rec.quit_when_empty = false;
  rec.body_piece = 3;
  rec.body = std::string(1000, 'x');
  ClientSession s(ClientConfig{}, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", kEhloPipe));
  s.StartMessage(Msg({"b@y"}));  // not from OnSessionReady: the session was idle
  s.Feed("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(s.state(), ClientSession::State::kDot);
  s.OnConnectionLost();
  EXPECT_EQ(rec.messages.at(0).outcome, MessageOutcome::kTransient);
  EXPECT_EQ(rec.close.reason, CloseReason::kConnectionLost);
}

TEST(ClientSession, ReuseWithoutRsetAndQuit) {
  const std::string one = "250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n";
  const std::string server = absl::StrCat("220 x\r\n", kEhloPipe, one, one, one, "221 bye\r\n");
  Conversation r = EverySplit(ClientConfig{.helo_name = "h"},
                              {Msg({"b@y"}), Msg({"c@y"}), Msg({"d@y"})}, server);
  EXPECT_EQ(r.out.find("RSET"), std::string::npos);
  ASSERT_EQ(r.rec.messages.size(), 3u);
  for (const auto& m : r.rec.messages) EXPECT_EQ(m.outcome, MessageOutcome::kDelivered);
  EXPECT_TRUE(r.out.ends_with(".\r\nQUIT\r\n"));
  EXPECT_EQ(r.rec.close.reason, CloseReason::kQuit);
}

TEST(ClientSession, StartTls) {
  const std::string ehlo = "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
  ClientConfig cfg{.helo_name = "h", .tls = TlsPolicy::kRequired};
  Recorder rec;
  rec.quit_when_empty = false;
  ClientSession s(cfg, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", ehlo));
  EXPECT_EQ(s.output(), "EHLO h\r\nSTARTTLS\r\n");
  s.output().clear();
  s.Feed("220 go ahead\r\n");
  EXPECT_EQ(rec.tls, 1);
  EXPECT_EQ(s.state(), ClientSession::State::kTlsHandshake);
  EXPECT_EQ(s.timeout(), minutes(5));
  EXPECT_EQ(rec.ready, 0);
  s.OnTlsReady();
  EXPECT_TRUE(s.tls_active());
  EXPECT_EQ(s.output(), "EHLO h\r\n");
  s.Feed("250-mx\r\n250 PIPELINING\r\n");
  EXPECT_EQ(rec.ready, 1);
  EXPECT_TRUE(rec.caps.pipelining);
  EXPECT_FALSE(rec.caps.starttls);
}

TEST(ClientSession, StartTlsResponseInjectionIsRefused) {
  const std::string ehlo = "250-mx\r\n250 STARTTLS\r\n";
  Recorder rec;
  ClientSession s(ClientConfig{.tls = TlsPolicy::kOpportunistic}, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", ehlo, "220 go\r\n250 injected\r\n"));
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(rec.close.reason, CloseReason::kProtocolError);
  EXPECT_EQ(rec.tls, 1);
}

TEST(ClientSession, StartTlsRequiredButNotOffered) {
  Recorder rec;
  ClientSession s(ClientConfig{.tls = TlsPolicy::kRequired}, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", kEhloPipe));
  EXPECT_EQ(s.state(), ClientSession::State::kQuit);
  s.Feed("221 bye\r\n");
  EXPECT_EQ(rec.close.reason, CloseReason::kTlsUnavailable);
  EXPECT_EQ(rec.ready, 0);
  // Opportunistic: a refused STARTTLS goes on in the clear.
  Recorder r2;
  r2.quit_when_empty = false;
  ClientSession s2(ClientConfig{.tls = TlsPolicy::kOpportunistic}, r2);
  r2.s = &s2;
  s2.Feed("220 x\r\n250-mx\r\n250 STARTTLS\r\n454 4.7.0 not now\r\n");
  EXPECT_TRUE(s2.idle());
  EXPECT_FALSE(s2.tls_active());
}

TEST(ClientSession, StartMessageOnlyWhenIdle) {
  Recorder rec;
  ClientSession s(ClientConfig{}, rec);
  rec.s = &s;
  EXPECT_FALSE(s.StartMessage(Msg({"b@y"})));
  s.Feed(absl::StrCat("220 x\r\n"));
  rec.quit_when_empty = false;
  s.Feed(kEhloPlain);
  EXPECT_FALSE(s.StartMessage(Msg({})));
  EXPECT_TRUE(s.StartMessage(Msg({"b@y"})));
  EXPECT_FALSE(s.StartMessage(Msg({"b@y"})));
}

// docs/ARCHITECTURE.md "Outbound memory": with the default high-water mark
// and the engine's 16 KiB pieces, even a body that doubles when encoded
// (every line a lone dot ended by a bare LF) keeps the output under 64 KiB.
TEST(ClientSession, DefaultOutputStaysUnder64KiB) {
  ClientConfig cfg{.helo_name = "h"};
  Recorder rec;
  rec.quit_when_empty = false;
  for (int i = 0; i < 100000; ++i) rec.body += ".\n";
  rec.body_piece = 16 * 1024;
  ClientSession s(cfg, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", kEhloPipe));
  s.StartMessage(Msg({"b@y"}));
  s.output().clear();
  s.Feed("250 ok\r\n250 ok\r\n354 go\r\n");
  size_t most = 0, sent = 0;
  while (s.state() == ClientSession::State::kBody) {
    most = std::max(most, s.output().size());
    sent += s.output().size();
    s.output().clear();  // the glue sent it
    rec.OnBodyWanted();
  }
  sent += s.output().size();
  EXPECT_LT(most, 64u * 1024);
  EXPECT_GT(most, 32u * 1024);  // it did fill up to the mark
  // "..\r\n" per line and ".\r\n" (after a command or two still going out).
  EXPECT_GE(sent, 100000u * 4 + 3);
  EXPECT_LT(sent, 100000u * 4 + 3 + 64);
}

}  // namespace
}  // namespace sluice::smtp

namespace sluice::smtp {
namespace {

TEST(ClientSession, BdatAtEverySplit) {
  const std::string server =
      absl::StrCat("220 x\r\n250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n",
                   "250 ok\r\n", "550 5.1.1 no\r\n250 ok\r\n250 2.0.0 done\r\n221 x\r\n");
  ClientConfig cfg{.helo_name = "h", .use_chunking = true};
  Conversation r = EverySplit(cfg, {Msg({"b@y", "c@y"})}, server, ".a\nb\r\n");
  EXPECT_EQ(r.out,
            "EHLO h\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n"
            "BDAT 7 LAST\r\n.a\r\nb\r\nQUIT\r\n");
  EXPECT_EQ(Joined(r.rec.log),
            "caps|ready|rcpt 0 permanent 550 5.1.1|body|rcpt 1 delivered 250 2.0.0|done 1 250 1/2|"
            "ready|closed quit transient 221|");
}

TEST(ClientSession, BodyWaitsWhileOutputIsHigh) {
  ClientConfig cfg{.helo_name = "h", .output_high_water = 16};
  Recorder rec;
  rec.quit_when_empty = false;
  rec.body = std::string(100, 'x') + "\r\n";
  rec.body_piece = 20;
  ClientSession s(cfg, rec);
  rec.s = &s;
  s.Feed(absl::StrCat("220 x\r\n", kEhloPipe));
  s.StartMessage(Msg({"b@y"}));
  s.output().clear();
  s.Feed("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_TRUE(s.body_paused());
  EXPECT_EQ(s.state(), ClientSession::State::kBody);
  EXPECT_EQ(rec.body_off, 20u);  // one piece, then the output is over the mark
  while (s.state() == ClientSession::State::kBody) {
    s.output().clear();  // the glue sent it
    rec.OnBodyWanted();  // and asks again
  }
  EXPECT_EQ(s.state(), ClientSession::State::kDot);
  s.Feed("250 ok\r\n");
  EXPECT_EQ(rec.messages.at(0).outcome, MessageOutcome::kDelivered);
}

}  // namespace
}  // namespace sluice::smtp
