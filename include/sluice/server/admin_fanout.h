// One control command asked of every shard's control socket
// (server/control_socket.h) from a shard's own io_uring, for the HTTP admin
// API (server/http_admin.h): connect, send the line, read the reply until
// the shard closes, as ring operations. Nothing blocks the shard's thread,
// so a shard can ask its own socket too (its loop answers between the
// steps), and a slow or stopped shard costs a deadline, not a stall.
//
// Why the control sockets and not the cross-shard mailboxes: each shard
// already answers every admin command for its own part there (domain
// commands from the owner shard), with the saving of admin.state, and the
// CLI merges those replies; going through the same door keeps one
// implementation of every command and one place that merges
// (admin/merge.h).
//
// Bounds: one socket and one reply per shard, each reply at most
// kMaxReplyBytes; the whole fan-out ends by its deadline (checked on the
// shard's tick): sockets still open then are shut down and those shards
// count as not answering.
#pragma once

#include <sys/un.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/io/loop.h"

namespace sluice::server {

class AdminFanout {
 public:
  // Every shard's reply in shard order, or why that shard gave none.
  using Replies = std::vector<absl::StatusOr<std::string>>;
  using Done = std::function<void(Replies)>;

  // A reply larger than this is cut off and that shard counts as failed: a
  // `messages` listing is about 150 bytes a job, so this holds the control
  // socket's own limit (200,000 jobs) with room.
  static constexpr size_t kMaxReplyBytes = 64u << 20;

  // `done` runs once, on the shard's thread, when every shard answered or
  // failed; then the fan-out may be destroyed (not before: finished()).
  AdminFanout(io::Loop& ring, const std::string& control_dir, int shards, std::string line,
              uint64_t deadline_ms, Done done);
  ~AdminFanout();
  AdminFanout(const AdminFanout&) = delete;
  AdminFanout& operator=(const AdminFanout&) = delete;

  void Start();
  // Past the deadline (or `force`): shuts down every socket still open.
  void CheckDeadline(uint64_t now_ms, bool force = false);
  // The requester is gone: `done` will not be called.
  void Detach() { done_ = nullptr; }
  bool finished() const { return open_legs_ == 0; }

 private:
  struct Leg;
  void Step(Leg& leg, int result);
  void Finish(Leg& leg, absl::Status why);
  void Complete();

  io::Loop& ring_;
  const std::string line_;
  const uint64_t deadline_ms_;
  Done done_;
  std::vector<std::unique_ptr<Leg>> legs_;
  size_t open_legs_ = 0;
  bool timed_out_ = false;
  bool starting_ = false;
};

}  // namespace sluice::server
