// The field-table machinery of the config reader: a setting described once
// (table, key, kind, bounds, where it is stored) serves both the TOML reader
// and Config::Finalize()'s range checks, and the error texts of both.
//
// Two shapes: IntField for a plain integer member of Config (the flat tables
// [server], [spool], [pickup], [http]); Field for the settings of nested
// structs and richer kinds (durations, fractions, booleans), reached through
// a type-erased pointer to the struct that holds them. The tables themselves
// live in field_tables.cc. Also here: "did you mean" suggestions.
// Private to src/config.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "sluice/config/config.h"
#include "sluice/queue/types.h"

namespace sluice::config {

// Sizes in bytes, durations in microseconds (queue::Micros).
constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;
constexpr uint64_t kPiB = 1024 * 1024 * kGiB;
constexpr uint64_t kMilli = 1000;  // microseconds
constexpr uint64_t kSecond = queue::kSecond;
constexpr uint64_t kMinute = queue::kMinute;
constexpr uint64_t kHour = queue::kHour;
constexpr uint64_t kDay = queue::kDay;

// The bounds of a setting, both ends inclusive.
struct Range {
  uint64_t min;
  uint64_t max;
};

std::string RangeText(Range r);

template <typename T>
bool InRange(T value, Range r) {
  if constexpr (std::is_signed_v<T>) {
    if (value < 0) return false;
  }
  const auto v = static_cast<uint64_t>(value);
  return v >= r.min && v <= r.max;
}

// One integer setting: where it lives in the file, its bounds, and how to
// store and check it. Built by MakeIntField<&Config::member>.
struct IntField {
  absl::string_view table;
  absl::string_view key;
  Range range;
  void (*set)(Config&, uint64_t);                         // value already in range
  absl::Status (*check)(const IntField&, const Config&);  // for Finalize()
};

template <auto kMember>
constexpr IntField MakeIntField(absl::string_view table, absl::string_view key, Range range) {
  using T = std::remove_reference_t<decltype(std::declval<Config&>().*kMember)>;
  return IntField{table, key, range, [](Config& c, uint64_t v) { c.*kMember = static_cast<T>(v); },
                  [](const IntField& f, const Config& c) {
                    const T value = c.*kMember;
                    if (InRange(value, f.range)) return absl::OkStatus();
                    return absl::InvalidArgumentError(absl::StrCat(
                        f.table, ".", f.key, ": ", RangeText(f.range), ", got ", value));
                  }};
}

enum class Kind {
  kUint,      // a TOML integer
  kBool,      // a TOML boolean
  kMillis,    // a duration string, stored in milliseconds
  kMicros,    // a duration string, stored in microseconds
  kPermille,  // a TOML float (or integer), stored in thousandths
};

struct Field {
  absl::string_view key;
  Kind kind;
  Range range;                          // kUint: the value; durations: microseconds;
                                        // kPermille: thousandths; kBool: unused
  uint64_t (*get)(const void* target);  // in the unit of `range`
  void (*set)(void* target, uint64_t value);
};

template <typename T>
struct MemberTraits;
template <typename C, typename M>
struct MemberTraits<M C::*> {
  using Class = C;
  using Type = M;
};

// A Field for `kMember`, a pointer to a data member of the struct that the
// reader passes as the target.
template <auto kMember, Kind kKind>
constexpr Field MakeField(absl::string_view key, Range range = {0, 1}) {
  using C = typename MemberTraits<decltype(kMember)>::Class;
  using M = typename MemberTraits<decltype(kMember)>::Type;
  return Field{key, kKind, range,
               [](const void* target) -> uint64_t {
                 const uint64_t v = static_cast<uint64_t>(static_cast<const C*>(target)->*kMember);
                 return kKind == Kind::kMillis ? v * kMilli : v;
               },
               [](void* target, uint64_t v) {
                 static_cast<C*>(target)->*kMember =
                     static_cast<M>(kKind == Kind::kMillis ? v / kMilli : v);
               }};
}

const Field* FindField(absl::Span<const Field> fields, absl::string_view key);

// The keys of `fields` after `others`, for suggestions.
std::vector<absl::string_view> KeysOf(absl::Span<const Field> fields,
                                      absl::Span<const absl::string_view> others);

// A value in the unit of its kind, as an operator would write it: "30s", "0.5", "100".
std::string ValueText(Kind kind, uint64_t value);
std::string RangeText(Kind kind, Range r);

// Range checks of every Field in `fields` over `target`, for Finalize():
// "<table>.<key><where>: must be between ..., got ...".
absl::Status CheckFields(absl::Span<const Field> fields, const void* target,
                         absl::string_view table, absl::string_view where = "");

// "; did you mean 'max_recipients'?" for a near miss among `known`, else "".
std::string SuggestFrom(absl::Span<const absl::string_view> known, absl::string_view key);

}  // namespace sluice::config
