// One message shown whole (admin/show.h): the home shard's envelope joined
// with every shard's jobs, as GET /api/admin/v1/message returns it.
#include "sluice/admin/show.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::admin {
namespace {

constexpr uint64_t kArrival = 1'700'000'000'000'000;
const base::QueueId kId((kArrival << 8) | 1);

std::vector<JsonValue> Replies(const std::vector<std::string>& texts) {
  auto parsed = ParseReplies(texts);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : std::vector<JsonValue>{};
}

JsonValue Doc(const Outcome& o) {
  auto d = ParseJson(o.json);
  EXPECT_TRUE(d.ok()) << o.json;
  return d.ok() ? *d : JsonValue{};
}

std::string Home(int shard, const std::string& recipients, const std::string& jobs = "[]",
                 const std::string& extra = "") {
  return "{\"shard\":" + std::to_string(shard) + ",\"home\":true,\"message\":{\"id\":\"" +
         kId.ToString() + "\",\"arrival_us\":" + std::to_string(kArrival) +
         ",\"size\":42,\"sender\":\"s@snd.test\",\"recipients_total\":3,"
         "\"recipients_truncated\":false,\"recipients\":" +
         recipients + extra + "},\"truncated\":false,\"jobs\":" + jobs + "}";
}

std::string Other(int shard, const std::string& jobs = "[]") {
  return "{\"shard\":" + std::to_string(shard) +
         ",\"home\":false,\"truncated\":false,\"jobs\":" + jobs + "}";
}

std::string Job(const std::string& domain, const std::string& state, const std::string& indexes,
                const std::string& error) {
  return "{\"id\":\"" + kId.ToString() + "\",\"domain\":\"" + domain + "\",\"state\":\"" + state +
         "\",\"attempts\":2,\"next_us\":99,\"recipients\":[" + indexes + "],\"error\":\"" + error +
         "\"}";
}

const std::string kThree =
    "[{\"index\":0,\"recipient\":\"a@d1.test\"},{\"index\":1,\"recipient\":\"b@D1.test\"},"
    "{\"index\":2,\"recipient\":\"c@d2.test\"}]";

TEST(Show, CommandCarriesTheIdTheContentLimitAndTheFilter) {
  EXPECT_EQ(ShowCommand(kId, 0, ""), "show " + kId.ToString() + " 0");
  EXPECT_EQ(ShowCommand(kId, 1024, "a b@c.test"), "show " + kId.ToString() + " 1024 a b@c.test");
}

TEST(Show, JoinsEachRecipientWithTheJobOnWhicheverShardHoldsIt) {
  // The message lives on shard 1; d1.test is queued on shard 0 (one job,
  // two recipients, in flight), d2.test on shard 2 (deferred); shard 1
  // holds nothing.
  const auto replies =
      Replies({Other(0, "[" + Job("d1.test", "in-flight", "0,1", "") + "]"), Home(1, kThree),
               Other(2, "[" + Job("d2.test", "deferred", "2", "451 4.3.0 busy") + "]")});
  const Outcome o = MergeShow(replies, kId.ToString(), "", kArrival + 10'000'000);
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(o.warnings.empty());
  const JsonValue d = Doc(o);
  EXPECT_EQ(d.Str("id"), kId.ToString());
  EXPECT_EQ(d.Str("sender"), "s@snd.test");
  EXPECT_EQ(d.U64("shard"), 1u);
  EXPECT_EQ(d.U64("age_s"), 10u);
  EXPECT_EQ(d.U64("size"), 42u);
  EXPECT_EQ(d.U64("recipients_pending"), 3u);
  const JsonValue* r = d.Get("recipients");
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->items.size(), 3u);
  EXPECT_EQ(r->items[1].Str("recipient"), "b@D1.test");
  EXPECT_EQ(r->items[1].Str("state"), "in-flight");
  EXPECT_EQ(r->items[1].U64("shard"), 0u);
  EXPECT_TRUE(r->items[1].Bool("pending"));
  EXPECT_EQ(r->items[2].Str("domain"), "d2.test");
  EXPECT_EQ(r->items[2].Str("state"), "deferred");
  EXPECT_EQ(r->items[2].U64("shard"), 2u);
  EXPECT_EQ(r->items[2].U64("attempts"), 2u);
  EXPECT_EQ(r->items[2].U64("next_us"), 99u);
  EXPECT_EQ(r->items[2].Str("error"), "451 4.3.0 busy");
  EXPECT_FALSE(d.Has("content"));
}

