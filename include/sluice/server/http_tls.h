// TLS for one HTTPS connection of the HTTP listener (http.tls,
// docs/HTTP.md): the same wolfSSL adapter and certificate as SMTP's
// implicit TLS (tls/tls.h, tls/credentials.h), driven by the listener's
// receives and sends. No socket here: ciphertext in, plaintext out;
// responses in, ciphertext out.
//
// What it trusts: nothing the peer sends; a handshake that fails (garbage,
// a protocol the context refuses) ends this connection only.
//
// Bounds: the session's ciphertext input (tls::Session::kCipherInMax);
// decrypted input is handed out as it comes, at most one TLS record (16 KiB)
// more than the ciphertext just received, and the listener parses it before
// it reads again. Ciphertext out is one response plus record overhead, and
// whatever the handshake produced.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sluice/tls/tls.h"

namespace sluice::server {

class HttpTls {
 public:
  static absl::StatusOr<std::unique_ptr<HttpTls>> New(std::shared_ptr<const tls::Context> ctx);

  enum class Result : uint8_t {
    kOk,      // go on: send output() if any, read more
    kFailed,  // error() says why; send output() (an alert) and close
    kClosed,  // the peer sent close_notify: nothing more will come
  };
  // Ciphertext received: drives the handshake, then appends what decrypts
  // to `plain`.
  Result Receive(std::string_view cipher, std::string& plain);
  // The peer closed the TCP stream.
  void Eof() { session_->PutEof(); }
  // Encrypts `plain` (a response) after whatever output is pending.
  absl::Status Seal(std::string_view plain);
  // Queues close_notify.
  void Shutdown() { session_->Shutdown(); }
  // Ciphertext to send (handshake, records, alerts); the caller takes it.
  std::string TakeOutput();
  bool established() const { return session_->established(); }
  const std::string& error() const { return session_->error(); }
  std::string version() const { return session_->version(); }

 private:
  explicit HttpTls(std::unique_ptr<tls::Session> s) : session_(std::move(s)) {}
  Result Decrypt(std::string& plain);

  std::unique_ptr<tls::Session> session_;
};

}  // namespace sluice::server
