// The blocking directory helpers: RemoveTree and InjectBatch on real files.
#include "sluice/pickup/pickup_directory.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace sluice::pickup {
namespace {

namespace fs = std::filesystem;

class PickupDirectoryTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-pickup-dir-test-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string root_;
};

TEST_F(PickupDirectoryTest, RemoveTreeRemovesNestedDirectoriesNotLinkTargets) {
  const std::string tree = root_ + "/x.pickup";
  fs::create_directories(tree + "/a/b/c");
  Write(tree + "/f", "1");
  Write(tree + "/a/b/c/g", "2");
  Write(root_ + "/outside", "keep me");
  fs::create_symlink(root_ + "/outside", tree + "/link");
  fs::create_directory_symlink(root_, tree + "/a/dirlink");
  ASSERT_TRUE(RemoveTree(tree).ok());
  EXPECT_FALSE(fs::exists(tree));
  EXPECT_EQ(Read(root_ + "/outside"), "keep me");
  EXPECT_TRUE(RemoveTree(tree).ok());  // already gone
  Write(root_ + "/plain", "x");
  EXPECT_TRUE(RemoveTree(root_ + "/plain").ok());
  EXPECT_FALSE(fs::exists(root_ + "/plain"));
}

TEST_F(PickupDirectoryTest, RemoveTreeRefusesAbsurdDepth) {
  std::string deep = root_ + "/d";
  for (int i = 0; i < 12; ++i) deep += "/n";
  fs::create_directories(deep);
  EXPECT_FALSE(RemoveTree(root_ + "/d").ok());
}

TEST_F(PickupDirectoryTest, InjectBatchDropsACompleteDirectory) {
  for (const char* d : {"/tmp", "/new", "/bad"}) fs::create_directory(root_ + d);
  Write(root_ + "/source.csv", "email\na@example.net\n");
  std::vector<BatchFile> files(2);
  files[0].name = "manifest.toml";
  files[0].contents = "sender = \"\"\n";
  files[1].name = "r.csv";
  files[1].copy_from = root_ + "/source.csv";
  auto name = InjectBatch(root_, files);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(name->substr(name->size() - 6), ".batch");
  const std::string dir = root_ + "/new/" + *name;
  EXPECT_EQ(Read(dir + "/manifest.toml"), "sender = \"\"\n");
  EXPECT_EQ(Read(dir + "/r.csv"), "email\na@example.net\n");
  EXPECT_TRUE(fs::is_empty(root_ + "/tmp"));
  // A source that cannot be read: nothing is left behind.
  files[1].copy_from = root_ + "/missing.csv";
  auto failed = InjectBatch(root_, files);
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(fs::is_empty(root_ + "/tmp"));
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ + "/new"), fs::directory_iterator()), 1);
  // Missing directories: an error naming them, nothing created.
  auto missing = InjectBatch(root_ + "/nowhere", files);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("nowhere/tmp is missing"),
            std::string::npos)
      << missing.status();
  EXPECT_FALSE(fs::exists(root_ + "/nowhere"));
}

}  // namespace
}  // namespace sluice::pickup
