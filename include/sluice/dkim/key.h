// DKIM private keys and the hashes around them, on OpenSSL's libcrypto
// (docs/ARCHITECTURE.md "DKIM": Debian's wolfSSL signs RSA-2048 about six
// times slower).
//
// A PrivateKey is immutable once loaded and may be shared by every shard:
// OpenSSL 3 allows concurrent signing with one EVP_PKEY (each Sign uses its
// own context). Trusts the PEM file only to be a key; checks its type and
// size (RSA 1024-4096 bits, RFC 8301 says at least 1024; Ed25519).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace sluice::dkim {

enum class Algorithm : uint8_t { kRsaSha256, kEd25519Sha256 };
const char* AlgorithmName(Algorithm a);  // "rsa-sha256", "ed25519-sha256"

inline constexpr int kRsaBitsMin = 1024;  // RFC 8301 3.2: verifiers may reject less
inline constexpr int kRsaBitsMax = 4096;  // larger keys do not fit common DNS TXT setups

using Digest = std::array<uint8_t, 32>;

// SHA-256, fed in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  Digest Final();  // then Reset() before reuse
  void Reset();

 private:
  EVP_MD_CTX* ctx_;
};

class PrivateKey {
 public:
  ~PrivateKey();
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;

  // From PEM text (PKCS#8 or the traditional RSA form); `name` is for errors.
  static absl::StatusOr<std::shared_ptr<const PrivateKey>> FromPem(std::string_view pem,
                                                                   std::string_view name);
  static absl::StatusOr<std::shared_ptr<const PrivateKey>> Load(const std::string& path);
  // A new key: kRsaSha256 with `bits`, or kEd25519Sha256 (bits ignored).
  static absl::StatusOr<std::shared_ptr<const PrivateKey>> Generate(Algorithm algorithm, int bits);

  Algorithm algorithm() const { return algorithm_; }
  int bits() const { return bits_; }

  // The signature over the SHA-256 of the canonicalized header data:
  // RSASSA-PKCS1-v1_5 with SHA-256 (RFC 6376 3.3.1), or Ed25519 over the
  // 32-byte digest itself (RFC 8463 3: PureEdDSA of the hash).
  absl::StatusOr<std::string> Sign(const Digest& digest) const;
  // The p= value of the DNS record, base64: the DER SubjectPublicKeyInfo
  // for RSA, the raw 32-byte public key for Ed25519 (RFC 8463 4).
  absl::StatusOr<std::string> PublicKeyBase64() const;
  // The key as PKCS#8 PEM.
  absl::StatusOr<std::string> ToPem() const;

 private:
  PrivateKey(EVP_PKEY* key, Algorithm algorithm, int bits)
      : key_(key), algorithm_(algorithm), bits_(bits) {}
  static absl::StatusOr<std::shared_ptr<const PrivateKey>> Wrap(EVP_PKEY* key,
                                                                std::string_view name);

  EVP_PKEY* key_;
  Algorithm algorithm_;
  int bits_;
};

}  // namespace sluice::dkim
