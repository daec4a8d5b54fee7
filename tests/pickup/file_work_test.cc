// The pickup thread's file work (src/pickup/file_work.h, batch_work.h) on
// real directories: claims, reads, rejections, the byte budget, a batch
// read in steps and released.
#include "file_work.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "batch_work.h"
#include "gtest/gtest.h"
#include "sluice/pickup/pickup_directory.h"

namespace sluice::pickup::internal {
namespace {

namespace fs = std::filesystem;

class FileWorkTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-file-work-XXXXXX";
    root_ = mkdtemp(tmpl);
    for (const char* d : {"/new", "/bad", "/claimed"}) fs::create_directory(root_ + d);
    files_ = std::make_unique<PickupFiles>(root_, root_ + "/claimed");
    ASSERT_TRUE(files_->Open().ok());
  }
  void TearDown() override { fs::remove_all(root_); }

  void Drop(const std::string& name, const std::string& text) {
    std::ofstream(root_ + "/new/" + name) << text;
  }
  Item Fresh(const std::string& name, uint64_t n) {
    Item item;
    item.name = name;
    item.id = base::QueueId{n};
    item.claimed_name = item.id.ToString() + ".pickup";
    item.claimed_path = root_ + "/claimed/" + item.claimed_name;
    item.fresh = true;
    return item;
  }

  std::string root_;
  std::unique_ptr<PickupFiles> files_;
};

const char kGood[] =
    "X-Sluice-Envelope-From: <a@example.com>\r\nX-Sluice-Envelope-To: <b@example.com>\r\n"
    "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n";

TEST_F(FileWorkTest, ClaimsReadsAndRejects) {
  Drop("good", kGood);
  Drop("bad", "no header here\r\n");
  std::vector<Item> items = {Fresh("good", 1), Fresh("bad", 2), Fresh("gone", 3)};
  std::vector<Taken> taken = TakeFiles(*files_, items, Limits{}, 1 << 20);
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_EQ(taken[0].kind, Taken::Kind::kMessage);
  EXPECT_EQ(taken[0].message.sender, "a@example.com");
  EXPECT_TRUE(fs::exists(items[0].claimed_path));  // claimed, still there
  EXPECT_FALSE(fs::exists(root_ + "/new/good"));
  EXPECT_EQ(taken[1].kind, Taken::Kind::kRejected) << taken[1].reason;
  EXPECT_TRUE(fs::exists(root_ + "/bad/bad"));
  std::ifstream note(root_ + "/bad/bad.error");
  std::string line;
  std::getline(note, line);
  EXPECT_EQ(line, taken[1].reason);
  EXPECT_EQ(taken[2].kind, Taken::Kind::kLost);  // nothing to claim

  // A second "bad" never overwrites the first one in bad/.
  Drop("bad", "still no header\r\n");
  taken = TakeFiles(*files_, {Fresh("bad", 4)}, Limits{}, 1 << 20);
  EXPECT_EQ(taken[0].kind, Taken::Kind::kRejected);
  EXPECT_TRUE(fs::exists(root_ + "/bad/bad." + base::QueueId{4}.ToString()));
}

TEST_F(FileWorkTest, ByteBudgetLeavesTheRestUntried) {
  Drop("one", kGood);
  Drop("two", kGood);
  std::vector<Taken> taken =
      TakeFiles(*files_, {Fresh("one", 1), Fresh("two", 2)}, Limits{}, /*byte_budget=*/1);
  EXPECT_EQ(taken[0].kind, Taken::Kind::kMessage);
  EXPECT_EQ(taken[1].kind, Taken::Kind::kNotTried);
  EXPECT_TRUE(taken[1].item.fresh);
  EXPECT_TRUE(fs::exists(root_ + "/new/two"));  // not claimed
}

TEST_F(FileWorkTest, ABatchIsReadInStepsAndReleased) {
  const std::string dir = root_ + "/new/x.batch";
  fs::create_directory(dir);
  std::ofstream(dir + "/manifest.toml")
      << "sender = \"a@example.com\"\ntemplate = \"t.eml\"\nrecipients = \"r.csv\"\n";
  std::ofstream(dir + "/t.eml") << "From: a@example.com\r\nTo: {{email}}\r\n\r\nhi\r\n";
  std::string csv = "email\n";
  for (int i = 0; i < 200; ++i) csv += "user" + std::to_string(i) + "@example.com\n";
  csv += "not an address\n";
  std::ofstream(dir + "/r.csv") << csv;
  std::vector<Taken> taken = TakeFiles(*files_, {Fresh("x.batch", 7)}, Limits{}, 1 << 20);
  ASSERT_EQ(taken[0].kind, Taken::Kind::kBatch);

  BatchState b;
  b.item = taken[0].item;
  BatchProgress p = OpenBatch(*files_, b);
  ASSERT_EQ(p.kind, BatchProgress::Kind::kMore) << p.reason << p.error;
  int steps = 0;
  while (p.kind == BatchProgress::Kind::kMore && steps < 1000) {
    p = ReadBatchChunk(*files_, b, 512);
    ++steps;
  }
  ASSERT_EQ(p.kind, BatchProgress::Kind::kReady) << p.reason << p.error;
  EXPECT_GT(steps, 5);
  EXPECT_EQ(b.builder->accepted(), 200u);
  EXPECT_EQ(b.builder->skipped(), 1u);
  EXPECT_TRUE(p.report_error.empty()) << p.report_error;
  EXPECT_TRUE(fs::exists(root_ + "/bad/x.batch.error"));

  BatchReleased r = ReleaseBatch(*files_, b.item);
  EXPECT_TRUE(r.rename_error.empty() && r.remove_error.empty());
  EXPECT_FALSE(fs::exists(b.item.claimed_path));
  EXPECT_FALSE(fs::exists(r.done_path));
}

}  // namespace
}  // namespace sluice::pickup::internal
