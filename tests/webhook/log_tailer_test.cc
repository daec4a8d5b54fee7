// LogTailer on real files: whole lines only, rotation with a late write to
// the old file, resuming in a rotated file, a lost file, truncation.
#include "sluice/webhook/log_tailer.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace sluice::webhook {
namespace {

class LogTailerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/webhook_tailer_testXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/sluice.log";
    Append(path_, "");
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  static void Append(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::app) << text;
  }
  // Every line available now, consumed.
  static std::vector<std::string> Drain(LogTailer& t, uint64_t now) {
    std::vector<std::string> out;
    while (auto line = t.Peek(now)) {
      out.emplace_back(*line);
      t.Consume();
    }
    return out;
  }
  using Lines = std::vector<std::string>;

  std::string dir_, path_;
};

TEST_F(LogTailerTest, NewWebhookStartsAtTheEndAndReadsWholeLines) {
  Append(path_, "old\n");
  LogTailer t(path_);
  ASSERT_TRUE(t.Start(std::nullopt).ok());
  EXPECT_EQ(t.position().offset, 4u);
  EXPECT_EQ(Drain(t, 0), Lines{});
  Append(path_, "a\nb");
  EXPECT_EQ(Drain(t, 0), Lines{"a"});
  auto peek = t.Peek(0);
  EXPECT_FALSE(peek.has_value());
  Append(path_, "c\n");
  auto again = t.Peek(0);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*t.Peek(0), "bc");  // not consumed: the same line
  t.Consume();
  EXPECT_EQ(t.position().offset, 9u);
  EXPECT_EQ(t.lag_bytes(), 0u);
}

TEST_F(LogTailerTest, RotationFinishesTheOldFileFirst) {
  LogTailer t(path_);
  ASSERT_TRUE(t.Start(std::nullopt).ok());
  Append(path_, "a1\n");
  EXPECT_EQ(Drain(t, 0), Lines{"a1"});
  const uint64_t old_ino = t.position().ino;
  ASSERT_EQ(rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  Append(path_, "b1\n");
  t.Poll(100);
  Append(path_ + ".1", "a2\n");  // a shard's write in flight at the reopen
  EXPECT_EQ(Drain(t, 100 + kRotationGraceMs - 1), Lines{"a2"});
  EXPECT_EQ(t.position().ino, old_ino);
  EXPECT_EQ(t.lag_bytes(), 3u);
  EXPECT_EQ(Drain(t, 100 + kRotationGraceMs), Lines{"b1"});
  EXPECT_NE(t.position().ino, old_ino);
  EXPECT_EQ(t.position().offset, 3u);
}

TEST_F(LogTailerTest, TwoRotationsBothKept) {
  LogTailer t(path_);
  ASSERT_TRUE(t.Start(std::nullopt).ok());
  Append(path_, "a\n");
  rename(path_.c_str(), (path_ + ".1").c_str());
  Append(path_, "b\n");
  t.Poll(0);
  rename((path_ + ".1").c_str(), (path_ + ".2").c_str());
  rename(path_.c_str(), (path_ + ".1").c_str());
  unlink((path_ + ".2").c_str());  // deleted: still readable through the fd
  Append(path_, "c\n");
  t.Poll(0);
  EXPECT_EQ(Drain(t, 10 * kRotationGraceMs), (Lines{"a", "b", "c"}));
}

TEST_F(LogTailerTest, ResumesInARotatedFile) {
  Append(path_, "a1\na2\n");
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  const Position saved{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), 3};
  rename(path_.c_str(), (path_ + "-20261207").c_str());
  Append(path_ + ".gz", "ignored\n");
  Append(path_, "b1\n");
  LogTailer t(path_);
  ASSERT_TRUE(t.Start(saved).ok());
  EXPECT_EQ(Drain(t, 0), (Lines{"a2", "b1"}));
}

TEST_F(LogTailerTest, LostFileStartsTheCurrentOneFromZero) {
  Append(path_, "x\n");
  LogTailer t(path_);
  ASSERT_TRUE(t.Start(Position{1, 999999999, 50}).ok());
  EXPECT_EQ(Drain(t, 0), Lines{"x"});
}

TEST_F(LogTailerTest, PartialLineCutBackIsDropped) {
  LogTailer t(path_);
  ASSERT_TRUE(t.Start(std::nullopt).ok());
  Append(path_, "a\n{\"type\":\"Deliv");  // a failed write's fragment
  EXPECT_EQ(Drain(t, 0), Lines{"a"});
  ASSERT_EQ(truncate(path_.c_str(), 2), 0);  // the log cuts it back out
  Append(path_, "b\n");
  EXPECT_EQ(Drain(t, 0), Lines{"b"});  // not "a" again, not the fragment
  EXPECT_EQ(t.position().offset, 4u);
}

TEST_F(LogTailerTest, TruncatedFileReadAgain) {
  Append(path_, "a\nb\n");
  struct stat st;
  stat(path_.c_str(), &st);
  LogTailer t(path_);
  ASSERT_TRUE(
      t.Start(Position{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), 100})
          .ok());
  EXPECT_EQ(Drain(t, 0), (Lines{"a", "b"}));
  truncate(path_.c_str(), 0);  // copytruncate
  Append(path_, "c\n");
  EXPECT_EQ(Drain(t, 0), Lines{"c"});
}

}  // namespace
}  // namespace sluice::webhook
