// See spool_ledger_harness.h.
#include "spool_ledger_harness.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "sluice/spool/journal.h"
#include "sluice/spool/message_file.h"
#include "sluice/spool/spool_directory.h"

// A simulated crash abandons the writer and ledger with operations in
// flight: FakeLoop::Crash drops them without completing, so the
// completions they own (self-deleting on completion, as on io_uring) are
// never freed, as when a process dies. LeakSanitizer would call each a
// leak; the harness tells it not to (LeakCheckOff below).
#if defined(__SANITIZE_ADDRESS__)
#define SLUICE_HARNESS_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_HARNESS_LSAN 1
#endif
#endif
#if defined(SLUICE_HARNESS_LSAN)
#include <sanitizer/lsan_interface.h>
#endif

namespace sluice::testing_support {
namespace {

std::string Body(base::QueueId id, bool large) {
  std::string body = absl::StrCat("Subject: ", id.ToString(), "\r\n\r\nbody\r\n");
  if (large) body.append(spool::SpoolWriter::kFlushBytes + 1000, 'x');
  return body;
}

// Writes the durable view of `fake`'s directory `from` under `to`.
void Materialize(const io::FakeLoop& fake, const std::string& from,
                 const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  for (const std::string& name : fake.DurableList(from)) {
    const std::string path = from + "/" + name;
    if (auto bytes = fake.DurableContents(path)) {
      std::ofstream(to / name, std::ios::binary) << *bytes;
    } else {
      Materialize(fake, path, to / name);
    }
  }
}

// SLUICE_SIM_TRACE=1: every event on stderr, to follow a replayed seed.
bool Tracing() {
  static const bool on = getenv("SLUICE_SIM_TRACE") != nullptr;
  return on;
}
#define TRACE(...)                                       \
  do {                                                   \
    if (Tracing()) fprintf(stderr, "sim: " __VA_ARGS__); \
  } while (0)

// One scratch directory per process, emptied for each recovery.
std::filesystem::path Scratch() {
  static const std::filesystem::path dir = [] {
    const char* base = getenv("TMPDIR");
    std::filesystem::path p =
        std::filesystem::path(base ? base : "/tmp") / absl::StrCat("sluice-sim-", getpid());
    return p;
  }();
  return dir;
}

// Allocations from here to the end of the thread are not leaks: see above.
// Leak checking of the writer and ledger themselves stays on in
// spool_writer_fake_test and the ASan integration suite.
void LeakCheckOff() {
#if defined(SLUICE_HARNESS_LSAN)
  __lsan_disable();
#endif
}

}  // namespace

SpoolLedger::SpoolLedger(uint64_t seed) {
  LeakCheckOff();
  fake_ = std::make_unique<io::FakeLoop>(seed);
  loop_ = std::make_unique<StepLoop>(*fake_, seed * 0x9e3779b97f4a7c15ull + 1);
  const int root_fd = fake_->OpenDirectory("spool");
  const int dir_fd = fake_->OpenDirectory("spool/0");
  buffers_ = std::move(*loop_->CreateBufferRing(1, 16, 4096));
  writer_ = std::make_unique<spool::SpoolWriter>(*loop_, *buffers_, dir_fd,
                                                 [this] { return ids_.Next(++id_clock_); });
  ledger_ = std::make_unique<delivery::Ledger>(
      *loop_, "spool", 0, 0, [this] { return writer_->segment_name(); }, root_fd);
  writer_->set_stored_hook([this](const spool::StoredRecord& r) {
    messages_[r.id].stored = true;
    TRACE("step %lu stored %s in %s at %lu+%lu\n", static_cast<unsigned long>(steps_),
          r.id.ToString().c_str(), r.file.c_str(), static_cast<unsigned long>(r.offset),
          static_cast<unsigned long>(r.length));
    ledger_->Add(r.id, delivery::RecordRef{0, r.file, r.offset, r.length}, r.recipients);
  });
}

SpoolLedger::~SpoolLedger() = default;

base::QueueId SpoolLedger::Send(uint32_t recipients, bool large) {
  const base::QueueId id = ids_.Next(++id_clock_);
  Message& msg = messages_[id];
  msg.recipients = recipients;
  msg.large = large;
  spool::SpoolWriter::Message* m = writer_->Begin(id);
  writer_->AppendOwned(m, Body(id, large));
  spool::Envelope e;
  e.id = id;
  e.arrival_micros = 1;
  e.sender = "s@example.com";
  e.protocol = "ESMTP";
  for (uint32_t i = 0; i < recipients; ++i) {
    e.recipients.push_back({absl::StrCat("r", i, "@example.net")});
  }
  writer_->Commit(m, std::move(e), [this, id](const absl::Status& s) {
    (s.ok() ? messages_[id].acked : messages_[id].failed) = true;
    TRACE("step %lu %s %s\n", static_cast<unsigned long>(steps_), id.ToString().c_str(),
          s.ok() ? "acked" : s.ToString().c_str());
  });
  return id;
}

void SpoolLedger::Final(base::QueueId id, const std::vector<uint32_t>& recipients) {
  Message& m = messages_.at(id);
  if (!m.stored) return;  // the ledger does not know it yet (nor would a shard)
  for (uint32_t r : recipients) m.final.insert(r);
  TRACE("step %lu final %s %zu of %u (now %zu)\n", static_cast<unsigned long>(steps_),
        id.ToString().c_str(), recipients.size(), m.recipients, m.final.size());
  ledger_->Final(id, recipients.data(), recipients.size());
}

void SpoolLedger::Step(uint64_t advance_ms) {
  writer_->Flush();
  ledger_->Flush();
  loop_->RunOnce(0);
  fake_->Advance(advance_ms * 1000);
  if (++steps_ % 5 == 0) ledger_->Tick();
  if (ledger_->idle() && ledger_->stats().io_errors == 0) {
    for (auto& [id, m] : messages_) m.confirmed = m.final;
  }
}

bool SpoolLedger::quiet() const {
  return loop_->queued() == 0 && fake_->pending() == 0 && writer_->in_flight() == 0 &&
         ledger_->idle();
}

bool SpoolLedger::Settle(int max_steps) {
  for (int i = 0; i < max_steps; ++i) {
    Step();
    if (quiet() && steps_ % 5 == 0) return true;
  }
  return quiet();
}

SpoolLedger::Recovered SpoolLedger::Recover() const {
  Recovered r;
  const std::filesystem::path root = Scratch();
  std::filesystem::remove_all(root);
  Materialize(*fake_, "spool", root);
  for (const std::string& name : fake_->DurableList("spool/0")) r.files.insert(name);
  auto scan = spool::ScanSpool(root.string(), spool::ScanOptions{.verify_body = true});
  auto journals = spool::ReadJournals((root / "0").string());
  std::filesystem::remove_all(root);
  if (!scan.ok() || !journals.ok()) {
    r.status = scan.ok() ? journals.status() : scan.status();
    return r;
  }
  r.corrupt = scan->corrupt;
  for (const spool::QueuedMessage& q : scan->messages) {
    const auto count = static_cast<uint32_t>(q.envelope.recipients.size());
    r.recipients[q.envelope.id] = count;
    std::set<uint32_t>& pending = r.pending[q.envelope.id];
    for (uint32_t i = 0; i < count; ++i) pending.insert(i);
  }
  for (const spool::JournalEntry& e : journals->entries) {
    if (auto it = r.pending.find(e.id); it != r.pending.end()) it->second.erase(e.recipient);
  }
  return r;
}

// After a crash, for every message:
// - a recovered one was sent, with its recipients, and verifies (no torn
//   record accepted: ScanSpool checked it, body CRC included);
// - an acknowledged one is recovered unless all its recipients were final
//   (nothing acknowledged is lost), and every recipient not reported final
//   is pending (no recipient lost);
// - the journal never marks final a recipient that was not reported final;
// - a recipient final and confirmed (the ledger was idle afterwards, with no
//   I/O error) does not come back, and neither does a message all of whose
//   recipients were confirmed final.
std::string SpoolLedger::Check(const Recovered& r) const {
  if (!r.status.ok()) return absl::StrCat("recovery failed: ", r.status.ToString());
  if (!r.corrupt.empty()) return absl::StrCat("set aside: ", r.corrupt.front());
  for (const auto& [id, pending] : r.pending) {
    auto it = messages_.find(id);
    if (it == messages_.end()) return absl::StrCat(id.ToString(), ": recovered, never sent");
    const Message& m = it->second;
    if (r.recipients.at(id) != m.recipients) {
      return absl::StrCat(id.ToString(), ": recovered with ", r.recipients.at(id),
                          " recipients, sent with ", m.recipients);
    }
    for (uint32_t i = 0; i < m.recipients; ++i) {
      const bool is_pending = pending.count(i) != 0;
      if (!is_pending && m.final.count(i) == 0) {
        return absl::StrCat(id.ToString(), ": recipient ", i, " journaled final, never reported");
      }
      if (is_pending && m.confirmed.count(i) != 0) {
        return absl::StrCat(id.ToString(), ": recipient ", i, " confirmed final, came back");
      }
    }
    if (m.confirmed.size() == m.recipients) {
      return absl::StrCat(id.ToString(), ": retired (all confirmed final), came back");
    }
  }
  for (const auto& [id, m] : messages_) {
    if (m.acked && m.final.size() < m.recipients && r.pending.count(id) == 0) {
      return absl::StrCat(id.ToString(), ": acknowledged, not all final, lost");
    }
  }
  return "";
}

}  // namespace sluice::testing_support
