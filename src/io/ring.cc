// io::Ring: io::Loop on io_uring. Each typed operation is one SQE (see
// ring.h); this file is the only one besides ring_state.h and
// uring_buffers.cc that names liburing.
#include "sluice/io/ring.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ring_state.h"
#include "sluice/base/check.h"
#include "sluice/base/clock.h"

namespace sluice::io {

// io::Loop's portable flags are the kernel's, passed through untouched.
static_assert(kCompletionBuffer == IORING_CQE_F_BUFFER);
static_assert(kCompletionMore == IORING_CQE_F_MORE);
static_assert(kCompletionBufferShift == IORING_CQE_BUFFER_SHIFT);
static_assert(sizeof(Timespec) == sizeof(__kernel_timespec));
static_assert(offsetof(Timespec, tv_nsec) == offsetof(__kernel_timespec, tv_nsec));

absl::StatusOr<std::unique_ptr<Ring>> Ring::Create(unsigned entries) {
  auto s = std::make_unique<State>();
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
                 IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &s->ring, &params);
  if (rc == -EINVAL) {
    // Older kernel (< 6.1): no DEFER_TASKRUN / SINGLE_ISSUER. COOP_TASKRUN
    // (5.19) still avoids needless interrupts; plain setup is the last resort.
    params = io_uring_params{};
    params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &s->ring, &params);
    if (rc == -EINVAL) {
      params = io_uring_params{};
      rc = io_uring_queue_init_params(entries, &s->ring, &params);
    }
  } else if (rc == 0) {
    s->defer_taskrun = true;
  }
  if (rc < 0) {
    return absl::Status(absl::ErrnoToStatusCode(-rc),
                        absl::StrCat("io_uring_queue_init: ", std::strerror(-rc)));
  }
  if (!(params.features & IORING_FEAT_EXT_ARG)) {
    io_uring_queue_exit(&s->ring);
    return absl::FailedPreconditionError("kernel too old: io_uring lacks EXT_ARG (needs 5.11+)");
  }
  s->initialised = true;
  s->cqe_skip = (params.features & IORING_FEAT_CQE_SKIP) != 0;
  if (io_uring_probe* probe = io_uring_get_probe_ring(&s->ring)) {
    s->msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) && s->cqe_skip;
    io_uring_free_probe(probe);
  }
  s->reaped.reserve(entries * 4);
  return std::unique_ptr<Ring>(new Ring(std::move(s)));
}

Ring::Ring(std::unique_ptr<State> state) : s_(std::move(state)) {}

Ring::~Ring() {
  if (s_->initialised) io_uring_queue_exit(&s_->ring);
}

io_uring_sqe* Ring::State::Prepare() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  while (sqe == nullptr) {
    Submit();
    sqe = io_uring_get_sqe(&ring);
  }
  return sqe;
}

namespace {

// Applies what every operation shares once its prep_* filled the SQE
// (prep_* clears flags and user_data, so this runs after it).
inline void Finish(io_uring_sqe* sqe, Completion* c, Op op, bool cqe_skip) {
  io_uring_sqe_set_data(sqe, c);
  if (op.link) sqe->flags |= IOSQE_IO_LINK;
  if (op.skip_success && cqe_skip) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

}  // namespace

void Ring::AcceptMultishot(Completion* c, int fd) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
  Finish(sqe, c, {}, false);
}

void Ring::RecvMultishot(Completion* c, int fd, const BufferRing& buffers) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  Finish(sqe, c, {}, false);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers.group_id();
}

