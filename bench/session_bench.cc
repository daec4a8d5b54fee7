// Whole transactions through ServerSession with a handler that does nothing:
// the protocol layer's cost per message. items_per_second = transactions/s.
#include <benchmark/benchmark.h>

#include <string>

#include "sluice/smtp/server_session.h"

namespace sluice::smtp {
namespace {

class NullHandler : public SessionHandler {
 public:
  bool SpoolAvailable() override { return true; }
  void BeginMessage(const Envelope&) override {}
  void AppendBody(const char*, size_t size) override { bytes += size; }
  void CommitMessage(const Envelope&, const MessageFacts&) override { ++commits; }
  void AbortMessage() override {}
  uint64_t bytes = 0;
  uint64_t commits = 0;
};

// EHLO, MAIL, RCPT, DATA and a 2 KB body with its final dot, sent in one go
// as a pipelining client would once it has the 354 (16 KiB receive buffers
// hold it whole).
std::string Transaction() {
  std::string t =
      "EHLO mail-out.client.example.com\r\n"
      "MAIL FROM:<newsletter-bounces+1234@lists.example.com> SIZE=2200 BODY=8BITMIME\r\n"
      "RCPT TO:<alice@example.org>\r\n"
      "DATA\r\n"
      "From: newsletter@lists.example.com\r\nTo: alice@example.org\r\n"
      "Subject: Your weekly digest\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
      "Message-ID: <20240101100000.12345@lists.example.com>\r\n\r\n";
  const std::string line(76, 'x');
  for (int i = 0; t.size() < 2048 + 150; ++i)
    t += (i % 25 == 24 ? ".." + line.substr(2) : line) + "\r\n";
  return t + ".\r\n";
}

// Feeds everything; commits at once, the way the glue answers after fsync.
void Run(ServerSession& session, NullHandler& handler, const std::string& bytes) {
  size_t used = 0;
  while (used < bytes.size() && !session.closed()) {
    used += session.Feed(bytes.data() + used, bytes.size() - used);
    if (session.mode() == ServerSession::Mode::kCommit)
      session.OnCommitted(std::string("0ABCDEFGHJKMN"));
  }
  session.output().clear();
  benchmark::DoNotOptimize(handler.commits);
}

// Many transactions on one connection.
void BM_SessionTransaction(benchmark::State& state) {
  const std::string tx = Transaction();
  NullHandler handler;
  ServerSession session(SessionConfig{.hostname = "mx.example.com", .relay_allowed = true},
                        handler);
  session.Start();
  for (auto _ : state) Run(session, handler, tx);
  if (handler.commits != static_cast<uint64_t>(state.iterations()))
    state.SkipWithError("a transaction was not committed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * tx.size()));
}
BENCHMARK(BM_SessionTransaction);

// One connection per message: session set-up, greeting, transaction, QUIT.
void BM_SessionConnection(benchmark::State& state) {
  const std::string tx = Transaction() + "QUIT\r\n";
  NullHandler handler;
  const SessionConfig config{
      .hostname = "mx.example.com", .client_ip = "192.0.2.10", .relay_allowed = true};
  for (auto _ : state) {
    ServerSession session(config, handler);
    session.Start();
    Run(session, handler, tx);
  }
  if (handler.commits != static_cast<uint64_t>(state.iterations()))
    state.SkipWithError("a transaction was not committed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SessionConnection);

}  // namespace
}  // namespace sluice::smtp
