// A small JSON reader for the daemon's control-socket replies (trusted:
// our own daemon wrote them; still, malformed text is an error, not a
// crash). Numbers are kept as their text; depth is bounded (kMaxDepth).
// Used by `sluice queue` (cli/) and by the HTTP admin API (server/), which
// both merge the shards' replies (admin/merge.h), and, with
// ParseUntrustedJson, for the injection API's documents (untrusted input:
// bounded in depth and in values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::admin {

struct JsonMember;

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::string text;              // kString: the decoded string; kNumber: its digits
  std::vector<JsonValue> items;  // kArray
  // kObject. Not a std::pair: a pair of an incomplete type does not compile
  // with clang's checks (the fuzz build), a vector of one does (C++17).
  std::vector<JsonMember> members;

  const JsonValue* Get(std::string_view key) const;
  bool Has(std::string_view key) const { return Get(key) != nullptr; }
  // Missing or of another type: 0, "", false.
  uint64_t U64(std::string_view key) const;
  std::string Str(std::string_view key) const;
  bool Bool(std::string_view key) const;
};

struct JsonMember {
  std::string first;  // the key
  JsonValue second;
};

inline constexpr int kMaxJsonDepth = 32;

// Strings must be JSON strings: no raw control characters, only the
// escapes of RFC 8259 7, four hex digits after \u (a surrogate pair becomes
// one UTF-8 character). ParseJson reads our own writer's text (log/json.h),
// where \u0080 to \u00FF stand for that byte (invalid UTF-8 kept as it
// was).
absl::StatusOr<JsonValue> ParseJson(std::string_view text);
// For documents from outside (the injection API): every \uXXXX is UTF-8,
// lone surrogates are refused, and `max_values` bounds the values (scalars,
// arrays, objects): a JsonValue costs about 130 bytes however short its
// text, so "[0,0,0,...]" would otherwise cost 60 times its size. Fuzzed by
// fuzz/json_value_fuzzer.cc.
absl::StatusOr<JsonValue> ParseUntrustedJson(std::string_view text, size_t max_values);
// Both: `standard` picks the \u00XX reading.
absl::StatusOr<JsonValue> ParseJsonFrom(std::string_view text, size_t max_values, bool standard);

// The value as compact JSON text (members in their order; numbers as read).
std::string ToJson(const JsonValue& v);

}  // namespace sluice::admin
