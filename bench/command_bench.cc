// Command-line parsing: ParseCommand over the commands of a typical
// transaction, and ParsePath on typical senders and recipients.
#include <benchmark/benchmark.h>

#include <string_view>

#include "sluice/smtp/address.h"
#include "sluice/smtp/command.h"

namespace sluice::smtp {
namespace {

constexpr std::string_view kCommands[] = {
    "EHLO mail-out.client.example.com\r\n",
    "MAIL FROM:<newsletter-bounces+1234@lists.example.com> SIZE=24816 BODY=8BITMIME\r\n",
    "RCPT TO:<alice@example.org>\r\n",
    "RCPT TO:<bob.smith@mail.example.net>\r\n",
    "DATA\r\n",
    "QUIT\r\n",
};
constexpr std::string_view kPaths[] = {
    "<newsletter-bounces+1234@lists.example.com> SIZE=24816 BODY=8BITMIME",
    "<alice@example.org>",
    "<bob.smith@mail.example.net>",
    "<>",
};
constexpr size_t kNumCommands = std::size(kCommands);
constexpr size_t kNumPaths = std::size(kPaths);

// One iteration parses the whole mix; `per_command` is the time per line.
void BM_ParseCommandMix(benchmark::State& state) {
  for (auto _ : state) {
    for (std::string_view line : kCommands) {
      Command cmd = ParseCommand(line);
      benchmark::DoNotOptimize(cmd);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kNumCommands));
  // Seconds per command (shown as e.g. "12.4ns").
  state.counters["per_command"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kNumCommands),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ParseCommandMix);

// MAIL FROM as the session handles it: command, path, parameters.
void BM_ParseMailFrom(benchmark::State& state) {
  const std::string_view line = kCommands[1];
  for (auto _ : state) {
    Command cmd = ParseCommand(line);
    auto path = ParsePath(cmd.argument, PathKind::kReversePath, /*utf8=*/false);
    MailParameters params;
    ParamResult pr = ParseMailParameters(path->rest, params);
    benchmark::DoNotOptimize(path);
    benchmark::DoNotOptimize(pr);
    benchmark::DoNotOptimize(params);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ParseMailFrom);

// One iteration parses every path in the mix; `per_path` is the time per path.
void BM_ParsePathMix(benchmark::State& state) {
  for (auto _ : state) {
    for (std::string_view text : kPaths) {
      auto path = ParsePath(text, PathKind::kReversePath, /*utf8=*/false);
      benchmark::DoNotOptimize(path);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kNumPaths));
  state.counters["per_path"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kNumPaths),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ParsePathMix);

}  // namespace
}  // namespace sluice::smtp

BENCHMARK_MAIN();
