// What the administrator set and a restart must not forget: domain
// suspensions (with their end and reason) and holds (by message id and by
// domain). Kept in "<spool>/admin.state", a small text file rewritten whole
// on every change (temporary file, fdatasync, rename, directory fsync) and
// sealed by a CRC-32C line, so a torn or edited file is refused with its
// reason rather than half-applied.
//
// One AdminStore per process, shared by the shards (like tls::Credentials):
// a mutex guards it. It is touched only by `sluice queue` commands (a rare,
// small synchronous write on the shard that runs the command) and once per
// shard at start-up, never on a delivery path.
//
// Trusts: nothing in the file (every line is parsed and checked). Limits:
// kMaxEntries entries, kMaxReasonSize bytes of reason per suspension.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sluice/base/queue_id.h"

namespace sluice::delivery {

struct Suspension {
  std::string domain;     // lower case
  uint64_t since_us = 0;  // wall clock
  uint64_t until_us = 0;  // 0: until resumed
  std::string reason;     // printable ASCII/UTF-8, no control characters
};

struct AdminState {
  std::vector<Suspension> suspensions;
  std::vector<base::QueueId> held_ids;
  std::vector<std::string> held_domains;
};

inline constexpr std::string_view kAdminStateName = "admin.state";
// An operator holds or suspends by hand: thousands of entries would be a
// script gone wrong, and the file is rewritten whole on each change.
inline constexpr size_t kMaxAdminEntries = 100000;
inline constexpr size_t kMaxReasonSize = 200;

// The file's text, and back. Parse drops suspensions that ended before
// `now_us` and refuses a file whose seal does not match.
std::string EncodeAdminState(const AdminState& state);
absl::StatusOr<AdminState> ParseAdminState(std::string_view text, uint64_t now_us);
// Control characters become spaces; cut at kMaxReasonSize bytes.
std::string CleanReason(std::string_view reason);

class AdminStore {
 public:
  // `spool_dir`: the file is <spool_dir>/admin.state.
  explicit AdminStore(std::string spool_dir);

  // Reads the file (a missing one is an empty state).
  absl::Status Load(uint64_t now_us);
  AdminState Snapshot() const;
  // Changes the state and writes the file before returning. The change is
  // kept in memory even if the write fails (the command's reply says so).
  absl::Status Update(absl::FunctionRef<void(AdminState&)> change, uint64_t now_us);

 private:
  const std::string dir_;
  mutable std::mutex mu_;
  AdminState state_;
};

}  // namespace sluice::delivery
