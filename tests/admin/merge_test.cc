// Merging the shards' control replies (admin/merge.h): the documents
// `sluice queue --json` prints and the HTTP admin API returns.
#include "sluice/admin/merge.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::admin {
namespace {

std::vector<JsonValue> Replies(const std::vector<std::string>& texts) {
  auto parsed = ParseReplies(texts);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : std::vector<JsonValue>{};
}

TEST(Merge, ParseRepliesTurnsAShardErrorIntoTheCallsError) {
  auto e = ParseReplies({"[]", "{\"error\":\"delivery is disabled (--no-delivery)\"}"});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e.status().message(), "delivery is disabled (--no-delivery)");
  auto bad = ParseReplies({"{\"a\":"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInternal);
}

TEST(Merge, ListSortsEveryShardsQueuesByDomain) {
  const Outcome o = MergeList(Replies({"[{\"domain\":\"b.test\",\"ready\":1,\"suspended\":false}]",
                                       "[{\"domain\":\"a.test\",\"ready\":2}]", "[]"}));
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(o.json,
            "[\n{\"domain\":\"a.test\",\"ready\":2},\n"
            "{\"domain\":\"b.test\",\"ready\":1,\"suspended\":false}\n]");
  EXPECT_EQ(MergeList(Replies({"[]", "[]"})).json, "[\n]");
}

TEST(Merge, StatsAddsCountersButNotTheShardNumber) {
  const Outcome o = MergeStats(Replies({"{\"shard\":0,\"delivered\":3,\"deferred\":1}",
                                        "{\"shard\":1,\"delivered\":4,\"deferred\":0}"}));
  EXPECT_EQ(o.json,
            "{\"shards\":[\n  {\"shard\":0,\"delivered\":3,\"deferred\":1},\n  "
            "{\"shard\":1,\"delivered\":4,\"deferred\":0}\n],\n\"totals\":{\"delivered\":7,"
            "\"deferred\":1}}");
}

TEST(Merge, FlushSuspendResume) {
  EXPECT_EQ(MergeFlush(Replies({"{\"domains\":2}", "{\"domains\":1}"}), "").json,
            "{\"domains_flushed\":3}");
  const Outcome none = MergeFlush(Replies({"{\"domains\":0}"}), "x.test");
  EXPECT_EQ(none.status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(none.status.message(), "no mail queued for x.test");

  const Outcome s = MergeSuspend(
      Replies({"{\"owner\":false}", "{\"owner\":true,\"recipients\":5,\"saved\":true}"}), "x.test",
      17, "maintenance \"now\"");
  ASSERT_TRUE(s.status.ok());
  EXPECT_EQ(s.count, 5u);
  EXPECT_TRUE(s.warnings.empty());
  EXPECT_EQ(s.json,
            "{\"domain\":\"x.test\",\"until_us\":17,\"reason\":\"maintenance \\\"now\\\"\","
            "\"recipients\":5}");
  const Outcome unsaved = MergeSuspend(
      Replies({"{\"owner\":true,\"recipients\":0,\"saved\":false,\"save_error\":\"disk full\"}"}),
      "x.test", 0, "");
  ASSERT_EQ(unsaved.warnings.size(), 2u);
  EXPECT_NE(unsaved.warnings[0].find("disk full"), std::string::npos);
  EXPECT_EQ(unsaved.warnings[1], "no mail queued for x.test; suspended anyway");
  EXPECT_EQ(MergeSuspend(Replies({"{\"owner\":false}"}), "x.test", 0, "").status.code(),
            absl::StatusCode::kFailedPrecondition);

  EXPECT_EQ(
      MergeResume(Replies({"{\"owner\":true,\"was_suspended\":true,\"saved\":true}"}), "x.test")
          .json,
      "{\"domain\":\"x.test\",\"resumed\":true}");
  EXPECT_EQ(
      MergeResume(Replies({"{\"owner\":true,\"was_suspended\":false}"}), "x.test").status.message(),
      "x.test is not suspended");
}

TEST(Merge, SelectionTotalsAndRefusals) {
  const Outcome b = MergeSelection(
      Replies({"{\"recipients\":2,\"in_flight\":1}", "{\"recipients\":3,\"in_flight\":0}"}),
      "bounce", "", "x.test");
  ASSERT_TRUE(b.status.ok());
  EXPECT_EQ(b.json,
            "{\"action\":\"bounce\",\"domain\":\"x.test\",\"recipients\":5,\"in_flight\":1}");
  const Outcome none =
      MergeSelection(Replies({"{\"recipients\":0,\"in_flight\":0}"}), "bounce", "ABC", "");
  EXPECT_EQ(none.status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(none.status.message(), "no queued mail with id ABC");
  const Outcome hold =
      MergeSelection(Replies({"{\"recipients\":0,\"in_flight\":0,\"owner\":true,\"saved\":true}"}),
                     "hold", "", "x.test");
  ASSERT_TRUE(hold.status.ok());
  EXPECT_EQ(hold.warnings.size(), 1u);
  EXPECT_EQ(MergeSelection(Replies({"{\"held\":false}"}), "release", "", "x.test").status.message(),
            "domain x.test is not held");
}

TEST(Merge, JobsConcatenatesEveryShard) {
  const Outcome o =
      MergeJobs(Replies({"{\"truncated\":false,\"jobs\":[{\"id\":\"A\",\"recipients\":[0,1],"
                         "\"error\":\"4\\u0000\"}]}",
                         "{\"truncated\":true,\"jobs\":[]}"}));
  EXPECT_EQ(o.count, 1u);
  EXPECT_EQ(
      o.json,
      "{\"truncated\":true,\"jobs\":[\n{\"id\":\"A\",\"recipients\":[0,1],\"error\":\"4\\u0000\"}"
      "\n]}");
  EXPECT_EQ(MergeJobs(Replies({"{\"truncated\":false,\"jobs\":[]}"})).json,
            "{\"truncated\":false,\"jobs\":[]}");
}

TEST(Merge, DurationsAndDomains) {
  EXPECT_EQ(*ParseDurationSeconds("90"), 90u);
  EXPECT_EQ(*ParseDurationSeconds("2h"), 7200u);
  EXPECT_EQ(*ParseDurationSeconds("1d"), 86400u);
  EXPECT_FALSE(ParseDurationSeconds("0s").ok());
  EXPECT_FALSE(ParseDurationSeconds("1w").ok());
  EXPECT_FALSE(ParseDurationSeconds("").ok());
  EXPECT_EQ(NormalDomain("Ex.Ample.."), "ex.ample");
}

}  // namespace
}  // namespace sluice::admin
