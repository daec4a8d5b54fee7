// Spool file format: round trip, and every corruption or truncation caught.
#include "sluice/spool/message_file.h"

#include "gtest/gtest.h"
#include "sluice/base/crc32c.h"

namespace sluice::spool {
namespace {

Envelope SampleEnvelope(std::string_view body) {
  Envelope e;
  e.id = base::QueueId((uint64_t{1'700'000'000'000'000} << 8) | 3);
  e.arrival_micros = 1'700'000'000'000'000;
  e.client_ip = "127.0.0.1";
  e.helo = "client.example";
  e.protocol = "ESMTP";
  e.sender = "sender@example.com";
  e.eight_bit = true;
  e.added_headers = "Received: from x\r\n\tby y; date\r\n";
  e.body_size = body.size();
  e.body_crc = base::Crc32c(0, body.data(), body.size());
  e.recipients = {{"a@example.net"}, {"b@example.org"}, {"\"odd name\"@example.com"}};
  return e;
}

std::string MakeFile(std::string_view body) {
  return EncodePreamble(0) + std::string(body) + EncodeTrailer(SampleEnvelope(body));
}

TEST(MessageFile, RoundTrip) {
  const std::string body = "Subject: x\r\n\r\nline\r\n.dot kept\r\n";
  const std::string file = MakeFile(body);
  auto parsed = ParseFile(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->body, body);
  const Envelope want = SampleEnvelope(body);
  EXPECT_EQ(parsed->envelope.id, want.id);
  EXPECT_EQ(parsed->envelope.sender, want.sender);
  EXPECT_EQ(parsed->envelope.helo, want.helo);
  EXPECT_EQ(parsed->envelope.added_headers, want.added_headers);
  EXPECT_TRUE(parsed->envelope.eight_bit);
  ASSERT_EQ(parsed->envelope.recipients.size(), 3u);
  EXPECT_EQ(parsed->envelope.recipients[2].address, "\"odd name\"@example.com");
}

TEST(MessageFile, OriginRoundTripsAndIsOptional) {
  Envelope e = SampleEnvelope("x");
  // Without an origin the encoding has no "origin" field at all (records
  // stay byte-identical to those written before the field existed).
  EXPECT_EQ(EncodeEnvelope(e).find("origin"), std::string::npos);
  e.origin = "0CRAQ0000000G.pickup";
  auto decoded = DecodeEnvelope(EncodeEnvelope(e));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->origin, "0CRAQ0000000G.pickup");
  // An unknown key (from a newer writer) is skipped.
  auto skipped = DecodeEnvelope(EncodeEnvelope(e) + "future 3\nabc\n");
  ASSERT_TRUE(skipped.ok()) << skipped.status();
}

TEST(MessageFile, UntrustedRoundTripsAndOlderRecordsAreTrusted) {
  Envelope e = SampleEnvelope("x");
  // Trusted (the default, and every record written before the field
  // existed): no "untrusted" key at all.
  const std::string trusted = EncodeEnvelope(e);
  EXPECT_EQ(trusted.find("untrusted"), std::string::npos);
  auto old = DecodeEnvelope(trusted);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_FALSE(old->untrusted);
  e.untrusted = true;
  auto decoded = DecodeEnvelope(EncodeEnvelope(e));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->untrusted);
}

TEST(MessageFile, EmptyBodyAndNullSender) {
  Envelope e = SampleEnvelope("");
  e.sender = "";
  std::string file = EncodePreamble(0) + EncodeTrailer(e);
  auto parsed = ParseFile(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->envelope.sender, "");
  EXPECT_EQ(parsed->body, "");
}

TEST(MessageFile, EveryFlippedByteIsDetected) {
  const std::string file = MakeFile("Subject: y\r\n\r\nsome body text\r\n");
  for (size_t i = 0; i < file.size(); ++i) {
    std::string bad = file;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    EXPECT_FALSE(ParseFile(bad).ok()) << "flip at " << i;
  }
}

TEST(MessageFile, EveryTruncationIsDetected) {
  const std::string file = MakeFile("Subject: z\r\n\r\nbody\r\n");
  for (size_t len = 0; len < file.size(); ++len) {
    EXPECT_FALSE(ParseFile(std::string_view(file).substr(0, len)).ok()) << "length " << len;
  }
}

TEST(MessageFile, EnvelopeNeedsRecipientsAndKnownVersion) {
  Envelope e = SampleEnvelope("b");
  e.recipients.clear();
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope(e)).ok());
  std::string enc = EncodeEnvelope(SampleEnvelope("b"));
  enc.replace(enc.find("version 1\n1"), 11, "version 1\n9");
  EXPECT_FALSE(DecodeEnvelope(enc).ok());
  EXPECT_FALSE(DecodeEnvelope("sender 999\nx\n").ok());
}

}  // namespace
}  // namespace sluice::spool

