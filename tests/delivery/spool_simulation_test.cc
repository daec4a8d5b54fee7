// Deterministic simulation of a shard's durable side (spool writer and
// ledger over io::FakeLoop, simulated time): per seed, random messages are
// committed, random recipients reported final, faults injected (failed and
// short writes, failed fsyncs, failed opens), and the process crashes
// between two random operations; recovery then reads what survived
// (SpoolLedger::Recover) and SpoolLedger::Check states the invariants.
//
// SLUICE_SIM_SEEDS=N runs seeds 1..N (default 2000); SLUICE_SIM_SEED=S
// replays seed S alone. A failing seed is printed with the line that
// replays it.
#include <cerrno>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "spool_ledger_harness.h"

namespace sluice::testing_support {
namespace {

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

void InjectFaults(std::mt19937_64& rng, io::FakeLoop& fake) {
  std::uniform_int_distribution<int> count(0, 3), nth(1, 80), kind(0, 4);
  for (int i = count(rng); i > 0; --i) {
    switch (kind(rng)) {
      case 0:
        fake.FailNth(io::FakeLoop::Kind::kWrite, nth(rng), EIO);
        break;
      case 1:
        fake.FailNth(io::FakeLoop::Kind::kWrite, nth(rng), ENOSPC);
        break;
      case 2: {
        const int which = nth(rng);  // (one draw per statement: a fixed order)
        fake.ShortWriteNth(which, static_cast<size_t>(nth(rng)));
        break;
      }
      case 3:
        fake.FailNth(io::FakeLoop::Kind::kSync, nth(rng), EIO);
        break;
      default:
        fake.FailNth(io::FakeLoop::Kind::kOpen, nth(rng), EMFILE);
        break;
    }
  }
}

// Reports a random non-empty subset of a random message's recipients not
// yet final.
void RandomFinal(std::mt19937_64& rng, SpoolLedger& h) {
  std::vector<base::QueueId> open;
  for (const auto& [id, m] : h.messages()) {
    if (m.stored && m.final.size() < m.recipients) open.push_back(id);
  }
  if (open.empty()) return;
  const base::QueueId id = open[rng() % open.size()];
  const SpoolLedger::Message& m = h.messages().at(id);
  std::vector<uint32_t> report;
  const bool all = rng() % 2 == 0;  // the bulk case: every remaining one at once
  for (uint32_t i = 0; i < m.recipients; ++i) {
    if (m.final.count(i) == 0 && (all || rng() % 2 == 0)) report.push_back(i);
  }
  if (report.empty()) {
    for (uint32_t i = 0; i < m.recipients && report.empty(); ++i) {
      if (m.final.count(i) == 0) report.push_back(i);
    }
  }
  h.Final(id, report);
}

// One run; "" if the invariants held.
std::string RunSeed(uint64_t seed) {
  std::mt19937_64 rng(seed);
  SpoolLedger h(seed);
  InjectFaults(rng, h.fake());
  const uint64_t crash_at = 1 + rng() % 400;
  const bool settle_first = rng() % 4 == 0;  // a crash after a quiet spell
  std::uniform_int_distribution<int> percent(0, 99);
  while (h.steps() < crash_at) {
    if (percent(rng) < 30) {
      const auto recipients = 1 + static_cast<uint32_t>(rng() % 4);
      h.Send(recipients, percent(rng) < 2);
    }
    if (percent(rng) < 30) RandomFinal(rng, h);
    h.Step(rng() % 40);
  }
  if (settle_first) h.Settle();
  h.Crash();
  return h.Check(h.Recover());
}

TEST(SpoolSimulation, SeedsKeepTheInvariants) {
  const uint64_t only = EnvNumber("SLUICE_SIM_SEED", 0);
  const uint64_t first = only != 0 ? only : 1;
  const uint64_t last = only != 0 ? only : EnvNumber("SLUICE_SIM_SEEDS", 2000);
  int failures = 0;
  for (uint64_t seed = first; seed <= last && failures < 5; ++seed) {
    const std::string error = RunSeed(seed);
    if (!error.empty()) {
      ++failures;
      ADD_FAILURE() << "seed " << seed << ": " << error << "\n  replay: SLUICE_SIM_SEED=" << seed
                    << " " << ::testing::internal::GetArgvs()[0]
                    << " --gtest_filter=SpoolSimulation.*";
    }
  }
}

}  // namespace
}  // namespace sluice::testing_support
