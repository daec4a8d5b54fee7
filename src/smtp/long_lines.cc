// Re-encoding MIME parts whose lines are too long; see sluice/smtp/long_lines.h.
#include "sluice/smtp/long_lines.h"

#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sluice::smtp {
namespace {

// Quoted-printable lines are at most 76 characters (RFC 2045 6.7 (5)); 75
// plus the "=" of a soft break.
constexpr size_t kQpLine = 75;
constexpr size_t kBase64Line = 76;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

struct Entity {
  std::string_view header;  // with its final CRLF, without the empty line
  std::string_view body;    // after the empty line
  bool has_blank = false;   // an empty line separated them
};

Entity Split(std::string_view text) {
  Entity e;
  if (text.substr(0, 2) == "\r\n") return {{}, text.substr(2), true};
  const size_t blank = text.find("\r\n\r\n");
  if (blank == std::string_view::npos) return {text, {}, false};
  return {text.substr(0, blank + 2), text.substr(blank + 4), true};
}

// The unfolded value of the first header field named `name`, lower-cased.
std::string FieldValue(std::string_view header, std::string_view name) {
  size_t at = 0;
  while (at < header.size()) {
    size_t end = header.find("\r\n", at);
    if (end == std::string_view::npos) end = header.size();
    const std::string_view line = header.substr(at, end - at);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        absl::EqualsIgnoreCase(Sv(line.substr(0, name.size())), Sv(name))) {
      std::string value(line.substr(name.size() + 1));
      // Continuation lines start with a space or a tab.
      while (end + 2 < header.size() && (header[end + 2] == ' ' || header[end + 2] == '\t')) {
        const size_t next = header.find("\r\n", end + 2);
        const size_t stop = next == std::string_view::npos ? header.size() : next;
        value.append(header.substr(end + 2, stop - end - 2));
        end = stop;
      }
      return absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
    }
    at = end + 2;
  }
  return "";
}

// The header without any field named `name` (and its continuation lines).
std::string WithoutField(std::string_view header, std::string_view name) {
  std::string out;
  size_t at = 0;
  bool dropping = false;
  while (at < header.size()) {
    size_t end = header.find("\r\n", at);
    end = end == std::string_view::npos ? header.size() : end + 2;
    const std::string_view line = header.substr(at, end - at);
    const bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (!continuation) {
      dropping = line.size() > name.size() && line[name.size()] == ':' &&
                 absl::EqualsIgnoreCase(Sv(line.substr(0, name.size())), Sv(name));
    }
    if (!dropping) out.append(line);
    at = end;
  }
  return out;
}

// The boundary parameter of a (lower-cased) Content-Type value, from the
// original header so that its case is kept.
std::string Boundary(std::string_view header) {
  const std::string lower = FieldValue(header, "Content-Type");
  const size_t at = lower.find("boundary=");
  if (at == std::string::npos) return "";
  // Find the same spot in the original-case value.
  std::string original;
  {
    std::string h(header);
    const std::string lower_header = absl::AsciiStrToLower(h);
    const size_t field = lower_header.find("content-type:");
    const size_t where = lower_header.find("boundary=", field);
    if (field == std::string::npos || where == std::string::npos) return "";
    original = h.substr(where + 9);
  }
  std::string b;
  if (!original.empty() && original[0] == '"') {
    const size_t close = original.find('"', 1);
    if (close == std::string::npos) return "";
    b = original.substr(1, close - 1);
  } else {
    const size_t stop = original.find_first_of(" \t;\r\n");
    b = original.substr(0, stop);
  }
  return b.size() <= 70 ? b : "";  // RFC 2046 5.1.1: 1 to 70 characters
}

void AppendQuotedPrintable(std::string_view body, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find("\r\n", at);
    const bool crlf = end != std::string_view::npos;
    if (!crlf) end = body.size();
    const std::string_view line = body.substr(at, end - at);
    size_t column = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      const auto c = static_cast<unsigned char>(line[i]);
      const bool last = i + 1 == line.size();
      const bool plain = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
      const size_t width = plain ? 1 : 3;
      if (column + width > kQpLine) {
        out.append("=\r\n");
        column = 0;
      }
      if (plain) {
        out.push_back(static_cast<char>(c));
      } else {
        out.push_back('=');
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
      column += width;
    }
    if (crlf) out.append("\r\n");
    at = crlf ? end + 2 : end;
  }
}

// Soft breaks into over-long quoted-printable lines, never inside "=XX".
void AppendSoftBreaks(std::string_view body, std::string& out) {
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find("\r\n", at);
    const bool crlf = end != std::string_view::npos;
    if (!crlf) end = body.size();
    std::string_view line = body.substr(at, end - at);
    while (line.size() > kQpLine) {
      size_t cut = kQpLine;
      for (size_t k = 1; k <= 2; ++k) {
        if (line[cut - k] == '=') cut -= k;  // keep an escape whole
      }
      out.append(line.substr(0, cut));
      out.append("=\r\n");
      line.remove_prefix(cut);
    }
    out.append(line);
    if (crlf) out.append("\r\n");
    at = crlf ? end + 2 : end;
  }
}

