// Minimal JSON writing for the accounting log: escaping of untrusted text
// (sender, HELO, reply text) so a record is always one valid line, and a
// writer that puts one flat object on one line, field by field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::log {

// Appends `text` (any bytes) as a JSON string literal, quotes included, that
// a strict parser accepts. Quotes, backslashes and control characters (C0,
// DEL, C1) are escaped, and U+2028/U+2029 too, so the literal never holds a
// line break. Well-formed UTF-8 passes through; every byte of a sequence
// that is not well formed (overlong, surrogate, past U+10FFFF, truncated,
// stray continuation byte) becomes \u00XX: decoding gives back each such
// byte b as U+00b and every other character as itself.
void AppendJsonString(std::string& out, std::string_view text);

// The length (1..4) of the well-formed UTF-8 sequence that starts at
// s[i] (i < s.size()), by the Unicode standard's table 3-7, or 0 if none
// does.
size_t WellFormedUtf8Length(std::string_view s, size_t i);

// One JSON object appended to `out`, a field at a time, in call order:
//   JsonLine(out).Str("type", "Rejection").Str("file", name).End();
// gives {"type":"Rejection","file":"..."} and a newline. Keys are the
// caller's literals (not escaped); string values are (AppendJsonString).
class JsonLine {
 public:
  explicit JsonLine(std::string& out) : out_(out) { out_.push_back('{'); }

  JsonLine& Str(std::string_view key, std::string_view value) {
    AppendJsonString(Key(key), value);
    return *this;
  }
  // Only when `value` is not empty: optional fields, absent when unset.
  JsonLine& StrIfSet(std::string_view key, std::string_view value) {
    return value.empty() ? *this : Str(key, value);
  }
  JsonLine& Uint(std::string_view key, uint64_t value);
  JsonLine& Int(std::string_view key, int64_t value);
  // `json` is already JSON text (a number with a fraction, an array).
  JsonLine& Raw(std::string_view key, std::string_view json) {
    Key(key).append(json);
    return *this;
  }
  // Writes `"key":` and returns the buffer, for a value built in place.
  std::string& Key(std::string_view key);
  void End() { out_ += "}\n"; }

 private:
  std::string& out_;
  bool first_ = true;
};

}  // namespace sluice::log
