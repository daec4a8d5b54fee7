// The helper pool (helper_pool.h): threads that run blocking or CPU-heavy
// work for the shards and post the results back through each shard's wake-up
// eventfd.
#include "sluice/io/helper_pool.h"

#include <pthread.h>
#include <unistd.h>

#include <bit>
#include <string>

#include "sluice/base/check.h"

namespace sluice::io {

HelperPool::HelperPool(std::vector<int> wake_fds, int threads, size_t slots_per_shard,
                       std::string name)
    : slots_(std::bit_ceil(std::max<size_t>(slots_per_shard, 2))), name_(std::move(name)) {
  SLUICE_CHECK(threads >= 1);
  for (int fd : wake_fds) {
    lanes_.push_back(std::make_unique<Lane>(slots_));
    lanes_.back()->wake_fd = fd;
  }
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { Run(i); });
}

HelperPool::~HelperPool() {
  stopping_.store(true, std::memory_order_release);
  work_seq_.fetch_add(1, std::memory_order_release);
  work_seq_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool HelperPool::Submit(int shard, Job job) {
  Lane& lane = *lanes_[static_cast<size_t>(shard)];
  if (lane.in_flight >= slots_) return false;
  // Room is certain: the ring holds at most in_flight requests.
  SLUICE_CHECK(lane.requests.TryPush(std::move(job)));
  ++lane.in_flight;
  work_seq_.fetch_add(1, std::memory_order_release);
  work_seq_.notify_one();
  return true;
}

size_t HelperPool::Drain(int shard) {
  Lane& lane = *lanes_[static_cast<size_t>(shard)];
  size_t ran = 0;
  while (std::optional<Job> job = lane.completions.TryPop()) {
    SLUICE_CHECK(lane.in_flight > 0);
    --lane.in_flight;
    ++ran;
    if (job->done) job->done();
  }
  return ran;
}

std::optional<std::pair<size_t, HelperPool::Job>> HelperPool::Next() {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t n = lanes_.size();
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (next_lane_ + k) % n;
    if (std::optional<Job> job = lanes_[i]->requests.TryPop()) {
      next_lane_ = (i + 1) % n;
      return std::make_pair(i, std::move(*job));
    }
  }
  return std::nullopt;
}

void HelperPool::Run(int index) {
  const std::string name = name_ + "-" + std::to_string(index);
  pthread_setname_np(pthread_self(), name.c_str());
  while (!stopping_.load(std::memory_order_acquire)) {
    // Read the sequence before looking, so a Submit after the look changes
    // it and the wait returns at once: no lost wake-up.
    const uint32_t seen = work_seq_.load(std::memory_order_acquire);
    std::optional<std::pair<size_t, Job>> next = Next();
    if (!next) {
      work_seq_.wait(seen, std::memory_order_acquire);
      continue;
    }
    auto& [lane_index, job] = *next;
    if (job.work) job.work();
    Lane& lane = *lanes_[lane_index];
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A completion holds the slot its request held: never full.
      SLUICE_CHECK(lane.completions.TryPush(std::move(job)));
    }
    const uint64_t one = 1;
    ssize_t n = write(lane.wake_fd, &one, sizeof one);
    (void)n;  // EAGAIN only when the counter is saturated: a wake is pending anyway
  }
}

}  // namespace sluice::io
