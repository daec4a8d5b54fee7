// One HTTPS connection's TLS; see sluice/server/http_tls.h. The loop is the
// SMTP connection's (server/connection.cc, ConsumeTls) without the session
// pausing: the listener takes every plaintext byte at once.
#include "sluice/server/http_tls.h"

#include <utility>

#include "sluice/base/strings.h"

namespace sluice::server {
namespace {

// Plaintext taken from wolfSSL per Read: one full TLS record.
constexpr size_t kPlainChunk = 16384;

}  // namespace

absl::StatusOr<std::unique_ptr<HttpTls>> HttpTls::New(std::shared_ptr<const tls::Context> ctx) {
  if (ctx == nullptr) return absl::FailedPreconditionError("no TLS context (tls.cert_file)");
  auto s = tls::Session::NewServer(std::move(ctx));
  if (!s.ok()) return s.status();
  return std::unique_ptr<HttpTls>(new HttpTls(*std::move(s)));
}

HttpTls::Result HttpTls::Receive(std::string_view cipher, std::string& plain) {
  size_t used = 0;
  for (;;) {
    size_t took = 0;
    if (used < cipher.size() && session_->cipher_room() > 0) {
      took = session_->PutCiphertext(cipher.data() + used, cipher.size() - used);
      used += took;
    }
    if (!session_->established()) {
      const tls::Session::Progress p = session_->Handshake();
      if (p == tls::Session::Progress::kFailed) return Result::kFailed;
      if (p == tls::Session::Progress::kInProgress) {
        if (used < cipher.size() && took > 0) continue;    // room appeared: feed more
        if (used < cipher.size()) return Result::kFailed;  // cannot take it: stuck
        return Result::kOk;
      }
    }
    const Result r = Decrypt(plain);
    if (r != Result::kOk) return r;
    if (used == cipher.size()) return Result::kOk;
    if (took == 0 && session_->cipher_room() == 0) return Result::kFailed;  // stuck
  }
}

HttpTls::Result HttpTls::Decrypt(std::string& plain) {
  char buffer[kPlainChunk];
  for (;;) {
    absl::StatusOr<size_t> n = session_->Read(buffer, sizeof buffer);
    if (!n.ok()) return Result::kFailed;
    if (*n == 0) return session_->peer_closed() ? Result::kClosed : Result::kOk;
    plain.append(buffer, *n);
  }
}

absl::Status HttpTls::Seal(std::string_view plain) {
  if (!session_->established()) return absl::FailedPreconditionError("TLS handshake not done");
  return session_->Write(plain);
}

std::string HttpTls::TakeOutput() {
  std::string out;
  out.swap(session_->ciphertext_out());
  return out;
}

}  // namespace sluice::server
