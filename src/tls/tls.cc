#include "sluice/tls/tls.h"

// options.h first: it carries the feature macros Debian's library was built
// with, and ssl.h's struct layouts depend on them.
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <cstring>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::tls {

void ReleaseThreadState() {
#if defined(HAVE_ECC) && defined(FP_ECC)
  wc_ecc_fp_free();
#endif
}
namespace {

void InitLibrary() {
  static std::once_flag once;
  // Never cleaned up: contexts may live until exit, and the library's global
  // state is small and reachable (LeakSanitizer does not count it).
  std::call_once(once, [] { wolfSSL_Init(); });
}

std::string ErrorText(int code) {
  // The file loaders answer a plain WOLFSSL_FAILURE (0) for a file they
  // cannot read or parse; wolfSSL's text for 0 would be "ok".
  if (code == WOLFSSL_FAILURE) return "unreadable, or no usable PEM data in it";
  char buf[WOLFSSL_MAX_ERROR_SZ] = {};
  wolfSSL_ERR_error_string_n(static_cast<unsigned long>(code), buf, sizeof buf);
  return absl::StrCat(buf, " (", code, ")");
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Context>> Context::Create(const ContextOptions& o) {
  InitLibrary();
  int min_version = 0;
  if (o.min_version == "1.2") {
    min_version = WOLFSSL_TLSV1_2;
  } else if (o.min_version == "1.3") {
    min_version = WOLFSSL_TLSV1_3;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS minimum version '", base::Av(o.min_version), "': must be 1.2 or 1.3"));
  }
  if (!o.max_version.empty() && o.max_version != "1.2") {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS maximum version '", base::Av(o.max_version), "': must be empty or 1.2"));
  }
  const bool only12 = o.max_version == "1.2";
  if (only12 && min_version == WOLFSSL_TLSV1_3) {
    return absl::InvalidArgumentError("TLS minimum version 1.3 above maximum 1.2");
  }
  std::shared_ptr<Context> c(new Context());
  c->mode_ = o.mode;
  c->verify_peer_ = o.mode == Mode::kClient && o.verify_peer;
  // wolfTLS_*_method: the highest version both sides have, down to the
  // minimum set below (never below TLS 1.2).
  WOLFSSL_METHOD* method = nullptr;
  if (o.mode == Mode::kServer) {
    method = only12 ? wolfTLSv1_2_server_method() : wolfTLS_server_method();
  } else {
    method = only12 ? wolfTLSv1_2_client_method() : wolfTLS_client_method();
  }
  c->ctx_ = wolfSSL_CTX_new(method);
  if (c->ctx_ == nullptr) return absl::InternalError("wolfSSL_CTX_new failed");
  if (int r = wolfSSL_CTX_SetMinVersion(c->ctx_, min_version); r != WOLFSSL_SUCCESS) {
    return absl::InternalError(absl::StrCat("TLS minimum version: ", ErrorText(r)));
  }
  if (o.mode == Mode::kServer && (o.cert_file.empty() || o.key_file.empty())) {
    return absl::InvalidArgumentError("a TLS server needs a certificate file and a key file");
  }
  if (!o.cert_file.empty()) {
    if (int r = wolfSSL_CTX_use_certificate_chain_file(c->ctx_, o.cert_file.c_str());
        r != WOLFSSL_SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS certificate ", o.cert_file, ": cannot load: ", ErrorText(r)));
    }
    if (o.key_file.empty()) {
      return absl::InvalidArgumentError("a TLS certificate needs a key file");
    }
    if (int r = wolfSSL_CTX_use_PrivateKey_file(c->ctx_, o.key_file.c_str(), WOLFSSL_FILETYPE_PEM);
        r != WOLFSSL_SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS key ", o.key_file, ": cannot load: ", ErrorText(r)));
    }
    if (wolfSSL_CTX_check_private_key(c->ctx_) != WOLFSSL_SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS key ", o.key_file, " does not match the certificate ", o.cert_file));
    }
  }
  if (c->verify_peer_) {
    const int r = o.ca_file.empty()
                      ? wolfSSL_CTX_load_system_CA_certs(c->ctx_)
                      : wolfSSL_CTX_load_verify_locations(c->ctx_, o.ca_file.c_str(), nullptr);
    if (r != WOLFSSL_SUCCESS) {
      return absl::InvalidArgumentError(absl::StrCat("TLS CA store ",
                                                     o.ca_file.empty() ? "(system)" : o.ca_file,
                                                     ": cannot load: ", ErrorText(r)));
    }
    wolfSSL_CTX_set_verify(c->ctx_, WOLFSSL_VERIFY_PEER, nullptr);
  } else {
    // Server: no client certificates. Client without verification: SMTP's
    // opportunistic TLS (RFC 7435) encrypts against passive listeners only.
    wolfSSL_CTX_set_verify(c->ctx_, WOLFSSL_VERIFY_NONE, nullptr);
  }
  // Server resumption is wolfSSL's default: TLS 1.3 tickets sealed with a
  // key random per WOLFSSL_CTX (a reloaded context refuses older tickets),
  // TLS 1.2 sessions in the library's process-wide cache (which, in
  // wolfSSL 5.5.4, a reloaded context still resumes).
  wolfSSL_CTX_SetIORecv(c->ctx_, &Session::OnRecv);
  wolfSSL_CTX_SetIOSend(c->ctx_, &Session::OnSend);
  return std::shared_ptr<const Context>(std::move(c));
}

Context::~Context() {
  if (ctx_ != nullptr) wolfSSL_CTX_free(ctx_);
}

absl::StatusOr<std::unique_ptr<Session>> Session::NewServer(std::shared_ptr<const Context> ctx) {
  if (ctx == nullptr || ctx->mode() != Mode::kServer) {
    return absl::InvalidArgumentError("NewServer needs a server context");
  }
  std::unique_ptr<Session> s(new Session());
  s->ctx_ = std::move(ctx);
  s->ssl_ = wolfSSL_new(s->ctx_->raw());
  if (s->ssl_ == nullptr) return absl::ResourceExhaustedError("wolfSSL_new failed");
  wolfSSL_SetIOReadCtx(s->ssl_, s.get());
  wolfSSL_SetIOWriteCtx(s->ssl_, s.get());
  return s;
}

absl::StatusOr<std::unique_ptr<Session>> Session::NewClient(std::shared_ptr<const Context> ctx,
                                                            std::string_view host) {
  if (ctx == nullptr || ctx->mode() != Mode::kClient) {
    return absl::InvalidArgumentError("NewClient needs a client context");
  }
  std::unique_ptr<Session> s(new Session());
  s->ctx_ = std::move(ctx);
  s->ssl_ = wolfSSL_new(s->ctx_->raw());
  if (s->ssl_ == nullptr) return absl::ResourceExhaustedError("wolfSSL_new failed");
  wolfSSL_SetIOReadCtx(s->ssl_, s.get());
  wolfSSL_SetIOWriteCtx(s->ssl_, s.get());
  const std::string name(host);
  if (!name.empty()) {
    if (wolfSSL_UseSNI(s->ssl_, WOLFSSL_SNI_HOST_NAME, name.data(),
                       static_cast<unsigned short>(name.size())) != WOLFSSL_SUCCESS) {
      return absl::InvalidArgumentError(absl::StrCat("TLS: bad SNI host name '", name, "'"));
    }
  }
  if (s->ctx_->verify_peer()) {
    if (name.empty()) return absl::InvalidArgumentError("TLS verification needs a host name");
    if (wolfSSL_check_domain_name(s->ssl_, name.c_str()) != WOLFSSL_SUCCESS) {
      return absl::InternalError("wolfSSL_check_domain_name failed");
    }
  }
  return s;
}

Session::~Session() {
  if (ssl_ != nullptr) wolfSSL_free(ssl_);
}

int Session::OnRecv(WOLFSSL*, char* buf, int size, void* self) {
  auto* s = static_cast<Session*>(self);
  const size_t avail = s->in_.size() - s->in_pos_;
  if (avail == 0) return s->eof_ ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
  const size_t n = avail < static_cast<size_t>(size) ? avail : static_cast<size_t>(size);
  std::memcpy(buf, s->in_.data() + s->in_pos_, n);
  s->in_pos_ += n;
  if (s->in_pos_ == s->in_.size()) {
    s->in_.clear();
    s->in_pos_ = 0;
  }
  return static_cast<int>(n);
}

int Session::OnSend(WOLFSSL*, char* buf, int size, void* self) {
  // Never WANT_WRITE: wolfSSL_write would then have to be retried with the
  // same arguments. The owner bounds the output instead (see Write).
  static_cast<Session*>(self)->out_.append(buf, static_cast<size_t>(size));
  return size;
}

size_t Session::PutCiphertext(const char* data, size_t size) {
  if (in_pos_ > 0 && in_pos_ * 2 >= in_.size()) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  const size_t room = cipher_room();
  const size_t take = size < room ? size : room;
  in_.append(data, take);
  return take;
}

absl::Status Session::Failure(int ret, std::string_view what) {
  const int err = wolfSSL_get_error(ssl_, ret);
  failed_ = true;
  error_ = absl::StrCat(base::Av(what), ": ", ErrorText(err));
  return absl::UnavailableError(error_);
}

Session::Progress Session::Handshake() {
  if (established_) return Progress::kEstablished;
  if (failed_) return Progress::kFailed;
  const int ret = ctx_->mode() == Mode::kServer ? wolfSSL_accept(ssl_) : wolfSSL_connect(ssl_);
  if (ret == WOLFSSL_SUCCESS) {
    established_ = true;
    peer_verified_ = ctx_->verify_peer();  // a failed verification fails the handshake
    return Progress::kEstablished;
  }
  const int err = wolfSSL_get_error(ssl_, ret);
  if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
    if (eof_ && in_pos_ == in_.size()) {
      failed_ = true;
      error_ = "handshake: the peer closed the connection";
      return Progress::kFailed;
    }
    return Progress::kInProgress;
  }
  (void)Failure(ret, "handshake");
  return Progress::kFailed;
}

absl::StatusOr<size_t> Session::Read(char* out, size_t capacity) {
  if (!established_) return absl::FailedPreconditionError("TLS read before the handshake");
  if (failed_) return absl::UnavailableError(error_);
  if (peer_closed_ || capacity == 0) return 0;
  const int cap = capacity > (1u << 30) ? (1 << 30) : static_cast<int>(capacity);
  const int ret = wolfSSL_read(ssl_, out, cap);
  if (ret > 0) return static_cast<size_t>(ret);
  const int err = wolfSSL_get_error(ssl_, ret);
  if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) return 0;
  if (err == WOLFSSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
    return 0;
  }
  return Failure(ret, "read");
}

absl::Status Session::Write(std::string_view plaintext) {
  if (!established_) return absl::FailedPreconditionError("TLS write before the handshake");
  if (failed_) return absl::UnavailableError(error_);
  while (!plaintext.empty()) {
    const int n = plaintext.size() > (1u << 30) ? (1 << 30) : static_cast<int>(plaintext.size());
    const int ret = wolfSSL_write(ssl_, plaintext.data(), n);
    if (ret <= 0) return Failure(ret, "write");
    plaintext.remove_prefix(static_cast<size_t>(ret));
  }
  return absl::OkStatus();
}

void Session::Shutdown() {
  if (!established_ || failed_) return;
  (void)wolfSSL_shutdown(ssl_);  // queues close_notify; not waiting for the peer's
}

std::string Session::version() const {
  const char* v = established_ ? wolfSSL_get_version(ssl_) : nullptr;
  return v != nullptr ? v : "";
}

std::string Session::cipher() const {
  const char* c = established_ ? wolfSSL_get_cipher_name(ssl_) : nullptr;
  return c != nullptr ? c : "";
}

namespace {

// wolfSSL sessions as owned pointers.
struct SessionFree {
  void operator()(WOLFSSL_SESSION* s) const { wolfSSL_SESSION_free(s); }
};
using SessionPtr = std::unique_ptr<WOLFSSL_SESSION, SessionFree>;

SessionPtr Parse(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return SessionPtr(wolfSSL_d2i_SSL_SESSION(nullptr, &p, static_cast<long>(der.size())));
}

}  // namespace

bool Session::Offer(const SavedSession& saved) {
  if (saved.empty() || ctx_->mode() != Mode::kClient || established_ || failed_ || !out_.empty()) {
    return false;
  }
  SessionPtr s = Parse(saved.der_);
  // wolfSSL copies the session into the WOLFSSL, so `s` may go at once; it
  // refuses one past its lifetime.
  return s != nullptr && wolfSSL_set_session(ssl_, s.get()) == WOLFSSL_SUCCESS;
}

SavedSession Session::Save() const {
  if (ctx_->mode() != Mode::kClient || !established_ || failed_ || resumed()) return {};
  // A TLS 1.3 session without a ticket yet is not resumable: is_resumable
  // says so (it checks the ticket, or the TLS 1.2 session id, and the
  // lifetime). wolfSSL_get_session does not take a reference: the session
  // stays this WOLFSSL's, and is only read here.
  WOLFSSL_SESSION* live = wolfSSL_get_session(ssl_);
  if (live == nullptr || wolfSSL_SESSION_is_resumable(live) != 1) return {};
  const int size = wolfSSL_i2d_SSL_SESSION(live, nullptr);
  if (size <= 0) return {};
  std::string der(static_cast<size_t>(size), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (wolfSSL_i2d_SSL_SESSION(live, &p) != size) return {};
  // The serialized form must come back (Offer relies on it): a wolfSSL that
  // cannot round-trip this session hands out nothing rather than a dud.
  if (Parse(der) == nullptr) return {};
  return SavedSession(std::move(der));
}

bool Session::resumed() const { return established_ && wolfSSL_session_reused(ssl_) == 1; }

}  // namespace sluice::tls
