// Tests of the reload diff (config/reload.h): which keys reload and which
// need a restart, and the text that says what changed. Configurations are
// built from TOML the way `serve` builds them, then finalized.
#include "sluice/config/reload.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice::config {
namespace {

Config Load(const std::string& toml) {
  Config c;
  c.hostname = "relay.example.net";  // no gethostname(): both sides equal
  absl::Status s = ApplyToml(toml, "test", c);
  EXPECT_TRUE(s.ok()) << s;
  s = c.Finalize();
  EXPECT_TRUE(s.ok()) << s;
  return c;
}

TEST(ReloadDiff, SameConfigurationChangesNothing) {
  const std::string toml = R"(
[server]
listen = ["127.0.0.1:2525"]
[[shaping]]
pattern = "example.com"
max_connections = 5
[[route]]
domain = "*.example.org"
next_hop = "127.0.0.1:2526"
)";
  const ConfigDiff d = DiffConfig(Load(toml), Load(toml));
  EXPECT_TRUE(d.restart.empty());
  EXPECT_TRUE(d.changes.empty());
  EXPECT_EQ(ReloadedLine(d), "reloaded: configuration unchanged");
}

TEST(ReloadDiff, ListenNeedsARestart) {
  const ConfigDiff d = DiffConfig(Load("[server]\nlisten = [\"127.0.0.1:2525\"]\n"),
                                  Load("[server]\nlisten = [\"127.0.0.1:2526\"]\n"));
  ASSERT_EQ(d.restart.size(), 1u);
  EXPECT_EQ(d.restart[0], "server.listen");
  EXPECT_EQ(RefusedLine(d), "reload refused: server.listen needs a restart; nothing changed");
}

TEST(ReloadDiff, EveryRestartKeyIsNamed) {
  const ConfigDiff d = DiffConfig(Load("[spool]\ndir = \"/tmp/a\"\n[server]\nshards = 2\n"),
                                  Load("[spool]\ndir = \"/tmp/b\"\n[server]\nshards = 3\n"));
  // control_dir and the default log follow the spool: they change too.
  EXPECT_NE(std::find(d.restart.begin(), d.restart.end(), "spool.dir"), d.restart.end());
  EXPECT_NE(std::find(d.restart.begin(), d.restart.end(), "server.shards"), d.restart.end());
  EXPECT_NE(std::find(d.restart.begin(), d.restart.end(), "admin.control_dir"), d.restart.end());
  EXPECT_NE(RefusedLine(d).find(" need a restart; nothing changed"), std::string::npos);
}

TEST(ReloadDiff, ScalarChangeSaysOldAndNew) {
  const ConfigDiff d =
      DiffConfig(Load("[delivery]\nmax_outbound_connections = 2000\nidle_connection = \"2s\"\n"),
                 Load("[delivery]\nmax_outbound_connections = 100\nidle_connection = \"5s\"\n"));
  EXPECT_TRUE(d.restart.empty());
  ASSERT_EQ(d.changes.size(), 2u);
  EXPECT_EQ(d.changes[0], "delivery.idle_connection 2s -> 5s");
  EXPECT_EQ(d.changes[1], "delivery.max_outbound_connections 2000 -> 100");
  EXPECT_EQ(ReloadedLine(d),
            "reloaded: delivery.idle_connection 2s -> 5s, "
            "delivery.max_outbound_connections 2000 -> 100");
}

