// DKIM keys and SHA-256 on OpenSSL's libcrypto (see key.h).
#include "sluice/dkim/key.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "sluice/base/base64.h"
#include "sluice/base/check.h"
#include "sluice/base/strings.h"

namespace sluice::dkim {
namespace {

using base::Av;

// The oldest OpenSSL error on this thread, as text, and the queue cleared.
std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

const char* AlgorithmName(Algorithm a) {
  return a == Algorithm::kRsaSha256 ? "rsa-sha256" : "ed25519-sha256";
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  SLUICE_CHECK(ctx_ != nullptr);
  Reset();
}
Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }
void Sha256::Reset() { SLUICE_CHECK(EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1); }
void Sha256::Update(std::string_view data) {
  SLUICE_CHECK(EVP_DigestUpdate(ctx_, data.data(), data.size()) == 1);
}
Digest Sha256::Final() {
  Digest d;
  unsigned int n = 0;
  SLUICE_CHECK(EVP_DigestFinal_ex(ctx_, d.data(), &n) == 1 && n == d.size());
  return d;
}

PrivateKey::~PrivateKey() { EVP_PKEY_free(key_); }

absl::StatusOr<std::shared_ptr<const PrivateKey>> PrivateKey::Wrap(EVP_PKEY* key,
                                                                   std::string_view name) {
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_ED25519) {
    return std::shared_ptr<const PrivateKey>(new PrivateKey(key, Algorithm::kEd25519Sha256, 256));
  }
  if (type == EVP_PKEY_RSA) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits < kRsaBitsMin || bits > kRsaBitsMax) {
      EVP_PKEY_free(key);
      return absl::InvalidArgumentError(absl::StrCat(Av(name), ": an RSA key of ", bits,
                                                     " bits (DKIM keys are ", kRsaBitsMin, " to ",
                                                     kRsaBitsMax, " bits)"));
    }
    return std::shared_ptr<const PrivateKey>(new PrivateKey(key, Algorithm::kRsaSha256, bits));
  }
  EVP_PKEY_free(key);
  return absl::InvalidArgumentError(
      absl::StrCat(Av(name),
                   ": not an RSA or Ed25519 key (DKIM signs with rsa-sha256 or "
                   "ed25519-sha256)"));
}

absl::StatusOr<std::shared_ptr<const PrivateKey>> PrivateKey::FromPem(std::string_view pem,
                                                                      std::string_view name) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return absl::InternalError(OpenSslError());
  // No passphrase callback: an encrypted key is an error, never a prompt.
  EVP_PKEY* key = PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Av(name), ": not a PEM private key (", OpenSslError(), ")"));
  }
  return Wrap(key, name);
}

absl::StatusOr<std::shared_ptr<const PrivateKey>> PrivateKey::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the key file"));
  std::stringstream text;
  text << in.rdbuf();
  return FromPem(text.str(), path);
}

absl::StatusOr<std::shared_ptr<const PrivateKey>> PrivateKey::Generate(Algorithm algorithm,
                                                                       int bits) {
  EVP_PKEY* key = nullptr;
  if (algorithm == Algorithm::kEd25519Sha256) {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  } else {
    if (bits < kRsaBitsMin || bits > kRsaBitsMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("RSA keys are ", kRsaBitsMin, " to ", kRsaBitsMax, " bits"));
    }
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits));
  }
  if (key == nullptr) return absl::InternalError(OpenSslError());
  return Wrap(key, "generated key");
}

absl::StatusOr<std::string> PrivateKey::Sign(const Digest& digest) const {
  std::string sig;
  size_t len = 0;
  if (algorithm_ == Algorithm::kEd25519Sha256) {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_) != 1) {
      return absl::InternalError(OpenSslError());
    }
    len = 64;
    sig.resize(len);
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, digest.data(),
                       digest.size()) != 1) {
      return absl::InternalError(OpenSslError());
    }
  } else {
    std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new(key_, nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1) {
      return absl::InternalError(OpenSslError());
    }
    sig.resize(len);
    if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, digest.data(),
                      digest.size()) != 1) {
      return absl::InternalError(OpenSslError());
    }
  }
  sig.resize(len);
  return sig;
}

absl::StatusOr<std::string> PrivateKey::PublicKeyBase64() const {
  if (algorithm_ == Algorithm::kEd25519Sha256) {
    std::string raw(32, '\0');
    size_t len = raw.size();
    if (EVP_PKEY_get_raw_public_key(key_, reinterpret_cast<unsigned char*>(raw.data()), &len) !=
        1) {
      return absl::InternalError(OpenSslError());
    }
    raw.resize(len);
    return base::Base64Encode(raw);
  }
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key_, &der);
  if (len <= 0) return absl::InternalError(OpenSslError());
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return base::Base64Encode(out);
}

absl::StatusOr<std::string> PrivateKey::ToPem() const {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return absl::InternalError(OpenSslError());
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace sluice::dkim
