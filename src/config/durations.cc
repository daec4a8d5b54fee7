// Durations as operators write them ("250ms", "30s", "5m", "4h", "5d"):
// ParseDurationMicros and FormatDuration (sluice/config/config.h). Pure.

#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "fields.h"
#include "sluice/base/strings.h"
#include "sluice/config/config.h"
#include "views.h"

namespace sluice::config {

absl::StatusOr<uint64_t> ParseDurationMicros(std::string_view text_in) {
  const absl::string_view text = Sv(text_in);
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a duration: ", why,
                     " (write a whole number and a unit: \"250ms\", \"30s\", \"5m\", \"4h\", "
                     "\"5d\")"));
  };
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(text[digits])) ++digits;
  if (text.empty()) return bad("empty");
  if (digits == 0) return bad(text.front() == '-' ? "negative" : "no number");
  const absl::string_view unit = text.substr(digits);
  uint64_t scale = 0;
  if (unit == "ms") {
    scale = kMilli;
  } else if (unit == "s") {
    scale = kSecond;
  } else if (unit == "m") {
    scale = kMinute;
  } else if (unit == "h") {
    scale = kHour;
  } else if (unit == "d") {
    scale = kDay;
  } else if (unit.empty()) {
    return bad("no unit");
  } else if (unit.front() == '.' || unit.front() == ',') {
    return bad("no fractions; use a smaller unit");
  } else {
    return bad(absl::StrCat("unknown unit '", unit, "'"));
  }
  uint64_t n = 0;
  if (!base::ParseUint64(Std(text.substr(0, digits)), n) || n > UINT64_MAX / scale) {
    return bad("too large");
  }
  return n * scale;
}

std::string FormatDuration(uint64_t micros) {
  if (micros == 0) return "0s";
  constexpr std::pair<uint64_t, absl::string_view> kUnits[] = {
      {kDay, "d"}, {kHour, "h"}, {kMinute, "m"}, {kSecond, "s"}, {kMilli, "ms"}};
  for (const auto& [scale, name] : kUnits) {
    if (micros % scale == 0) return absl::StrCat(micros / scale, name);
  }
  return absl::StrCat(micros, "us");
}

}  // namespace sluice::config
