// The [dkim] table of the configuration file: what it reads, its defaults
// and its errors (config/config.cc; the keys are loaded by dkim::KeyStore).
#include "sluice/config/config.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::config {
namespace {

absl::Status Apply(const std::string& toml, Config& c) { return ApplyToml(toml, "t.toml", c); }

TEST(DkimConfig, ReadsSignersAndDefaults) {
  Config c;
  ASSERT_TRUE(Apply(R"([dkim]
default_domain = "Platform.Example."
[[dkim.signer]]
domain = "*.Example.com"
selector = "S2026"
key_file = "/k/a.pem"
signing_domain = "example.com"
canonicalization = "simple"
headers = ["From", "Subject", "DKIM-Signature"]
oversign = []
expire = "2d"
[[dkim.signer]]
domain = "platform.example"
selector = "p"
key_file = "/k/p.pem"
)",
                    c)
                  .ok());
  ASSERT_EQ(c.dkim_signers.size(), 2u);
  const DkimSigner& a = c.dkim_signers[0];
  EXPECT_EQ(a.pattern, "*.example.com");
  EXPECT_EQ(a.selector, "s2026");
  EXPECT_EQ(a.canonicalization, "simple");
  EXPECT_EQ(a.headers, (std::vector<std::string>{"From", "Subject", "DKIM-Signature"}));
  EXPECT_TRUE(a.oversign.empty());
  EXPECT_EQ(a.expire_s, 2u * 86400);
  const DkimSigner& p = c.dkim_signers[1];
  EXPECT_EQ(p.canonicalization, "relaxed/relaxed");
  EXPECT_EQ(p.headers.size(), 15u);
  EXPECT_EQ(p.oversign, (std::vector<std::string>{"From", "Subject", "To"}));
  EXPECT_EQ(p.expire_s, 0u);
  EXPECT_EQ(c.dkim_default_domain, "platform.example");
  EXPECT_TRUE(c.Finalize().ok());
}

TEST(DkimConfig, Errors) {
  const std::string signer = "[[dkim.signer]]\ndomain = \"example.com\"\nselector = \"s\"\n";
  auto error = [](const std::string& toml) {
    Config c;
    absl::Status s = Apply(toml, c);
    if (s.ok()) s = c.Finalize();
    return std::string(s.message());
  };
  EXPECT_NE(error(signer).find("missing key 'key_file'"), std::string::npos);
  EXPECT_NE(error(signer + "key_file = \"k\"\ncanonicalization = \"loose\"\n")
                .find("t.toml:5: dkim.signer.canonicalization"),
            std::string::npos);
  EXPECT_NE(error(signer + "key_file = \"k\"\nheaders = [\"To\"]\n").find("From"),
            std::string::npos);
  EXPECT_NE(error(signer + "key_file = \"k\"\nheaders = [\"Bad Name\"]\n").find("header field"),
            std::string::npos);
  EXPECT_NE(error(signer + "key_file = \"k\"\nkey = \"x\"\n").find("unknown key"),
            std::string::npos);
  EXPECT_NE(error(signer + "key_file = \"k\"\nexpire = \"0s\"\n").find("1s and 365d"),
            std::string::npos);
  EXPECT_NE(error("[[dkim.signer]]\ndomain = \"*\"\nselector = \"s\"\nkey_file = \"k\"\n")
                .find("default_domain"),
            std::string::npos);
  EXPECT_NE(error("[dkim]\ndefault_domain = \"other.example\"\n" + signer + "key_file = \"k\"\n")
                .find("dkim.default_domain"),
            std::string::npos);
  EXPECT_EQ(
      error("[dkim]\ndefault_domain = \"a.example.com\"\n"
            "[[dkim.signer]]\ndomain = \"*.example.com\"\nselector = \"s\"\nkey_file = \"k\"\n"),
      "");
}

}  // namespace
}  // namespace sluice::config
