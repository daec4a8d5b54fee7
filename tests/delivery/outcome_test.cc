// The outcome step (src/delivery/outcome.h): what an attempt's replies mean
// for each recipient, the retry schedule and expiry, the accounting records
// and the DSN decision, without a ring, sockets or files.
#include "outcome.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "sluice/dsn/dsn.h"
#include "sluice/queue/retry_schedule.h"

namespace sluice::delivery {
namespace {

using log::DeliveryType;
using queue::kDay;
using queue::kHour;
using queue::kMinute;
using queue::kSecond;

constexpr uint64_t kQueuedAt = 1'700'000'000'000'000;  // µs

smtp::Reply Remote(int code, std::string_view enhanced, std::string text) {
  return MakeReply(code, enhanced, std::move(text), /*local=*/false);
}

std::pair<smtp::Outcome, smtp::Reply> Got(int code, std::string_view enhanced = "") {
  smtp::Outcome o = code >= 500   ? smtp::Outcome::kPermanent
                    : code >= 400 ? smtp::Outcome::kTransient
                                  : smtp::Outcome::kDelivered;
  return {o, Remote(code, enhanced, absl::StrCat("reply ", code))};
}

class OutcomeTest : public ::testing::Test {
 protected:
  OutcomeTest() {
    queue::RetryConfig rc;
    rc.initial = 5 * kMinute;
    rc.factor_permille = 2000;
    rc.max_interval = 4 * kHour;
    rc.max_age = 5 * kDay;
    rc.jitter_permille = 0;  // exact times below
    retry_ = queue::RetrySchedule(rc);
    env_.id = base::QueueId(kQueuedAt << 8);
    env_.arrival_micros = kQueuedAt;
    env_.sender = "sender@example.org";
    env_.added_headers = "Received: by test\r\n";
    for (int i = 0; i < 4; ++i) {
      env_.recipients.push_back(spool::Recipient{absl::StrCat("r", i, "@example.com"), {}});
    }
  }

  // A job of recipients `idx` that has failed `failures` times, tried `age`
  // after it was queued.
  AttemptInput Input(std::vector<uint32_t> idx, uint16_t failures, uint64_t age) {
    job_.message = env_.id;
    job_.failures = failures;
    job_.recipients.assign(idx.begin(), idx.end());
    results_.assign(idx.size(), std::nullopt);
    AttemptInput in;
    in.job = &job_;
    in.results = &results_;
    in.decisive = Remote(250, "2.0.0", "ok");
    in.envelope = &env_;
    in.body = body_;
    in.retry = &retry_;
    in.now_us = kQueuedAt + age;
    return in;
  }

