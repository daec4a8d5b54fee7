// The wolfSSL adapter: TLS driven purely by byte buffers.
//
// A tls::Session never touches a socket. The owner moves bytes:
//
//   network bytes  --PutCiphertext-->  Session  --Read-->   plaintext
//   plaintext      --Write-->          Session  --ciphertext_out()-->  network
//
// wolfSSL's custom I/O callbacks (wolfSSL_SetIORecv/SetIOSend) read from the
// session's bounded ciphertext input and append to its ciphertext output, so
// the shard's io_uring loop stays the only place that does I/O and no thread
// ever blocks on a handshake: when wolfSSL wants bytes that have not arrived
// (WANT_READ), Handshake()/Read() return "in progress"/0 and the owner feeds
// more when the next receive completes.
//
// A tls::Context holds the configuration (certificate chain and key, or the
// CA store for a client) and is immutable once made; sessions hold it by
// shared_ptr, so a context replaced on SIGHUP lives until its last session
// ends (wolfSSL also reference-counts the WOLFSSL_CTX).
//
// Both directions use the same classes: Mode::kServer for inbound (STARTTLS
// and implicit TLS), Mode::kClient for the outbound delivery engine
// (opportunistic or required STARTTLS, optional verification against the
// system CA store and the MX host name).
//
// Bounds: the ciphertext input holds at most kCipherInMax bytes (two full
// TLS records); the owner offers more only as room appears. The ciphertext
// output grows only by what Handshake()/Write()/Shutdown() produce; the
// owner bounds it by writing plaintext only after the previous output was
// sent (see Write).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// wolfSSL's types, kept out of every includer.
struct WOLFSSL_CTX;
struct WOLFSSL;

namespace sluice::tls {

// Frees this thread's wolfSSL state: Debian builds wolfSSL with FP_ECC, whose
// fixed-point cache for ECDHE is per thread and outlives the thread unless
// freed. Call it at the end of every thread that ran handshakes.
void ReleaseThreadState();

enum class Mode : uint8_t { kServer, kClient };

struct ContextOptions {
  Mode mode = Mode::kServer;
  // PEM. Server: required; the certificate file may hold the chain after the
  // leaf (intermediates in order). Client: optional client certificate.
  std::string cert_file;
  std::string key_file;
  // "1.2" (default: TLS 1.2 and 1.3) or "1.3" (1.3 only).
  std::string min_version = "1.2";
  // "" (the highest both sides have) or "1.2" (TLS 1.2 only: tests, and
  // peers that mishandle 1.3).
  std::string max_version;
  // Client: check the peer's chain and name (see Session::NewClient). The
  // CAs come from `ca_file` (PEM) if set, else from the system store.
  bool verify_peer = false;
  std::string ca_file;
};

class Context {
 public:
  static absl::StatusOr<std::shared_ptr<const Context>> Create(const ContextOptions& options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Mode mode() const { return mode_; }
  bool verify_peer() const { return verify_peer_; }
  WOLFSSL_CTX* raw() const { return ctx_; }

 private:
  Context() = default;
  WOLFSSL_CTX* ctx_ = nullptr;
  Mode mode_ = Mode::kServer;
  bool verify_peer_ = false;
};

// A client's resumption state from one finished handshake (TLS 1.3: the
// server's session ticket; TLS 1.2: the session id), owned by the caller and
// offered to a later client Session for the same server (Session::Offer).
//
// Held serialized (wolfSSL's i2d form: the ticket, the resumption secret, the
// peer's chain; about 1-3 KB) rather than as a WOLFSSL_SESSION, which this
// Debian build (SESSION_CERTS) makes about 37 KB: callers keep hundreds of
// these per shard. A default-made one is empty and offers nothing; Save()
// never returns a non-empty one that cannot be offered.
class SavedSession {
 public:
  SavedSession() = default;

  bool empty() const { return der_.empty(); }
  // Bytes held, for callers that bound their caches by memory.
  size_t size() const { return der_.size(); }

 private:
  friend class Session;
  explicit SavedSession(std::string der) : der_(std::move(der)) {}
  std::string der_;
};

class Session {
 public:
  enum class Progress : uint8_t {
    kInProgress,   // send ciphertext_out() if any, feed more input, call again
    kEstablished,  // the handshake is complete
    kFailed,       // error() says why; send ciphertext_out() (an alert) and close
  };

