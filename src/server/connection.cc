#include "sluice/server/connection.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/base/limits.h"
#include "sluice/server/shard.h"
#include "sluice/server/trace_headers.h"

namespace sluice::server {
namespace {

smtp::SessionConfig MakeSessionConfig(const config::Config& c, const std::string& client_ip,
                                      bool relay_allowed) {
  smtp::SessionConfig s;
  s.hostname = c.hostname;
  s.client_ip = client_ip;
  s.relay_allowed = relay_allowed;
  s.max_line_length = c.max_line_length;
  s.max_data_line_length = c.max_data_line_length;
  s.max_message_size = c.max_message_size;
  s.max_recipients = c.max_recipients;
  s.max_errors = c.max_errors;
  return s;
}

}  // namespace

Connection::Connection(Shard& shard, int fd, std::string client_ip, bool relay_allowed)
    : shard_(shard),
      fd_(fd),
      client_ip_(std::move(client_ip)),
      session_(MakeSessionConfig(shard.config(), client_ip_, relay_allowed), *this) {}

Connection::~Connection() {
  for (const Pending& p : input_) shard_.buffers().Release(p.buffer);
}

void Connection::Start() {
  last_input_ms_ = shard_.now_ms();
  session_.Start();
  if (shard_.stopping()) session_.OnShutdown();
  MaybeSend();
  ArmReceive();
}

void Connection::ArmReceive() {
  if (recv_armed_ || shut_down_ || recv_paused_) return;
  io_uring_sqe* sqe = shard_.ring().Prepare(&recv_done_);
  io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = shard_.buffers().group_id();
  recv_armed_ = true;
}

void Connection::OnReceive(int result, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) recv_armed_ = false;
  if (result > 0 && (flags & IORING_CQE_F_BUFFER)) {
    const auto id = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    shard_.buffers().Acquire(id);
    if (shut_down_ || session_.closed()) {
      shard_.buffers().Release(id);
    } else {
      input_.push_back(Pending{id, 0, static_cast<uint32_t>(result)});
      const uint64_t progress = session_.progress();
      ProcessInput();
      if (session_.progress() != progress) last_input_ms_ = shard_.now_ms();
      if (input_.size() > limits::kHeldBuffersPerConnectionMax && recv_armed_) {
        // The session is waiting (a commit, or a client that does not read
        // its replies): stop taking buffers from the shared ring.
        recv_paused_ = true;
        io_uring_sqe* sqe = shard_.ring().Prepare(nullptr);
        io_uring_prep_cancel(sqe, &recv_done_, 0);
      }
    }
    if (!recv_armed_) ArmReceive();
  } else if (result == -ENOBUFS) {
    if (!shut_down_) shard_.Starved(this);
  } else if (result == -ECANCELED && recv_paused_) {
    // Paused on purpose; ProcessInput re-arms.
  } else if (!recv_armed_ || result <= 0) {
    BeginShutdown();  // EOF or a socket error: the peer is gone
  }
  MaybeDestroy();
}

void Connection::ProcessInput() {
  while (!input_.empty() && !session_.paused() && !session_.closed()) {
    Pending& p = input_.front();
    feeding_buffer_ = p.buffer;
    const char* data = shard_.buffers().data(p.buffer) + p.offset;
    const size_t used = session_.Feed(data, p.size - p.offset);
    p.offset += static_cast<uint32_t>(used);
    if (p.offset == p.size) {
      shard_.buffers().Release(p.buffer);
      input_.pop_front();
    }
  }
  if (session_.closed()) {
    for (const Pending& p : input_) shard_.buffers().Release(p.buffer);
    input_.clear();
  }
  if (recv_paused_ && input_.size() < limits::kHeldBuffersPerConnectionMax / 2 && !recv_armed_) {
    recv_paused_ = false;
    ArmReceive();
  }
  MaybeSend();
}

void Connection::MaybeSend() {
  if (send_in_flight_ || shut_down_) return;
  if (sent_ == sending_.size()) {
    sending_.clear();
    sent_ = 0;
    sending_.swap(session_.output());
  }
  if (sending_.empty()) {
    if (session_.closed()) BeginShutdown();
    return;
  }
  io_uring_sqe* sqe = shard_.ring().Prepare(&send_done_);
  io_uring_prep_send(sqe, fd_, sending_.data() + sent_, sending_.size() - sent_, MSG_NOSIGNAL);
  send_in_flight_ = true;
  send_started_ms_ = shard_.now_ms();
}

void Connection::OnSend(int result, uint32_t) {
  send_in_flight_ = false;
  if (result < 0) {
    sending_.clear();
    sent_ = 0;
    BeginShutdown();
  } else {
    sent_ += static_cast<size_t>(result);
    // Replies drained: a session paused on output can go on.
    ProcessInput();
  }
  MaybeDestroy();
}