  queue::RetrySchedule retry_;
  spool::Envelope env_;
  std::string body_ = "Subject: hi\r\n\r\nhello\r\n";
  queue::Job job_;
  RecipientResults results_;
};

std::vector<DeliveryType> Types(const AttemptOutcome& o) {
  std::vector<DeliveryType> t;
  for (const RecordEntry& r : o.records) t.push_back(r.type);
  return t;
}

std::vector<uint32_t> Indexes(const std::vector<Final>& f) {
  std::vector<uint32_t> out;
  for (const Final& x : f) out.push_back(x.index);
  return out;
}

TEST_F(OutcomeTest, AllDelivered) {
  AttemptInput in = Input({0, 1}, 0, kMinute);
  results_[0] = Got(250, "2.0.0");
  results_[1] = Got(250, "2.0.0");
  const AttemptOutcome o = DecideOutcome(in);
  EXPECT_EQ(o.delivered, (std::vector<uint32_t>{0, 1}));
  EXPECT_TRUE(o.failed.empty());
  EXPECT_TRUE(o.pending.recipients.empty());
  EXPECT_TRUE(o.done());
  EXPECT_EQ(o.dsn, DsnVerdict::kNone);
  EXPECT_EQ(Types(o),
            (std::vector<DeliveryType>{DeliveryType::kDelivery, DeliveryType::kDelivery}));
}

TEST_F(OutcomeTest, MixOfReplies) {
  AttemptInput in = Input({0, 1, 2, 3}, 0, kMinute);
  results_[0] = Got(250, "2.1.5");
  results_[1] = Got(450, "4.2.0");
  results_[2] = Got(550, "5.1.1");
  results_[3] = Got(451, "4.3.0");
  const AttemptOutcome o = DecideOutcome(in);
  EXPECT_EQ(o.delivered, (std::vector<uint32_t>{0}));
  EXPECT_EQ(Indexes(o.failed), (std::vector<uint32_t>{2}));
  EXPECT_EQ(o.failed[0].reply.code, 550);
  EXPECT_EQ(o.pending.recipients.size(), 2u);
  EXPECT_EQ(o.pending.recipients[0], 1u);
  EXPECT_EQ(o.pending.recipients[1], 3u);
  EXPECT_EQ(o.transient, 2u);
  EXPECT_FALSE(o.expired);
  EXPECT_FALSE(o.done());
  EXPECT_EQ(o.defer_reason, "450 4.2.0 reply 450");  // the first transient reply
  // Final ones in job order, then the transient ones.
  EXPECT_EQ(Types(o), (std::vector<DeliveryType>{DeliveryType::kDelivery, DeliveryType::kBounce,
                                                 DeliveryType::kTransientFailure,
                                                 DeliveryType::kTransientFailure}));
  EXPECT_EQ(o.records[2].index, 1u);
  EXPECT_EQ(o.records[3].index, 3u);
  EXPECT_EQ(o.dsn, DsnVerdict::kSend);  // for the bounced one only
  EXPECT_EQ(o.retry_at, kQueuedAt + kMinute + 5 * kMinute);
}

TEST_F(OutcomeTest, ConnectionFailureAppliesToEveryRecipient) {
  // No recipient got a reply of its own: the attempt's reply is theirs.
  AttemptInput in = Input({0, 1, 2}, 0, kMinute);
  in.decisive = MakeReply(421, "4.4.2", "connection lost");
  AttemptOutcome o = DecideOutcome(in);
  EXPECT_EQ(o.pending.recipients.size(), 3u);
  EXPECT_EQ(o.transient, 3u);
  for (const RecordEntry& r : o.records) {
    EXPECT_EQ(r.type, DeliveryType::kTransientFailure);
    EXPECT_EQ(r.reply.code, 421);
  }
  // A permanent one (a refused connect made final, DNS NXDOMAIN) bounces all.
  in.decisive = MakeReply(550, "5.4.4", "no such domain");
  o = DecideOutcome(in);
  EXPECT_EQ(Indexes(o.failed), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_TRUE(o.done());
  EXPECT_EQ(o.dsn, DsnVerdict::kSend);
}

TEST_F(OutcomeTest, RecipientsWithoutTheirOwnReplyTakeTheDecisiveOne) {
  // The DATA reply decides those accepted at RCPT; a recipient refused at
  // RCPT keeps its own reply.
  AttemptInput in = Input({0, 1}, 0, kMinute);
  results_[0] = Got(550, "5.1.1");
  in.decisive = Remote(554, "5.6.0", "content rejected");
  const AttemptOutcome o = DecideOutcome(in);
  ASSERT_EQ(o.failed.size(), 2u);
  EXPECT_EQ(o.failed[0].reply.code, 550);
  EXPECT_EQ(o.failed[1].reply.code, 554);
  // A 3xx where a final reply was due is not success.
  in = Input({0}, 0, kMinute);
  in.decisive = Remote(354, "", "go ahead");
  EXPECT_EQ(DecideOutcome(in).transient, 1u);
}

TEST_F(OutcomeTest, RetryTimesFollowTheSchedule) {
  // 5 min after the first failure, doubling, capped at 4 h.
  const uint64_t now = 2 * kHour;
  const uint64_t want[] = {5 * kMinute,  10 * kMinute,  20 * kMinute, 40 * kMinute,
                           80 * kMinute, 160 * kMinute, 4 * kHour,    4 * kHour};
  for (uint16_t failures = 0; failures < 8; ++failures) {
    AttemptInput in = Input({0}, failures, now);
    in.decisive = Remote(451, "4.7.1", "try later");
    const AttemptOutcome o = DecideOutcome(in);
    EXPECT_FALSE(o.expired) << failures;
    EXPECT_EQ(o.retry_at, kQueuedAt + now + want[failures]) << failures;
    // The job keeps its attempt count; the queue adds this failure.
    EXPECT_EQ(o.pending.failures, failures);
  }
}

TEST_F(OutcomeTest, LastRetryIsAtTheLifetimeNotPastIt) {
  AttemptInput in = Input({0}, 20, 5 * kDay - kMinute);
  in.decisive = Remote(451, "4.7.1", "try later");
  const AttemptOutcome o = DecideOutcome(in);
  EXPECT_FALSE(o.expired);
  EXPECT_EQ(o.retry_at, kQueuedAt + 5 * kDay);
}

TEST_F(OutcomeTest, ExpiresAtTheLifetimeBoundary) {
  // One microsecond before the lifetime: retried (at the lifetime).
  AttemptInput in = Input({0, 1}, 30, 5 * kDay - 1);
  results_[0] = Got(451, "4.7.1");
  results_[1] = Got(452, "4.2.2");
  AttemptOutcome o = DecideOutcome(in);
  EXPECT_FALSE(o.expired);
  EXPECT_EQ(o.retry_at, kQueuedAt + 5 * kDay);
  // At the lifetime: every transient recipient expires with its own reply.
  in = Input({0, 1, 2}, 30, 5 * kDay);
  results_[0] = Got(451, "4.7.1");
  results_[1] = Got(250);
  results_[2] = Got(452, "4.2.2");
  o = DecideOutcome(in);
  EXPECT_TRUE(o.expired);
  EXPECT_TRUE(o.done());
  EXPECT_EQ(o.delivered, (std::vector<uint32_t>{1}));
  EXPECT_EQ(Indexes(o.failed), (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(o.failed[0].reply.code, 451);
  EXPECT_EQ(o.failed[1].reply.code, 452);
  EXPECT_EQ(Types(o), (std::vector<DeliveryType>{DeliveryType::kDelivery, DeliveryType::kExpiration,
                                                 DeliveryType::kExpiration}));
  EXPECT_EQ(o.transient, 2u);  // counted as deferred, then expired
  // The queue is still told which recipients failed (it decides the same).
  EXPECT_EQ(o.pending.recipients.size(), 2u);
  EXPECT_EQ(o.dsn, DsnVerdict::kSend);
}

TEST_F(OutcomeTest, PermanentFailureAfterTheLifetimeIsABounceNotAnExpiry) {
  AttemptInput in = Input({0}, 30, 6 * kDay);
  results_[0] = Got(550, "5.1.1");
  const AttemptOutcome o = DecideOutcome(in);
  EXPECT_FALSE(o.expired);
  EXPECT_EQ(Types(o), (std::vector<DeliveryType>{DeliveryType::kBounce}));
}

TEST_F(OutcomeTest, NullSenderGetsNoDsn) {
  env_.sender = "";
  AttemptInput in = Input({0}, 0, kMinute);
  results_[0] = Got(550, "5.1.1");
  const AttemptOutcome o = DecideOutcome(in);
  EXPECT_EQ(Indexes(o.failed), (std::vector<uint32_t>{0}));
  EXPECT_EQ(o.dsn, DsnVerdict::kBounce);  // no backscatter: bounce records only
  EXPECT_EQ(Types(o), (std::vector<DeliveryType>{DeliveryType::kBounce}));
}

TEST_F(OutcomeTest, ADsnRelayedWithARealSenderGetsNoDsn) {
  body_ =
      "Content-Type: multipart/report; report-type=delivery-status;\r\n"
      " boundary=\"b\"\r\n\r\n--b--\r\n";
  AttemptInput in = Input({0}, 0, kMinute);
  in.body = body_;
  in.decisive = Remote(550, "5.1.1", "no such user");
  EXPECT_EQ(DecideOutcome(in).dsn, DsnVerdict::kBounce);
}

TEST_F(OutcomeTest, UntrustedDeletedAndUnreadableGetNoDsn) {
  AttemptInput in = Input({0}, 0, kMinute);
  in.decisive = Remote(550, "5.1.1", "no");
  env_.untrusted = true;
  EXPECT_EQ(DecideOutcome(in).dsn, DsnVerdict::kUntrusted);
  env_.untrusted = false;
  in.deleted = true;
  in.reported = true;
  in.decisive = MakeReply(550, "5.0.0", "deleted by the administrator");
  AttemptOutcome o = DecideOutcome(in);
  EXPECT_EQ(o.dsn, DsnVerdict::kDeleted);
  EXPECT_EQ(Types(o), (std::vector<DeliveryType>{DeliveryType::kDeletion}));
  in.deleted = false;
  in.envelope = nullptr;  // the record could not be read
  EXPECT_EQ(DecideOutcome(in).dsn, DsnVerdict::kNoRecord);
}

TEST_F(OutcomeTest, NoDsnWhileOnlyDeferred) {
  AttemptInput in = Input({0, 1}, 0, kMinute);
  in.decisive = Remote(451, "4.3.0", "later");
  EXPECT_EQ(DecideOutcome(in).dsn, DsnVerdict::kNone);
}

TEST_F(OutcomeTest, ReportedJobsAreNotScheduled) {
  // The administrator's bounce: out of the queue already, no retry asked.
  AttemptInput in = Input({0, 1}, 3, 10 * kDay);  // past the lifetime, too
  in.reported = true;
  in.decisive = MakeReply(550, "5.0.0", "bounced by the administrator");
  const AttemptOutcome o = DecideOutcome(in);
  EXPECT_FALSE(o.expired);
  EXPECT_EQ(o.retry_at, queue::kNever);
  EXPECT_EQ(Indexes(o.failed), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(o.dsn, DsnVerdict::kSend);
}

TEST_F(OutcomeTest, DsnNamesOnlyTheFailedRecipients) {
  AttemptInput in = Input({0, 1, 2}, 0, kHour);
  results_[0] = Got(250);
  results_[1] = Got(550, "5.1.1");
  results_[2] = Got(451, "4.7.1");
  const AttemptOutcome o = DecideOutcome(in);
  const std::string original = env_.added_headers + body_;
  const dsn::DsnInput d =
      DsnInputFor(o, env_, original, "relay.example.net", "mx.example.com", 5 * kDay, in.now_us);
  EXPECT_EQ(d.original_sender, "sender@example.org");
  EXPECT_EQ(d.original_id, env_.id.ToString());
  EXPECT_FALSE(d.expired);
  ASSERT_EQ(d.recipients.size(), 1u);
  EXPECT_EQ(d.recipients[0].address, "r1@example.com");
  EXPECT_EQ(d.recipients[0].status, "5.1.1");
  EXPECT_EQ(d.recipients[0].remote_mta, "mx.example.com");
  EXPECT_EQ(d.recipients[0].diagnostic, "550 5.1.1 reply 550");
  auto built = dsn::BuildDsn(d);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_NE(built->message.find("r1@example.com"), std::string::npos);
  EXPECT_EQ(built->message.find("r0@example.com"), std::string::npos);
  EXPECT_EQ(built->message.find("r2@example.com"), std::string::npos);
}

TEST_F(OutcomeTest, ExpiredDsnSaysSo) {
  AttemptInput in = Input({0}, 40, 5 * kDay + kSecond);
  in.decisive = MakeReply(451, "", "connection refused");  // local, no enhanced code
  const AttemptOutcome o = DecideOutcome(in);
  ASSERT_TRUE(o.expired);
  const std::string original = env_.added_headers + body_;
  const dsn::DsnInput d =
      DsnInputFor(o, env_, original, "relay.example.net", "mx.example.com", 5 * kDay, in.now_us);
  EXPECT_TRUE(d.expired);
  ASSERT_EQ(d.recipients.size(), 1u);
  EXPECT_EQ(d.recipients[0].status, "4.4.7");  // delivery time expired
  EXPECT_EQ(d.recipients[0].remote_mta, "");   // the relay said it, not a peer
  EXPECT_EQ(d.recipients[0].diagnostic, "connection refused");
}

TEST(OutcomeHelpers, DiagnosticAndStatus) {
  smtp::Reply r = MakeReply(550, "5.7.1", "line one\nline two", false);
  EXPECT_EQ(Diagnostic(r), "550 5.7.1 line one;line two");
  EXPECT_EQ(StatusOf(r, false), "5.7.1");
  EXPECT_EQ(StatusOf(MakeReply(451, "4.2.0", "x"), true), "4.4.7");
  EXPECT_EQ(StatusOf(MakeReply(451, "4.2.0", "x"), false), "4.2.0");
  EXPECT_EQ(StatusOf(MakeReply(554, "", "x"), false), "5.0.0");
  EXPECT_EQ(StatusOf(MakeReply(421, "", "x"), false), "4.0.0");
}

}  // namespace
}  // namespace sluice::delivery
