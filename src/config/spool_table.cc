// [spool]: where the queue lives and how much disk it must leave free.

#include "checks.h"
#include "field_tables.h"
#include "tables.h"

namespace sluice::config {

absl::Status ReadSpoolTable(Walk& walk, absl::string_view name, const toml::table& t) {
  static constexpr absl::string_view kKeys[] = {"dir", "min_free_bytes"};
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (const IntField* field = FindIntField(name, e.name)) return walk.ReadIntField(*field, e);
    if (e.name == "dir") {
      return walk.ReadString(
          e.dotted, e.node,
          [](absl::string_view s) { return CheckPath(s, /*may_be_empty=*/false); },
          &walk.config().spool_dir);
    }
    return walk.Unknown(name, e, kKeys);
  });
}

}  // namespace sluice::config
