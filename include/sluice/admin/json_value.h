// A small JSON reader for the daemon's control-socket replies (trusted:
// our own daemon wrote them; still, malformed text is an error, not a
// crash). Numbers are kept as their text; depth is bounded (kMaxDepth).
// Used by `sluice queue` (cli/) and by the HTTP admin API (server/), which
// both merge the shards' replies (admin/merge.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::admin {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::string text;              // kString: the decoded string; kNumber: its digits
  std::vector<JsonValue> items;  // kArray
  std::vector<std::pair<std::string, JsonValue>> members;  // kObject

  const JsonValue* Get(std::string_view key) const;
  bool Has(std::string_view key) const { return Get(key) != nullptr; }
  // Missing or of another type: 0, "", false.
  uint64_t U64(std::string_view key) const;
  std::string Str(std::string_view key) const;
  bool Bool(std::string_view key) const;
};

inline constexpr int kMaxJsonDepth = 32;

absl::StatusOr<JsonValue> ParseJson(std::string_view text);

// The value as compact JSON text (members in their order; numbers as read).
std::string ToJson(const JsonValue& v);

}  // namespace sluice::admin