namespace sluice::spool {
namespace {

// Found by fuzz/message_file_fuzzer: an envelope offset near 2^64 wrapped
// the bounds check and crashed ParseFile.
TEST(MessageFile, CraftedFooterOffsetDoesNotWrap) {
  Footer f;
  f.envelope_offset = ~uint64_t{0} - 7;
  f.envelope_size = 16;
  std::string file = EncodePreamble(0) + EncodeFooter(f);
  EXPECT_FALSE(ParseFile(file).ok());
  file = std::string(kMagic) + EncodeFooter(f);  // the fuzzer's 48-byte shape
  EXPECT_FALSE(ParseFile(file).ok());
}

// A field length of 2^64-1 must not wrap into "the rest of the envelope".
TEST(MessageFile, HugeFieldLengthIsRejected) {
  EXPECT_FALSE(DecodeEnvelope("version 1\n1\nid 13\n01HBZ5K2M3N4P\nbody_size 1\n0\n"
                              "rcpt 18446744073709551615\nrcpt 3\na@b\n")
                   .ok());
}

}  // namespace
}  // namespace sluice::spool

namespace sluice::spool {
namespace {

Envelope MergeEnvelope() {
  Envelope e = SampleEnvelope("Hello {{name}}\r\n");
  e.protocol = "pickup";
  e.campaign = "nov-2026";
  e.tenant = "acme";
  e.merge_fields = {"name", "city"};
  e.message_id_host = "mx.example.org";
  e.recipients = {{"a@example.net", {"Alice", "Paris"}},
                  {"b@example.org", {"", "x\ny"}},  // empty and odd values survive
                  {"c@example.com", {"Carol", std::string(300, 'z')}}};
  return e;
}

// Records without the batch fields are byte for byte what they were before
// the fields existed (no "campaign", "tenant", "field" or "value" keys).
TEST(MessageFileBatch, OptionalKeysAbsentWhenUnset) {
  const std::string enc = EncodeEnvelope(SampleEnvelope("x"));
  for (const char* key : {"campaign ", "tenant ", "field ", "value ", "msgid_host "}) {
    EXPECT_EQ(enc.find(key), std::string::npos) << key;
  }
  EXPECT_EQ(enc.rfind("rcpt ", 0), std::string::npos);  // the head comes first
  EXPECT_EQ(enc.rfind("version 1\n1\nid 13\n", 0), 0u);
}

TEST(MessageFileBatch, MergeFieldsValuesCampaignTenantRoundTrip) {
  const Envelope e = MergeEnvelope();
  auto d = DecodeEnvelope(EncodeEnvelope(e));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->is_merge());
  EXPECT_EQ(d->campaign, "nov-2026");
  EXPECT_EQ(d->tenant, "acme");
  EXPECT_EQ(d->message_id_host, "mx.example.org");
  EXPECT_EQ(d->merge_fields, e.merge_fields);
  ASSERT_EQ(d->recipients.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(d->recipients[i].address, e.recipients[i].address);
    EXPECT_EQ(d->recipients[i].values, e.recipients[i].values);
  }
}

// Packed recipients decode exactly like the same recipients given as
// objects, and the rvalue encoder produces the same bytes as the copying one.
TEST(MessageFileBatch, PackedRecipientsEqualUnpacked) {
  const Envelope plain = MergeEnvelope();
  Envelope packed = plain;
  packed.recipients.clear();
  for (const Recipient& r : plain.recipients) {
    std::vector<std::string_view> values(r.values.begin(), r.values.end());
    PackRecipient(packed.packed_recipients, r.address, values);
    ++packed.packed_count;
  }
  EXPECT_EQ(packed.recipient_count(), 3u);
  const std::string copied = EncodeEnvelope(packed);
  Envelope moved_from = packed;
  const std::string moved = EncodeEnvelope(std::move(moved_from));
  EXPECT_EQ(copied, moved);
  auto d = DecodeEnvelope(moved);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->recipients.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(d->recipients[i].address, plain.recipients[i].address);
    EXPECT_EQ(d->recipients[i].values, plain.recipients[i].values);
  }
  EXPECT_EQ(d->merge_fields, plain.merge_fields);
  EXPECT_EQ(d->sender, plain.sender);
  // And as a whole record, through the trailer.
  Envelope for_trailer = packed;
  const std::string body = "Hello {{name}}\r\n";
  for_trailer.body_size = body.size();
  for_trailer.body_crc = base::Crc32c(0, body.data(), body.size());
  const std::string file = EncodePreamble(0) + body + EncodeTrailer(std::move(for_trailer));
  auto parsed = ParseFile(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->body, body);
  EXPECT_EQ(parsed->envelope.recipients[2].values[1], std::string(300, 'z'));
}

