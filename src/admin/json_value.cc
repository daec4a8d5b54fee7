// The control-reply JSON reader; see sluice/admin/json_value.h.
#include "sluice/admin/json_value.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"

namespace sluice::admin {
namespace {

class Reader {
 public:
  Reader(std::string_view t, size_t max_values, bool standard)
      : t_(t), values_left_(max_values), standard_(standard) {}

  bool Value(JsonValue& v, int depth) {
    Space();
    if (depth > kMaxJsonDepth || i_ >= t_.size() || values_left_ == 0) return false;
    --values_left_;
    const char c = t_[i_];
    if (c == '{') return Object(v, depth);
    if (c == '[') return Array(v, depth);
    if (c == '"') {
      v.type = JsonValue::Type::kString;
      return String(v.text);
    }
    if (Word("true")) return Set(v, true);
    if (Word("false")) return Set(v, false);
    if (Word("null")) return true;
    const size_t start = i_;
    while (i_ < t_.size() && (std::isdigit(static_cast<unsigned char>(t_[i_])) || t_[i_] == '-' ||
                              t_[i_] == '+' || t_[i_] == '.' || t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
    }
    if (i_ == start) return false;
    v.type = JsonValue::Type::kNumber;
    v.text = std::string(t_.substr(start, i_ - start));
    return true;
  }
  bool AtEnd() {
    Space();
    return i_ == t_.size();
  }
  size_t position() const { return i_; }

 private:
  static bool Set(JsonValue& v, bool b) {
    v.type = JsonValue::Type::kBool;
    v.boolean = b;
    return true;
  }
  void Space() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t'))
      ++i_;
  }
  bool Word(std::string_view w) {
    if (t_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool Object(JsonValue& v, int depth) {
    v.type = JsonValue::Type::kObject;
    ++i_;
    Space();
    if (i_ < t_.size() && t_[i_] == '}') return ++i_, true;
    while (true) {
      Space();
      std::string key;
      if (i_ >= t_.size() || t_[i_] != '"' || !String(key)) return false;
      Space();
      if (i_ >= t_.size() || t_[i_] != ':') return false;
      ++i_;
      JsonValue member;
      if (!Value(member, depth + 1)) return false;
      v.members.push_back(JsonMember{std::move(key), std::move(member)});
      Space();
      if (i_ < t_.size() && t_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < t_.size() && t_[i_] == '}') return ++i_, true;
      return false;
    }
  }
  bool Array(JsonValue& v, int depth) {
    v.type = JsonValue::Type::kArray;
    ++i_;
    Space();
    if (i_ < t_.size() && t_[i_] == ']') return ++i_, true;
    while (true) {
      JsonValue item;
      if (!Value(item, depth + 1)) return false;
      v.items.push_back(std::move(item));
      Space();
      if (i_ < t_.size() && t_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < t_.size() && t_[i_] == ']') return ++i_, true;
      return false;
    }
  }
  // \uXXXX escapes become UTF-8 (our writer emits them for control bytes
  // and for invalid UTF-8 as \u00XX, which comes back as that byte).
  bool String(std::string& out) {
    ++i_;
    while (i_ < t_.size()) {
      // A run of plain bytes is appended at once: a message's text shown by
      // the admin API is a megabyte, parsed on a shard's loop.
      size_t run = i_;
      while (run < t_.size() && t_[run] != '"' && t_[run] != '\\' &&
             static_cast<unsigned char>(t_[run]) >= 0x20) {
        ++run;
      }
      out.append(t_.data() + i_, run - i_);
      i_ = run;
      if (i_ >= t_.size()) break;
      const char c = t_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;  // RFC 8259 7
      // Here c is the backslash of an escape.
      if (i_ >= t_.size()) return false;
      const char e = t_[i_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && t_.substr(i_, 2) == "\\u") {
            // A surrogate pair: one code point, four UTF-8 bytes.
            i_ += 2;
            uint32_t low = 0;
            if (!Hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
            break;
          }
          if (standard_ && cp >= 0xD800 && cp <= 0xDFFF) return false;  // a lone surrogate
          if (cp < (standard_ ? 0x80u : 0x100u)) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        default:
          return false;  // not an escape of RFC 8259 7
      }
    }
    return false;
  }
  bool Hex4(uint32_t& out) {
    if (i_ + 4 > t_.size()) return false;
    out = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char h = t_[i_ + k];
      const int d = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
      if (d < 0) return false;
      out = out * 16 + static_cast<uint32_t>(d);
    }
    i_ += 4;
    return true;
  }

  std::string_view t_;
  size_t values_left_;
  // \u0080 to \u00FF: UTF-8 (standard) or the byte itself (our own
  // writer's escape of invalid UTF-8, log/json.h).
  const bool standard_;
  size_t i_ = 0;
};

}  // namespace

const JsonValue* JsonValue::Get(std::string_view key) const {
  for (const auto& [k, v] : members) {
    if (k == key) return &v;
  }
  return nullptr;
}

uint64_t JsonValue::U64(std::string_view key) const {
  const JsonValue* v = Get(key);
  uint64_t n = 0;
  if (v == nullptr || v->type != Type::kNumber || !base::ParseUint64(v->text, n)) return 0;
  return n;
}

std::string JsonValue::Str(std::string_view key) const {
  const JsonValue* v = Get(key);
  return v != nullptr && v->type == Type::kString ? v->text : std::string();
}

bool JsonValue::Bool(std::string_view key) const {
  const JsonValue* v = Get(key);
  return v != nullptr && v->type == Type::kBool && v->boolean;
}

absl::StatusOr<JsonValue> ParseJson(std::string_view text) {
  return ParseJsonFrom(text, SIZE_MAX, false);
}

absl::StatusOr<JsonValue> ParseUntrustedJson(std::string_view text, size_t max_values) {
  return ParseJsonFrom(text, max_values, true);
}

absl::StatusOr<JsonValue> ParseJsonFrom(std::string_view text, size_t max_values, bool standard) {
  Reader r(text, max_values, standard);
  JsonValue v;
  if (!r.Value(v, 0) || !r.AtEnd()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON near byte ", r.position()));
  }
  return v;
}

std::string ToJson(const JsonValue& v) {
  switch (v.type) {
    case JsonValue::Type::kNull:
      return "null";
    case JsonValue::Type::kBool:
      return v.boolean ? "true" : "false";
    case JsonValue::Type::kNumber:
      return v.text;
    case JsonValue::Type::kString: {
      std::string out;
      log::AppendJsonString(out, v.text);
      return out;
    }
    case JsonValue::Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < v.items.size(); ++i) {
        absl::StrAppend(&out, i > 0 ? "," : "", ToJson(v.items[i]));
      }
      return out + "]";
    }
    case JsonValue::Type::kObject: {
      std::string out = "{";
      for (size_t i = 0; i < v.members.size(); ++i) {
        if (i > 0) out += ',';
        log::AppendJsonString(out, v.members[i].first);
        absl::StrAppend(&out, ":", ToJson(v.members[i].second));
      }
      return out + "}";
    }
  }
  return "null";
}

}  // namespace sluice::admin
