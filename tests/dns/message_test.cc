// Canned DNS answers for the pure helpers: null MX (RFC 7505), SOA-derived
// negative TTL (RFC 2308), answer TTLs.
#include "message.h"

#include <arpa/nameser.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::dns {
namespace {

class Msg {
 public:
  Msg(uint16_t flags, uint16_t an, uint16_t ns) {
    Put16(0x1234);
    Put16(flags);
    Put16(1);
    Put16(an);
    Put16(ns);
    Put16(0);
  }
  void Name(const std::string& dotted) {
    size_t start = 0;
    while (start < dotted.size()) {
      size_t dot = dotted.find('.', start);
      if (dot == std::string::npos) dot = dotted.size();
      b.push_back(static_cast<unsigned char>(dot - start));
      for (size_t i = start; i < dot; ++i) b.push_back(static_cast<unsigned char>(dotted[i]));
      start = dot + 1;
    }
    b.push_back(0);
  }
  void Question(const std::string& name, uint16_t type) {
    Name(name);
    Put16(type);
    Put16(ns_c_in);
  }
  // A record whose owner is the question name (pointer 0xC00C).
  void RrHeader(uint16_t type, uint32_t ttl, uint16_t rdlen) {
    Put16(0xC00C);
    Put16(type);
    Put16(ns_c_in);
    Put32(ttl);
    Put16(rdlen);
  }
  void Put16(uint16_t v) {
    b.push_back(static_cast<unsigned char>(v >> 8));
    b.push_back(static_cast<unsigned char>(v));
  }
  void Put32(uint32_t v) {
    Put16(static_cast<uint16_t>(v >> 16));
    Put16(static_cast<uint16_t>(v));
  }
  const unsigned char* data() const { return b.data(); }
  int size() const { return static_cast<int>(b.size()); }
  std::vector<unsigned char> b;
};

Msg NullMxAnswer(uint16_t preference) {
  Msg m(0x8180, 1, 0);
  m.Question("nullmx.test", ns_t_mx);
  m.RrHeader(ns_t_mx, 300, 3);
  m.Put16(preference);
  m.b.push_back(0);  // "."
  return m;
}

TEST(MxAnswer, NullMxIsRecognised) {
  Msg m = NullMxAnswer(0);
  MxAnswer a = ParseMxAnswer(m.data(), m.size());
  EXPECT_EQ(a.kind, MxAnswerKind::kNullMx);
  EXPECT_TRUE(a.records.empty());
  EXPECT_EQ(MinAnswerTtl(m.data(), m.size(), ns_t_mx), 300u);
}

TEST(MxAnswer, RecordsAreLowercasedAndRootTargetsDropped) {
  Msg m(0x8180, 3, 0);
  m.Question("multi.test", ns_t_mx);
  m.RrHeader(ns_t_mx, 120, 2 + 11);  // "MX1.Multi" is 3MX15Multi0: 11 bytes
  m.Put16(10);
  m.Name("MX1.Multi");
  m.RrHeader(ns_t_mx, 60, 2 + 5);
  m.Put16(20);
  m.Name("mx2");
  m.RrHeader(ns_t_mx, 90, 3);
  m.Put16(30);
  m.b.push_back(0);
  MxAnswer a = ParseMxAnswer(m.data(), m.size());
  ASSERT_EQ(a.kind, MxAnswerKind::kRecords);
  ASSERT_EQ(a.records.size(), 2u);
  EXPECT_EQ(a.records[0].host, "mx1.multi");
  EXPECT_EQ(a.records[0].preference, 10);
  EXPECT_EQ(a.records[1].host, "mx2");
  EXPECT_EQ(MinAnswerTtl(m.data(), m.size(), ns_t_mx), 60u);
}

TEST(MxAnswer, NonZeroPreferenceRootIsStillNull) {
  Msg m = NullMxAnswer(5);
  EXPECT_EQ(ParseMxAnswer(m.data(), m.size()).kind, MxAnswerKind::kNullMx);
}

TEST(MxAnswer, GarbageIsMalformed) {
  const unsigned char junk[] = {1, 2, 3};
  EXPECT_EQ(ParseMxAnswer(junk, 3).kind, MxAnswerKind::kMalformed);
  EXPECT_FALSE(MinAnswerTtl(junk, 3, ns_t_mx).has_value());
}

TEST(NegativeTtl, SoaMinimumAndTtlTakeTheSmaller) {
  struct Case {
    uint32_t ttl, minimum, want;
  };
  for (const auto& [ttl, minimum, want] : {Case{3600, 120, 120}, Case{30, 900, 30}}) {
    Msg m(0x8183, 0, 1);
    m.Question("gone.test", ns_t_mx);
    // rdata: mname "ns.test" (9), rname "h.test" (8), 5 x 32 bits.
    m.RrHeader(ns_t_soa, ttl, 9 + 8 + 20);
    m.Name("ns.test");
    m.Name("h.test");
    m.Put32(1);
    m.Put32(2);
    m.Put32(3);
    m.Put32(4);
    m.Put32(minimum);
    EXPECT_EQ(NegativeTtlFromSoa(m.data(), m.size()), want);
  }
}

TEST(NegativeTtl, NoSoaNoTtl) {
  Msg m(0x8183, 0, 0);
  m.Question("gone.test", ns_t_mx);
  EXPECT_FALSE(NegativeTtlFromSoa(m.data(), m.size()).has_value());
}

}  // namespace
}  // namespace sluice::dns