void Connection::BeginShutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (message_ != nullptr) {
    shard_.spool().Abort(message_);  // a body that never finished
    message_ = nullptr;
  }
  for (const Pending& p : input_) shard_.buffers().Release(p.buffer);
  input_.clear();
  // Ends the multishot receive and any send; the fd is closed once they
  // have completed (MaybeDestroy). A plain syscall on purpose: io_uring
  // runs SHUTDOWN from its worker pool, so it could land after our CLOSE
  // and hit a new connection that reused the descriptor number.
  shutdown(fd_, SHUT_RDWR);
  if (recv_armed_) {
    io_uring_sqe* sqe = shard_.ring().Prepare(nullptr);
    io_uring_prep_cancel(sqe, &recv_done_, 0);
  }
}

void Connection::MaybeDestroy() {
  if (!shut_down_ || recv_armed_ || send_in_flight_ || commit_in_flight_ || destroyed_) return;
  destroyed_ = true;
  io_uring_sqe* sqe = shard_.ring().Prepare(nullptr);
  io_uring_prep_close(sqe, fd_);
  shard_.Closed(this);  // the shard frees us once our last SQEs were submitted
}

void Connection::Shutdown() {
  session_.OnShutdown();
  MaybeSend();
  MaybeDestroy();
}

void Connection::ForceClose() {
  BeginShutdown();
  MaybeDestroy();
}

void Connection::CheckTimeouts(uint64_t now_ms) {
  if (shut_down_) return;
  const config::Config& c = shard_.config();
  if (send_in_flight_ && now_ms - send_started_ms_ > uint64_t{c.idle_timeout_s} * 1000) {
    return ForceClose();  // the peer stopped reading
  }
  if (commit_in_flight_ || session_.closed()) return;
  const uint64_t limit_ms =
      uint64_t{session_.in_body() ? c.data_timeout_s : c.idle_timeout_s} * 1000;
  if (now_ms - last_input_ms_ > limit_ms) {
    session_.OnTimeout();
    MaybeSend();
    MaybeDestroy();
  }
}

bool Connection::SpoolAvailable() { return shard_.spool_available(); }

void Connection::BeginMessage(const smtp::Envelope&) {
  SLUICE_CHECK(message_ == nullptr);
  message_arrival_us_ = base::WallMicros();
  message_id_ = shard_.NextQueueId();
  message_ = shard_.spool().Begin(message_id_);
}

void Connection::AppendBody(const char* data, size_t size) {
  SLUICE_CHECK(message_ != nullptr);
  shard_.spool().Append(message_, data, size, feeding_buffer_);
}

void Connection::AbortMessage() {
  if (message_ == nullptr) return;
  shard_.spool().Abort(message_);
  message_ = nullptr;
}

std::string Connection::AddedHeaders(const smtp::Envelope& e, const smtp::MessageFacts& facts,
                                     const std::string& id) const {
  const std::string from = absl::StrCat(PrintableHeaderText(e.helo), " (", client_ip_, ")");
  TraceFacts t;
  t.from = from;
  t.with = e.esmtp ? "ESMTP" : "SMTP";
  t.hostname = shard_.config().hostname;
  t.queue_id = id;
  t.recipients = &e.recipients;
  t.arrival_micros = message_arrival_us_;
  t.has_date = facts.has_date;
  t.has_message_id = facts.has_message_id;
  return TraceHeaders(t);
}

void Connection::CommitMessage(const smtp::Envelope& e, const smtp::MessageFacts& facts) {
  SLUICE_CHECK(message_ != nullptr);
  const std::string id = message_id_.ToString();
  spool::Envelope env;
  env.arrival_micros = message_arrival_us_;
  env.client_ip = client_ip_;
  env.helo = e.helo;
  env.protocol = e.esmtp ? "ESMTP" : "SMTP";
  env.sender = e.sender;
  env.eight_bit = e.params.body == smtp::BodyType::k8BitMime;
  env.smtputf8 = e.params.smtputf8;
  env.added_headers = AddedHeaders(e, facts, id);
  env.recipients.reserve(e.recipients.size());
  for (const std::string& r : e.recipients) env.recipients.push_back(spool::Recipient{r});
  commit_in_flight_ = true;
  spool::SpoolWriter::Message* m = message_;
  message_ = nullptr;
  const uint64_t size = facts.size;
  shard_.spool().Commit(m, std::move(env), [this, id, size](const absl::Status& status) {
    OnCommitted(status, id, size);
  });
}

void Connection::OnCommitted(const absl::Status& status, const std::string& id, uint64_t size) {
  commit_in_flight_ = false;
  if (status.ok()) {
    ++shard_.stats().messages_queued;
    const smtp::Envelope& e = session_.envelope();
    log::ReceptionRecord r;
    r.ts_micros = base::WallMicros();
    r.id = id;
    r.sender = e.sender;
    r.recipients = &e.recipients;
    r.size = size;
    r.client = client_ip_;
    r.helo = e.helo;
    r.protocol = e.esmtp ? "ESMTP" : "SMTP";
    shard_.accounting().Reception(r);
    if (auto qid = base::QueueId::Parse(id)) shard_.AnnounceQueued(*qid, e.recipients);
    session_.OnCommitted(id);
  } else {
    ++shard_.stats().messages_failed;
    std::fprintf(stderr, "sluice: shard spool commit failed: %s\n",
                 std::string(status.message()).c_str());
    session_.OnCommitted(status);
  }
  if (!shut_down_) ProcessInput();
  MaybeDestroy();
}

}  // namespace sluice::server