TEST(Show, ARecipientNoShardHoldsIsFinalOrNewWhileTheMessageIsYoung) {
  const auto replies = Replies({Home(0, kThree, "[" + Job("d2.test", "ready", "2", "") + "]")});
  const JsonValue old = Doc(MergeShow(replies, kId.ToString(), "", kArrival + 60'000'000));
  const JsonValue* r = old.Get("recipients");
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->items.size(), 3u);
  EXPECT_EQ(r->items[0].Str("state"), "final");
  EXPECT_FALSE(r->items[0].Bool("pending"));
  EXPECT_EQ(r->items[0].Get("shard")->type, JsonValue::Type::kNull);
  EXPECT_EQ(r->items[1].Str("domain"), "d1.test");  // from the address, lower-cased
  EXPECT_EQ(r->items[2].Str("state"), "ready");
  EXPECT_EQ(old.U64("recipients_pending"), 1u);
  const JsonValue young = Doc(MergeShow(replies, kId.ToString(), "", kArrival + 1'000'000));
  EXPECT_EQ(young.Get("recipients")->items[0].Str("state"), "new");
  EXPECT_TRUE(young.Get("recipients")->items[0].Bool("pending"));
}

TEST(Show, WithoutDeliveryEveryRecipientIsQueued) {
  const auto replies =
      Replies({"{\"shard\":0,\"home\":false,\"delivery\":false,\"truncated\":false,\"jobs\":[]}",
               Home(1, kThree)});
  const JsonValue d = Doc(MergeShow(replies, kId.ToString(), "", kArrival + 60'000'000));
  EXPECT_EQ(d.U64("recipients_pending"), 3u);
  for (const JsonValue& r : d.Get("recipients")->items) {
    EXPECT_EQ(r.Str("state"), "queued");
    EXPECT_TRUE(r.Bool("pending"));
  }
}

TEST(Show, KeepsTheContentAsTheHomeShardSentIt) {
  const auto replies = Replies({Home(
      0, kThree, "[]",
      ",\"content\":{\"size\":5000,\"truncated\":true,\"text\":\"Subject: \\u00e9\\r\\n\"}")});
  const Outcome o = MergeShow(replies, kId.ToString(), "", kArrival);
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_NE(o.json.find(",\"content\":{\"size\":5000,\"truncated\":true,\"text\":\"Subject: "
                        "\\u00e9\\r\\n\"}}"),
            std::string::npos)
      << o.json;
  const JsonValue doc = Doc(o);
  const JsonValue* c = doc.Get("content");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->Bool("truncated"));
  EXPECT_EQ(c->Str("text"), "Subject: \xe9\r\n");  // the byte, kept as it was
}

TEST(Show, UnknownBusyUnreadableAndFilteredAway) {
  const std::string id = kId.ToString();
  EXPECT_EQ(MergeShow(Replies({Other(0), Other(1)}), id, "", kArrival).status.code(),
            absl::StatusCode::kNotFound);
  const auto busy = Replies({Other(0), "{\"shard\":1,\"home\":true,\"busy\":true,\"jobs\":[]}"});
  EXPECT_EQ(MergeShow(busy, id, "", kArrival).status.code(), absl::StatusCode::kUnavailable);
  const auto bad = Replies({"{\"shard\":0,\"home\":true,\"read_error\":\"checksum\",\"jobs\":[]}"});
  const Outcome unreadable = MergeShow(bad, id, "", kArrival);
  EXPECT_EQ(unreadable.status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(unreadable.status.message().find("checksum"), absl::string_view::npos);
  const Outcome none = MergeShow(Replies({Home(0, "[]")}), id, "x@nowhere.test", kArrival);
  EXPECT_EQ(none.status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(none.status.message().find("x@nowhere.test"), absl::string_view::npos);
}

TEST(Show, ATruncatedJobListIsAWarning) {
  const auto replies =
      Replies({"{\"shard\":0,\"home\":false,\"truncated\":true,\"jobs\":[]}", Home(1, kThree)});
  const Outcome o = MergeShow(replies, kId.ToString(), "", kArrival);
  ASSERT_TRUE(o.status.ok());
  ASSERT_EQ(o.warnings.size(), 1u);
  EXPECT_NE(o.warnings[0].find("shard 0"), std::string::npos);
}

}  // namespace
}  // namespace sluice::admin
