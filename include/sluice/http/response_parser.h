// Reads one HTTP/1.1 response (RFC 9112) from the bytes a client has
// received so far: its status code, where it ends, and whether the
// connection may carry the next request. Pure: no sockets, no clock. Used by
// the webhook client (webhook/http_poster.h), which only needs the verdict.
//
// What it trusts: nothing (a receiver may send anything). Interim 1xx
// responses are skipped. A body is framed by Content-Length or chunked
// transfer coding; a response with neither (and not 204/304) runs to the
// end of the connection: it is complete as soon as its head is, and the
// connection must then be closed (keep_alive false). The head is bounded by
// max_bytes (the caller bounds what it buffers the same way).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice::http {

struct ParsedResponse {
  int status = 0;          // 200..599
  size_t consumed = 0;     // bytes of `data` that made this response (and skipped 1xx)
  bool keep_alive = true;  // false: close the connection after it
};

// nullopt: not complete yet, read more. An error: not HTTP, or a head
// longer than max_bytes; close the connection.
absl::StatusOr<std::optional<ParsedResponse>> ParseResponse(std::string_view data,
                                                            size_t max_bytes);

}  // namespace sluice::http
