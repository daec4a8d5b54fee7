// [[route]]: fixed next hops per destination pattern (Route), one table per
// route; a pattern has at most one route.

#include <cstdint>
#include <utility>
#include <vector>

#include "checks.h"
#include "tables.h"

namespace sluice::config {
namespace {

constexpr absl::string_view kRouteKeys[] = {"domain", "next_hop"};

absl::Status ReadNextHop(Walk& walk, const Entry& e, Route& route) {
  const auto* s = e.node.as_string();
  if (s == nullptr) {
    return walk.Error(e.node, e.dotted, absl::StrCat("expected a string, got ", TypeName(e.node)));
  }
  if (absl::Status hop = ParseNextHop(s->get(), route); !hop.ok()) {
    return walk.Error(e.node, e.dotted, hop.message());
  }
  return absl::OkStatus();
}

// One route; `lines` holds where each route in `routes` has its domain, for
// "already has a route at line N".
absl::Status ReadRoute(Walk& walk, const toml::table& t, std::vector<Route>& routes,
                       std::vector<int64_t>& lines) {
  Route route;
  const toml::node* domain = nullptr;
  const toml::node* next_hop = nullptr;
  absl::Status status = walk.ForEach(t, "route", [&](const Entry& e) {
    if (e.name == "domain") {
      absl::Status s = walk.ReadString(e.dotted, e.node, CheckPattern, &route.pattern);
      route.pattern = NormalizeName(route.pattern);
      domain = &e.node;
      return s;
    }
    if (e.name == "next_hop") {
      next_hop = &e.node;
      return ReadNextHop(walk, e, route);
    }
    return walk.Unknown("[route]", e, kRouteKeys);
  });
  if (!status.ok()) return status;
  if (domain == nullptr) {
    return walk.Error(t, "route",
                      "missing key 'domain' (the domains the route is for: \"example.com\", "
                      "\"*.example.com\" or \"*\")");
  }
  if (next_hop == nullptr) {
    return walk.Error(t, "route",
                      "missing key 'next_hop' (where the mail goes: \"[192.0.2.1]:25\")");
  }
  for (size_t i = 0; i < routes.size(); ++i) {
    if (routes[i].pattern == route.pattern) {
      return walk.Error(
          *domain, "route.domain",
          absl::StrCat("'", route.pattern, "' already has a route at line ", lines[i]));
    }
  }
  routes.push_back(std::move(route));
  lines.push_back(domain->source().begin.line);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadRouteTables(Walk& walk, const toml::array& entries) {
  std::vector<Route> routes;
  std::vector<int64_t> lines;
  for (const toml::node& element : entries) {
    if (absl::Status s = ReadRoute(walk, *element.as_table(), routes, lines); !s.ok()) return s;
  }
  walk.config().routes = std::move(routes);
  return absl::OkStatus();
}

}  // namespace sluice::config
