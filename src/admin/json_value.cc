// The control-reply JSON reader; see sluice/admin/json_value.h.
#include "sluice/admin/json_value.h"

#include <cctype>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"

namespace sluice::admin {
namespace {

class Reader {
 public:
  explicit Reader(std::string_view t) : t_(t) {}

  bool Value(JsonValue& v, int depth) {
    Space();
    if (depth > kMaxJsonDepth || i_ >= t_.size()) return false;
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
      v.members.emplace_back(std::move(key), std::move(member));
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
      const char c = t_[i_++];
      if (c == '"') return true;
      if (c != '\\') {
        out += c;
        continue;
      }
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
          if (i_ + 4 > t_.size()) return false;
          const unsigned long cp = std::strtoul(std::string(t_.substr(i_, 4)).c_str(), nullptr, 16);
          i_ += 4;
          if (cp < 0x100) {
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
        default:
          out += e;
      }
    }
    return false;
  }

  std::string_view t_;
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
  Reader r(text);
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