TEST(ReloadDiff, ShapingRulesAreComparedByPattern) {
  const ConfigDiff d = DiffConfig(Load(R"(
[[shaping]]
pattern = "example.com"
max_connections = 20
messages_per_second = 50
[[shaping]]
pattern = "gone.example"
)"),
                                  Load(R"(
[[shaping]]
pattern = "new.example"
[[shaping]]
pattern = "example.com"
max_connections = 10
messages_per_second = 50
)"));
  EXPECT_TRUE(d.restart.empty());
  ASSERT_EQ(d.changes.size(), 3u);
  EXPECT_EQ(d.changes[0], "shaping \"example.com\" max_connections 20 -> 10");
  EXPECT_EQ(d.changes[1].rfind("shaping \"gone.example\" {max_connections=20 ", 0), 0u)
      << d.changes[1];
  EXPECT_NE(d.changes[1].find("} -> (removed)"), std::string::npos);
  EXPECT_EQ(d.changes[2].rfind("shaping \"new.example\" (added) -> {", 0), 0u) << d.changes[2];
}

TEST(ReloadDiff, ByMxRulesAreTheirOwnEntries) {
  const ConfigDiff d = DiffConfig(
      Load("[[shaping]]\npattern = \"*.mx.example\"\nby_mx = true\nmax_connections = 4\n"),
      Load("[[shaping]]\npattern = \"*.mx.example\"\nby_mx = true\nmax_connections = 2\n"));
  ASSERT_EQ(d.changes.size(), 1u);
  EXPECT_EQ(d.changes[0], "shaping \"mx:*.mx.example\" max_connections 4 -> 2");
}

TEST(ReloadDiff, RoutesAndTlsPoliciesReload) {
  const ConfigDiff d = DiffConfig(Load(R"(
[[route]]
domain = "*.example.com"
next_hop = "127.0.0.1:2526"
[delivery.tls_policy]
"example.org" = "required"
)"),
                                  Load(R"(
[[route]]
domain = "*.example.com"
next_hop = "127.0.0.2:2527"
[[route]]
domain = "example.net"
next_hop = "[127.0.0.3]"
[delivery.tls_policy]
"example.org" = "verify"
)"));
  EXPECT_TRUE(d.restart.empty());
  ASSERT_EQ(d.changes.size(), 3u);
  EXPECT_EQ(d.changes[0], "route \"*.example.com\" 127.0.0.1:2526 -> 127.0.0.2:2527");
  EXPECT_EQ(d.changes[1], "route \"example.net\" (added) -> 127.0.0.3:25");
  EXPECT_EQ(d.changes[2], "delivery.tls_policy \"example.org\" required -> verify");
}

TEST(ReloadDiff, RetryReloads) {
  const ConfigDiff d = DiffConfig(Load("[retry]\ninitial = \"5m\"\n"),
                                  Load("[retry]\nintervals = [\"1m\", \"10m\"]\n"));
  EXPECT_TRUE(d.restart.empty());
  ASSERT_EQ(d.changes.size(), 1u);
  EXPECT_EQ(d.changes[0], "retry.intervals [] -> [1m, 10m]");
}

TEST(ReloadDiff, LogPathReloadsButTurningItOnOrOffRestarts) {
  Config a = Load("[log]\nfile = \"/tmp/x/a.log\"\n");
  ConfigDiff d = DiffConfig(a, Load("[log]\nfile = \"/tmp/x/b.log\"\n"));
  EXPECT_TRUE(d.restart.empty());
  ASSERT_EQ(d.changes.size(), 1u);
  EXPECT_EQ(d.changes[0], "log.file \"/tmp/x/a.log\" -> \"/tmp/x/b.log\"");
  d = DiffConfig(a, Load("[log]\nfile = \"\"\n"));
  ASSERT_EQ(d.restart.size(), 1u);
  EXPECT_EQ(d.restart[0], "log.file");
}

TEST(ReloadDiff, TlsAndDkimNamesNeedARestart) {
  Config a = Load("");
  Config b = a;
  b.tls_cert_file = "/etc/ssl/new.pem";
  b.dkim_signers.push_back(DkimSigner{.pattern = "example.com", .selector = "s1"});
  b.dns_servers = {"127.0.0.1:53"};
  const ConfigDiff d = DiffConfig(a, b);
  EXPECT_EQ(d.restart, (std::vector<std::string>{"tls.cert_file", "delivery.dns", "dkim.signer"}));
  EXPECT_TRUE(d.changes.empty());
}

TEST(ReloadDiff, LongChangeListsAreCut) {
  Config a = Load("");
  Config b = a;
  for (int i = 0; i < 30; ++i) {
    b.routes.push_back(Route{.pattern = "d" + std::to_string(100 + i) + ".example", .host = "h"});
  }
  const ConfigDiff d = DiffConfig(a, b);
  EXPECT_EQ(d.changes.size(), 30u);
  const std::string line = ReloadedLine(d);
  EXPECT_NE(line.find(", and 10 more"), std::string::npos) << line;
  EXPECT_EQ(line.find("d129.example"), std::string::npos);
}

TEST(ReloadDiff, HttpListenRestartsTheRestReloads) {
  const ConfigDiff listen = DiffConfig(Load("[http]\nlisten = \"127.0.0.1:8025\"\n"),
                                       Load("[http]\nlisten = \"127.0.0.1:8026\"\n"));
  ASSERT_EQ(listen.restart.size(), 1u);
  EXPECT_EQ(listen.restart[0], "http.listen");
  const ConfigDiff limits =
      DiffConfig(Load("[http]\nmax_clients = 5\nmetrics_require_token = false\n"),
                 Load("[http]\nmax_clients = 6\nmetrics_require_token = true\n"));
  EXPECT_TRUE(limits.restart.empty());
  ASSERT_EQ(limits.changes.size(), 2u);
  EXPECT_EQ(limits.changes[0], "http.metrics_require_token false -> true");
  EXPECT_EQ(limits.changes[1], "http.max_clients 5 -> 6");
}

}  // namespace
}  // namespace sluice::config
