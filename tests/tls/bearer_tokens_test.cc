// Bearer tokens (tls/bearer_tokens.h): the digest, the file format and its
// errors, checking, and the shared store's reload.
#include "sluice/tls/bearer_tokens.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>

namespace sluice::tls {
namespace {

TEST(BearerTokens, DigestIsSha256Hex) {
  EXPECT_EQ(TokenDigestHex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(BearerTokens, NewTokensAre256RandomBits) {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    auto t = NewBearerToken();
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->size(), 64u);
    EXPECT_EQ(t->find_first_not_of("0123456789abcdef"), std::string::npos);
    seen.insert(*t);
  }
  EXPECT_EQ(seen.size(), 20u);
}

TEST(BearerTokens, ParsesAndChecks) {
  const std::string text = "# admin tokens\n\nops:" + TokenDigestHex("secret-one") +
                           "\r\n  ci:" + TokenDigestHex("secret-two") + "  \n";
  auto tokens = BearerTokens::Parse(text, "tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 2u);
  EXPECT_EQ(tokens->Check("secret-one"), "ops");
  EXPECT_EQ(tokens->Check("secret-two"), "ci");
  EXPECT_EQ(tokens->Check("secret-on"), std::nullopt);
  EXPECT_EQ(tokens->Check(""), std::nullopt);
  EXPECT_EQ(tokens->Check(TokenDigestHex("secret-one")), std::nullopt);  // the digest is no token
  // Upper-case hex is the same digest.
  std::string upper = TokenDigestHex("x");
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  auto u = BearerTokens::Parse("u:" + upper, "t");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->Check("x"), "u");
}

TEST(BearerTokens, RefusesBadFiles) {
  const std::string d = TokenDigestHex("t");
  struct Case {
    std::string text;
    std::string says;
  } cases[] = {
      {"nocolon", "tokens:1: expected name:sha256hex"},
      {"\n:" + d, "tokens:2: a name of 1 to 64 bytes"},
      {"a b:" + d, "spaces"},
      {"a:" + d.substr(1), "64 hex digits"},
      {"a:" + d.substr(1) + "g", "64 hex digits"},
      {"a:" + d + "\na:" + d, "tokens:2: token a is listed twice"},
      {"a:plaintext-token", "sluice http-token"},
  };
  for (const Case& c : cases) {
    auto t = BearerTokens::Parse(c.text, "tokens");
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_NE(std::string(t.status().message()).find(c.says), std::string::npos)
        << t.status().message();
  }
  std::string many;
  for (size_t i = 0; i <= kMaxTokens; ++i) many += "n" + std::to_string(i) + ":" + d + "\n";
  EXPECT_FALSE(BearerTokens::Parse(many, "t").ok());
}

TEST(BearerTokenStore, ReloadsAndKeepsTheOldSetOnError) {
  char dir[] = "/tmp/sluice-tokens-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/tokens";
  std::ofstream(path) << "a:" << TokenDigestHex("one") << "\n";
  auto store = BearerTokenStore::Create(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->configured());
  EXPECT_EQ((*store)->tokens()->Check("one"), "a");
  std::ofstream(path) << "b:" << TokenDigestHex("two") << "\n";
  ASSERT_TRUE((*store)->Reload().ok());
  EXPECT_EQ((*store)->tokens()->Check("one"), std::nullopt);
  EXPECT_EQ((*store)->tokens()->Check("two"), "b");
  std::ofstream(path) << "broken\n";
  EXPECT_FALSE((*store)->Reload().ok());
  EXPECT_EQ((*store)->tokens()->Check("two"), "b");  // kept
  auto none = BearerTokenStore::Create("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE((*none)->configured());
  EXPECT_EQ((*none)->tokens()->size(), 0u);
  auto missing = BearerTokenStore::Create(path + ".missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("http.tokens_file"), std::string::npos);
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace sluice::tls
