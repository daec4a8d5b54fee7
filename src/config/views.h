// String views across the abseil border, for the config reader's files.
//
// Debian's Abseil has its own absl::string_view, a type apart from
// std::string_view (elsewhere the two are one type and these are no-ops).
// Inside src/config the reader's strings are absl::string_view; these cross
// the border. Private to src/config.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace sluice::config {

inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace sluice::config
