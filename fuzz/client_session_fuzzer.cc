// A whole ClientSession against random server bytes in random pieces. Byte 0
// picks the config (pipelining, chunking, TLS policy, small limits), byte 1
// the piece length (0: all at once), byte 2 when the glue injects a timeout
// or a lost connection. Checks: no crash, every attempted recipient gets
// exactly one result before its message is done, one OnClosed at most, and
// pending output stays bounded (the glue drains it only every few pieces).
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "sluice/smtp/client_session.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice::smtp;

namespace {

constexpr size_t kOutputBound = 512 * 1024;

struct Handler : ClientHandler {
  ClientSession* s = nullptr;
  int messages_left = 3;
  int closed = 0;
  bool in_message = false;
  std::vector<int> results;  // per recipient of the current message
  size_t body_sent = 0;
  std::string body;

  void OnSessionReady() override {
    FUZZ_CHECK(!in_message && closed == 0);
    while (messages_left > 0) {
      --messages_left;
      OutboundMessage m;
      m.sender = "a@x.test";
      const size_t n = 1 + static_cast<size_t>(messages_left);
      for (size_t i = 0; i < n; ++i) m.recipients.push_back("r" + std::to_string(i) + "@y.test");
      m.size = body.size();
      m.eight_bit = messages_left & 1;
      m.smtputf8 = messages_left == 1;
      results.assign(std::min(n, size_t{2}), 0);
      in_message = true;
      body_sent = 0;
      FUZZ_CHECK(s->StartMessage(m));
      if (!s->idle()) return;
    }
    s->Quit();
  }
  void OnBodyWanted() override {
    FUZZ_CHECK(in_message);
    while (body_sent < body.size() && !s->body_paused()) {
      const size_t n = std::min<size_t>(7, body.size() - body_sent);
      s->AppendBody(body.data() + body_sent, n);
      body_sent += n;
    }
    if (body_sent == body.size()) s->EndBody();
  }
  void OnRecipientResult(size_t i, Outcome, const Reply& r) override {
    FUZZ_CHECK(in_message && i < results.size() && results[i] == 0);
    FUZZ_CHECK(r.text.size() <= ReplyParser::kMaxReplyBytes + 256);
    results[i] = 1;
  }
  void OnMessageDone(const MessageResult& m) override {
    FUZZ_CHECK(in_message);
    for (int r : results) FUZZ_CHECK(r == 1);
    FUZZ_CHECK(m.delivered + m.transient + m.permanent == m.attempted);
    in_message = false;
  }
  void OnClosed(const CloseInfo&) override {
    FUZZ_CHECK(!in_message);
    ++closed;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t ctl = data[0];
  const size_t piece_len = data[1] ? data[1] : size;
  const uint8_t event_at = data[2];
  data += 3, size -= 3;

  ClientConfig config;
  config.helo_name = "fuzz.test";
  config.use_pipelining = ctl & 1;
  config.use_chunking = ctl & 2;
  config.bdat_chunk_size = (ctl & 4) ? 5 : 64;
  config.tls = static_cast<TlsPolicy>((ctl >> 3) % 3);
  config.max_recipients_per_transaction = 2;
  config.output_high_water = 4096;
  Handler handler;
  handler.body = (ctl & 32) ? ".a\nb\r.\r\n\r\n.." : "Subject: x\r\n\r\nhello\r\n";
  ClientSession session(config, handler);
  handler.s = &session;

  size_t off = 0;
  size_t pieces = 0;
  while (off < size && !session.closed()) {
    const size_t len = std::min(piece_len, size - off);
    std::unique_ptr<char[]> piece(new char[len]);  // exact size: ASan sees overreads
    std::copy(data + off, data + off + len, piece.get());
    session.Feed(piece.get(), len);
    off += len;
    ++pieces;
    FUZZ_CHECK(session.output().size() < kOutputBound);
    if (pieces % 4 == 0) session.output().clear();  // the glue sends it
    if (session.state() == ClientSession::State::kTlsHandshake && (ctl & 64)) session.OnTlsReady();
    if (pieces == event_at) (ctl & 128) ? session.OnTimeout() : session.OnConnectionLost();
    (void)session.timeout();
  }
  if (!session.closed()) session.OnConnectionLost();
  FUZZ_CHECK(session.closed() && handler.closed == 1 && !handler.in_message);
  return 0;
}
