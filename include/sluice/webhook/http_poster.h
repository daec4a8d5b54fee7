// Sends one webhook's batches: HTTP/1.1 POST over one keep-alive TCP
// connection (TLS through tls::Session for https://), blocking, from the
// webhook's own thread (never a shard's).
// Each Post() has one deadline for the whole exchange (connect, send,
// response). A connection the receiver closed while idle is noticed on the
// next send and replaced once, transparently; any other failure closes the
// connection and is the caller's to retry.
//
// What it trusts: nothing from the receiver but its status code; the
// response is parsed by http/response_parser.h and buffered up to
// kMaxResponseBytes (a larger body is not read: the connection is closed).
// The host name is resolved (getaddrinfo) at each new connection.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "sluice/http/url.h"
#include "sluice/tls/tls.h"

namespace sluice::webhook {

// A receiver's answer is a status and a few words; 64 KiB is generous.
inline constexpr size_t kMaxResponseBytes = 64u << 10;

class HttpPoster {
 public:
  // `headers`: extra header lines, each ending with CRLF ("Authorization: ...\r\n").
  // Once *stop is set, an exchange in progress ends within stop_drain_ms
  // (so a hung receiver cannot hold up a shutdown for the whole timeout).
  // `tls`: a client context for https:// (null for http://); the server's
  // certificate must chain to its CAs and match the URL's host.
  HttpPoster(http::Url url, std::string headers, std::shared_ptr<const tls::Context> tls = nullptr,
             const std::atomic<bool>* stop = nullptr, uint64_t stop_drain_ms = 0);
  ~HttpPoster() { Close(); }
  HttpPoster(const HttpPoster&) = delete;
  HttpPoster& operator=(const HttpPoster&) = delete;

  // The response's status code, or why there was none.
  absl::StatusOr<int> Post(std::string_view body, size_t records, uint32_t timeout_ms);
  void Close();

 private:
  absl::Status Connect(uint64_t deadline_ms);
  absl::Status Wait(int fd, short events, uint64_t deadline_ms);
  absl::StatusOr<int> ReadResponse(uint64_t deadline_ms, bool& sent_nothing);
  // https: the handshake after connect, and the I/O through the session.
  absl::Status Handshake(uint64_t deadline_ms);
  absl::Status FlushTls(uint64_t deadline_ms);
  absl::StatusOr<size_t> FeedTls(uint64_t deadline_ms);
  absl::Status SendTls(std::string_view data, uint64_t deadline_ms);
  ssize_t RecvTls(char* buf, size_t size, uint64_t deadline_ms);
  // Sends the request; `fresh` false: the connection was idle before.
  absl::StatusOr<int> Exchange(std::string_view head, std::string_view body, uint64_t deadline_ms,
                               bool& sent_nothing);

  http::Url url_;
  std::shared_ptr<const tls::Context> tls_;
  std::unique_ptr<tls::Session> session_;  // with fd_, for https
  std::string headers_;
  const std::atomic<bool>* stop_;
  const uint64_t stop_drain_ms_;
  uint64_t stopped_at_ms_ = 0;
  int fd_ = -1;
  std::string response_;
};

}  // namespace sluice::webhook
