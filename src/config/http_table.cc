// [http]: the HTTP admin API and metrics listener (docs/HTTP.md). The
// integer keys are IntFields (field_tables.cc).

#include "checks.h"
#include "field_tables.h"
#include "tables.h"

namespace sluice::config {
namespace {

constexpr absl::string_view kHttpKeys[] = {
    "listen",      "tokens_file",         "metrics_require_token", "max_request_bytes",
    "max_headers", "idle_timeout_s",      "request_timeout_s",     "max_clients",
    "tls",         "max_inject_in_flight"};

}  // namespace

absl::Status ReadHttpTable(Walk& walk, absl::string_view name, const toml::table& t) {
  Config& c = walk.config();
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (const IntField* field = FindIntField(name, e.name)) return walk.ReadIntField(*field, e);
    if (e.name == "listen")
      return walk.ReadString(e.dotted, e.node, CheckHttpListen, &c.http_listen);
    if (e.name == "tokens_file") {
      return walk.ReadString(e.dotted, e.node, CheckOptionalPath, &c.http_tokens_file);
    }
    if (e.name == "metrics_require_token") {
      return walk.ReadBool(e.dotted, e.node, "true or false", &c.http_metrics_require_token);
    }
    if (e.name == "tls") return walk.ReadBool(e.dotted, e.node, "true or false", &c.http_tls);
    return walk.Unknown(name, e, kHttpKeys);
  });
}

}  // namespace sluice::config
