// Takes single-message files and batch directories (NAME.batch/, mail merge)
// from the pickup directory (docs/PICKUP.md) into the spool. One per
// process, driven by shard 0's loop through a narrow interface the shard
// implements (ingest_host.h): commit a message and get the durable
// callback, write the accounting records, run a job on the pickup thread.
//
// Two threads share the work. Every blocking file operation (listing new/,
// the claim renames, open/read of whole files and of the recipients file,
// writing to bad/ with its fsyncs, the batch release) runs
// on the pickup thread (a one-thread io::HelperPool of its own, owned by
// the server; docs/ARCHITECTURE.md says why not the shared helper pool),
// and so does the parsing of a file. Shard 0 keeps the bookkeeping (which
// names wait, what is in flight, the limits), builds the envelope, commits
// it through its spool writer and writes the records; it makes no
// blocking syscall for the pickup in steady state (Init, at start-up,
// opens bad/ and the inotify watch). The shard keeps at most
// kClaimJobsInFlight claim jobs of kClaimsPerJob files in flight; each
// job's result comes back through the shard's wake-up eventfd.
//
// Noticing files: an inotify descriptor watching DIR/new (IN_MOVED_TO |
// IN_CLOSE_WRITE) is read through the shard's io_uring; besides, DIR/new is
// listed (on the pickup thread) at start-up and every
// pickup.scan_interval_s (and after an inotify queue overflow), so files
// dropped while Sluice was down, or missed, are taken too.
//
// Claim protocol, per file NAME (exactly once across crashes and across
// processes sharing DIR):
//   1. rename DIR/new/NAME -> <spool>/0/claimed/<id>.pickup   (atomic; ENOENT:
//      another process took it, skip)
//   2. read and validate it (pickup::ParseMessage)
//   3a. valid: commit a spool record whose envelope says origin=<id>.pickup
//       (durable before the callback), then unlink the claimed file (on
//       io_uring's workers, many at once), then log and announce it
//   3b. invalid: write DIR/bad/NAME.error, rename the claimed file to
//       DIR/bad/NAME, fsync DIR/bad, log a Rejection record
// Start-up recovery (server.cc) finishes what a crash interrupted: a claimed
// file whose name is the origin of a recovered record is unlinked, any other
// is processed again. Files a job had claimed when the shard stops are left
// claimed, and so processed again at the next start.
//
// A batch directory is claimed the same way (one rename), then read in
// steps on the pickup thread: manifest and template at once
// (pickup::ParseManifest, PrepareTemplate), the recipients file
// kBatchBytesPerStep at a time through pickup::BatchBuilder, so claims of
// single files go on between steps. One batch is read at a time; more
// wait, claimed. Its record is one spool record (the template once, packed
// recipients, origin=<id>.pickup); skipped rows go to DIR/bad/NAME.error
// before the commit. Once durable, the claimed directory is renamed
// <id>.pickup.done and removed, then the batch is announced; start-up
// recovery removes any *.pickup.done left by a crash and, like a file, a
// claimed directory whose record exists.
//
// Test hook: SLUICE_TEST_ABORT_AT=<point> makes the process abort() at a
// named point, so tests can crash it there (tests/integration/test_pickup*.py):
//   after-claim        right after step 1 (files and batches)
//   after-commit       right after the commit succeeded, before the release
//   batch-mid-csv      a batch: after its first chunk of recipients was read
//   batch-mid-release  a batch: renamed .done, one file removed, the rest not
// Always compiled in; read once at start, only when set.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "sluice/io/loop.h"
#include "sluice/pickup/ingest_host.h"
#include "sluice/pickup/message_parser.h"

namespace sluice::pickup {

namespace internal {
struct Item;
struct Taken;
struct Release;
struct BatchState;
struct BatchProgress;
struct BatchReleased;
class PickupFiles;
}  // namespace internal

class Ingester {
 public:
  // `claimed_dir`: <spool>/<shard>/claimed.
  Ingester(IngestHost& host, std::string dir, std::string claimed_dir);
  ~Ingester();
  Ingester(const Ingester&) = delete;
  Ingester& operator=(const Ingester&) = delete;

