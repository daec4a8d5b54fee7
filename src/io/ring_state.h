// The liburing side of io::Ring (private to src/io): the ring itself, the
// kernel's features, and the list completions are reaped into before their
// callbacks run.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <vector>

#include "sluice/io/ring.h"

namespace sluice::io {

struct Ring::State {
  struct Reaped {
    Completion* completion;
    int result;
    uint32_t flags;
  };

  // A fresh SQE (the caller sets its user_data after prep_*).
  // Never fails: flushes the SQ to the kernel when it is full, and reaps
  // the CQ (callbacks run later, in RunOnce) when the kernel refuses new
  // work because the CQ is full.
  io_uring_sqe* Prepare();
  void Submit();
  int SubmitToKernel();
  // Moves every completion in the CQ to reaped; returns how many CQEs.
  size_t Reap();

  io_uring ring{};
  bool initialised = false;
  bool defer_taskrun = false;
  bool msg_ring = false;
  bool cqe_skip = false;
  uint64_t submitted_total = 0;
  unsigned busy_at_cq_ready = 0;
  std::vector<Reaped> reaped;
};

}  // namespace sluice::io
