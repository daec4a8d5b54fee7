// Filtering accounting lines by type and joining them into JSON arrays.
#include "sluice/webhook/batch.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::webhook {
namespace {

const std::string kDelivery = R"({"type":"Delivery","id":"a","code":250})";
const std::string kBounce = R"({"type":"Bounce","id":"b","code":550})";

TEST(BatchTest, RecordType) {
  EXPECT_EQ(RecordType(kDelivery), "Delivery");
  EXPECT_EQ(RecordType(kBounce), "Bounce");
  EXPECT_EQ(RecordType(""), "");
  EXPECT_EQ(RecordType(R"({"type":"Delivery","id":"a")"), "");  // torn: no closing brace
  EXPECT_EQ(RecordType(R"(x{"type":"Delivery"})"), "");
  EXPECT_EQ(RecordType(R"({"id":"a","type":"Delivery"})"), "");
  EXPECT_EQ(RecordType(R"({"type":"Deliv)"), "");
}

TEST(BatchTest, Filter) {
  TypeFilter all({});
  EXPECT_TRUE(all.Accepts(kDelivery));
  EXPECT_TRUE(all.Accepts(kBounce));
  EXPECT_FALSE(all.Accepts("garbage"));
  TypeFilter bounces({"Bounce", "Expiration"});
  EXPECT_FALSE(bounces.Accepts(kDelivery));
  EXPECT_TRUE(bounces.Accepts(kBounce));
  EXPECT_TRUE(IsRecordType("TransientFailure"));
  EXPECT_FALSE(IsRecordType("delivery"));
}

TEST(BatchTest, JoinsIntoAnArray) {
  Batch b(10, 1 << 20);
  EXPECT_EQ(b.Body(), "[]");
  b.Add(kDelivery);
  EXPECT_EQ(b.Body(), "[" + kDelivery + "]");
  b.Add(kBounce);  // after Body(): the bracket moves
  EXPECT_EQ(b.Body(), "[" + kDelivery + "," + kBounce + "]");
  EXPECT_EQ(b.Body(), "[" + kDelivery + "," + kBounce + "]");  // idempotent
  EXPECT_EQ(b.records(), 2u);
  b.Clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.Body(), "[]");
}

TEST(BatchTest, LimitsByCountAndBytes) {
  Batch by_count(2, 1 << 20);
  by_count.Add(kDelivery);
  EXPECT_TRUE(by_count.Fits(kBounce));
  by_count.Add(kBounce);
  EXPECT_FALSE(by_count.Fits(kBounce));

  const size_t two = 1 + kDelivery.size() + 1 + kBounce.size() + 1;
  Batch exact(100, two);
  exact.Add(kDelivery);
  EXPECT_TRUE(exact.Fits(kBounce));
  exact.Add(kBounce);
  EXPECT_EQ(exact.Body().size(), two);
  Batch short_one(100, two - 1);
  short_one.Add(kDelivery);
  EXPECT_FALSE(short_one.Fits(kBounce));
  // A record larger than the limit still goes, alone.
  Batch tiny(100, 4);
  EXPECT_TRUE(tiny.Fits(kDelivery));
  tiny.Add(kDelivery);
  EXPECT_FALSE(tiny.Fits(kBounce));
}

}  // namespace
}  // namespace sluice::webhook
