// [admin]: the control directory of `sluice queue ...` (docs/QUEUE.md).

#include "checks.h"
#include "tables.h"

namespace sluice::config {

absl::Status ReadAdminTable(Walk& walk, absl::string_view name, const toml::table& t) {
  static constexpr absl::string_view kAdminKeys[] = {"control_dir"};
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (e.name == "control_dir") {
      return walk.ReadString(e.dotted, e.node, CheckOptionalPath, &walk.config().control_dir);
    }
    return walk.Unknown(name, e, kAdminKeys);
  });
}

}  // namespace sluice::config
