// Position files: the text round-trips, damage is refused, saves are whole.
#include "sluice/webhook/position.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace sluice::webhook {
namespace {

TEST(PositionTest, RoundTrip) {
  const Position p{2049, 123456789, 987654321012ull};
  const std::string text = EncodePosition(p);
  EXPECT_EQ(text.back(), '\n');
  auto back = DecodePosition(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, p);
}

TEST(PositionTest, DamageRefused) {
  const std::string text = EncodePosition(Position{1, 2, 3});
  EXPECT_FALSE(DecodePosition(text.substr(0, text.size() - 1)).ok());  // cut short
  EXPECT_FALSE(DecodePosition("").ok());
  std::string flipped = text;
  flipped[flipped.find("offset=3") + 7] = '4';
  EXPECT_FALSE(DecodePosition(flipped).ok());
  std::string bad_crc = text;
  bad_crc[bad_crc.size() - 2] = bad_crc[bad_crc.size() - 2] == '0' ? '1' : '0';
  EXPECT_FALSE(DecodePosition(bad_crc).ok());
  EXPECT_FALSE(DecodePosition("sluice-webhook-position 1 dev=1 ino=2\n").ok());
}

TEST(PositionTest, SaveAndLoad) {
  char dir[] = "/tmp/webhook_position_testXXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/hook.position";
  auto none = LoadPosition(path);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(SavePosition(path, Position{1, 2, 3}).ok());
  ASSERT_TRUE(SavePosition(path, Position{1, 2, 400}).ok());
  auto got = LoadPosition(path);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, (Position{1, 2, 400}));
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0);  // renamed away
  std::ofstream(path) << "junk\n";
  EXPECT_FALSE(LoadPosition(path).ok());
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace sluice::webhook
