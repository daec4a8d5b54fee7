#include "sluice/tls/password.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::tls {
namespace {

// A fast count keeps the tests quick; the format is the same.
constexpr uint32_t kFast = kMinIterations;

TEST(Password, HashRoundTrip) {
  auto h = HashPassword("s3cret", kFast);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->rfind("$pbkdf2-sha256$1000$", 0), 0u) << *h;
  auto parsed = ParseHash(*h);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->iterations, kFast);
  EXPECT_EQ(parsed->salt.size(), kSaltBytes);
  EXPECT_TRUE(CheckPassword(*parsed, "s3cret"));
  EXPECT_FALSE(CheckPassword(*parsed, "s3cret "));
  EXPECT_FALSE(CheckPassword(*parsed, ""));
  // A fresh salt every time.
  EXPECT_NE(*HashPassword("s3cret", kFast), *h);
}

TEST(Password, KnownVector) {
  // RFC 7914 section 11's PBKDF2-HMAC-SHA-256 vector ("passwd", "salt", 1
  // iteration) is below our minimum count; use Python's hashlib instead:
  // hashlib.pbkdf2_hmac('sha256', b'password', b'saltsaltsaltsalt', 1000)
  auto h = ParseHash(
      "$pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$"
      "8nX7hwFEzIB8aPajJTYK8weHQc5Ngz0pFVAKvSu4jQA=");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(CheckPassword(*h, "password"));
  EXPECT_FALSE(CheckPassword(*h, "Password"));
}

TEST(Password, BadHashesAreRejected) {
  for (const char* bad : {
           "",
           "plain",
           "$pbkdf2-sha1$1000$c2FsdHNhbHQ=$AAAA",
           "$pbkdf2-sha256$999$c2FsdHNhbHRzYWx0c2FsdA==$"
           "NrB7Ly3ygnzDC3pv0iyG60Ee2nGxDZSAqx9YmOIOszI=",
           "$pbkdf2-sha256$x$c2FsdHNhbHRzYWx0c2FsdA==$NrB7Ly3ygnzDC3pv0iyG60Ee2nGxDZSAqx9YmOIOszI=",
           "$pbkdf2-sha256$1000$c2FsdA$NrB7Ly3ygnzDC3pv0iyG60Ee2nGxDZSAqx9YmOIOszI=",
           "$pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$AAAA",
           "$pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==",
           "$pbkdf2-sha256$1000$a$b$c",
       }) {
    EXPECT_FALSE(ParseHash(bad).ok()) << bad;
  }
}

TEST(Password, FileParsing) {
  const std::string hash = *HashPassword("pw", kFast);
  auto f = PasswordFile::Parse("# users\n\nalice:" + hash + "\r\nbob:" + hash + "\n", "users");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->size(), 2u);
  ASSERT_NE(f->Find("alice"), nullptr);
  EXPECT_EQ(f->Find("carol"), nullptr);
  EXPECT_EQ(f->Find("Alice"), nullptr);  // names are exact

  auto dup = PasswordFile::Parse("a:" + hash + "\na:" + hash + "\n", "users");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(std::string(dup.status().message()).find("users:2: user a is listed twice"),
            std::string::npos)
      << dup.status();
  auto no_colon = PasswordFile::Parse("alice\n", "users");
  ASSERT_FALSE(no_colon.ok());
  EXPECT_NE(std::string(no_colon.status().message()).find("users:1:"), std::string::npos);
  EXPECT_FALSE(PasswordFile::Parse("al ice:" + hash + "\n", "users").ok());
  EXPECT_FALSE(PasswordFile::Parse(":" + hash + "\n", "users").ok());
  EXPECT_FALSE(PasswordFile::Parse("alice:$pbkdf2-sha256$1000$x$y\n", "users").ok());
}

