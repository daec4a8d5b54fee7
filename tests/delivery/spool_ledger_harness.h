// A shard's durable side in a test: spool writer and ledger over
// io::FakeLoop (through StepLoop, so it can crash between any two chains of
// operations), a simulated clock, and recovery: the durable view of the
// fake file system is written to a real temporary directory and read with
// the start-up code itself (spool::ScanSpool, spool::ReadJournals), giving
// each queued message's pending recipients as a restart would.
//
// Check() states the invariants after a crash; see there.
//
// Trusts: the test. Limits: one shard directory ("spool/0"); recovery's
// journal compaction (src/server/startup_recovery.cc) is not run, its input
// (the scan and the journals) is.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sluice/base/queue_id.h"
#include "sluice/delivery/ledger.h"
#include "sluice/io/fake_loop.h"
#include "sluice/spool/spool_writer.h"
#include "step_loop.h"

namespace sluice::testing_support {

class SpoolLedger {
 public:
  struct Message {
    uint32_t recipients = 0;
    bool large = false;
    bool stored = false;           // handed to the ledger (durable)
    bool acked = false;            // commit reported ok
    bool failed = false;           // commit reported an error
    std::set<uint32_t> final;      // reported to the ledger
    std::set<uint32_t> confirmed;  // final and the ledger was idle since, without errors
  };
  // What a restart finds: per queued message, its pending recipients.
  struct Recovered {
    absl::Status status;
    std::map<base::QueueId, std::set<uint32_t>> pending;
    std::map<base::QueueId, uint32_t> recipients;  // as the recovered envelope says
    std::vector<std::string> corrupt;
    std::set<std::string> files;  // names in spool/0
  };

  explicit SpoolLedger(uint64_t seed);
  ~SpoolLedger();

  // Starts a message of `recipients` recipients (large: past
  // SpoolWriter::kFlushBytes, so it gets its own file).
  base::QueueId Send(uint32_t recipients, bool large);
  // Reports recipients of a stored message final (ignored before it is).
  void Final(base::QueueId id, const std::vector<uint32_t>& recipients);
  // One loop turn: writer and ledger flush, one chain runs, the clock moves
  // `advance_ms`, the ledger ticks every 5th turn.
  void Step(uint64_t advance_ms = 10);
  // Steps until nothing is queued and both are idle (at most `max_steps`).
  bool Settle(int max_steps = 2000);
  bool quiet() const;
  void Crash() { loop_->Crash(); }
  Recovered Recover() const;
  // The invariants after Crash() and Recover(); "" if they hold.
  std::string Check(const Recovered& r) const;

  io::FakeLoop& fake() { return *fake_; }
  delivery::Ledger& ledger() { return *ledger_; }
  const std::map<base::QueueId, Message>& messages() const { return messages_; }
  uint64_t steps() const { return steps_; }

 private:
  std::unique_ptr<io::FakeLoop> fake_;
  std::unique_ptr<StepLoop> loop_;
  std::unique_ptr<io::BufferRing> buffers_;
  std::unique_ptr<spool::SpoolWriter> writer_;
  std::unique_ptr<delivery::Ledger> ledger_;
  base::QueueIdGenerator ids_{0};
  uint64_t id_clock_ = 1000;
  uint64_t steps_ = 0;
  std::map<base::QueueId, Message> messages_;
};

}  // namespace sluice::testing_support
