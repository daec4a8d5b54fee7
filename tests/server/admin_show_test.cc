// The home shard's part of `show` (server/admin_show.h): the control line,
// and a real spool record (encoded and verified by spool/message_file.h)
// turned into the "message" object: fields, recipients with the filter and
// their bound, the content cut at its limit, a mail merge rendered.
#include "sluice/server/admin_show.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "sluice/admin/json_value.h"
#include "sluice/admin/show.h"
#include "sluice/base/crc32c.h"

namespace sluice::server {
namespace {

constexpr uint64_t kArrival = 1'700'000'000'000'000;
const base::QueueId kId((kArrival << 8) | 2);

struct Record {
  std::string bytes;
  spool::ParsedFile parsed;
};

// A record as the spool writes it, read back through ParseFile.
std::unique_ptr<Record> MakeRecord(spool::Envelope e, const std::string& body) {
  e.id = kId;
  e.arrival_micros = kArrival;
  e.body_size = body.size();
  e.body_crc = base::Crc32c(0, body.data(), body.size());
  auto r = std::make_unique<Record>();
  r->bytes = spool::EncodePreamble(0) + body + spool::EncodeTrailer(e);
  auto parsed = spool::ParseFile(r->bytes);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (parsed.ok()) r->parsed = *std::move(parsed);
  return r;
}

spool::Envelope Plain() {
  spool::Envelope e;
  e.client_ip = "127.0.0.1";
  e.helo = "client.test";
  e.protocol = "ESMTP";
  e.sender = "s@snd.test";
  e.campaign = "spring";
  e.added_headers = "Received: by relay\r\n";
  e.recipients = {{"a@d1.test"}, {"B@d1.test"}, {"c@d2.test"}};
  return e;
}

admin::JsonValue Shown(const Record& r, const ShowRequest& q) {
  auto json = ShowRecordJson(r.parsed, q);
  EXPECT_TRUE(json.ok()) << json.status();
  auto doc = admin::ParseJson(json.ok() ? *json : "");
  EXPECT_TRUE(doc.ok()) << *json;
  return doc.ok() ? *doc : admin::JsonValue{};
}

TEST(AdminShow, ParsesTheControlLine) {
  auto q = ParseShowRequest(kId.ToString() + " 1048576 Odd Name@x.test ");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->id, kId);
  EXPECT_EQ(q->content_max, 1048576u);
  EXPECT_EQ(q->recipient, "Odd Name@x.test");
  q = ParseShowRequest(kId.ToString() + " 0");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->recipient, "");
  EXPECT_FALSE(ParseShowRequest("nope 0").has_value());
  EXPECT_FALSE(ParseShowRequest(kId.ToString()).has_value());
  EXPECT_FALSE(ParseShowRequest(kId.ToString() + " x").has_value());
  EXPECT_FALSE(ParseShowRequest(kId.ToString() + " 0 " +
                                std::string(admin::kShowRecipientFilterMax + 1, 'a'))
                   .has_value());
}

TEST(AdminShow, TheEnvelopeAndEveryRecipientWithoutContentByDefault) {
  const auto r = MakeRecord(Plain(), "Subject: hi\r\n\r\nbody\r\n");
  const admin::JsonValue d = Shown(*r, ShowRequest{kId, 0, ""});
  EXPECT_EQ(d.Str("id"), kId.ToString());
  EXPECT_EQ(d.U64("arrival_us"), kArrival);
  EXPECT_EQ(d.U64("size"), 20u + 21u);
  EXPECT_EQ(d.Str("sender"), "s@snd.test");
  EXPECT_EQ(d.Str("client"), "127.0.0.1");
  EXPECT_EQ(d.Str("helo"), "client.test");
  EXPECT_EQ(d.Str("protocol"), "ESMTP");
  EXPECT_EQ(d.Str("campaign"), "spring");
  EXPECT_FALSE(d.Has("tenant"));
  EXPECT_EQ(d.U64("recipients_total"), 3u);
  EXPECT_FALSE(d.Bool("recipients_truncated"));
  const admin::JsonValue* rc = d.Get("recipients");
  ASSERT_NE(rc, nullptr);
  ASSERT_EQ(rc->items.size(), 3u);
  EXPECT_EQ(rc->items[2].U64("index"), 2u);
  EXPECT_EQ(rc->items[2].Str("recipient"), "c@d2.test");
  EXPECT_FALSE(d.Has("content"));
}