TEST(Password, SetPasswordCreatesAndReplaces) {
  char tmpl[] = "/tmp/sluice-pw-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/users";
  ASSERT_TRUE(SetPassword(path, "alice", "one", kFast).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(SetPassword(path, "bob", "two", kFast).ok());
  ASSERT_TRUE(SetPassword(path, "alice", "three", kFast).ok());
  auto f = PasswordFile::Load(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->size(), 2u);
  EXPECT_TRUE(CheckPassword(*f->Find("alice"), "three"));
  EXPECT_FALSE(CheckPassword(*f->Find("alice"), "one"));
  EXPECT_TRUE(CheckPassword(*f->Find("bob"), "two"));
  EXPECT_FALSE(SetPassword(path, "bad:name", "x", kFast).ok());
  EXPECT_FALSE(SetPassword(path, "carol", "", kFast).ok());
  // A broken file is not rewritten.
  { std::ofstream(path, std::ios::app) << "garbage line\n"; }
  EXPECT_FALSE(SetPassword(path, "carol", "x", kFast).ok());
  std::filesystem::remove_all(tmpl);
}

TEST(Password, VerifierCachesSuccessOnly) {
  const std::string text = "alice:" + *HashPassword("right", kFast) + "\n";
  Verifier v(*PasswordFile::Parse(text, "users"));
  EXPECT_TRUE(v.Check("alice", "right"));
  EXPECT_EQ(v.slow_checks(), 1u);
  EXPECT_TRUE(v.Check("alice", "right"));
  EXPECT_EQ(v.slow_checks(), 1u);  // cached
  EXPECT_FALSE(v.Check("alice", "wrong"));
  EXPECT_EQ(v.slow_checks(), 2u);  // a wrong password always pays
  EXPECT_FALSE(v.Check("nobody", "right"));
  EXPECT_EQ(v.slow_checks(), 3u);  // so does an unknown user
  EXPECT_TRUE(v.Check("alice", "right"));
}

TEST(Password, CheckCachedAnswersOnlyARememberedSuccess) {
  const std::string text = "alice:" + *HashPassword("right", kFast) + "\n";
  Verifier v(*PasswordFile::Parse(text, "users"));
  EXPECT_FALSE(v.CheckCached("alice", "right"));  // never checked: only Check can tell
  EXPECT_EQ(v.slow_checks(), 0u);
  EXPECT_TRUE(v.Check("alice", "right"));
  EXPECT_TRUE(v.CheckCached("alice", "right"));
  EXPECT_FALSE(v.CheckCached("alice", "wrong"));
  EXPECT_FALSE(v.CheckCached("nobody", "right"));
  EXPECT_EQ(v.slow_checks(), 1u);  // the cached half never runs PBKDF2
}

TEST(Password, ConstantTimeEqual) {
  EXPECT_TRUE(ConstantTimeEqual("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "ab"));
  EXPECT_TRUE(ConstantTimeEqual("", ""));
}

TEST(AuthLimiter, LocksAfterFailuresAndExpires) {
  AuthLimiter l(3, 60);
  EXPECT_FALSE(l.Locked("192.0.2.1", 1000));
  EXPECT_FALSE(l.Failed("192.0.2.1", 1000));
  EXPECT_FALSE(l.Failed("192.0.2.1", 2000));
  EXPECT_TRUE(l.Failed("192.0.2.1", 3000));
  EXPECT_TRUE(l.Locked("192.0.2.1", 3001));
  EXPECT_FALSE(l.Locked("192.0.2.2", 3001));  // per address
  EXPECT_TRUE(l.Locked("192.0.2.1", 62999));
  EXPECT_FALSE(l.Locked("192.0.2.1", 63000));
}

TEST(AuthLimiter, OldFailuresAndSuccessReset) {
  AuthLimiter l(3, 60);
  l.Failed("a", 0);
  l.Failed("a", 1000);
  EXPECT_FALSE(l.Failed("a", 61000));  // the first two fell out of the window
  l.Succeeded("a");
  EXPECT_FALSE(l.Failed("a", 62000));
  EXPECT_FALSE(l.Failed("a", 62001));
  EXPECT_TRUE(l.Failed("a", 62002));
}

}  // namespace
}  // namespace sluice::tls
