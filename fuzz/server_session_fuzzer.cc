// A whole ServerSession fed the input in pieces. Byte 0 picks the config and
// how commits are answered, byte 1 the piece length (0: all at once). Checks
// the Feed contract, the handler call order, that pending output stays near
// the high-water mark, and what a committed message may be: no recipient
// twice, nothing but postmaster_address from a client that may not relay,
// never more Received: fields than max_hops.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "sluice/smtp/server_session.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice::smtp;

namespace {

struct Handler : SessionHandler {
  ServerSession* session = nullptr;
  const SessionConfig* config = nullptr;
  bool sync_commit = false, fail_commit = false, in_message = false, commit_pending = false;
  uint64_t body = 0;
  const char *piece = nullptr, *piece_end = nullptr;

  bool SpoolAvailable() override { return true; }
  void BeginMessage(const Envelope& e) override {
    FUZZ_CHECK(!in_message && !e.recipients.empty());
    in_message = true, body = 0;
  }
  void AppendBody(const char* p, size_t n) override {
    FUZZ_CHECK(in_message && p >= piece && p + n <= piece_end);
    body += n;
  }
  void CommitMessage(const Envelope& e, const MessageFacts& facts) override {
    FUZZ_CHECK(in_message && facts.size == body);
    FUZZ_CHECK(facts.received_count <= config->max_hops);
    FUZZ_CHECK(e.trusted == config->relay_allowed);  // no AUTH in this target
    for (size_t i = 0; i < e.recipients.size(); ++i) {
      FUZZ_CHECK(config->relay_allowed || e.recipients[i] == config->postmaster_address);
      for (size_t j = 0; j < i; ++j) FUZZ_CHECK(!SameMailbox(e.recipients[i], e.recipients[j]));
    }
    in_message = false;
    if (sync_commit) return Answer();
    commit_pending = true;
  }
  void AbortMessage() override { FUZZ_CHECK(in_message), in_message = false; }
  void Answer() {
    commit_pending = false;
    if (fail_commit) return session->OnCommitted(absl::InternalError("disk"));
    session->OnCommitted(std::string("0ABCDEFGHJKMN"));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t ctl = data[0];
  const size_t piece_len = data[1] ? data[1] : size;
  data += 2, size -= 2;

  SessionConfig config{.hostname = "mx.fuzz", .client_ip = "192.0.2.1"};
  config.relay_allowed = ctl & 1;
  if (ctl & 2) config.max_line_length = 64, config.max_data_line_length = 78;
  if (ctl & 4) {
    config.max_message_size = 100, config.max_recipients = 2;
    config.max_hops = 2, config.postmaster_address = "pm@mx.fuzz";
  }
  config.max_errors = (ctl & 8) ? 1000 : 10;
  Handler handler;
  handler.config = &config;
  handler.sync_commit = ctl & 16;
  handler.fail_commit = ctl & 32;
  ServerSession session(config, handler);
  handler.session = &session;
  session.Start();

  size_t off = 0;
  while (off < size && !session.closed()) {
    const size_t len = std::min(piece_len, size - off);
    std::unique_ptr<char[]> piece(new char[len]);  // exact size: ASan sees overreads
    std::copy(data + off, data + off + len, piece.get());
    handler.piece = piece.get(), handler.piece_end = piece.get() + len;
    size_t used = 0;
    for (int guard = 0; used < len && !session.closed(); ++guard) {
      FUZZ_CHECK(guard < 1000000);
      const size_t n = session.Feed(piece.get() + used, len - used);
      used += n;
      FUZZ_CHECK(used <= len && (used == len || session.paused() || session.closed()));
      FUZZ_CHECK(session.output().size() < ServerSession::kOutputHighWater + 8192);
      FUZZ_CHECK(handler.commit_pending == (session.mode() == ServerSession::Mode::kCommit));
      if (handler.commit_pending) handler.Answer();
      if (session.paused()) session.output().clear();  // the glue sends it
    }
    off += len;
    if ((ctl & 64) && off >= size / 2) session.OnShutdown();
  }
  if (ctl & 128) session.OnTimeout();
  if (handler.commit_pending) handler.Answer();
  FUZZ_CHECK(!handler.in_message || !session.closed());
  return 0;
}
