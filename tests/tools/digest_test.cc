#include "tools/common/digest.h"

#include <gtest/gtest.h>

#include "tools/blast/message_factory.h"

namespace sluice::tools {
namespace {

TEST(Digest, RoundTrip) {
  const std::string body = "line one\r\n.dot line\r\n";
  const std::string msg = "Subject: x\r\n" + DigestHeaderFor(body) + "\r\n" + body;
  EXPECT_EQ(CheckDigest(msg), DigestCheck::kOk);
  std::string bad = msg;
  bad.back() = 'x';
  EXPECT_EQ(CheckDigest(bad), DigestCheck::kMismatch);
  EXPECT_EQ(CheckDigest(msg.substr(0, msg.size() - 1)), DigestCheck::kMismatch);
  EXPECT_EQ(CheckDigest("Subject: x\r\n\r\nbody\r\n"), DigestCheck::kMissing);
  EXPECT_EQ(CheckDigest("no header block"), DigestCheck::kMissing);
  EXPECT_EQ(CheckDigest("X-Blast-Digest: junk\r\n\r\nbody\r\n"), DigestCheck::kMismatch);
}

TEST(Digest, HeaderFormat) {
  EXPECT_EQ(DigestHeaderFor(""), "X-Blast-Digest: crc32c=00000000; len=0\r\n");
}

TEST(MessageFactory, MessagesCarryAValidDigestAndTheirIds) {
  FactoryOptions o;
  o.size = 3000;
  o.recipients = 3;
  o.domains = 4;
  auto f = MessageFactory::Create(o);
  ASSERT_TRUE(f.ok());
  for (uint64_t id = 0; id < 40; ++id) {
    OutMessage m;
    (*f)->Make(id, m);
    const std::string full = m.head + m.body->raw;
    EXPECT_EQ(CheckDigest(full), DigestCheck::kOk);
    EXPECT_NE(full.find("X-Blast-Id: " + std::to_string(id) + "\r\n"), std::string::npos);
    EXPECT_NE(full.find("Message-ID: <"), std::string::npos);
    EXPECT_NEAR(static_cast<double>(full.size()), 3000.0, 150.0);
    EXPECT_EQ(m.body->stuffed, DotStuff(m.body->raw));
    ASSERT_EQ(m.recipients.size(), 3u);
    for (const std::string& r : m.recipients) {
      EXPECT_NE(r.find("@d"), std::string::npos);
      EXPECT_NE(r.find(".example"), std::string::npos);
    }
  }
}

TEST(MessageFactory, DomainWeights) {
  FactoryOptions o;
  o.domains = 2;
  o.domain_weights = {1, 0};
  auto f = MessageFactory::Create(o);
  ASSERT_TRUE(f.ok());
  for (uint64_t id = 0; id < 100; ++id) {
    OutMessage m;
    (*f)->Make(id, m);
    EXPECT_EQ(m.recipients[0].substr(m.recipients[0].find('@')), "@d0.example");
  }
  o.domain_weights = {1};
  EXPECT_FALSE(MessageFactory::Create(o).ok());
}

TEST(DotStuff, Lines) {
  EXPECT_EQ(DotStuff(".a\r\nb\r\n..c\r\n"), "..a\r\nb\r\n...c\r\n");
  EXPECT_EQ(NormalizeCrlf("a\nb"), "a\r\nb\r\n");
  EXPECT_EQ(NormalizeCrlf("a\r\nb\r\n"), "a\r\nb\r\n");
}

}  // namespace
}  // namespace sluice::tools
