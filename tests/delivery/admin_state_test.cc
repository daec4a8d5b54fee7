// admin.state: encoding round trip, the seal, expired suspensions, reasons
// cleaned, and AdminStore writing the file atomically and reading it back.
#include "sluice/delivery/admin_state.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace sluice::delivery {
namespace {

AdminState Sample() {
  AdminState s;
  s.suspensions.push_back({"d1.example", 100, 0, "until resumed"});
  s.suspensions.push_back({"d2.example", 100, 5000, "window, ticket 42"});
  s.held_ids.push_back(base::QueueId(0x1234567));
  s.held_domains.push_back("d3.example");
  return s;
}

TEST(AdminState, RoundTrip) {
  const std::string text = EncodeAdminState(Sample());
  auto parsed = ParseAdminState(text, 1000);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->suspensions.size(), 2u);
  EXPECT_EQ(parsed->suspensions[1].reason, "window, ticket 42");
  EXPECT_EQ(parsed->suspensions[1].until_us, 5000u);
  EXPECT_EQ(parsed->held_ids, Sample().held_ids);
  EXPECT_EQ(parsed->held_domains, Sample().held_domains);
  EXPECT_EQ(EncodeAdminState(*parsed), text);
}

TEST(AdminState, EndedSuspensionsAreDropped) {
  auto parsed = ParseAdminState(EncodeAdminState(Sample()), 6000);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->suspensions.size(), 1u);
  EXPECT_EQ(parsed->suspensions[0].domain, "d1.example");
}

TEST(AdminState, EveryChangedByteBreaksTheSeal) {
  const std::string text = EncodeAdminState(Sample());
  for (size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] ^= 0x01;
    EXPECT_FALSE(ParseAdminState(bad, 0).ok()) << "byte " << i;
  }
  EXPECT_FALSE(ParseAdminState(text.substr(0, text.size() / 2), 0).ok()) << "torn";
  EXPECT_FALSE(ParseAdminState("", 0).ok());
}

TEST(AdminState, ReasonsAreOneBoundedLine) {
  EXPECT_EQ(CleanReason("a\nb\tc\x7f"), "a b c");
  EXPECT_EQ(CleanReason(std::string(500, 'x')).size(), kMaxReasonSize);
  AdminState s;
  s.suspensions.push_back({"d.example", 1, 0, "line\nbreak"});
  auto parsed = ParseAdminState(EncodeAdminState(s), 0);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->suspensions[0].reason, "line break");
}

TEST(AdminStore, WritesAndLoadsTheFile) {
  char tmpl[] = "/tmp/sluice-admin-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    AdminStore store(dir);
    ASSERT_TRUE(store.Load(0).ok()) << "a missing file is an empty state";
    EXPECT_TRUE(store.Snapshot().held_ids.empty());
    ASSERT_TRUE(store.Update([](AdminState& s) { s = Sample(); }, 1000).ok());
  }
  EXPECT_NE(access((dir + "/admin.state").c_str(), R_OK), -1);
  EXPECT_EQ(access((dir + "/admin.state.tmp").c_str(), F_OK), -1) << "renamed into place";
  AdminStore again(dir);
  ASSERT_TRUE(again.Load(1000).ok());
  EXPECT_EQ(again.Snapshot().held_domains, Sample().held_domains);
  EXPECT_EQ(again.Snapshot().suspensions.size(), 2u);
  // A damaged file refuses to load, with its reason.
  {
    std::ofstream f(dir + "/admin.state", std::ios::app);
    f << "hold-id 0CRAR9BEAEG81\n";
  }
  AdminStore damaged(dir);
  const absl::Status s = damaged.Load(0);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("seal"), std::string::npos) << s;
  std::remove((dir + "/admin.state").c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace sluice::delivery