void AppendBase64Rewrapped(std::string_view body, std::string& out) {
  size_t column = 0;
  for (char c : body) {
    if (c == '\r' || c == '\n' || c == ' ' || c == '\t') continue;
    out.push_back(c);
    if (++column == kBase64Line) {
      out.append("\r\n");
      column = 0;
    }
  }
  if (column > 0) out.append("\r\n");
}

void AppendEntity(std::string_view text, int depth, bool top, std::string& out);

// A multipart body: the parts between "--boundary" lines, each an entity.
void AppendMultipart(std::string_view body, const std::string& boundary, int depth,
                     std::string& out) {
  const std::string delimiter = absl::StrCat("--", boundary);
  size_t at = 0;
  size_t part_start = std::string_view::npos;  // after the delimiter line
  while (at <= body.size()) {
    size_t end = body.find("\r\n", at);
    const size_t line_end = end == std::string_view::npos ? body.size() : end;
    const std::string_view line = body.substr(at, line_end - at);
    const bool is_delimiter = line.substr(0, delimiter.size()) == delimiter;
    if (is_delimiter) {
      if (part_start == std::string_view::npos) {
        out.append(body.substr(0, at));  // the preamble, as it is
      } else {
        // The CRLF before the delimiter belongs to the delimiter.
        const size_t part_end = at >= part_start + 2 ? at - 2 : part_start;
        AppendEntity(body.substr(part_start, part_end - part_start), depth + 1, false, out);
        if (at >= part_start + 2) out.append("\r\n");
      }
      const bool close = line.substr(delimiter.size(), 2) == "--";
      out.append(line);
      if (end != std::string_view::npos) out.append("\r\n");
      part_start = end == std::string_view::npos ? body.size() : end + 2;
      if (close) {
        out.append(body.substr(part_start));  // the epilogue
        return;
      }
    }
    if (end == std::string_view::npos) break;
    at = end + 2;
  }
  // No closing delimiter: copy the rest as it is.
  if (part_start == std::string_view::npos) {
    out.append(body);
  } else {
    AppendEntity(body.substr(part_start), depth + 1, false, out);
  }
}

void AppendEntity(std::string_view text, int depth, bool top, std::string& out) {
  if (!HasLongLine(text)) {
    out.append(text);
    return;
  }
  const Entity e = Split(text);
  const std::string type = FieldValue(e.header, "Content-Type");
  const std::string encoding = FieldValue(e.header, "Content-Transfer-Encoding");
  if (absl::StartsWith(type, "multipart/") && depth < kMaxMimeDepth) {
    const std::string boundary = Boundary(e.header);
    if (!boundary.empty()) {
      out.append(e.header);
      if (e.has_blank) out.append("\r\n");
      AppendMultipart(e.body, boundary, depth, out);
      return;
    }
  }
  if (absl::StartsWith(type, "message/") || absl::StartsWith(type, "multipart/") ||
      !HasLongLine(e.body)) {
    out.append(text);  // may not be encoded, or the long line is in the header
    return;
  }
  if (encoding == "quoted-printable") {
    out.append(e.header);
    out.append("\r\n");
    AppendSoftBreaks(e.body, out);
    return;
  }
  if (encoding == "base64") {
    out.append(e.header);
    out.append("\r\n");
    AppendBase64Rewrapped(e.body, out);
    return;
  }
  out.append(WithoutField(e.header, "Content-Transfer-Encoding"));
  if (top && FieldValue(e.header, "MIME-Version").empty()) out.append("MIME-Version: 1.0\r\n");
  out.append("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
  AppendQuotedPrintable(e.body, out);
}

}  // namespace

bool HasLongLine(std::string_view text) {
  size_t at = 0;
  while (at < text.size()) {
    const void* lf = std::memchr(text.data() + at, '\n', text.size() - at);
    const size_t end = lf == nullptr
                           ? text.size()
                           : static_cast<size_t>(static_cast<const char*>(lf) - text.data());
    size_t length = end - at;
    if (length > 0 && lf != nullptr && text[end - 1] == '\r') --length;
    if (length > kMaxLineOctets) return true;
    at = end + 1;
  }
  return false;
}

std::optional<std::string> ReencodeLongLines(std::string_view message) {
  if (!HasLongLine(message)) return std::nullopt;
  std::string out;
  out.reserve(message.size() + message.size() / 8);
  AppendEntity(message, 0, true, out);
  return out;
}

}  // namespace sluice::smtp
