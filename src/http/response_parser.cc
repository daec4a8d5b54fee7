// Parses a webhook receiver's HTTP/1.1 response; see
// sluice/http/response_parser.h.
#include "sluice/http/response_parser.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::http {
namespace {

using Result = absl::StatusOr<std::optional<ParsedResponse>>;

struct Head {
  int status = 0;
  bool http10 = false;
  bool close = false;
  bool chunked = false;
  bool has_length = false;
  uint64_t length = 0;
  size_t size = 0;  // with the empty line
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool HasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (base::EqualsIgnoreCase(Trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

absl::Status ParseHead(std::string_view head, Head& h) {
  const size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ' ||
      (line.size() > 12 && line[12] != ' ')) {
    return absl::InvalidArgumentError("not an HTTP/1.x status line");
  }
  h.http10 = line[7] == '0';
  uint64_t status = 0;
  if (!base::ParseUint64(line.substr(9, 3), status) || status < 100 || status > 599) {
    return absl::InvalidArgumentError("bad status code");
  }
  h.status = static_cast<int>(status);
  std::string_view rest = head.substr(eol + 2);
  while (!rest.empty()) {
    const size_t end = rest.find("\r\n");
    const std::string_view field = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 2);
    if (field.empty()) continue;
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) return absl::InvalidArgumentError("header without ':'");
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = Trim(field.substr(colon + 1));
    if (base::EqualsIgnoreCase(name, "content-length")) {
      uint64_t n = 0;
      if (!base::ParseUint64(value, n) || (h.has_length && n != h.length)) {
        return absl::InvalidArgumentError("bad Content-Length");
      }
      h.has_length = true;
      h.length = n;
    } else if (base::EqualsIgnoreCase(name, "transfer-encoding")) {
      h.chunked = HasToken(value, "chunked");
      if (!h.chunked) h.close = true;  // an unknown coding: read to the end
    } else if (base::EqualsIgnoreCase(name, "connection")) {
      if (HasToken(value, "close")) h.close = true;
      if (HasToken(value, "keep-alive")) h.http10 = false;
    }
  }
  return absl::OkStatus();
}

// The size of a complete chunked body at the start of `body`, or nullopt.
absl::StatusOr<std::optional<size_t>> ChunkedSize(std::string_view body) {
  size_t at = 0;
  while (true) {
    const size_t eol = body.find("\r\n", at);
    if (eol == std::string_view::npos) return std::nullopt;
    std::string_view size_text = body.substr(at, eol - at);
    size_text = size_text.substr(0, size_text.find(';'));
    size_text = Trim(size_text);
    uint64_t size = 0;
    if (size_text.empty() || size_text.size() > 15) {
      return absl::InvalidArgumentError("bad chunk size");
    }
    for (char c : size_text) {
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) return absl::InvalidArgumentError("bad chunk size");
      size = size * 16 + static_cast<uint64_t>(d);
    }
    at = eol + 2;
    if (size == 0) {
      // Trailer fields, then the empty line.
      while (true) {
        const size_t end = body.find("\r\n", at);
        if (end == std::string_view::npos) return std::nullopt;
        const bool empty = end == at;
        at = end + 2;
        if (empty) return at;
      }
    }
    if (body.size() < at + size + 2) return std::nullopt;
    if (body.substr(at + size, 2) != "\r\n") return absl::InvalidArgumentError("bad chunk end");
    at += size + 2;
  }
}

}  // namespace

Result ParseResponse(std::string_view data, size_t max_bytes) {
  size_t skipped = 0;
  while (true) {
    const size_t end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (data.size() > max_bytes) return absl::InvalidArgumentError("response head too long");
      return std::nullopt;
    }
    if (end + 4 > max_bytes) return absl::InvalidArgumentError("response head too long");
    Head h;
    if (absl::Status s = ParseHead(data.substr(0, end + 2), h); !s.ok()) return s;
    h.size = end + 4;
    if (h.status < 200) {  // interim: skip it
      data.remove_prefix(h.size);
      skipped += h.size;
      continue;
    }
    ParsedResponse r;
    r.status = h.status;
    r.keep_alive = !h.close && !h.http10;
    if (h.status == 204 || h.status == 304) {
      r.consumed = skipped + h.size;
      return r;
    }
    if (h.chunked) {
      auto size = ChunkedSize(data.substr(h.size));
      if (!size.ok()) return size.status();
      if (!size->has_value()) return std::nullopt;
      r.consumed = skipped + h.size + **size;
      return r;
    }
    if (h.has_length) {
      if (data.size() - h.size < h.length) return std::nullopt;
      r.consumed = skipped + h.size + h.length;
      return r;
    }
    r.keep_alive = false;  // the body runs to the close
    r.consumed = data.size() + skipped;
    return r;
  }
}

}  // namespace sluice::http
