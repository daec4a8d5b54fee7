// The diagnostic line formatter (see diag/format.h): logfmt with escaping
// that keeps one event on one line.
#include "sluice/diag/format.h"

#include <charconv>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace sluice::diag {
namespace {

bool IsBare(unsigned char c) { return c > 0x20 && c < 0x7f && c != '"' && c != '=' && c != '\\'; }

bool IsNameByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

void AppendName(std::string_view name, std::string& out) {
  if (name.empty()) {
    out += '_';
    return;
  }
  for (char c : name) out += IsNameByte(c) ? c : '_';
}

void AppendEscaped(std::string_view value, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
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
        if (c < 0x20 || c >= 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
}

// `ts=2026-12-07T18:00:00.123456Z ` (UTC, microseconds).
void AppendTimestamp(uint64_t wall_micros, std::string& out) {
  const time_t secs = static_cast<time_t>(wall_micros / 1000000u);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%06uZ ",
                              t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                              t.tm_sec, static_cast<unsigned>(wall_micros % 1000000u));
  if (n > 0) out.append(buf, static_cast<size_t>(n));
}

}  // namespace

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kError:
      return "error";
    case Level::kWarning:
      return "warning";
    case Level::kNotice:
      return "notice";
    case Level::kInfo:
      return "info";
    case Level::kDebug:
      return "debug";
  }
  return "info";
}

std::optional<Level> ParseLevel(std::string_view text) {
  if (text == "error" || text == "err" || text == "3") return Level::kError;
  if (text == "warning" || text == "warn" || text == "4") return Level::kWarning;
  if (text == "notice" || text == "5") return Level::kNotice;
  if (text == "info" || text == "6") return Level::kInfo;
  if (text == "debug" || text == "7") return Level::kDebug;
  return std::nullopt;
}

void Field::SetNumber(int64_t signed_value, bool is_signed, uint64_t unsigned_value) {
  const std::to_chars_result r =
      is_signed ? std::to_chars(digits_, digits_ + sizeof digits_, signed_value)
                : std::to_chars(digits_, digits_ + sizeof digits_, unsigned_value);
  digits_size_ = static_cast<uint8_t>(r.ptr - digits_);
}

void AppendValue(std::string_view value, std::string& out) {
  const std::string_view kept = value.substr(0, kMaxValueBytes);
  bool bare = !value.empty() && kept.size() == value.size();
  for (size_t i = 0; bare && i < kept.size(); ++i)
    bare = IsBare(static_cast<unsigned char>(kept[i]));
  if (bare) {
    out += kept;
    return;
  }
  out += '"';
  AppendEscaped(kept, out);
  if (kept.size() < value.size())
    absl::StrAppend(&out, "...(+", value.size() - kept.size(), " bytes)");
  out += '"';
}

void AppendLine(const Event& event, Prefix prefix, uint64_t wall_micros, std::string& out) {
  if (prefix == Prefix::kJournald) {
    absl::StrAppend(&out, "<", static_cast<int>(event.level), ">");
  } else {
    AppendTimestamp(wall_micros, out);
  }
  out += "level=";
  out += LevelName(event.level);
  out += " key=";
  AppendName(event.key, out);
  if (event.shard >= 0) absl::StrAppend(&out, " shard=", event.shard);
  out += " msg=";
  AppendValue(event.msg, out);
  for (const Field& f : event.fields) {
    out += ' ';
    AppendName(f.name(), out);
    out += '=';
    AppendValue(f.value(), out);
  }
  if (event.suppressed > 0) absl::StrAppend(&out, " suppressed=", event.suppressed);
  out += '\n';
}

}  // namespace sluice::diag
