// The generic part of the TOML walk: what every table reader uses to go
// through its keys in file order, read typed values, and report errors as
// "<source>:<line>: <table>.<key>: <problem>". The table readers
// (*_table.cc, listed in tables.h) hold only what is particular to a table.
//
// Trusts nothing in the document: every value's type is checked before use.
// Private to src/config; the only header that includes toml++, so that every
// file sees the parser compiled the same way (below).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

// The Debian build of toml++ is a shared library compiled with exceptions.
// The config reader compiles the parser inline with exceptions off instead,
// so that toml::parse() returns a toml::parse_result and never throws.
#undef TOML_SHARED_LIB
#define TOML_SHARED_LIB 0
#undef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 1
#undef TOML_EXCEPTIONS
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "fields.h"
#include "sluice/config/config.h"
#include "views.h"

namespace sluice::config {

// "a string", "an integer", ...: for "expected X, got Y".
absl::string_view TypeName(const toml::node& node);

// A key as it would be written in TOML: bare if it can be, quoted otherwise.
std::string KeyText(absl::string_view key);

// The entries of a table in the order they appear in the file, so that the
// first error reported is the first one in the file.
std::vector<std::pair<const toml::key*, const toml::node*>> InFileOrder(const toml::table& t);

// One key of a table, as a table reader sees it.
struct Entry {
  absl::string_view name;  // the key
  std::string dotted;      // how errors name it: "delivery.dns"
  const toml::key& key;
  const toml::node& node;
};

// A check of one string value: a bare problem, or OK.
using StringCheck = absl::Status (*)(absl::string_view);

// The state of one walk over one document: where it came from (for error
// texts) and the Config it writes into (a copy; ApplyToml keeps it only if
// the whole document reads).
class Walk {
 public:
  Walk(absl::string_view source, Config& config) : source_(source), config_(config) {}

  Config& config() { return config_; }
  absl::string_view source() const { return source_; }

  // "<source>:<line of where>: <dotted>: <problem>". `where` is anything
  // with a source(): a node or a key.
  template <typename Located>
  absl::Status Error(const Located& where, absl::string_view dotted,
                     absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", where.source().begin.line, ": ", dotted, ": ", problem));
  }

  // Calls `read` for every key of `t` in file order, with the key named
  // "<prefix>.<key>"; stops at the first error and returns it.
  absl::Status ForEach(const toml::table& t, absl::string_view prefix,
                       absl::FunctionRef<absl::Status(const Entry&)> read) const;

  // "unknown table in [<table>]" or "unknown key in [<table>]" with a
  // suggestion from `known`.
  absl::Status Unknown(absl::string_view table, const Entry& e,
                       absl::Span<const absl::string_view> known) const;

  // An integer setting of Config, range-checked.
  absl::Status ReadIntField(const IntField& field, const Entry& e);
  // One Field's value from `node` into `target` (the struct the Field is of).
  absl::Status ReadField(const Field& f, const std::string& dotted, const toml::node& node,
                         void* target) const;
  // A duration string ("30s"), in microseconds.
  absl::StatusOr<uint64_t> ReadDuration(const std::string& dotted, const toml::node& node) const;
  // A string checked by `check` and stored in `*target` (if not null).
  absl::Status ReadString(const std::string& dotted, const toml::node& node, StringCheck check,
                          std::string* target) const;
  // The strings of an array, at most `max_count`, each checked by `check`.
  absl::StatusOr<std::vector<std::string>> ReadStrings(const std::string& dotted,
                                                       const toml::node& node,
                                                       absl::string_view what, size_t max_count,
                                                       StringCheck check) const;
  // A boolean; else "expected <expected>, got <type>".
  absl::Status ReadBool(const std::string& dotted, const toml::node& node,
                        absl::string_view expected, bool* target) const;

 private:
  absl::Status ReadPermille(const Field& f, const std::string& dotted, const toml::node& node,
                            uint64_t* value) const;

  absl::string_view source_;
  Config& config_;
};

}  // namespace sluice::config
