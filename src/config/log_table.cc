// [log]: the accounting log's file. "" means no log; unset means the default
// beside the spool (DefaultLogFile, applied by Config::Finalize()).

#include "checks.h"
#include "tables.h"

namespace sluice::config {

absl::Status ReadLogTable(Walk& walk, absl::string_view name, const toml::table& t) {
  static constexpr absl::string_view kKeys[] = {"file"};
  Config& c = walk.config();
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (e.name == "file") {
      absl::Status s = walk.ReadString(e.dotted, e.node, CheckOptionalPath, &c.log_file);
      if (s.ok()) c.log_file_set = true;  // "" too: no log
      return s;
    }
    return walk.Unknown(name, e, kKeys);
  });
}

}  // namespace sluice::config
