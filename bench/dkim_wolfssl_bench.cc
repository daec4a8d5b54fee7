// The RSA-2048 DKIM signature (PKCS#1 v1.5 over a SHA-256 DigestInfo) with
// Debian's wolfSSL, to compare with BM_DkimKeySign_OpenSsl/0: why DKIM signs
// with OpenSSL's libcrypto (docs/ARCHITECTURE.md "DKIM"). A translation unit
// of its own: wolfSSL's compatibility names clash with OpenSSL's headers.
#include <benchmark/benchmark.h>
// clang-format off
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>
// clang-format on

#include <cstdlib>

namespace {

void BM_DkimKeySign_WolfSsl(benchmark::State& state) {
  WC_RNG rng;
  RsaKey key;
  if (wc_InitRng(&rng) != 0 || wc_InitRsaKey(&key, nullptr) != 0 ||
      wc_MakeRsaKey(&key, 2048, WC_RSA_EXPONENT, &rng) != 0 || wc_RsaSetRNG(&key, &rng) != 0) {
    state.SkipWithError("wolfSSL could not make an RSA key");
    return;
  }
  byte digest[32] = {};
  byte encoded[64];
  const int encoded_size = wc_EncodeSignature(encoded, digest, sizeof digest, SHA256h);
  byte sig[256];
  for (auto _ : state) {
    const int n =
        wc_RsaSSL_Sign(encoded, static_cast<word32>(encoded_size), sig, sizeof sig, &key, &rng);
    if (n != 256) std::abort();
    benchmark::DoNotOptimize(sig);
  }
  state.SetLabel("rsa-2048");
  wc_FreeRsaKey(&key);
  wc_FreeRng(&rng);
}
BENCHMARK(BM_DkimKeySign_WolfSsl)->Unit(benchmark::kMicrosecond);

}  // namespace
