// The outbound client's protocol cost: one pipelined transaction with a 2 KB
// body per iteration against canned server replies (items_per_second =
// messages/s), and DotEncoder throughput on a typical body and on one full
// of lines that need stuffing or normalising.
#include <benchmark/benchmark.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "sluice/smtp/client_session.h"
#include "sluice/smtp/dot_encoder.h"

namespace sluice::smtp {
namespace {

std::string Body2k() {
  std::string b =
      "From: newsletter@lists.example.com\r\nTo: alice@example.org\r\n"
      "Subject: Your weekly digest\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
      "Message-ID: <20240101100000.12345@lists.example.com>\r\n\r\n";
  const std::string line(76, 'x');
  // absl::StrCat, not operator+ on a literal: GCC 12 at -O3 reports a bogus
  // -Wrestrict in std::operator+(const char*, string&&), fatal with -Werror.
  for (int i = 0; b.size() < 2048; ++i) {
    absl::StrAppend(&b, i % 25 == 24 ? absl::StrCat(".", line.substr(1)) : line, "\r\n");
  }
  return b;
}

class BenchHandler : public ClientHandler {
 public:
  ClientSession* s = nullptr;
  const std::string* body = nullptr;
  OutboundMessage msg;
  bool start = true;
  uint64_t done = 0;
  void OnSessionReady() override {
    if (start) s->StartMessage(msg);
  }
  void OnBodyWanted() override {
    s->AppendBody(*body);
    s->EndBody();
  }
  void OnRecipientResult(size_t, Outcome, const Reply&) override {}
  void OnMessageDone(const MessageResult&) override { ++done; }
  void OnClosed(const CloseInfo&) override {}
};

void BM_ClientPipelinedTransaction(benchmark::State& state) {
  const std::string body = Body2k();
  BenchHandler h;
  h.body = &body;
  h.msg.sender = "newsletter-bounces+1234@lists.example.com";
  h.msg.recipients = {"alice@example.org"};
  h.msg.size = body.size();
  h.msg.eight_bit = true;
  ClientSession s(ClientConfig{.helo_name = "relay.example.com"}, h);
  h.s = &s;
  h.start = false;
  s.Feed(
      "220 mx.example.org ESMTP\r\n250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
      "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
  s.output().clear();
  const std::string mail_rcpt_data =
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n";
  const std::string dot = "250 2.0.0 Ok: queued as 4Xyz12AbC\r\n";
  size_t bytes = 0;
  for (auto _ : state) {
    s.StartMessage(h.msg);   // MAIL, RCPT, DATA in one write
    s.Feed(mail_rcpt_data);  // the body goes out at the 354
    s.Feed(dot);
    bytes += s.output().size();
    s.output().clear();
  }
  if (h.done != static_cast<uint64_t>(state.iterations())) state.SkipWithError("message not done");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ClientPipelinedTransaction);

void BM_DotEncoder(benchmark::State& state, bool dotty) {
  std::string body;
  if (dotty) {
    for (int i = 0; body.size() < 64 * 1024; ++i) body += (i % 2 ? ".dot line\n" : "bare\rcr\r\n");
  } else {
    while (body.size() < 64 * 1024) body += Body2k();
  }
  DotEncoder e;
  std::string out;
  out.reserve(body.size() * 2);
  for (auto _ : state) {
    out.clear();
    e.Reset(true);
    e.Encode(body.data(), body.size(), out);
    e.Finish(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK_CAPTURE(BM_DotEncoder, typical_2k_bodies, false);
BENCHMARK_CAPTURE(BM_DotEncoder, every_line_rewritten, true);

}  // namespace
}  // namespace sluice::smtp
