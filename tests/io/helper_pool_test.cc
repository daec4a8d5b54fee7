// The helper pool with real threads and real eventfds: work runs off the
// submitting thread, `done` runs on it from Drain, the bound holds, and no
// completion is lost when several shards and helpers race.
#include "sluice/io/helper_pool.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::io {
namespace {

class EventFds {
 public:
  explicit EventFds(int n) {
    for (int i = 0; i < n; ++i) fds_.push_back(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
  ~EventFds() {
    for (int fd : fds_) close(fd);
  }
  const std::vector<int>& fds() const { return fds_; }
  // Waits up to 5 s for a wake on `i`, and consumes it.
  bool Wait(int i) const {
    pollfd p{fds_[static_cast<size_t>(i)], POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return false;
    uint64_t v;
    return read(p.fd, &v, sizeof v) == sizeof v;
  }

 private:
  std::vector<int> fds_;
};

std::string ThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

TEST(HelperPool, WorkRunsOnAHelperAndDoneOnTheShard) {
  EventFds wake(1);
  HelperPool pool(wake.fds(), 1, 4);
  std::string worker_name;
  std::thread::id worker, finisher;
  ASSERT_TRUE(pool.Submit(0, {[&] {
                                worker = std::this_thread::get_id();
                                worker_name = ThreadName();
                              },
                              [&] { finisher = std::this_thread::get_id(); }}));
  EXPECT_EQ(pool.in_flight(0), 1u);
  ASSERT_TRUE(wake.Wait(0));
  EXPECT_EQ(pool.Drain(0), 1u);
  EXPECT_EQ(pool.in_flight(0), 0u);
  EXPECT_NE(worker, std::this_thread::get_id());
  EXPECT_EQ(worker_name, "helper-0");
  EXPECT_EQ(finisher, std::this_thread::get_id());
}

TEST(HelperPool, ABusyShardIsRefusedInsteadOfQueueingWithoutBound) {
  EventFds wake(2);
  HelperPool pool(wake.fds(), 1, 2);
  std::atomic<bool> release{false};
  auto blocked = [&] {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  EXPECT_TRUE(pool.Submit(0, {blocked, nullptr}));
  EXPECT_TRUE(pool.Submit(0, {blocked, nullptr}));
  EXPECT_FALSE(pool.Submit(0, {blocked, nullptr}));  // two slots, both held
  EXPECT_TRUE(pool.Submit(1, {nullptr, nullptr}));   // another shard has its own
  release = true;
  size_t drained = 0;
  while (drained < 2 && wake.Wait(0)) drained += pool.Drain(0);
  EXPECT_EQ(drained, 2u);
  EXPECT_TRUE(pool.Submit(0, {nullptr, nullptr}));  // the slots came back
}

TEST(HelperPool, ManyShardsManyHelpersLoseNothing) {
  constexpr int kShards = 3;
  constexpr int kJobs = 20'000;
  EventFds wake(kShards);
  HelperPool pool(wake.fds(), 2, 64);
  std::vector<std::thread> shards;
  std::vector<uint64_t> sums(kShards, 0);
  for (int s = 0; s < kShards; ++s) {
    shards.emplace_back([&, s] {
      int submitted = 0, done = 0;
      uint64_t& sum = sums[static_cast<size_t>(s)];
      while (done < kJobs) {
        while (submitted < kJobs) {
          auto result = std::make_shared<uint64_t>(0);
          const uint64_t k = static_cast<uint64_t>(submitted);
          if (!pool.Submit(s, {[result, k] { *result = k * 2; },
                               [result, &sum, &done] {
                                 sum += *result;
                                 ++done;
                               }})) {
            break;
          }
          ++submitted;
        }
        if (!wake.Wait(s)) return;  // a lost wake-up: the sum check fails
        pool.Drain(s);
      }
    });
  }
  for (std::thread& t : shards) t.join();
  const uint64_t expected = uint64_t{kJobs} * (kJobs - 1);  // sum of 2k for k < kJobs
  for (uint64_t sum : sums) EXPECT_EQ(sum, expected);
}

TEST(HelperPool, StopsWithJobsStillQueued) {
  EventFds wake(1);
  auto pool = std::make_unique<HelperPool>(wake.fds(), 1, 8);
  std::atomic<int> ran{0};
  for (int i = 0; i < 8; ++i) {
    pool->Submit(0, {[&] {
                       std::this_thread::sleep_for(std::chrono::milliseconds(2));
                       ++ran;
                     },
                     nullptr});
  }
  pool.reset();  // joins; what did not start is dropped, nothing crashes
  EXPECT_LE(ran.load(), 8);
}

}  // namespace
}  // namespace sluice::io