// Readers that need only the addresses skip the values but still check
// their count.
TEST(MessageFileBatch, DecodeWithoutValues) {
  const DecodeOptions no_values{.merge_values = false};
  auto d = DecodeEnvelope(EncodeEnvelope(MergeEnvelope()), no_values);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->recipients.size(), 3u);
  EXPECT_EQ(d->recipients[2].address, "c@example.com");
  EXPECT_TRUE(d->recipients[2].values.empty());
  EXPECT_EQ(d->merge_fields, MergeEnvelope().merge_fields);
  Envelope short_one = MergeEnvelope();
  short_one.recipients[0].values.pop_back();
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope(short_one), no_values).ok());
  const std::string body = "Hello {{name}}\r\n";
  Envelope e = MergeEnvelope();
  e.body_size = body.size();
  e.body_crc = base::Crc32c(0, body.data(), body.size());
  auto parsed = ParseFile(EncodePreamble(0) + body + EncodeTrailer(e), no_values);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->envelope.recipients[0].values.empty());
}

// A delivery shard keeps only its own recipients: the others are checked
// (their value count) but not stored, and found by their record index.
TEST(MessageFileBatch, DecodeKeepsOnlyTheChosenRecipients) {
  DecodeOptions mine;
  mine.keep = [](std::string_view address) { return !address.ends_with(".org"); };
  auto d = DecodeEnvelope(EncodeEnvelope(MergeEnvelope()), mine);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->partial);
  ASSERT_EQ(d->recipients.size(), 2u);
  EXPECT_EQ(d->recipient_indexes, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(d->recipient_count(), 3u);
  ASSERT_NE(d->FindRecipient(2), nullptr);
  EXPECT_EQ(d->FindRecipient(2)->address, "c@example.com");
  EXPECT_EQ(d->FindRecipient(2)->values[1], std::string(300, 'z'));
  EXPECT_EQ(d->FindRecipient(0)->values[0], "Alice");
  EXPECT_EQ(d->FindRecipient(1), nullptr);  // another shard's
  EXPECT_EQ(d->FindRecipient(3), nullptr);  // none
  // A recipient that is not kept still has its values counted.
  Envelope short_one = MergeEnvelope();
  short_one.recipients[1].values.pop_back();
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope(short_one), mine).ok());
  // Keeping none is an envelope with no recipient of this shard, not an error.
  DecodeOptions none;
  none.keep = [](std::string_view) { return false; };
  auto empty = DecodeEnvelope(EncodeEnvelope(MergeEnvelope()), none);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->recipients.empty());
  EXPECT_EQ(empty->FindRecipient(0), nullptr);
  // Without `keep`, FindRecipient is plain indexing.
  auto all = DecodeEnvelope(EncodeEnvelope(MergeEnvelope()));
  ASSERT_TRUE(all.ok());
  EXPECT_FALSE(all->partial);
  EXPECT_EQ(all->FindRecipient(1)->address, "b@example.org");
  EXPECT_EQ(all->FindRecipient(3), nullptr);
}

TEST(MessageFileBatch, InconsistentMergeValuesAreRejected) {
  Envelope e = MergeEnvelope();
  e.recipients[1].values.pop_back();  // one value short
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope(e)).ok());
  e = MergeEnvelope();
  e.merge_fields.clear();  // values without fields
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope(e)).ok());
  // A value before any recipient.
  EXPECT_FALSE(DecodeEnvelope("value 1\nx\n" + EncodeEnvelope(MergeEnvelope())).ok());
  // At most kMaxMergeFields fields.
  e = MergeEnvelope();
  e.merge_fields.assign(kMaxMergeFields + 1, "f");
  for (Recipient& r : e.recipients) r.values.assign(kMaxMergeFields + 1, "v");
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope(e)).ok());
  e.merge_fields.assign(kMaxMergeFields, "f");
  for (Recipient& r : e.recipients) r.values.assign(kMaxMergeFields, "v");
  EXPECT_TRUE(DecodeEnvelope(EncodeEnvelope(e)).ok());
}

}  // namespace
}  // namespace sluice::spool
