// Signing: the signature field's form and folding, the key table's lookup
// (exact, wildcard, default, shared keys), and sign-then-verify: a small
// verifier here (tag parsing, b= removal, OpenSSL's EVP_DigestVerify with the
// public key from the DNS record text) checks RSA and Ed25519 signatures,
// and that a changed message no longer verifies. The real verifiers
// (python3-dkim, OpenDKIM) run in tests/integration/test_dkim.py.
#include "sluice/dkim/signer.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "signature.h"
#include "sluice/base/base64.h"
#include "sluice/dkim/header_fields.h"

namespace sluice::dkim {
namespace {

std::string Unfold(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '\r' && c != '\n' && c != ' ' && c != '\t') out += c;
  }
  return out;
}

std::map<std::string, std::string> Tags(std::string_view field) {
  std::map<std::string, std::string> tags;
  field = field.substr(field.find(':') + 1);
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(field.data(), field.size()), ';')) {
    const std::string t = Unfold(std::string_view(part.data(), part.size()));
    if (t.empty()) continue;
    const size_t eq = t.find('=');
    tags[t.substr(0, eq)] = t.substr(eq + 1);
  }
  return tags;
}

// Verifies the topmost DKIM-Signature of `message` with the public key
// `p` (the DNS p= value). Independent of the signer except for canon.h.
bool Verify(const std::string& message, std::string_view p) {
  const size_t hb = HeaderBlockSize(message);
  const std::vector<HeaderField> fields =
      ParseHeaderFields(std::string_view(message).substr(0, hb));
  const HeaderField* sig = nullptr;
  for (const HeaderField& f : fields) {
    if (SameName(f.name, "DKIM-Signature")) {
      sig = &f;
      break;
    }
  }
  if (sig == nullptr) return false;
  auto tags = Tags(sig->raw);
  const auto c = std::vector<std::string>(absl::StrSplit(tags["c"], '/'));
  const Canon hc = c[0] == "simple" ? Canon::kSimple : Canon::kRelaxed;
  const Canon bc = c[1] == "simple" ? Canon::kSimple : Canon::kRelaxed;
  // Body hash.
  BodyCanonicalizer body(bc);
  std::string canon;
  body.Feed(std::string_view(message).substr(hb), canon);
  body.Finish(canon);
  unsigned char md[32];
  SHA256(reinterpret_cast<const unsigned char*>(canon.data()), canon.size(), md);
  if (base::Base64Encode(std::string_view(reinterpret_cast<char*>(md), 32)) != tags["bh"]) {
    return false;
  }
  // Header data: h= fields bottom-up, then the signature with b= emptied.
  std::vector<HeaderField> others;
  for (const HeaderField& f : fields) {
    if (&f != sig) others.push_back(f);
  }
  const std::vector<std::string> h = absl::StrSplit(tags["h"], ':');
  std::string data;
  for (const HeaderField* f : CoveredFields(others, h)) {
    if (f != nullptr) CanonicalizeHeader(hc, f->raw, data);
  }
  std::string raw(sig->raw);
  const size_t b = raw.rfind("b=");  // b= is last in what we sign
  raw = raw.substr(0, b + 2);
  CanonicalizeHeader(hc, raw, data);
  data.resize(data.size() - 2);
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  const std::string signature = *base::Base64Decode(tags["b"]);
  const std::string der = *base::Base64Decode(std::string(p));
  EVP_PKEY* key = nullptr;
  if (tags["a"] == "ed25519-sha256") {
    key = EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(der.data()), der.size());
  } else {
    const unsigned char* q = reinterpret_cast<const unsigned char*>(der.data());
    key = d2i_PUBKEY(nullptr, &q, static_cast<long>(der.size()));
  }
  if (key == nullptr) return false;
  bool ok = false;
  if (tags["a"] == "ed25519-sha256") {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
         EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), md, 32) == 1;
    EVP_MD_CTX_free(ctx);
  } else {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, nullptr);
    ok = EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) &&
         EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
         EVP_PKEY_verify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), md, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
  }
  EVP_PKEY_free(key);
  return ok;
}

class SignerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dkim_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string WriteKey(const std::string& name, Algorithm a, int bits = 2048) {
    auto key = PrivateKey::Generate(a, bits);
    EXPECT_TRUE(key.ok());
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << *(*key)->ToPem();
    return path;
  }
  static std::string PublicOf(const std::string& path) {
    return *(*PrivateKey::Load(path))->PublicKeyBase64();
  }

  std::string dir_;
};

const std::string kHead = "Received: from x by y; Mon, 7 Dec 2026 05:00:00 +0000\r\n";
const std::string kBody =
    "From: Sender <news@Example.com>\r\n"
    "To: a@dest.test\r\n"
    "subject: Hello\r\n  folded\r\n"
    "Date: Mon, 7 Dec 2026 05:00:00 +0000\r\n"
    "\r\n"
    "..a dot-stuffed line as stored unstuffed\r\n"
    "line  with   blanks \t\r\n"
    "\r\n\r\n";

TEST_F(SignerTest, RsaAndEd25519SignAndVerify) {
  config::Config c;
  config::DkimSigner rsa{
      .pattern = "example.com", .selector = "r", .key_file = WriteKey("r", Algorithm::kRsaSha256)};
  config::DkimSigner ed = rsa;
  ed.selector = "e";
  ed.key_file = WriteKey("e", Algorithm::kEd25519Sha256);
  ed.canonicalization = "simple/simple";
  c.dkim_signers = {rsa, ed};
  auto store = KeyStore::Create(c);
  ASSERT_TRUE(store.ok()) << store.status();
  Signer signer(**store);
  auto s = signer.Sign(kHead, kBody, 1765000000);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->json, "[{\"d\":\"example.com\",\"s\":\"r\"},{\"d\":\"example.com\",\"s\":\"e\"}]");
  // Two fields: the Ed25519 one (made second) on top.
  const size_t second = s->fields.find("DKIM-Signature", 1);
  ASSERT_NE(second, std::string::npos);
  const std::string ed_field = s->fields.substr(0, second);
  const std::string rsa_field = s->fields.substr(second);
  EXPECT_NE(
      Unfold(ed_field).find("a=ed25519-sha256;c=simple/simple;d=example.com;s=e;t=1765000000;"),
      std::string::npos)
      << ed_field;
  EXPECT_NE(Unfold(rsa_field).find("h=from:from:to:to:subject:subject:date;"), std::string::npos)
      << rsa_field;
  EXPECT_EQ(rsa_field.find("l="), std::string::npos);
  for (absl::string_view line : absl::StrSplit(s->fields, "\r\n")) {
    EXPECT_LE(line.size(), kFoldWidth) << line;
  }
  const std::string message = absl::StrCat(s->fields, kHead, kBody);
  EXPECT_TRUE(Verify(message, PublicOf(dir_ + "/e")));
  // The RSA signature, as a verifier that skips the top one sees it.
  EXPECT_TRUE(Verify(absl::StrCat(rsa_field, kHead, kBody), PublicOf(dir_ + "/r")));
  // Changed after signing: no longer verifies.
  std::string altered = message;
  altered.replace(altered.find("Hello"), 5, "Hellp");
  EXPECT_FALSE(Verify(altered, PublicOf(dir_ + "/e")));
  altered = message;
  altered.replace(altered.find("blanks"), 6, "blankz");
  EXPECT_FALSE(Verify(altered, PublicOf(dir_ + "/e")));
  // A second Subject added above: over-signing makes the RSA one fail.
  EXPECT_FALSE(Verify(absl::StrCat(rsa_field, "Subject: injected\r\n", kHead, kBody),
                      PublicOf(dir_ + "/r")));
}