void Ring::Recv(Completion* c, int fd, void* data, size_t size, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_recv(sqe, fd, data, size, 0);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Send(Completion* c, int fd, const void* data, size_t size, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_send(sqe, fd, data, size, MSG_NOSIGNAL);
  Finish(sqe, c, op, s_->cqe_skip);
}

uint64_t Ring::NowWallUs() const { return base::WallMicros(); }
uint64_t Ring::NowMonotonicUs() const { return base::MonotonicMicros(); }
uint64_t Ring::NowMonotonicMs() const { return base::MonotonicMillis(); }

int Ring::Socket(int family, int type) {
  const int fd = socket(family, type | SOCK_CLOEXEC, 0);
  return fd >= 0 ? fd : -errno;
}

int Ring::SetSocketOption(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : -errno;
}

int Ring::Bind(int fd, const sockaddr* address, socklen_t size) {
  return bind(fd, address, size) == 0 ? 0 : -errno;
}

int Ring::Shutdown(int fd, int how) { return shutdown(fd, how) == 0 ? 0 : -errno; }
int Ring::CloseNow(int fd) { return close(fd) == 0 ? 0 : -errno; }

void Ring::Connect(Completion* c, int fd, const sockaddr* address, socklen_t size, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_connect(sqe, fd, address, size);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Read(Completion* c, int fd, void* data, unsigned size, uint64_t offset, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_read(sqe, fd, data, size, offset);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Write(Completion* c, int fd, const void* data, unsigned size, uint64_t offset, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_write(sqe, fd, data, size, offset);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Writev(Completion* c, int fd, const iovec* iov, unsigned count, uint64_t offset, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_writev(sqe, fd, iov, count, offset);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Fsync(Completion* c, int fd, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_fsync(sqe, fd, 0);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Fdatasync(Completion* c, int fd, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Openat(Completion* c, int dir_fd, const char* path, int flags, mode_t mode, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_openat(sqe, dir_fd, path, flags, mode);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Close(Completion* c, int fd, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_close(sqe, fd);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Statx(Completion* c, int fd, const char* path, int flags, unsigned mask,
                 struct statx* out, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_statx(sqe, fd, path, flags, mask, out);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Unlinkat(Completion* c, int dir_fd, const char* path, int flags, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_unlinkat(sqe, dir_fd, path, flags);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Renameat(Completion* c, int old_dir, const char* old_path, int new_dir,
                    const char* new_path, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_renameat(sqe, old_dir, old_path, new_dir, new_path, 0);
  Finish(sqe, c, op, s_->cqe_skip);
}

int Ring::Truncate(int fd, uint64_t length) {
  return ftruncate(fd, static_cast<off_t>(length)) == 0 ? 0 : -errno;
}

void Ring::Nop(Completion* c, Op op) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_nop(sqe);
  Finish(sqe, c, op, s_->cqe_skip);
}

void Ring::Timeout(Completion* c, const Timespec* after) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_timeout(
      sqe, const_cast<__kernel_timespec*>(reinterpret_cast<const __kernel_timespec*>(after)), 0, 0);
  Finish(sqe, c, {}, false);
}

void Ring::TimeoutRemove(Completion* c, const Completion* target) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_timeout_remove(sqe, reinterpret_cast<uint64_t>(target), 0);
  Finish(sqe, c, {}, false);
}

void Ring::LinkTimeout(Completion* c, const Timespec* after) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_link_timeout(
      sqe, const_cast<__kernel_timespec*>(reinterpret_cast<const __kernel_timespec*>(after)), 0);
  Finish(sqe, c, {}, false);
}

void Ring::Cancel(Completion* c, const Completion* target) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_cancel(sqe, const_cast<Completion*>(target), 0);
  Finish(sqe, c, {}, false);
}

void Ring::PollAdd(Completion* c, int fd, unsigned events) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_poll_add(sqe, fd, events);
  Finish(sqe, c, {}, false);
}

void Ring::PollRemove(Completion* c, const Completion* target) {
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_poll_remove(sqe, reinterpret_cast<uint64_t>(target));
  Finish(sqe, c, {}, false);
}

void Ring::PostMessage(int target_fd, Completion* target, Completion* on_failure) {
  SLUICE_CHECK(s_->msg_ring);
  io_uring_sqe* sqe = s_->Prepare();
  io_uring_prep_msg_ring(sqe, target_fd, 0, reinterpret_cast<uint64_t>(target), 0);
  Finish(sqe, on_failure, {.skip_success = true}, true);
}

bool Ring::can_post_messages() const { return s_->msg_ring; }
int Ring::fd() const { return s_->ring.ring_fd; }
bool Ring::defer_taskrun() const { return s_->defer_taskrun; }
uint64_t Ring::submitted_total() const { return s_->submitted_total; }
void Ring::SimulateBusyCompletionQueue(unsigned cq_ready) { s_->busy_at_cq_ready = cq_ready; }

int Ring::State::SubmitToKernel() {
  if (busy_at_cq_ready > 0 && io_uring_cq_ready(&ring) >= busy_at_cq_ready) return -EBUSY;
  return io_uring_submit(&ring);
}

void Ring::State::Submit() {
  int rc = SubmitToKernel();
  if (rc == -EBUSY || rc == -EAGAIN) {
    // The completion queue is full (or its overflow list is): the kernel
    // takes no more work until completions are reaped. Move them into the
    // list RunOnce runs (their callbacks run there, never from here), then
    // submit again.
    Reap();
    rc = SubmitToKernel();
  }
  SLUICE_CHECK(rc >= 0 || rc == -EBUSY || rc == -EAGAIN || rc == -EINTR);
  if (rc > 0) submitted_total += static_cast<uint64_t>(rc);
}

void Ring::Submit() { s_->Submit(); }

int Ring::SubmitAndPeekForTest() {
  Submit();
  io_uring_cqe* cqe = nullptr;
  const int rc = io_uring_wait_cqe(&s_->ring, &cqe);
  return rc < 0 ? rc : cqe->res;
}

size_t Ring::State::Reap() {
  io_uring_cqe* cqe = nullptr;
  unsigned head;
  unsigned count = 0;
  io_uring_for_each_cqe(&ring, head, cqe) {
    ++count;
    auto* completion = static_cast<Completion*>(io_uring_cqe_get_data(cqe));
    if (completion != nullptr) reaped.push_back({completion, cqe->res, cqe->flags});
  }
  io_uring_cq_advance(&ring, count);
  return count;
}

int Ring::RunOnce(int timeout_ms) {
  // Completions reaped while preparing (a full CQ, see Submit) are waiting:
  // do not sleep before running them.
  if (!s_->reaped.empty()) timeout_ms = 0;
  io_uring_cqe* cqe = nullptr;
  int rc;
  if (timeout_ms < 0) {
    rc = io_uring_submit_and_wait(&s_->ring, 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
    rc = io_uring_submit_and_wait_timeout(&s_->ring, &cqe, 1, &ts, nullptr);
  }
  SLUICE_CHECK(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN);
  // Reap everything into a list, then run callbacks. A callback may prepare
  // so much that the CQ fills and Submit reaps more into the same list: the
  // loop runs those too, by index, since the list may grow under it.
  s_->Reap();
  size_t ran = 0;
  for (; ran < s_->reaped.size(); ++ran) {
    const State::Reaped r = s_->reaped[ran];
    r.completion->OnComplete(r.result, r.flags);
  }
  s_->reaped.clear();
  return static_cast<int>(ran);
}

}  // namespace sluice::io
