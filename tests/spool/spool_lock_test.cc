// The spool lock on real files: one holder at a time, the holder's PID in
// the refusal, free again once the holder is gone. flock locks belong to an
// open file description, so a second Acquire in this process conflicts
// just as another process would.
#include "sluice/spool/spool_lock.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace sluice::spool {
namespace {

namespace fs = std::filesystem;

TEST(SpoolLock, OneHolderAtATime) {
  char tmpl[] = "/tmp/sluice-lock-test-XXXXXX";
  const std::string root = mkdtemp(tmpl);
  const std::string pid = std::to_string(getpid());
  {
    auto first = SpoolLock::Acquire(root);
    ASSERT_TRUE(first.ok()) << first.status();
    std::ifstream in(root + "/lock");
    std::string text;
    in >> text;
    EXPECT_EQ(text, pid);
    auto second = SpoolLock::Acquire(root);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(second.status().message(),
              "spool " + root + " is in use by pid " + pid + " (lock " + root + "/lock)");
  }
  auto again = SpoolLock::Acquire(root);  // the first is gone
  EXPECT_TRUE(again.ok()) << again.status();
  fs::remove_all(root);
}

TEST(SpoolLock, MissingSpoolIsAnError) {
  auto lock = SpoolLock::Acquire("/nonexistent/sluice/spool");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("open /nonexistent/sluice/spool/lock"), std::string::npos);
}

}  // namespace
}  // namespace sluice::spool
