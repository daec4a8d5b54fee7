#include "sluice/io/ring.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"

namespace sluice::io {

absl::StatusOr<std::unique_ptr<Ring>> Ring::Create(unsigned entries) {
  std::unique_ptr<Ring> ring(new Ring());
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
                 IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &ring->ring_, &params);
  if (rc == -EINVAL) {
    // Older kernel (< 6.1): no DEFER_TASKRUN / SINGLE_ISSUER. COOP_TASKRUN
    // (5.19) still avoids needless interrupts; plain setup is the last resort.
    params = io_uring_params{};
    params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &ring->ring_, &params);
    if (rc == -EINVAL) {
      params = io_uring_params{};
      rc = io_uring_queue_init_params(entries, &ring->ring_, &params);
    }
  } else if (rc == 0) {
    ring->defer_taskrun_ = true;
  }
  if (rc < 0) {
    return absl::Status(absl::ErrnoToStatusCode(-rc),
                        absl::StrCat("io_uring_queue_init: ", std::strerror(-rc)));
  }
  if (!(params.features & IORING_FEAT_EXT_ARG)) {
    io_uring_queue_exit(&ring->ring_);
    return absl::FailedPreconditionError("kernel too old: io_uring lacks EXT_ARG (needs 5.11+)");
  }
  ring->initialised_ = true;
  if (io_uring_probe* probe = io_uring_get_probe_ring(&ring->ring_)) {
    ring->msg_ring_ = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) &&
                      (params.features & IORING_FEAT_CQE_SKIP);
    io_uring_free_probe(probe);
  }
  ring->reaped_.reserve(entries * 4);
  return ring;
}

Ring::~Ring() {
  if (initialised_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::Prepare(Completion* completion) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    Submit();
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_sqe_set_data(sqe, completion);
  return sqe;
}

int Ring::SubmitToKernel() {
  if (busy_at_cq_ready_ > 0 && io_uring_cq_ready(&ring_) >= busy_at_cq_ready_) return -EBUSY;
  return io_uring_submit(&ring_);
}

void Ring::Submit() {
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
  if (rc > 0) submitted_total_ += static_cast<uint64_t>(rc);
}

void Ring::PostMessage(int target_ring_fd, Completion* target, Completion* on_failure) {
  SLUICE_CHECK(msg_ring_);
  io_uring_sqe* sqe = Prepare(on_failure);
  io_uring_prep_msg_ring(sqe, target_ring_fd, 0, reinterpret_cast<uint64_t>(target), 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

size_t Ring::Reap() {
  io_uring_cqe* cqe = nullptr;
  unsigned head;
  unsigned count = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++count;
    auto* completion = static_cast<Completion*>(io_uring_cqe_get_data(cqe));
    if (completion != nullptr) reaped_.push_back({completion, cqe->res, cqe->flags});
  }
  io_uring_cq_advance(&ring_, count);
  return count;
}

int Ring::RunOnce(int timeout_ms) {
  // Completions reaped while preparing (a full CQ, see Submit) are waiting:
  // do not sleep before running them.
  if (!reaped_.empty()) timeout_ms = 0;
  io_uring_cqe* cqe = nullptr;
  int rc;
  if (timeout_ms < 0) {
    rc = io_uring_submit_and_wait(&ring_, 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  SLUICE_CHECK(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN);
  // Reap everything into a list, then run callbacks. A callback may prepare
  // so much that the CQ fills and Submit reaps more into the same list: the
  // loop runs those too, by index, since the list may grow under it.
  Reap();
  size_t ran = 0;
  for (; ran < reaped_.size(); ++ran) {
    const Reaped r = reaped_[ran];
    r.completion->OnComplete(r.result, r.flags);
  }
  reaped_.clear();
  return static_cast<int>(ran);
}

absl::StatusOr<std::unique_ptr<BufferRing>> BufferRing::Create(Ring& ring, uint16_t group_id,
                                                               uint32_t count, uint32_t size) {
  SLUICE_CHECK(count > 0 && (count & (count - 1)) == 0 && count <= 32768);
  std::unique_ptr<BufferRing> b(new BufferRing());
  b->ring_ = &ring;
  b->group_id_ = group_id;
  b->count_ = count;
  b->size_ = size;
  const size_t ring_bytes = count * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return absl::ResourceExhaustedError("mmap of buffer ring failed");
  b->br_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(b->br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int rc = io_uring_register_buf_ring(ring.raw(), &reg, 0);
  if (rc < 0) {
    munmap(mem, ring_bytes);
    b->br_ = nullptr;
    return absl::Status(
        absl::ErrnoToStatusCode(-rc),
        absl::StrCat("io_uring_register_buf_ring (needs Linux 5.19+): ", std::strerror(-rc)));
  }
  b->storage_.reset(new char[static_cast<size_t>(count) * size]);
  b->refs_.assign(count, 0);
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(b->br_, b->data(static_cast<uint16_t>(i)), size,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(b->br_, static_cast<int>(count));
  return b;
}

BufferRing::~BufferRing() {
  if (br_ != nullptr) {
    io_uring_unregister_buf_ring(ring_->raw(), group_id_);
    munmap(br_, count_ * sizeof(io_uring_buf));
  }
}

void BufferRing::Release(uint16_t id) {
  SLUICE_CHECK(refs_[id] > 0);
  if (--refs_[id] > 0) return;
  --in_use_;
  io_uring_buf_ring_add(br_, data(id), size_, id, io_uring_buf_ring_mask(count_),
                        static_cast<int>(pending_));
  ++pending_;
}

void BufferRing::Publish() {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(br_, static_cast<int>(pending_));
  pending_ = 0;
}

}  // namespace sluice::io
