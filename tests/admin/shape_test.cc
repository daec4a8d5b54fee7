// The queue's shape (admin/shape.h): shards' counts added per domain and
// bucket, ranked, the rest summed as "other", and the document both
// `sluice queue shape --json` and GET /api/admin/v1/shape print.
#include "sluice/admin/shape.h"

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

TEST(Shape, CommandNamesTheEdges) {
  EXPECT_EQ(ShapeCommand(), "shape 300 600 1200 2400 4800 9600");
  EXPECT_EQ(ShapeLabels().size(), ShapeEdges().size() + 1);
}

TEST(Shape, AddsShardsRanksAndSumsTheRest) {
  // The same domain on two shards (an in-flight job on a non-owner) adds up.
  const std::vector<JsonValue> replies = Replies(
      {"[{\"domain\":\"a.test\",\"counts\":[1,0,0,0,0,0,2]},"
       "{\"domain\":\"b.test\",\"counts\":[4,0,0,0,0,0,0]}]",
       "[{\"domain\":\"a.test\",\"counts\":[0,1]},{\"domain\":\"c.test\",\"counts\":[0,0,1]},"
       "{\"domain\":\"z.test\",\"counts\":[0,0,0,0,0,0,0]}]"});
  ShapeCounts counts;
  AddShapeReplies(replies, counts);
  const Shape s = RankShape(counts, 2);
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.rows[0].domain, "a.test");  // 4, ties broken by name
  EXPECT_EQ(s.rows[0].counts, (std::vector<uint64_t>{1, 1, 0, 0, 0, 0, 2}));
  EXPECT_EQ(s.rows[1].domain, "b.test");
  EXPECT_EQ(s.total.total, 9u);
  EXPECT_EQ(s.other_domains, 1u);  // c.test; z.test has nothing and is no row
  EXPECT_EQ(s.other.counts, (std::vector<uint64_t>{0, 0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(RankShape(counts, 0).rows.size(), 3u);  // 0: every domain
}

TEST(Shape, MergeIsTheCliDocument) {
  const Outcome o = MergeShape(Replies({"[{\"domain\":\"a.test\",\"counts\":[2]}]"}), 10);
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(o.json,
            "{\"source\":\"daemon\",\"buckets\":[\"0-5m\",\"5-10m\",\"10-20m\",\"20-40m\","
            "\"40-80m\",\"80-160m\",\"160m+\"],\"edges_s\":[300,600,1200,2400,4800,9600],"
            "\"total\":{\"total\":2,\"counts\":[2,0,0,0,0,0,0]},\"domains\":[\n"
            "{\"domain\":\"a.test\",\"total\":2,\"counts\":[2,0,0,0,0,0,0]}],\n"
            "\"other\":{\"domains\":0,\"total\":0,\"counts\":[0,0,0,0,0,0,0]}}");
}

TEST(Shape, SpoolRecipientsFallInTheirBucket) {
  ShapeCounts counts;
  AddShapeRecipient(counts, "a.test", 0);
  AddShapeRecipient(counts, "a.test", 299);
  AddShapeRecipient(counts, "a.test", 300);
  AddShapeRecipient(counts, "a.test", 1'000'000);
  EXPECT_EQ(counts["a.test"], (std::vector<uint64_t>{2, 1, 0, 0, 0, 0, 1}));
}

}  // namespace
}  // namespace sluice::admin
