// One control command to every shard over io_uring; see
// sluice/server/admin_fanout.h.
#include "sluice/server/admin_fanout.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice::server {

// One shard's socket: connect, send, then receive until the shard closes.
// One operation in flight at a time; its completion is `op`.
struct AdminFanout::Leg {
  enum class Stage : uint8_t { kConnect, kSend, kReceive, kDone };
  AdminFanout* owner = nullptr;
  int shard = 0;
  int fd = -1;
  Stage stage = Stage::kConnect;
  sockaddr_un address{};
  size_t sent = 0;
  std::string reply;
  absl::StatusOr<std::string> result = std::string();
  char buffer[16 * 1024];
  struct Op final : io::Completion {
    Leg* leg = nullptr;
    void OnComplete(int result, uint32_t) override { leg->owner->Step(*leg, result); }
  } op;
};

AdminFanout::AdminFanout(io::Loop& ring, const std::string& control_dir, int shards,
                         std::string line, uint64_t deadline_ms, Done done)
    : ring_(ring),
      line_(std::move(line) + "\n"),
      deadline_ms_(deadline_ms),
      done_(std::move(done)) {
  for (int i = 0; i < shards; ++i) {
    auto leg = std::make_unique<Leg>();
    leg->owner = this;
    leg->shard = i;
    leg->op.leg = leg.get();
    const std::string path = absl::StrCat(control_dir, "/", i, ".sock");
    leg->address.sun_family = AF_UNIX;
    if (path.size() < sizeof leg->address.sun_path) {
      std::memcpy(leg->address.sun_path, path.c_str(), path.size() + 1);
    }
    legs_.push_back(std::move(leg));
  }
}

AdminFanout::~AdminFanout() {
  for (auto& leg : legs_) {
    if (leg->fd >= 0) close(leg->fd);
  }
}

void AdminFanout::Start() {
  open_legs_ = legs_.size();
  starting_ = true;  // a leg that fails here must not complete the fan-out mid-loop
  for (auto& owned : legs_) {
    Leg& leg = *owned;
    if (leg.address.sun_path[0] == '\0') {
      Finish(leg, absl::InvalidArgumentError("control socket path too long"));
      continue;
    }
    // A blocking socket: io_uring waits for the connect and every transfer
    // itself (poll-driven), never the shard's thread.
    leg.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (leg.fd < 0) {
      Finish(leg, absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno))));
      continue;
    }
    ring_.Connect(&leg.op, leg.fd, reinterpret_cast<const sockaddr*>(&leg.address),
                  sizeof leg.address);
  }
  starting_ = false;
  if (open_legs_ == 0) Complete();
}

void AdminFanout::Step(Leg& leg, int result) {
  if (timed_out_ && leg.stage != Leg::Stage::kDone) {
    return Finish(leg, absl::DeadlineExceededError("no reply before the deadline"));
  }
  if (result < 0) {
    return Finish(leg, absl::UnavailableError(std::strerror(-result)));
  }
  switch (leg.stage) {
    case Leg::Stage::kConnect:
      leg.stage = Leg::Stage::kSend;
      ring_.Send(&leg.op, leg.fd, line_.data(), line_.size());
      return;
    case Leg::Stage::kSend:
      leg.sent += static_cast<size_t>(result);
      if (leg.sent < line_.size()) {
        ring_.Send(&leg.op, leg.fd, line_.data() + leg.sent, line_.size() - leg.sent);
        return;
      }
      leg.stage = Leg::Stage::kReceive;
      break;
    case Leg::Stage::kReceive:
      if (result == 0) {
        while (!leg.reply.empty() && leg.reply.back() == '\n') leg.reply.pop_back();
        if (leg.reply.empty()) {
          return Finish(leg, absl::UnavailableError("closed without a reply (busy?)"));
        }
        leg.result = std::move(leg.reply);
        return Finish(leg, absl::OkStatus());
      }
      leg.reply.append(leg.buffer, static_cast<size_t>(result));
      if (leg.reply.size() > kMaxReplyBytes) {
        return Finish(leg, absl::ResourceExhaustedError(
                               absl::StrCat("reply larger than ", kMaxReplyBytes, " bytes")));
      }
      break;
    case Leg::Stage::kDone:
      return;
  }
  ring_.Recv(&leg.op, leg.fd, leg.buffer, sizeof leg.buffer);
}

void AdminFanout::Finish(Leg& leg, absl::Status why) {
  leg.stage = Leg::Stage::kDone;
  if (!why.ok()) {
    leg.result = absl::Status(why.code(), absl::StrCat("shard ", leg.shard, ": ", why.message()));
  }
  if (leg.fd >= 0) {
    close(leg.fd);
    leg.fd = -1;
  }
  if (--open_legs_ > 0 || starting_) return;
  Complete();
}

void AdminFanout::Complete() {
  Replies replies;
  for (auto& l : legs_) replies.push_back(std::move(l->result));
  // The callback may destroy this object (finished() is now true).
  if (Done done = std::move(done_)) done(std::move(replies));
}

void AdminFanout::CheckDeadline(uint64_t now_ms, bool force) {
  if (finished() || (!force && now_ms < deadline_ms_)) return;
  timed_out_ = true;
  for (auto& leg : legs_) {
    // The operation in flight then completes (with 0 or an error) and
    // Step() ends the leg; the descriptor is closed there, not here, so
    // its number cannot be reused under a pending operation.
    if (leg->fd >= 0 && leg->stage != Leg::Stage::kDone) shutdown(leg->fd, SHUT_RDWR);
  }
}

}  // namespace sluice::server