  // An inbound session on a server context.
  static absl::StatusOr<std::unique_ptr<Session>> NewServer(std::shared_ptr<const Context> ctx);
  // An outbound session. `host` is sent as SNI, and when the context verifies
  // peers, the certificate must match it (and chain to a trusted CA).
  static absl::StatusOr<std::unique_ptr<Session>> NewClient(std::shared_ptr<const Context> ctx,
                                                            std::string_view host);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Ciphertext from the network. Takes at most cipher_room() bytes and
  // returns how many it took.
  size_t PutCiphertext(const char* data, size_t size);
  size_t cipher_room() const { return kCipherInMax - (in_.size() - in_pos_); }
  // The peer closed the TCP stream: no more ciphertext will come.
  void PutEof() { eof_ = true; }

  // Client, before the first Handshake(): asks the server to resume `saved`
  // (made by Save() on an earlier session to the same server). Returns false
  // and changes nothing when `saved` is empty, has expired, or this is not a
  // fresh client session. A server that does not know the session (another
  // server, a restarted one, a rotated ticket key) answers with a full
  // handshake, so offering is never worse than not offering; resumed() says
  // which happened. The session keeps its own copy: `saved` may go.
  bool Offer(const SavedSession& saved);

  // Client, after a full handshake: the state a later connection can resume
  // with, or an empty SavedSession if there is none yet. With TLS 1.3 the
  // server sends its ticket only after the handshake (NewSessionTicket), and
  // wolfSSL takes it in during a Read(): call Save() after the first reply
  // read over TLS (for SMTP, the EHLO reply after STARTTLS), not straight
  // after Handshake().
  //
  // A resumed session hands out nothing: keep offering the one it resumed
  // (a ticket may be used again within its lifetime; an expired or refused
  // one leads to a full handshake, whose session replaces it). The state
  // wolfSSL 5.5.4 keeps after a resumed TLS 1.3 handshake (the new ticket)
  // resumes against wolfSSL and Python's ssl, but Postfix 3.7's smtpd
  // answers it with a fatal alert: in bench/tls.py every connection after
  // a resumed one failed until this rule.
  SavedSession Save() const;

  // Drives the handshake (client: the first call sends the ClientHello).
  Progress Handshake();
  bool established() const { return established_; }

  // Decrypts up to `capacity` plaintext bytes into `out`. Returns the count,
  // 0 when it needs more ciphertext (or the peer sent close_notify: see
  // peer_closed()), or an error (the connection is unusable).
  absl::StatusOr<size_t> Read(char* out, size_t capacity);
  // Encrypts all of `plaintext` into ciphertext_out(). Only after the
  // handshake. The output grows by the plaintext plus record overhead
  // (< 1 % for full records), so callers bound it by what they pass.
  absl::Status Write(std::string_view plaintext);
  // Queues a close_notify alert in ciphertext_out().
  void Shutdown();

  // Ciphertext waiting to be sent. The owner sends it and erases what went.
  std::string& ciphertext_out() { return out_; }
  bool peer_closed() const { return peer_closed_; }

  // After the handshake: "TLSv1.3", the cipher suite's name, whether a
  // session was resumed, and (client) whether the peer's chain and name
  // were verified.
  std::string version() const;
  std::string cipher() const;
  bool resumed() const;
  bool peer_verified() const { return peer_verified_; }
  // The last failure, for logs.
  const std::string& error() const { return error_; }

  // Two full TLS records (16 KiB payload + up to 2 KiB of overhead each).
  static constexpr size_t kCipherInMax = 2 * (16384 + 2048);

 private:
  friend class Context;  // installs OnRecv/OnSend on the WOLFSSL_CTX
  Session() = default;
  static int OnRecv(WOLFSSL* ssl, char* buf, int size, void* self);
  static int OnSend(WOLFSSL* ssl, char* buf, int size, void* self);
  absl::Status Failure(int ret, std::string_view what);

  std::shared_ptr<const Context> ctx_;
  WOLFSSL* ssl_ = nullptr;
  std::string in_;  // ciphertext received, not yet taken by wolfSSL
  size_t in_pos_ = 0;
  std::string out_;  // ciphertext produced, not yet sent
  bool eof_ = false;
  bool established_ = false;
  bool failed_ = false;
  bool peer_closed_ = false;
  bool peer_verified_ = false;
  std::string error_;
};

}  // namespace sluice::tls