  // Opens bad/ and the inotify watch. Shard thread, at start-up.
  absl::Status Init();
  // Claimed files left by a crash (absolute paths) to process again.
  void AdoptClaimed(std::vector<std::string> paths);
  // Arms inotify and starts the first scan.
  void Start();
  // The 250 ms tick: rescans when the interval passed.
  void Tick(uint64_t now_ms);
  // End of a loop turn: hands waiting work to the pickup thread.
  void Pump();
  // Pump could hand out more work now (the loop should not sleep).
  bool has_work() const;
  // Stop taking files; cancels the inotify read.
  void Stop();
  // Nothing in flight (jobs, commits, the inotify read): the shard may exit.
  bool idle() const {
    return jobs_in_flight_ == 0 && commits_in_flight_ == 0 && releases_in_flight_ == 0 &&
           !read_armed_;
  }

  // The pickup thread: one, so its jobs run in the order they were handed
  // out (a batch's steps, claims, releases), and its slots: every kind of
  // job is bounded below, so a Submit never finds the lane full.
  static constexpr int kThreads = 1;
  static constexpr size_t kJobSlots = 16;
  // Files per claim job, and claim jobs in flight: two, so the pickup
  // thread reads the next files while the shard commits the last ones.
  static constexpr size_t kClaimsPerJob = 64;
  static constexpr size_t kClaimJobsInFlight = 2;
  // Files read and waiting for their commit: enough to keep group commits
  // large when an fdatasync takes tens of milliseconds (a busy journal: the
  // producers' renames share it), bounded in count and in bytes held.
  static constexpr size_t kMaxCommitsInFlight = 4096;
  static constexpr uint64_t kMaxBytesInFlight = 64ull << 20;
  // Recipients-file bytes a batch reads and checks per step: about 20,000
  // rows, a few milliseconds of the pickup thread between claim jobs.
  static constexpr size_t kBatchBytesPerStep = 1 << 20;

 private:
  enum class BatchPhase { kOpening, kReading, kReady, kCommitting, kReleasing };

  bool Submit(io::HelperPool::Job job);
  // Names or reclaimed items wait and a claim job may start.
  bool can_claim() const;
  void Scan();
  void OnScanned(bool ok, std::vector<std::string>& names, const std::string& error);
  void Enqueue(std::string name);
  void ArmRead();
  void OnRead(int result, uint32_t flags);
  void SubmitClaims();
  void OnTaken(std::vector<internal::Taken>& taken);
  void GiveBack(std::vector<internal::Item>& items);
  void LogRejected(const internal::Item& item, const std::string& reason, const std::string& error,
                   bool moved);
  void CommitMessage(internal::Item item, Message msg);
  void OnCommitted(const internal::Item& item, const absl::Status& status, std::string sender,
                   std::vector<std::string> recipients, uint64_t size);
  struct ReleaseOp;  // a committed file's unlink on io_uring
  void OnReleased(ReleaseOp* op, int result);
  // Batches (ingester_batch.cc).
  void PumpBatch();
  void StartBatch(internal::Item item);
  void SubmitBatchStep();
  void OnBatchStep(const internal::BatchProgress& p);
  void CommitBatch();
  void OnBatchCommitted(const absl::Status& status);
  void OnBatchReleased(const internal::BatchReleased& r);
  void EndBatch();

  IngestHost& host_;
  const std::string new_dir_;
  std::unique_ptr<internal::PickupFiles> files_;  // read-only once Init ran
  int inotify_fd_ = -1;

  std::deque<std::string> queue_;  // names in new/ to claim
  absl::flat_hash_set<std::string> queued_;
  std::deque<internal::Item> reclaim_;           // already claimed: process again
  std::vector<internal::Item> retry_;            // commit or read failed: again at the next scan
  std::unique_ptr<internal::BatchState> batch_;  // the batch being read or committed
  BatchPhase batch_phase_ = BatchPhase::kOpening;
  std::deque<internal::Item> batches_waiting_;  // claimed batches, read one after another
  size_t jobs_in_flight_ = 0;                   // every kind, on the pickup thread
  size_t claim_jobs_ = 0;
  size_t claiming_ = 0;  // files in claim jobs
  bool scan_in_flight_ = false;
  size_t commits_in_flight_ = 0;
  uint64_t bytes_in_flight_ = 0;   // message bytes of single files not yet committed
  size_t releases_in_flight_ = 0;  // unlinks on io_uring
  bool stopping_ = false;
  bool read_armed_ = false;
  uint64_t next_scan_ms_ = 0;
  alignas(8) char events_[16 * 1024];
  io::MemberCompletion<Ingester, &Ingester::OnRead> read_done_{this};
};

}  // namespace sluice::pickup
