// DKIM signing cost per message (dkim::Signer: header parse, body
// canonicalization and hash, header hash, the signature) for RSA-2048,
// RSA-1024 and Ed25519 at 2 KB and 20 KB, one signature each; plus the raw
// private-key operation alone (OpenSSL), to set beside wolfSSL's in
// dkim_wolfssl_bench.cc, and the body hash alone. docs/BENCHMARKS.md "DKIM".
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "sluice/dkim/canon.h"
#include "sluice/dkim/key.h"
#include "sluice/dkim/signer.h"

namespace sluice::dkim {
namespace {

// A plausible bulk message: a dozen headers, then text lines of ~70 bytes.
std::string Message(size_t size) {
  std::string m =
      "From: Example News <news@example.com>\r\nTo: \"Reader\" <reader@dest.example>\r\n"
      "Subject: Your weekly digest, with a subject long enough to be realistic\r\n"
      "Date: Mon, 7 Dec 2026 06:00:00 +0000\r\nMessage-ID: <0CRG4Y9BY2ER0.17@mx.example.com>\r\n"
      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "List-Unsubscribe: <https://example.com/u/0123456789abcdef>, <mailto:u@example.com>\r\n"
      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n";
  const std::string line =
      "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do  eiusmod\r\n";
  while (m.size() < size) m += line;
  m.resize(size - 2);
  m += "\r\n";
  return m;
}

const char* const kHead =
    "Received: from client.example (127.0.0.1) by mx.example.com (Sluice) with ESMTP id "
    "0CRG4Y9BY2ER0\r\n\tfor <reader@dest.example>; Mon, 07 Dec 2026 06:00:00 +0000\r\n";

// Keys are written once per process (RSA generation takes a while).
std::string KeyFile(Algorithm a, int bits) {
  static std::string dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/dkim_bench.XXXXXX";
    dir = mkdtemp(tmpl);
  }
  const std::string path = dir + "/" + AlgorithmName(a) + std::to_string(bits);
  if (access(path.c_str(), R_OK) != 0) {
    std::ofstream(path) << *(*PrivateKey::Generate(a, bits))->ToPem();
  }
  return path;
}

std::unique_ptr<KeyStore> Store(Algorithm a, int bits) {
  config::Config c;
  config::DkimSigner s;
  s.pattern = "example.com";
  s.selector = "bench";
  s.key_file = KeyFile(a, bits);
  c.dkim_signers = {s};
  return *KeyStore::Create(c);
}

// Args: algorithm (0 RSA-2048, 1 RSA-1024, 2 Ed25519), message bytes.
void BM_DkimSign(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  const Algorithm a = which == 2 ? Algorithm::kEd25519Sha256 : Algorithm::kRsaSha256;
  const auto store = Store(a, which == 1 ? 1024 : 2048);
  Signer signer(*store);
  const std::string body = Message(static_cast<size_t>(state.range(1)));
  for (auto _ : state) {
    auto s = signer.Sign(kHead, body, 1765000000);
    benchmark::DoNotOptimize(s);
  }
  state.SetLabel(which == 0 ? "rsa-2048" : which == 1 ? "rsa-1024" : "ed25519");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_DkimSign)
    ->ArgsProduct({{0, 1, 2}, {2 * 1024, 20 * 1024}})
    ->Unit(benchmark::kMicrosecond);

// The private-key operation alone, OpenSSL 3 (libcrypto).
void BM_DkimKeySign_OpenSsl(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  const Algorithm a = which == 2 ? Algorithm::kEd25519Sha256 : Algorithm::kRsaSha256;
  const auto key = *PrivateKey::Load(KeyFile(a, which == 1 ? 1024 : 2048));
  Digest d{};
  for (auto _ : state) {
    auto sig = key->Sign(d);
    benchmark::DoNotOptimize(sig);
  }
  state.SetLabel(which == 0 ? "rsa-2048" : which == 1 ? "rsa-1024" : "ed25519");
}
BENCHMARK(BM_DkimKeySign_OpenSsl)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

// Canonicalization and SHA-256 of a body (what a 20 KB message costs
// besides the key operation).
void BM_DkimBodyHash(benchmark::State& state) {
  const std::string body = Message(static_cast<size_t>(state.range(1)));
  const Canon canon = state.range(0) == 0 ? Canon::kRelaxed : Canon::kSimple;
  Sha256 sha;
  std::string scratch;
  for (auto _ : state) {
    BodyCanonicalizer c(canon);
    sha.Reset();
    scratch.clear();
    c.Feed(body, scratch);
    c.Finish(scratch);
    sha.Update(scratch);
    benchmark::DoNotOptimize(sha.Final());
  }
  state.SetLabel(CanonName(canon));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_DkimBodyHash)->ArgsProduct({{0, 1}, {2 * 1024, 20 * 1024}});

}  // namespace
}  // namespace sluice::dkim
