// Bytes of heap per deferred recipient with 1,000,000 deferred recipients
// (the target: at most 300). Measured with mallinfo2(): everything
// the queue set allocates, including hash tables, slabs, heaps and their
// growth slack.
#include <malloc.h>

#include <cstdio>

#include "gtest/gtest.h"
#include "sluice/queue/queue_set.h"

namespace sluice::queue {
namespace {

// uordblks misses chunks malloc serves with mmap (big vectors): add hblkhd.
size_t HeapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

double BytesPerRecipient(int domains, int recipients_per_job) {
  const int total = 1'000'000;
  const int jobs = total / recipients_per_job;
  const int per_domain = jobs / domains;
  const size_t before = HeapInUse();
  double result;
  {
    auto set = std::make_unique<QueueSet>(ShapingPolicy(), RetrySchedule());
    std::vector<std::string> names;
    for (int d = 0; d < domains; ++d) names.push_back("domain" + std::to_string(d) + ".example");
    const size_t names_bytes = HeapInUse() - before;
    uint64_t n = 0;
    size_t recipients = 0;
    for (int d = 0; d < domains; ++d) {
      for (int i = 0; i < per_domain; ++i, ++n) {
        Job job;
        job.message = base::QueueId(((uint64_t{1'700'000'000'000'000} + n) << 8) | 1);
        for (int r = 0; r < recipients_per_job; ++r)
          job.recipients.push_back(static_cast<uint32_t>(r));
        recipients += job.recipients.size();
        set->EnqueueDeferred(names[static_cast<size_t>(d)], std::move(job), kHour + n % 1000, 0);
      }
    }
    size_t deferred = 0;
    set->ForEach([&](DomainQueue& q) { deferred += q.deferred_count(); });
    EXPECT_EQ(deferred, static_cast<size_t>(jobs));
    const size_t used = HeapInUse() - before - names_bytes;
    result = static_cast<double>(used) / static_cast<double>(recipients);
    std::printf("sizeof(Job) %zu, sizeof(DomainQueue) %zu; ", sizeof(Job), sizeof(DomainQueue));
    std::printf(
        "%d domains, %d recipient(s) per job, %zu recipients: %zu bytes, %.1f bytes/recipient\n",
        domains, recipients_per_job, recipients, used, result);
  }
  return result;
}

TEST(QueueMemory, OneRecipientPerJobThousandDomains) {
  EXPECT_LE(BytesPerRecipient(1000, 1), 300.0);
}

TEST(QueueMemory, OneRecipientPerJobOneDomain) { EXPECT_LE(BytesPerRecipient(1, 1), 300.0); }

TEST(QueueMemory, TwoRecipientsPerJob) { EXPECT_LE(BytesPerRecipient(1000, 2), 300.0); }

TEST(QueueMemory, TenRecipientsPerJob) { EXPECT_LE(BytesPerRecipient(1000, 10), 300.0); }

TEST(QueueMemory, HundredThousandDomainsTenJobsEach) {
  EXPECT_LE(BytesPerRecipient(100'000, 1), 300.0);
}

}  // namespace
}  // namespace sluice::queue