TEST(AdminShow, TheFilterIgnoresCaseAndKeepsTheIndex) {
  const auto r = MakeRecord(Plain(), "x\r\n");
  const admin::JsonValue d = Shown(*r, ShowRequest{kId, 0, "b@D1.TEST"});
  const admin::JsonValue* rc = d.Get("recipients");
  ASSERT_NE(rc, nullptr);
  ASSERT_EQ(rc->items.size(), 1u);
  EXPECT_EQ(rc->items[0].U64("index"), 1u);
  EXPECT_EQ(rc->items[0].Str("recipient"), "B@d1.test");
  EXPECT_EQ(d.U64("recipients_total"), 3u);
  EXPECT_TRUE(Shown(*r, ShowRequest{kId, 0, "z@d1.test"}).Get("recipients")->items.empty());
}

TEST(AdminShow, ContentIsHeadersAndBodyCutAtItsLimit) {
  const std::string body = "Subject: hi\r\n\r\nbody\r\n";
  const auto r = MakeRecord(Plain(), body);
  const admin::JsonValue whole = Shown(*r, ShowRequest{kId, 1 << 20, ""});
  const admin::JsonValue* c = whole.Get("content");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Str("text"), "Received: by relay\r\n" + body);
  EXPECT_EQ(c->U64("size"), 41u);
  EXPECT_FALSE(c->Bool("truncated"));
  // Cut inside the added headers, then inside the body.
  EXPECT_EQ(Shown(*r, ShowRequest{kId, 8, ""}).Get("content")->Str("text"), "Received");
  const admin::JsonValue cut = Shown(*r, ShowRequest{kId, 30, ""});
  EXPECT_EQ(cut.Get("content")->Str("text"), "Received: by relay\r\nSubject: h");
  EXPECT_TRUE(cut.Get("content")->Bool("truncated"));
  EXPECT_EQ(cut.Get("content")->U64("size"), 41u);
}

TEST(AdminShow, RecipientsPastTheBoundAreCountedNotListed) {
  spool::Envelope e = Plain();
  e.recipients.clear();
  for (uint64_t i = 0; i < admin::kShowRecipientsMax + 5; ++i) {
    e.recipients.push_back({"r" + std::to_string(i) + "@d.test"});
  }
  const auto r = MakeRecord(e, "x\r\n");
  const admin::JsonValue d = Shown(*r, ShowRequest{kId, 0, ""});
  EXPECT_EQ(d.U64("recipients_total"), admin::kShowRecipientsMax + 5);
  EXPECT_TRUE(d.Bool("recipients_truncated"));
  EXPECT_EQ(d.Get("recipients")->items.size(), admin::kShowRecipientsMax);
  // The filter finds one past the bound.
  const std::string last = "r" + std::to_string(admin::kShowRecipientsMax + 4) + "@d.test";
  const admin::JsonValue one = Shown(*r, ShowRequest{kId, 0, last});
  ASSERT_EQ(one.Get("recipients")->items.size(), 1u);
  EXPECT_EQ(one.Get("recipients")->items[0].U64("index"), admin::kShowRecipientsMax + 4);
  EXPECT_FALSE(one.Bool("recipients_truncated"));
}

TEST(AdminShow, AMailMergeIsRenderedForTheChosenRecipient) {
  spool::Envelope e = Plain();
  e.added_headers.clear();
  e.merge_fields = {"name"};
  e.recipients = {{"a@d1.test", {"Ann"}}, {"b@d1.test", {"Bob"}}};
  const auto r = MakeRecord(e, "Subject: hi\r\n\r\nHello {{name}}\r\n");
  const admin::JsonValue bob = Shown(*r, ShowRequest{kId, 1 << 20, "b@d1.test"});
  EXPECT_EQ(bob.Get("content")->Str("text"), "Subject: hi\r\n\r\nHello Bob\r\n");
  EXPECT_FALSE(bob.Get("content")->Bool("template"));
  const admin::JsonValue all = Shown(*r, ShowRequest{kId, 1 << 20, ""});
  EXPECT_EQ(all.Get("content")->Str("text"), "Subject: hi\r\n\r\nHello {{name}}\r\n");
  EXPECT_TRUE(all.Get("content")->Bool("template"));
}

}  // namespace
}  // namespace sluice::server
