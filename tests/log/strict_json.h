// A strict JSON checker for the tests and the fuzz target of the log's JSON
// writer, written independently of src/log/json.cc so the two cannot share
// a mistake: UTF-8 decoded by arithmetic (overlong, surrogate and range
// checks on the code point) rather than by the byte table the escaper uses,
// and the RFC 8259 grammar by recursive descent. Strict: no raw control
// character in a string, no lone surrogate escape, no trailing bytes, no
// NaN, no leading zeros, no byte order mark. Trusts nothing; depth-bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::log::strict {

// Decodes one well-formed UTF-8 character at s[i]: its code point and its
// length, or nullopt.
inline std::optional<std::pair<char32_t, size_t>> DecodeUtf8(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const uint32_t c = byte(i);
  size_t n;
  uint32_t cp, min;
  if (c < 0x80) return std::make_pair(static_cast<char32_t>(c), size_t{1});
  if ((c & 0xe0) == 0xc0) {
    n = 2, cp = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3, cp = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (i + n > s.size()) return std::nullopt;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return std::nullopt;
    cp = cp << 6 | (byte(i + k) & 0x3f);
  }
  if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return std::nullopt;
  return std::make_pair(static_cast<char32_t>(cp), n);
}

inline bool IsUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto d = DecodeUtf8(s, i);
    if (!d) return false;
    i += d->second;
  }
  return true;
}

// What a JSON reader must get back from the escaped form of `bytes`: each
// well-formed character as itself, each other byte b as U+00b.
inline std::u32string ExpectedText(std::string_view bytes) {
  std::u32string out;
  for (size_t i = 0; i < bytes.size();) {
    const auto d = DecodeUtf8(bytes, i);
    out.push_back(d ? d->first : static_cast<unsigned char>(bytes[i]));
    i += d ? d->second : 1;
  }
  return out;
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  // The whole of `s` is one JSON value (with optional whitespace around it).
  bool Document() {
    if (!IsUtf8(s_)) return false;
    Space();
    if (!Value(0)) return false;
    Space();
    return i_ == s_.size();
  }

  // One string literal at the current position; its decoded text.
  std::optional<std::u32string> String() {
    if (!Eat('"')) return std::nullopt;
    std::u32string out;
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c < 0x20) return std::nullopt;
      if (c != '\\') {
        const auto d = DecodeUtf8(s_, i_);
        if (!d) return std::nullopt;
        out.push_back(d->first);
        i_ += d->second;
        continue;
      }
      if (++i_ >= s_.size()) return std::nullopt;
      const char e = s_[i_++];
      static constexpr std::string_view kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
      if (const size_t k = kFrom.find(e); k != std::string_view::npos) {
        out.push_back(static_cast<unsigned char>(kTo[k]));
        continue;
      }
      if (e != 'u') return std::nullopt;
      auto cp = Hex4();
      if (!cp || (*cp >= 0xdc00 && *cp <= 0xdfff)) return std::nullopt;
      if (*cp >= 0xd800 && *cp <= 0xdbff) {  // must be followed by a low surrogate
        if (!Eat('\\') || !Eat('u')) return std::nullopt;
        const auto low = Hex4();
        if (!low || *low < 0xdc00 || *low > 0xdfff) return std::nullopt;
        cp = 0x10000 + ((*cp - 0xd800) << 10) + (*low - 0xdc00);
      }
      out.push_back(*cp);
    }
    return std::nullopt;
  }

 private:
  static constexpr int kDepthMax = 64;

  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  std::optional<char32_t> Hex4() {
    if (i_ + 4 > s_.size()) return std::nullopt;
    char32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      const int d = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
      if (d < 0) return std::nullopt;
      v = v << 4 | static_cast<char32_t>(d);
    }
    return v;
  }
  bool Digits() {
    const size_t from = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > from;
  }
  bool Number() {
    Eat('-');
    if (Eat('0')) {
      if (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') return false;  // leading zero
    } else if (!Digits()) {
      return false;
    }
    if (Eat('.') && !Digits()) return false;
    if (Eat('e') || Eat('E')) {
      if (!Eat('+')) Eat('-');
      if (!Digits()) return false;
    }
    return true;
  }
  bool Value(int depth) {
    if (depth > kDepthMax || i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') return String().has_value();
    if (c == '{' || c == '[') return Container(depth, c == '{' ? '}' : ']');
    if (c == 't') return Literal("true");
    if (c == 'f') return Literal("false");
    if (c == 'n') return Literal("null");
    return Number();
  }
  bool Container(int depth, char close) {
    ++i_;
    Space();
    if (Eat(close)) return true;
    while (true) {
      Space();
      if (close == '}') {
        if (!String()) return false;
        Space();
        if (!Eat(':')) return false;
        Space();
      }
      if (!Value(depth + 1)) return false;
      Space();
      if (Eat(close)) return true;
      if (!Eat(',')) return false;
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

// `line` (without its '\n') is exactly one JSON object.
inline bool IsObjectLine(std::string_view line) {
  return !line.empty() && line.front() == '{' && line.back() == '}' && Parser(line).Document();
}

// The text a JSON string literal stands for, if `literal` is exactly one
// strict string literal.
inline std::optional<std::u32string> DecodeString(std::string_view literal) {
  if (!IsUtf8(literal)) return std::nullopt;
  Parser p(literal);
  auto text = p.String();
  if (!text || !Parser(literal).Document()) return std::nullopt;
  return text;
}

}  // namespace sluice::log::strict
