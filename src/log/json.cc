// JSON string escaping for the accounting log (and the CLI's --json output).
//
// Trusts nothing about its input: any byte string comes out as one JSON
// string literal that a strict parser accepts and that holds no raw control
// character or line break. UTF-8 is validated strictly against the Unicode
// standard's table of well-formed byte sequences (Unicode 15, table 3-7):
// overlong forms, UTF-16 surrogates (ED A0..BF), code points past U+10FFFF,
// truncated sequences and stray continuation bytes are not well formed, and
// every byte of them is written as \u00XX. Decoding the output therefore
// gives back each well-formed character as itself and each other byte b as
// U+00b; the escaper never fails and never drops a byte.
#include "sluice/log/json.h"

#include <array>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace sluice::log {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Bytes that stand for themselves inside a JSON string: printable ASCII
// except the quote and the backslash.
constexpr std::array<bool, 256> PlainBytes() {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x7f; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}
constexpr std::array<bool, 256> kPlain = PlainBytes();

bool InRange(unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; }

}  // namespace

size_t WellFormedUtf8Length(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  const size_t left = s.size() - i;
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  // The lead byte fixes the length and the range of the second byte; every
  // later byte is a plain continuation byte 80..BF.
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (InRange(c, 0xc2, 0xdf)) {
    n = 2;
  } else if (InRange(c, 0xe0, 0xef)) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // below: overlong
    if (c == 0xed) hi = 0x9f;  // above: UTF-16 surrogates D800..DFFF
  } else if (InRange(c, 0xf0, 0xf4)) {
    n = 4;
    if (c == 0xf0) lo = 0x90;  // below: overlong
    if (c == 0xf4) hi = 0x8f;  // above: past U+10FFFF
  } else {
    return 0;  // 80..C1 (continuation, overlong 2-byte lead) and F5..FF
  }
  if (left < n || !InRange(p[1], lo, hi)) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (!InRange(p[k], 0x80, 0xbf)) return 0;
  }
  return n;
}

void AppendJsonString(std::string& out, std::string_view text) {
  out.push_back('"');
  const auto escape = [&out](unsigned c) {
    out += "\\u00";
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  };
  size_t i = 0;
  while (i < text.size()) {
    // The common case first: a run of bytes that need nothing.
    size_t run = i;
    while (run < text.size() && kPlain[static_cast<unsigned char>(text[run])]) ++run;
    out.append(text.data() + i, run - i);
    i = run;
    if (i == text.size()) break;
    const auto c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x80) {  // C0 controls and DEL
          escape(c);
          break;
        }
        const size_t n = WellFormedUtf8Length(text, i);
        if (n == 0) {  // one byte of something not well formed
          escape(c);
          break;
        }
        const auto c2 = static_cast<unsigned char>(text[i + 1]);
        if (c == 0xc2 && c2 < 0xa0) {
          // C1 controls U+0080..U+009F: a terminal may act on them (U+009B
          // is CSI), so they are written escaped, as the code point.
          escape(c2);
        } else if (c == 0xe2 && c2 == 0x80 && (text[i + 2] == '\xa8' || text[i + 2] == '\xa9')) {
          // U+2028 and U+2029 end a line for JavaScript and for Python's
          // str.splitlines(): escaped so no reader splits a record.
          out += text[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
        } else {
          out.append(text.data() + i, n);
        }
        i += n;
        continue;
    }
    ++i;
  }
  out.push_back('"');
}

std::string& JsonLine::Key(std::string_view key) {
  if (!first_) out_.push_back(',');
  first_ = false;
  out_.push_back('"');
  out_.append(key);
  out_ += "\":";
  return out_;
}

JsonLine& JsonLine::Uint(std::string_view key, uint64_t value) {
  absl::StrAppend(&Key(key), value);
  return *this;
}

JsonLine& JsonLine::Int(std::string_view key, int64_t value) {
  absl::StrAppend(&Key(key), value);
  return *this;
}

}  // namespace sluice::log
