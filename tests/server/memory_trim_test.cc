// TrimFreeMemory and MemoryTrimSchedule (server/memory_trim.h): the schedule's
// arithmetic, and that a trim really gives a fragmented arena's free pages
// back to the kernel (measured in this process's resident set).
#include "sluice/server/memory_trim.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

namespace sluice::server {
namespace {

TEST(MemoryTrimScheduleTest, ZeroIntervalNeverTrims) {
  MemoryTrimSchedule s(0, 1000);
  EXPECT_FALSE(s.enabled());
  EXPECT_EQ(s.MsUntilDue(1000), UINT64_MAX);
  EXPECT_FALSE(s.RunIfDue(UINT64_MAX - 1));
  EXPECT_EQ(s.trims(), 0u);
}

TEST(MemoryTrimScheduleTest, DueEveryIntervalFromTheLastTrim) {
  MemoryTrimSchedule s(10, 1000);
  EXPECT_TRUE(s.enabled());
  EXPECT_EQ(s.MsUntilDue(1000), 10'000u);
  EXPECT_EQ(s.MsUntilDue(10'999), 1u);
  EXPECT_FALSE(s.RunIfDue(10'999));
  EXPECT_EQ(s.MsUntilDue(11'000), 0u);
  EXPECT_TRUE(s.RunIfDue(11'000));
  EXPECT_EQ(s.trims(), 1u);
  EXPECT_EQ(s.MsUntilDue(11'000), 10'000u);
  // Late by 25 s (a stopped process): one trim, then a full interval again,
  // not two more in a row to catch up.
  EXPECT_TRUE(s.RunIfDue(46'000));
  EXPECT_FALSE(s.RunIfDue(46'001));
  EXPECT_EQ(s.MsUntilDue(46'000), 10'000u);
  EXPECT_EQ(s.trims(), 2u);
}

uint64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// What a shard's heap looks like after a burst: a thread (so its own glibc
// arena, as a shard thread has) allocated 64 MiB in 16 KiB chunks (below
// the mmap threshold: they come from the arena) and freed all but one in
// 64, the last one included. The survivors pin the heap: nothing is free at
// its top, so free() alone gives nothing back.
TEST(TrimFreeMemoryTest, ReturnsFreePagesInsideAThreadsHeap) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "malloc_trim is glibc's";
#endif
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan's allocator replaces glibc's arenas";
#endif
  constexpr size_t kChunk = 16 << 10;
  constexpr size_t kChunks = 4096;  // 64 MiB
  std::vector<char*> kept;
  std::thread burst([&] {
    std::vector<char*> all(kChunks);
    for (char*& p : all) {
      p = static_cast<char*>(std::malloc(kChunk));
      ASSERT_NE(p, nullptr);
      std::memset(p, 0x5a, kChunk);  // resident
    }
    for (size_t i = 0; i < kChunks; ++i) {
      if (i % 64 == 63) {
        kept.push_back(all[i]);
      } else {
        std::free(all[i]);
      }
    }
  });
  burst.join();
  const uint64_t before = ResidentBytes();
  ASSERT_GT(before, 0u);
  const auto start = std::chrono::steady_clock::now();
  TrimFreeMemory();
  const auto took = std::chrono::steady_clock::now() - start;
  const uint64_t after = ResidentBytes();
  std::printf("trim of a 64 MiB heap with 63 MiB free: %.2f ms, resident %llu -> %llu MiB\n",
              std::chrono::duration<double, std::milli>(took).count(),
              static_cast<unsigned long long>(before >> 20),
              static_cast<unsigned long long>(after >> 20));
  // 63 MiB are free; at least half of it must have left the resident set.
  const uint64_t freed = (kChunks - kept.size()) * kChunk;
  EXPECT_LT(after + freed / 2, before)
      << "resident before " << (before >> 20) << " MiB, after " << (after >> 20) << " MiB";
  for (char* p : kept) {
    EXPECT_EQ(p[0], 0x5a);  // what is in use stays intact
    std::free(p);
  }
}

}  // namespace
}  // namespace sluice::server
