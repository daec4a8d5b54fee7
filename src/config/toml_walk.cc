// The generic TOML walk (toml_walk.h): types, key texts, file order, typed
// reads with their error texts, unknown-key errors.

#include "toml_walk.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"

namespace sluice::config {

absl::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// A key as it would be written in TOML: bare if it can be, quoted otherwise.
std::string KeyText(absl::string_view key) {
  bool bare = !key.empty();
  for (char c : key) bare = bare && (absl::ascii_isalnum(c) || c == '_' || c == '-');
  if (bare) return std::string(key);
  std::string out = "\"";
  for (char c : key) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The entries of a table in the order they appear in the file, so that the
// first error reported is the first one in the file.
std::vector<std::pair<const toml::key*, const toml::node*>> InFileOrder(const toml::table& t) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : t) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const toml::source_position& pa = a.first->source().begin;
    const toml::source_position& pb = b.first->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return entries;
}

absl::Status Walk::ForEach(const toml::table& t, absl::string_view prefix,
                           absl::FunctionRef<absl::Status(const Entry&)> read) const {
  for (const auto& [key, node] : InFileOrder(t)) {
    const absl::string_view name = Sv(key->str());
    const Entry entry{name, absl::StrCat(prefix, ".", KeyText(name)), *key, *node};
    if (absl::Status status = read(entry); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status Walk::Unknown(absl::string_view table, const Entry& e,
                           absl::Span<const absl::string_view> known) const {
  if (e.node.is_table()) {
    return Error(e.key, e.dotted, absl::StrCat("unknown table in [", table, "]"));
  }
  return Error(e.key, e.dotted,
               absl::StrCat("unknown key in [", table, "]", SuggestFrom(known, e.name)));
}

absl::Status Walk::ReadIntField(const IntField& field, const Entry& e) {
  const auto* value = e.node.as_integer();
  if (value == nullptr) {
    return Error(e.node, e.dotted, absl::StrCat("expected an integer, got ", TypeName(e.node)));
  }
  const int64_t v = value->get();
  if (!InRange(v, field.range)) {
    return Error(e.node, e.dotted, absl::StrCat(RangeText(field.range), ", got ", v));
  }
  field.set(config_, static_cast<uint64_t>(v));
  return absl::OkStatus();
}

absl::Status Walk::ReadField(const Field& f, const std::string& dotted, const toml::node& node,
                             void* target) const {
  uint64_t value = 0;
  switch (f.kind) {
    case Kind::kBool: {
      const auto* b = node.as_boolean();
      if (b == nullptr) {
        return Error(node, dotted,
                     absl::StrCat("expected a boolean (true or false), got ", TypeName(node)));
      }
      f.set(target, b->get() ? 1 : 0);
      return absl::OkStatus();
    }
    case Kind::kUint: {
      const auto* i = node.as_integer();
      if (i == nullptr) {
        return Error(node, dotted, absl::StrCat("expected an integer, got ", TypeName(node)));
      }
      if (!InRange(i->get(), f.range)) {
        return Error(node, dotted, absl::StrCat(RangeText(f.range), ", got ", i->get()));
      }
      value = static_cast<uint64_t>(i->get());
      break;
    }
    case Kind::kMillis:
    case Kind::kMicros: {
      auto micros = ReadDuration(dotted, node);
      if (!micros.ok()) return micros.status();
      value = *micros;
      if (!InRange(value, f.range)) {
        return Error(node, dotted,
                     absl::StrCat(RangeText(f.kind, f.range), ", got ", FormatDuration(value)));
      }
      break;
    }
    case Kind::kPermille:
      if (absl::Status s = ReadPermille(f, dotted, node, &value); !s.ok()) return s;
      break;
  }
  f.set(target, value);
  return absl::OkStatus();
}

absl::Status Walk::ReadPermille(const Field& f, const std::string& dotted, const toml::node& node,
                                uint64_t* value) const {
  double x = 0;
  if (const auto* d = node.as_floating_point()) {
    x = d->get();
  } else if (const auto* i = node.as_integer()) {
    x = static_cast<double>(i->get());
  } else {
    return Error(node, dotted, absl::StrCat("expected a number, got ", TypeName(node)));
  }
  // Thousandths, rounded; the comparison also turns away NaN.
  const bool finite = x >= 0 && x <= 1e12;
  *value = finite ? static_cast<uint64_t>(std::llround(x * 1000)) : 0;
  if (!finite || !InRange(*value, f.range)) {
    return Error(node, dotted, absl::StrCat(RangeText(f.kind, f.range), ", got ", x));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Walk::ReadDuration(const std::string& dotted,
                                            const toml::node& node) const {
  const auto* s = node.as_string();
  if (s == nullptr) {
    return Error(
        node, dotted,
        absl::StrCat("expected a duration string such as \"30s\" or \"5m\", got ", TypeName(node)));
  }
  auto micros = ParseDurationMicros(s->get());
  if (!micros.ok()) return Error(node, dotted, micros.status().message());
  return *micros;
}

absl::Status Walk::ReadString(const std::string& dotted, const toml::node& node, StringCheck check,
                              std::string* target) const {
  const auto* value = node.as_string();
  if (value == nullptr) {
    return Error(node, dotted, absl::StrCat("expected a string, got ", TypeName(node)));
  }
  if (absl::Status s = check(value->get()); !s.ok()) return Error(node, dotted, s.message());
  if (target != nullptr) *target = value->get();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Walk::ReadStrings(const std::string& dotted,
                                                           const toml::node& node,
                                                           absl::string_view what, size_t max_count,
                                                           StringCheck check) const {
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    return Error(node, dotted,
                 absl::StrCat("expected an array of ", what, ", got ", TypeName(node)));
  }
  if (array->size() > max_count) {
    return Error(node, dotted,
                 absl::StrCat("at most ", max_count, " entries, got ", array->size()));
  }
  std::vector<std::string> out;
  for (const toml::node& element : *array) {
    const auto* s = element.as_string();
    if (s == nullptr) {
      return Error(element, dotted, absl::StrCat("expected ", what, ", got ", TypeName(element)));
    }
    if (absl::Status status = check(s->get()); !status.ok()) {
      return Error(element, dotted, status.message());
    }
    out.push_back(s->get());
  }
  return out;
}

absl::Status Walk::ReadBool(const std::string& dotted, const toml::node& node,
                            absl::string_view expected, bool* target) const {
  const auto* b = node.as_boolean();
  if (b == nullptr) {
    return Error(node, dotted, absl::StrCat("expected ", expected, ", got ", TypeName(node)));
  }
  *target = b->get();
  return absl::OkStatus();
}

}  // namespace sluice::config
