#include "sluice/base/crc32c.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(0, zeros.data(), zeros.size()), 0x8a9136aau);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(0, ones.data(), ones.size()), 0x62a8ab43u);
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xe3069283u);
}

TEST(Crc32c, IncrementalEqualsWhole) {
  std::string text = "The quick brown fox jumps over the lazy dog, many times over.";
  uint32_t whole = Crc32c(0, text.data(), text.size());
  for (size_t split = 0; split <= text.size(); ++split) {
    uint32_t part = Crc32c(0, text.data(), split);
    EXPECT_EQ(Crc32c(part, text.data() + split, text.size() - split), whole);
  }
}

}  // namespace
}  // namespace sluice::base