TEST_F(SignerTest, RelaxedSurvivesRefoldingSimpleDoesNot) {
  config::Config c;
  c.dkim_signers = {{.pattern = "example.com",
                     .selector = "r",
                     .key_file = WriteKey("r", Algorithm::kRsaSha256, 1024),
                     .expire_s = 100}};
  auto store = KeyStore::Create(c);
  ASSERT_TRUE(store.ok());
  Signer signer(**store);
  auto s = signer.Sign("", kBody, 1);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->expires_s, 101u);
  EXPECT_NE(Unfold(s->fields).find("t=1;x=101;"), std::string::npos) << s->fields;
  std::string message = absl::StrCat(s->fields, kBody);
  message.replace(message.find("subject: Hello"), 14, "SUBJECT:   Hello");
  EXPECT_TRUE(Verify(message, PublicOf(dir_ + "/r")));
}

TEST_F(SignerTest, LookupExactWildcardDefaultAndSharedKeys) {
  const std::string key = WriteKey("k", Algorithm::kEd25519Sha256);
  config::Config c;
  c.dkim_signers = {
      {.pattern = "example.com", .selector = "a", .key_file = key},
      {.pattern = "*.example.com", .selector = "b", .key_file = key},
      {.pattern = "example.com",
       .selector = "p",
       .key_file = key,
       .signing_domain = "platform.test"},
      {.pattern = "platform.test", .selector = "d", .key_file = key},
  };
  for (int i = 0; i < 10000; ++i) {
    c.dkim_signers.push_back(
        {.pattern = "d" + std::to_string(i) + ".test", .selector = "s", .key_file = key});
  }
  auto table = SignerTable::Load(c);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ((*table)->key_count(), 1u);
  auto find = [&](std::string_view d) {
    std::string out;
    for (const auto& m : (*table)->Find(d)) out += m.entry->selector + "@" + m.domain + " ";
    return out;
  };
  EXPECT_EQ(find("example.com"), "a@example.com p@platform.test ");
  EXPECT_EQ(find("news.eu.example.com"), "b@news.eu.example.com ");
  EXPECT_EQ(find("d9999.test"), "s@d9999.test ");
  EXPECT_EQ(find("other.test"), "");
  EXPECT_EQ(find(""), "");
  c.dkim_default_domain = "platform.test";
  table = SignerTable::Load(c);
  EXPECT_EQ(find("other.test"), "d@platform.test ");
  EXPECT_EQ(find(""), "d@platform.test ");
}

TEST_F(SignerTest, BadKeysAreErrorsNamingTheFile) {
  const std::string path = dir_ + "/bad.pem";
  std::ofstream(path) << "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
  config::Config c;
  c.dkim_signers = {{.pattern = "example.com", .selector = "a", .key_file = path}};
  auto store = KeyStore::Create(c);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(path), std::string::npos) << store.status();
  c.dkim_signers[0].key_file = dir_ + "/missing.pem";
  EXPECT_FALSE(KeyStore::Create(c).ok());
  EXPECT_FALSE(PrivateKey::Generate(Algorithm::kRsaSha256, 512).ok());
}

TEST(Signature, FoldingKeepsLinesShort) {
  std::vector<std::string> h(30, "content-transfer-encoding");
  const std::string bh(44, 'B');  // outlives the tags, which hold a view
  SignatureTags t{.algorithm = "rsa-sha256",
                  .domain = "a-rather-long-domain-name.example.com",
                  .selector = "selector2026",
                  .timestamp = 1765000000,
                  .expiration = 1765600000,
                  .headers = &h,
                  .body_hash = bh};
  const std::string field = CompleteField(UnsignedField(t), std::string(344, 'S'));
  EXPECT_TRUE(absl::EndsWith(field, "\r\n"));
  std::string joined;
  for (absl::string_view line :
       absl::StrSplit(absl::StripSuffix(absl::string_view(field), "\r\n"), "\r\n")) {
    EXPECT_LE(line.size(), kFoldWidth) << line;
    joined += std::string(line);
  }
  EXPECT_NE(Unfold(joined).find("b=" + std::string(344, 'S')), std::string::npos);
  EXPECT_NE(joined.find("x=1765600000;"), std::string::npos);
}

}  // namespace
}  // namespace sluice::dkim
