// Tests of the configuration reader: defaults, every TOML key, and that each
// kind of mistake (unknown table or key, wrong type, out-of-range value, bad
// CIDR or listen address, TOML syntax) is an error naming the key and line.
#include "sluice/config/config.h"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config_test_util.h"
#include "gtest/gtest.h"
#include "sluice/base/cidr.h"

namespace sluice::config {
namespace {

using test_util::Apply;
using test_util::IsError;

base::IpAddress Ip(const char* text) { return *base::IpAddress::Parse(text); }

TEST(ConfigTest, DefaultsFinalize) {
  Config config;
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_FALSE(config.hostname.empty());
  ASSERT_EQ(config.listen_addresses.size(), 1u);
  EXPECT_EQ(config.listen_addresses[0].ToString(), "127.0.0.1:2525");
  EXPECT_TRUE(config.relay_networks.Contains(Ip("127.0.0.1")));
  EXPECT_TRUE(config.relay_networks.Contains(Ip("127.255.0.9")));
  EXPECT_TRUE(config.relay_networks.Contains(Ip("::1")));
  EXPECT_FALSE(config.relay_networks.Contains(Ip("10.0.0.1")));
  EXPECT_FALSE(config.relay_networks.Contains(Ip("::2")));
  EXPECT_EQ(config.pickup_dir, "");  // no pickup directory unless asked
  EXPECT_EQ(config.pickup_scan_interval_s, 10u);
}

TEST(ConfigTest, PickupScanIntervalRange) {
  EXPECT_TRUE(IsError(Apply("[pickup]\nscan_interval_s = 0\n"),
                      {"sluice.toml:2", "pickup.scan_interval_s", "between 1 and 86400"}));
  EXPECT_TRUE(IsError(Apply("[pickup]\ndirr = \"x\"\n"), {"did you mean 'dir'"}));
}

TEST(ConfigTest, MemoryTrimInterval) {
  EXPECT_EQ(Config().memory_trim_interval_s, 10u);
  Config c;
  ASSERT_TRUE(Apply("[server]\nmemory_trim_interval_s = 0\n", c).ok());  // 0: never
  EXPECT_EQ(c.memory_trim_interval_s, 0u);
  ASSERT_TRUE(Apply("[server]\nmemory_trim_interval_s = 86400\n", c).ok());
  EXPECT_EQ(c.memory_trim_interval_s, 86400u);
  EXPECT_TRUE(IsError(Apply("[server]\nmemory_trim_interval_s = 86401\n"),
                      {"server.memory_trim_interval_s"}));
  EXPECT_TRUE(IsError(Apply("[server]\nmemory_trim_interval = 5\n"),
                      {"did you mean 'memory_trim_interval_s'"}));
}

TEST(ConfigTest, MetricsTopDestinations) {
  EXPECT_EQ(Config().metrics_top_destinations, 20u);
  Config c;
  ASSERT_TRUE(Apply("[server]\nmetrics_top_destinations = 0\n", c).ok());  // only "other"
  EXPECT_EQ(c.metrics_top_destinations, 0u);
  ASSERT_TRUE(Apply("[server]\nmetrics_top_destinations = 500\n", c).ok());
  EXPECT_EQ(c.metrics_top_destinations, 500u);
  EXPECT_TRUE(IsError(Apply("[server]\nmetrics_top_destinations = 501\n"),
                      {"server.metrics_top_destinations", "between 0 and 500"}));
}

TEST(ConfigTest, PickupBatchLimits) {
  Config defaults;
  EXPECT_EQ(defaults.pickup_max_batch_recipients, 1'000'000u);
  EXPECT_EQ(defaults.pickup_max_recipients_file_size, 512ull * 1024 * 1024);
  Config c;
  ASSERT_TRUE(
      Apply("[pickup]\nmax_batch_recipients = 20_000_000\nmax_recipients_file_size = 1024\n", c)
          .ok());
  EXPECT_EQ(c.pickup_max_batch_recipients, 20'000'000u);
  EXPECT_EQ(c.pickup_max_recipients_file_size, 1024u);
  EXPECT_TRUE(IsError(Apply("[pickup]\nmax_batch_recipients = 0\n"),
                      {"sluice.toml:2", "pickup.max_batch_recipients", "between 1 and 20000000"}));
  EXPECT_TRUE(IsError(Apply("[pickup]\nmax_batch_recipients = 20_000_001\n"),
                      {"pickup.max_batch_recipients", "between 1 and 20000000"}));
  EXPECT_TRUE(IsError(Apply("[pickup]\nmax_recipients_file_size = 1023\n"),
                      {"pickup.max_recipients_file_size", "between 1024 and 17179869184"}));
  EXPECT_TRUE(IsError(Apply("[pickup]\nmax_batch_recipient = 5\n"),
                      {"did you mean 'max_batch_recipients'"}));
}

TEST(ConfigTest, HttpTable) {
  Config defaults;
  ASSERT_TRUE(defaults.Finalize().ok());
  EXPECT_EQ(defaults.http_listen, "127.0.0.1:8025");
  ASSERT_EQ(defaults.http_addresses.size(), 1u);
  EXPECT_EQ(defaults.http_addresses[0].ToString(), "127.0.0.1:8025");
  EXPECT_EQ(defaults.http_tokens_file, "");
  EXPECT_FALSE(defaults.http_metrics_require_token);
  Config c;
  ASSERT_TRUE(Apply("[http]\nlisten = \"[::1]:9000\"\ntokens_file = \"/etc/sluice/tokens\"\n"
                    "metrics_require_token = true\nmax_request_bytes = 1024\nmax_headers = 1\n"
                    "idle_timeout_s = 5\nrequest_timeout_s = 7\nmax_clients = 3\n",
                    c)
                  .ok());
  EXPECT_EQ(c.http_listen, "[::1]:9000");
  EXPECT_EQ(c.http_tokens_file, "/etc/sluice/tokens");
  EXPECT_TRUE(c.http_metrics_require_token);
  EXPECT_EQ(c.http_max_request_bytes, 1024u);
  EXPECT_EQ(c.http_max_headers, 1u);
  EXPECT_EQ(c.http_idle_timeout_s, 5u);
  EXPECT_EQ(c.http_request_timeout_s, 7u);
  EXPECT_EQ(c.http_max_clients, 3u);
  Config off;
  ASSERT_TRUE(Apply("[http]\nlisten = \"\"\n", off).ok());
  ASSERT_TRUE(off.Finalize().ok());
  EXPECT_TRUE(off.http_addresses.empty());
  EXPECT_TRUE(IsError(Apply("[http]\nlisten = \"localhost\"\n"), {"sluice.toml:2", "http.listen"}));
  EXPECT_TRUE(IsError(Apply("[http]\nmax_request_bytes = 1023\n"),
                      {"http.max_request_bytes", "between 1024 and 67108864"}));
  EXPECT_TRUE(IsError(Apply("[http]\nmax_clients = 0\n"), {"http.max_clients"}));
  EXPECT_TRUE(IsError(Apply("[http]\nmetrics_require_token = 1\n"), {"true or false"}));
  EXPECT_TRUE(IsError(Apply("[http]\nidle_timeout = 5\n"), {"did you mean 'idle_timeout_s'"}));
  Config clash;
  clash.listen = {"127.0.0.1:8025"};
  EXPECT_TRUE(IsError(clash.Finalize(), {"http.listen", "also an SMTP listen address"}));
}

TEST(ConfigTest, HttpTlsAndInjectInFlight) {
  EXPECT_FALSE(Config().http_tls);
  EXPECT_EQ(Config().http_max_inject_in_flight, 32u);
  Config c;
  ASSERT_TRUE(Apply("[http]\ntls = true\nmax_inject_in_flight = 1\n", c).ok());
  EXPECT_TRUE(c.http_tls);
  EXPECT_EQ(c.http_max_inject_in_flight, 1u);
  EXPECT_TRUE(IsError(Apply("[http]\ntls = \"yes\"\n"), {"http.tls", "true or false"}));
  EXPECT_TRUE(IsError(Apply("[http]\nmax_inject_in_flight = 0\n"),
                      {"http.max_inject_in_flight", "between 1 and 100000"}));
}

TEST(ConfigTest, RequireFromAndFeedbackIdSender) {
  Config defaults;
  EXPECT_TRUE(defaults.require_from);
  EXPECT_EQ(defaults.pickup_feedback_id_sender, "");
  Config c;
  ASSERT_TRUE(
      Apply("[server]\nrequire_from = false\n[pickup]\nfeedback_id_sender = \"esp-1\"\n", c).ok());
  EXPECT_FALSE(c.require_from);
  EXPECT_EQ(c.pickup_feedback_id_sender, "esp-1");
  EXPECT_TRUE(IsError(Apply("[server]\nrequire_from = \"yes\"\n"),
                      {"sluice.toml:2", "server.require_from", "true or false"}));
  EXPECT_TRUE(IsError(Apply("[pickup]\nfeedback_id_sender = \"a:b\"\n"),
                      {"sluice.toml:2", "pickup.feedback_id_sender", "':'"}));
  EXPECT_TRUE(IsError(Apply("[pickup]\nfeedback_id_sender = \"a b\"\n"),
                      {"pickup.feedback_id_sender", "without spaces"}));
  EXPECT_TRUE(IsError(Apply("[server]\nrequire_frm = true\n"), {"did you mean 'require_from'"}));
}

TEST(ConfigTest, FinalizeFillsHostnameFromGethostname) {
  char buf[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(gethostname(buf, sizeof buf - 1), 0);
  Config config;
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.hostname, buf);
}

TEST(ConfigTest, FinalizeKeepsConfiguredHostname) {
  Config config;
  config.hostname = "mx1.example.org";
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.hostname, "mx1.example.org");
}

TEST(ConfigTest, EmptyFileKeepsDefaults) {
  Config config;
  ASSERT_TRUE(Apply("# nothing but a comment\n", config).ok());
  const Config defaults;
  EXPECT_EQ(config.listen, defaults.listen);
  EXPECT_EQ(config.relay_from, defaults.relay_from);
  EXPECT_EQ(config.max_message_size, defaults.max_message_size);
  EXPECT_EQ(config.spool_dir, defaults.spool_dir);
}

TEST(ConfigTest, EveryKeyParsed) {
  Config config;
  const absl::Status status = Apply(R"toml(
[server]
listen = ["0.0.0.0:25", "[::]:25", "127.0.0.1:2525"]
hostname = "mx1.example.org"
shards = 4
relay_from = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
max_message_size = 10_485_760
max_recipients = 500
max_line_length = 1024
max_data_line_length = 998
max_connections = 20000
max_errors = 5
idle_timeout_s = 120
data_timeout_s = 900
shutdown_grace_s = 10
bare_linefeed = "reject"

[spool]
dir = "/var/spool/sluice"
min_free_bytes = 1073741824

[log]
file = "/var/log/sluice/accounting.log"

[pickup]
dir = "/var/spool/sluice-pickup"
scan_interval_s = 30
)toml",
                                    config);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config.listen, (std::vector<std::string>{"0.0.0.0:25", "[::]:25", "127.0.0.1:2525"}));
  EXPECT_EQ(config.hostname, "mx1.example.org");
  EXPECT_EQ(config.shards, 4);
  EXPECT_EQ(config.relay_from, "10.0.0.0/8,192.168.1.7,2001:db8::/32");
  EXPECT_EQ(config.max_message_size, 10485760u);
  EXPECT_EQ(config.max_recipients, 500u);
  EXPECT_EQ(config.max_line_length, 1024u);
  EXPECT_EQ(config.max_data_line_length, 998u);
  EXPECT_EQ(config.max_connections, 20000u);
  EXPECT_EQ(config.max_errors, 5u);
  EXPECT_EQ(config.idle_timeout_s, 120u);
  EXPECT_EQ(config.data_timeout_s, 900u);
  EXPECT_EQ(config.shutdown_grace_s, 10u);
  EXPECT_EQ(config.bare_linefeed, BareLinefeedPolicy::kReject);
  EXPECT_EQ(config.spool_dir, "/var/spool/sluice");
  EXPECT_EQ(config.spool_min_free_bytes, 1073741824u);
  EXPECT_EQ(config.log_file, "/var/log/sluice/accounting.log");
  EXPECT_EQ(config.pickup_dir, "/var/spool/sluice-pickup");
  EXPECT_EQ(config.pickup_scan_interval_s, 30u);

  ASSERT_TRUE(config.Finalize().ok());
  ASSERT_EQ(config.listen_addresses.size(), 3u);
  EXPECT_EQ(config.listen_addresses[0].ToString(), "0.0.0.0:25");
  EXPECT_EQ(config.listen_addresses[1].ToString(), "[::]:25");
  EXPECT_EQ(config.listen_addresses[2].ToString(), "127.0.0.1:2525");
  EXPECT_EQ(config.relay_networks.networks().size(), 3u);
  EXPECT_TRUE(config.relay_networks.Contains(Ip("10.1.2.3")));
  EXPECT_TRUE(config.relay_networks.Contains(Ip("192.168.1.7")));
  EXPECT_FALSE(config.relay_networks.Contains(Ip("192.168.1.8")));
  EXPECT_TRUE(config.relay_networks.Contains(Ip("2001:db8::25")));
  EXPECT_FALSE(config.relay_networks.Contains(Ip("127.0.0.1")));
}

TEST(ConfigTest, RelayFromAsString) {
  Config config;
  ASSERT_TRUE(Apply("[server]\nrelay_from = \"10.0.0.0/8, 2001:db8::/32\"\n", config).ok());
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_TRUE(config.relay_networks.Contains(Ip("10.9.9.9")));
  EXPECT_TRUE(config.relay_networks.Contains(Ip("2001:db8::1")));
  EXPECT_FALSE(config.relay_networks.Contains(Ip("127.0.0.1")));
}

TEST(ConfigTest, InlineTablesWork) {
  Config config;
  ASSERT_TRUE(Apply("spool = { dir = \"/srv/spool\" }\n", config).ok());
  EXPECT_EQ(config.spool_dir, "/srv/spool");
}

TEST(ConfigTest, LaterSourceOverridesOnlyItsKeys) {
  Config config;
  ASSERT_TRUE(Apply("[server]\nmax_recipients = 10\nshards = 2\n", config).ok());
  ASSERT_TRUE(Apply("[server]\nshards = 3\n", config).ok());
  EXPECT_EQ(config.max_recipients, 10u);
  EXPECT_EQ(config.shards, 3);
}

TEST(ConfigTest, EmptyHostnameMeansGethostname) {
  Config config;
  config.hostname = "set.by.flag";
  ASSERT_TRUE(Apply("[server]\nhostname = \"\"\n", config).ok());
  EXPECT_EQ(config.hostname, "");
}

TEST(ConfigTest, EmptyLogFileMeansNoLog) {
  Config config;
  config.log_file = "/tmp/x.log";
  ASSERT_TRUE(Apply("[log]\nfile = \"\"\n", config).ok());
  EXPECT_EQ(config.log_file, "");
}

// --- unknown names ----------------------------------------------------------

TEST(ConfigTest, UnknownKeyNamesKeyAndLine) {
  EXPECT_TRUE(IsError(Apply("[server]\nshards = 2\nmax_recipent = 5\n"),
                      {"sluice.toml:3: ", "server.max_recipent", "unknown key"}));
  EXPECT_TRUE(IsError(Apply("\n\n[spool]\ndir = \"/x\"\n\nmin_free = 1\n"),
                      {"sluice.toml:6: ", "spool.min_free", "unknown key"}));
  EXPECT_TRUE(IsError(Apply("[log]\nlevel = \"debug\"\n"), {"sluice.toml:2: ", "log.level"}));
}

TEST(ConfigTest, UnknownKeySuggestsNearMiss) {
  EXPECT_TRUE(IsError(Apply("[server]\nmax_recipent = 5\n"), {"did you mean 'max_recipients'?"}));
  EXPECT_TRUE(IsError(Apply("[spool]\ndirectory = \"/x\"\n"), {"spool.directory"}));
  EXPECT_EQ(std::string(Apply("[spool]\ndirectory = \"/x\"\n").message()).find("did you mean"),
            std::string::npos);
}

TEST(ConfigTest, UnknownKeyWithOddCharactersIsQuoted) {
  EXPECT_TRUE(IsError(Apply("[server]\n\"max recipients\" = 5\n"),
                      {"sluice.toml:2: ", "server.\"max recipients\"", "unknown key"}));
}

TEST(ConfigTest, KeyOutsideAnyTable) {
  EXPECT_TRUE(IsError(Apply("# top\nlisten = [\"127.0.0.1:25\"]\n"),
                      {"sluice.toml:2: ", "listen", "unknown key outside any table"}));
}

TEST(ConfigTest, UnknownTable) {
  EXPECT_TRUE(IsError(Apply("[server]\nshards = 1\n\n[smtp]\nfoo = 1\n"),
                      {"sluice.toml:4: ", "smtp", "unknown table"}));
}

// The list of tables in these errors comes from the reader registry
// (kTableReaders in src/config/config.cc): plain tables in registry order,
// then the arrays of tables. New tables go last, so the start stays as is.
TEST(ConfigTest, UnknownTableListsTablesAndSuggests) {
  const std::string tables =
      "(the tables are [server], [spool], [log], [pickup], [delivery], [retry], [admin], [tls], "
      "[auth], [dkim], [http]";
  EXPECT_TRUE(IsError(Apply("[servr]\nshards = 1\n"),
                      {"sluice.toml:1: ", "servr: unknown table ", tables, "[[shaping]]",
                       "[[route]]", "; did you mean 'server'?"}));
  EXPECT_TRUE(IsError(Apply("[[rout]]\ndomain = \"a.com\"\n"),
                      {"sluice.toml:1: ", "rout: unknown table ", "did you mean 'route'?"}));
  EXPECT_TRUE(IsError(Apply("shards = 1\n"), {"unknown key outside any table ", tables}));
}

TEST(ConfigTest, UnknownSubTable) {
  EXPECT_TRUE(IsError(Apply("[server]\nshards = 1\n[server.tls]\ncert = \"x\"\n"),
                      {"sluice.toml:3: ", "server.tls", "unknown table"}));
}

TEST(ConfigTest, FirstErrorInFileOrderIsReported) {
  // Alphabetically "aaa" comes first; in the file "zzz" does.
  EXPECT_TRUE(IsError(Apply("[server]\nzzz = 1\naaa = 2\n"), {"sluice.toml:2: ", "server.zzz"}));
}

// --- wrong types ------------------------------------------------------------

TEST(ConfigTest, WrongType) {
  EXPECT_TRUE(
      IsError(Apply("[server]\nmax_recipients = \"10\"\n"),
              {"sluice.toml:2: ", "server.max_recipients", "expected an integer", "a string"}));
  EXPECT_TRUE(
      IsError(Apply("[server]\n\nshards = 1.5\n"),
              {"sluice.toml:3: ", "server.shards", "expected an integer", "floating-point"}));
  EXPECT_TRUE(IsError(Apply("[server]\nhostname = 5\n"),
                      {"sluice.toml:2: ", "server.hostname", "expected a string", "an integer"}));
  EXPECT_TRUE(IsError(Apply("[server]\nlisten = \"127.0.0.1:25\"\n"),
                      {"sluice.toml:2: ", "server.listen", "expected an array"}));
  EXPECT_TRUE(IsError(Apply("[server]\nlisten = [\n  \"127.0.0.1:25\",\n  25,\n]\n"),
                      {"sluice.toml:4: ", "server.listen", "an integer"}));
  EXPECT_TRUE(IsError(Apply("[server]\nrelay_from = true\n"),
                      {"sluice.toml:2: ", "server.relay_from", "a boolean"}));
  EXPECT_TRUE(
      IsError(Apply("[spool]\ndir = 1979-05-27\n"), {"sluice.toml:2: ", "spool.dir", "a date"}));
  EXPECT_TRUE(IsError(Apply("[log]\nfile = [\"a\"]\n"), {"sluice.toml:2: ", "log.file"}));
  EXPECT_TRUE(IsError(Apply("[spool]\nmin_free_bytes = \"64M\"\n"),
                      {"sluice.toml:2: ", "spool.min_free_bytes", "expected an integer"}));
}

TEST(ConfigTest, KnownTableOfWrongType) {
  EXPECT_TRUE(IsError(Apply("server = 1\n"), {"sluice.toml:1: ", "server", "expected a table"}));
  EXPECT_TRUE(IsError(Apply("[[spool]]\ndir = \"x\"\n"), {"spool", "expected a table"}));
}

// --- ranges -----------------------------------------------------------------

TEST(ConfigTest, OutOfRange) {
  EXPECT_TRUE(
      IsError(Apply("[server]\n# 2\n# 3\n# 4\n# 5\n# 6\nmax_recipients = 0\n"),
              {"sluice.toml:7: server.max_recipients: must be between 1 and 100000, got 0"}));
  EXPECT_TRUE(IsError(Apply("[server]\nmax_recipients = 100001\n"),
                      {"sluice.toml:2: ", "server.max_recipients", "100001"}));
  EXPECT_TRUE(IsError(Apply("[server]\nmax_message_size = -1\n"),
                      {"sluice.toml:2: ", "server.max_message_size", "must be between"}));
  EXPECT_TRUE(IsError(Apply("[server]\nmax_message_size = 1_000_000_000_000\n"),
                      {"server.max_message_size", "must be between"}));
  EXPECT_TRUE(IsError(Apply("[server]\nshards = 257\n"), {"server.shards", "between 0 and 256"}));
  EXPECT_TRUE(IsError(Apply("[server]\nshards = -1\n"), {"server.shards"}));
  EXPECT_TRUE(IsError(Apply("[server]\nmax_line_length = 511\n"),
                      {"server.max_line_length", "between 512"}));
  EXPECT_TRUE(IsError(Apply("[server]\nmax_data_line_length = 77\n"),
                      {"server.max_data_line_length", "between 78"}));
  EXPECT_TRUE(IsError(Apply("[server]\nmax_connections = 0\n"), {"server.max_connections"}));
  EXPECT_TRUE(IsError(Apply("[server]\nmax_errors = 0\n"), {"server.max_errors"}));
  EXPECT_TRUE(IsError(Apply("[server]\nidle_timeout_s = 0\n"), {"server.idle_timeout_s"}));
  EXPECT_TRUE(IsError(Apply("[server]\ndata_timeout_s = 86401\n"), {"server.data_timeout_s"}));
  EXPECT_TRUE(IsError(Apply("[server]\nshutdown_grace_s = 3601\n"), {"server.shutdown_grace_s"}));
  EXPECT_TRUE(IsError(Apply("[spool]\nmin_free_bytes = -5\n"), {"spool.min_free_bytes"}));
}

TEST(ConfigTest, RangeBoundsAreInclusive) {
  Config config;
  ASSERT_TRUE(Apply(R"toml(
[server]
shards = 256
max_message_size = 1024
max_recipients = 100000
max_line_length = 512
max_data_line_length = 78
max_connections = 1
max_errors = 1
idle_timeout_s = 1
data_timeout_s = 86400
shutdown_grace_s = 0
[spool]
min_free_bytes = 0
)toml",
                    config)
                  .ok());
  EXPECT_TRUE(config.Finalize().ok());
}

TEST(ConfigTest, BadStringValues) {
  EXPECT_TRUE(IsError(Apply("[server]\nbare_linefeed = \"accept\"\n"),
                      {"sluice.toml:2: ", "server.bare_linefeed", "reject"}));
  EXPECT_TRUE(IsError(Apply("[server]\nhostname = \"mail host\"\n"),
                      {"sluice.toml:2: ", "server.hostname", "mail host"}));
  EXPECT_TRUE(IsError(Apply("[server]\nhostname = \"-bad.example\"\n"), {"server.hostname"}));
  EXPECT_TRUE(IsError(Apply("[server]\nhostname = \"a..b\"\n"), {"server.hostname"}));
  EXPECT_TRUE(IsError(Apply("[spool]\ndir = \"\"\n"),
                      {"sluice.toml:2: ", "spool.dir", "must not be empty"}));
  EXPECT_TRUE(IsError(Apply("[spool]\ndir = \"a\\u0000b\"\n"), {"spool.dir", "NUL"}));
}

// --- addresses and networks -------------------------------------------------

TEST(ConfigTest, BadCidrInToml) {
  EXPECT_TRUE(IsError(Apply("[server]\nrelay_from = \"10.0.0.0/8,10.0.0.300/24\"\n"),
                      {"sluice.toml:2: ", "server.relay_from", "10.0.0.300/24"}));
  // In a multi-line array the line is that of the bad element.
  EXPECT_TRUE(IsError(Apply("[server]\nrelay_from = [\n  \"10.0.0.0/8\",\n  \"::1/129\",\n]\n"),
                      {"sluice.toml:4: ", "server.relay_from", "::1/129"}));
  EXPECT_TRUE(IsError(Apply("[server]\nrelay_from = \"10.0.0.0/x\"\n"),
                      {"server.relay_from", "10.0.0.0/x"}));
  EXPECT_TRUE(IsError(Apply("[server]\nrelay_from = []\n"),
                      {"sluice.toml:2: ", "server.relay_from", "at least one"}));
  EXPECT_TRUE(IsError(Apply("[server]\nrelay_from = \" , \"\n"), {"server.relay_from"}));
}

TEST(ConfigTest, BadCidrFromFlag) {
  Config config;
  config.relay_from = "127.0.0.0/8,example.com";
  EXPECT_TRUE(IsError(config.Finalize(), {"server.relay_from", "example.com"}));
  config.relay_from = "";
  EXPECT_TRUE(IsError(config.Finalize(), {"server.relay_from", "at least one"}));
}

TEST(ConfigTest, BadListenInToml) {
  EXPECT_TRUE(IsError(Apply("[server]\nlisten = [\"127.0.0.1\"]\n"),
                      {"sluice.toml:2: ", "server.listen", "127.0.0.1"}));
  EXPECT_TRUE(IsError(Apply("[server]\nlisten = [\n  \"[::1]:25\",\n  \"[::1]:99999\",\n]\n"),
                      {"sluice.toml:4: ", "server.listen", "99999"}));
  EXPECT_TRUE(
      IsError(Apply("[server]\nlisten = [\"localhost:25\"]\n"), {"server.listen", "localhost:25"}));
  EXPECT_TRUE(IsError(Apply("[server]\nlisten = []\n"),
                      {"sluice.toml:2: ", "server.listen", "at least one"}));
  EXPECT_TRUE(IsError(Apply("[server]\nlisten = [\"127.0.0.1:25\", \"127.0.0.1:25\"]\n"),
                      {"server.listen", "twice"}));
}

TEST(ConfigTest, BadListenFromFlag) {
  Config config;
  config.listen = {"127.0.0.1:2525", "nonsense"};
  EXPECT_TRUE(IsError(config.Finalize(), {"server.listen", "nonsense"}));
  config.listen.clear();
  EXPECT_TRUE(IsError(config.Finalize(), {"server.listen", "at least one"}));
}

// --- Finalize on values set by flags ---------------------------------------

TEST(ConfigTest, FinalizeChecksRangesOfFlagValues) {
  Config config;
  config.max_line_length = 100;
  EXPECT_TRUE(IsError(config.Finalize(), {"server.max_line_length", "between 512", "got 100"}));

  config = Config();
  config.shards = -1;
  EXPECT_TRUE(IsError(config.Finalize(), {"server.shards", "got -1"}));

  config = Config();
  config.max_recipients = 0;
  EXPECT_TRUE(IsError(config.Finalize(), {"server.max_recipients"}));

  config = Config();
  config.max_message_size = 3ull << 30;
  EXPECT_TRUE(IsError(config.Finalize(), {"server.max_message_size"}));
}

TEST(ConfigTest, FinalizeChecksRelations) {
  Config config;
  config.max_message_size = 4096;
  config.max_data_line_length = 8192;
  EXPECT_TRUE(
      IsError(config.Finalize(), {"server.max_data_line_length", "server.max_message_size"}));
}

TEST(ConfigTest, FinalizeChecksStrings) {
  Config config;
  config.hostname = "not a host";
  EXPECT_TRUE(IsError(config.Finalize(), {"server.hostname", "not a host"}));
  config = Config();
  config.spool_dir = "";
  EXPECT_TRUE(IsError(config.Finalize(), {"spool.dir"}));
}

// --- syntax -----------------------------------------------------------------

TEST(ConfigTest, SyntaxErrorNamesLine) {
  EXPECT_TRUE(
      IsError(Apply("[server]\nshards = 4\nmax_errors = \n"), {"sluice.toml:3", "syntax error"}));
  EXPECT_TRUE(IsError(Apply("[server]\n\n\n\nhostname = \"unterminated\n"),
                      {"sluice.toml:5", "syntax error"}));
  EXPECT_TRUE(IsError(Apply("[server\n"), {"sluice.toml:1", "syntax error"}));
  // Redefining a key is a TOML error too.
  EXPECT_TRUE(
      IsError(Apply("[server]\nshards = 1\nshards = 2\n"), {"sluice.toml:3", "syntax error"}));
}

TEST(ConfigTest, ErrorLeavesConfigUntouched) {
  Config config;
  const absl::Status status = Apply("[server]\nmax_recipients = 7\nshards = 1000\n", config);
  EXPECT_TRUE(IsError(status, {"server.shards"}));
  EXPECT_EQ(config.max_recipients, Config().max_recipients);
  EXPECT_EQ(config.shards, 0);
}

// --- files ------------------------------------------------------------------

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    path_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/sluice_cfg_XXXXXX";
    const int fd = mkstemp(path_.data());
    ASSERT_GE(fd, 0);
    close(fd);
  }
  void TearDown() override { unlink(path_.c_str()); }

  void Write(const std::string& text) {
    FILE* f = std::fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }

  std::string path_;
};

TEST_F(ConfigFileTest, ReadsFile) {
  Write("[server]\nmax_recipients = 42\n");
  Config config;
  ASSERT_TRUE(ApplyTomlFile(path_, config).ok());
  EXPECT_EQ(config.max_recipients, 42u);
}

TEST_F(ConfigFileTest, ErrorNamesFile) {
  Write("[server]\n\nmax_recipients = 0\n");
  Config config;
  EXPECT_TRUE(IsError(ApplyTomlFile(path_, config), {path_ + ":3: ", "server.max_recipients"}));
}

// deploy/sluice.toml must stay valid; meson passes its path in the environment.
TEST(ExampleConfigTest, DeployExampleIsValid) {
  const char* path = std::getenv("SLUICE_EXAMPLE_CONFIG");
  if (path == nullptr || *path == '\0') GTEST_SKIP() << "SLUICE_EXAMPLE_CONFIG not set";
  Config config;
  const absl::Status applied = ApplyTomlFile(path, config);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(config.spool_dir, "/var/lib/sluice/spool");
  // The file lists the delivery keys with their defaults, and says so.
  const Config defaults;
  EXPECT_EQ(config.delivery_enabled, defaults.delivery_enabled);
  EXPECT_EQ(config.dns_timeout_ms, defaults.dns_timeout_ms);
  EXPECT_EQ(config.mx_port, defaults.mx_port);
  EXPECT_EQ(config.max_outbound_connections, defaults.max_outbound_connections);
  EXPECT_EQ(config.idle_connection_ms, defaults.idle_connection_ms);
  EXPECT_EQ(config.timeouts.connect_ms, defaults.timeouts.connect_ms);
  EXPECT_EQ(config.timeouts.data_init_ms, defaults.timeouts.data_init_ms);
  EXPECT_EQ(config.timeouts.final_dot_ms, defaults.timeouts.final_dot_ms);
  EXPECT_EQ(config.retry.initial, defaults.retry.initial);
  EXPECT_EQ(config.retry.factor_permille, defaults.retry.factor_permille);
  EXPECT_EQ(config.retry.max_interval, defaults.retry.max_interval);
  EXPECT_EQ(config.retry.max_age, defaults.retry.max_age);
  EXPECT_EQ(config.retry.jitter_permille, defaults.retry.jitter_permille);
  ASSERT_EQ(config.shaping.size(), 1u);  // "*" with the built-in values
  const queue::ShapeParams& p = config.shaping[0].params;
  const queue::ShapeParams d;
  EXPECT_EQ(p.max_connections, d.max_connections);
  EXPECT_EQ(p.max_messages_per_connection, d.max_messages_per_connection);
  EXPECT_EQ(p.messages_per_second, d.messages_per_second);
  EXPECT_EQ(p.backoff_on_421, d.backoff_on_421);
  EXPECT_EQ(p.backoff_patterns, d.backoff_patterns);
  EXPECT_EQ(p.backoff_factor_permille, d.backoff_factor_permille);
  EXPECT_EQ(p.backoff_min_permille, d.backoff_min_permille);
  EXPECT_EQ(p.backoff_duration, d.backoff_duration);
  EXPECT_EQ(p.recovery_successes, d.recovery_successes);
  EXPECT_TRUE(config.routes.empty());
  const absl::Status finalized = config.Finalize();
  EXPECT_TRUE(finalized.ok()) << finalized;
}

TEST_F(ConfigFileTest, MissingFile) {
  Config config;
  const absl::Status status = ApplyTomlFile(path_ + ".missing", config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_NE(std::string(status.message()).find(path_ + ".missing"), std::string::npos);
}

TEST_F(ConfigFileTest, DirectoryIsAnError) {
  Config config;
  const absl::Status status = ApplyTomlFile("/", config);
  EXPECT_FALSE(status.ok());
}

}  // namespace
}  // namespace sluice::config

namespace sluice::config {
namespace {

using queue::kDay;
using queue::kHour;
using queue::kMinute;
using queue::kSecond;

// --- durations ----------------------------------------------------------------

TEST(DurationTest, ParsesEveryUnit) {
  EXPECT_EQ(*ParseDurationMicros("0ms"), 0u);
  EXPECT_EQ(*ParseDurationMicros("0s"), 0u);
  EXPECT_EQ(*ParseDurationMicros("250ms"), 250'000u);
  EXPECT_EQ(*ParseDurationMicros("30s"), 30 * kSecond);
  EXPECT_EQ(*ParseDurationMicros("5m"), 5 * kMinute);
  EXPECT_EQ(*ParseDurationMicros("4h"), 4 * kHour);
  EXPECT_EQ(*ParseDurationMicros("5d"), 5 * kDay);
  EXPECT_EQ(*ParseDurationMicros("007s"), 7 * kSecond);
}

TEST(DurationTest, LargestValues) {
  // 2^64 - 1 microseconds is 18446744073709551.615 ms.
  EXPECT_EQ(*ParseDurationMicros("18446744073709551ms"), 18446744073709551000u);
  EXPECT_TRUE(IsError(ParseDurationMicros("18446744073709552ms").status(), {"too large"}));
  EXPECT_EQ(*ParseDurationMicros("18446744073709s"), 18446744073709000000u);
  EXPECT_TRUE(IsError(ParseDurationMicros("18446744073710s").status(), {"too large"}));
  EXPECT_EQ(*ParseDurationMicros("213503982d"), 213503982 * kDay);
  EXPECT_TRUE(IsError(ParseDurationMicros("213503983d").status(), {"too large"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("99999999999999999999999s").status(), {"too large"}));
}

TEST(DurationTest, RejectsMalformed) {
  EXPECT_TRUE(IsError(ParseDurationMicros("").status(), {"is not a duration: empty"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("30").status(), {"'30' is not a duration: no unit"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("0").status(), {"no unit"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("s").status(), {"no number"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("-5s").status(), {"negative"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("+5s").status(), {"no number"}));
  EXPECT_TRUE(IsError(ParseDurationMicros(" 5s").status(), {"no number"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("5 s").status(), {"unknown unit ' s'"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("5s ").status(), {"unknown unit 's '"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("1.5s").status(), {"no fractions"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("5S").status(), {"unknown unit 'S'"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("5us").status(), {"unknown unit 'us'"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("5sec").status(), {"unknown unit 'sec'"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("1h30m").status(), {"unknown unit 'h30m'"}));
  EXPECT_TRUE(IsError(ParseDurationMicros("5w").status(), {"unknown unit 'w'", "\"5d\""}));
}

TEST(DurationTest, Formats) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(1), "1us");
  EXPECT_EQ(FormatDuration(1500), "1500us");
  EXPECT_EQ(FormatDuration(250'000), "250ms");
  EXPECT_EQ(FormatDuration(1'500'000), "1500ms");
  EXPECT_EQ(FormatDuration(90 * kSecond), "90s");
  EXPECT_EQ(FormatDuration(90 * kMinute), "90m");
  EXPECT_EQ(FormatDuration(4 * kHour), "4h");
  EXPECT_EQ(FormatDuration(5 * kDay), "5d");
  for (const char* text : {"250ms", "30s", "5m", "4h", "5d", "1500ms", "90m"}) {
    EXPECT_EQ(FormatDuration(*ParseDurationMicros(text)), text);
  }
}

// --- [delivery] ---------------------------------------------------------------

TEST(DeliveryConfigTest, Defaults) {
  Config config;
  EXPECT_TRUE(config.delivery_enabled);
  EXPECT_TRUE(config.dns_servers.empty());
  EXPECT_EQ(config.dns_timeout_ms, 1000u);
  EXPECT_EQ(config.dns_tries, 4u);
  EXPECT_EQ(config.dns_max_in_flight, 64u);
  EXPECT_EQ(config.mx_port, 25u);
  EXPECT_EQ(config.source_address, "");
  EXPECT_EQ(config.helo_name, "");
  EXPECT_EQ(config.max_recipients_per_transaction, 100u);
  EXPECT_TRUE(config.outbound_pipelining);
  EXPECT_FALSE(config.outbound_chunking);
  EXPECT_EQ(config.idle_connection_ms, 2000u);
  EXPECT_EQ(config.max_outbound_connections, 2000u);
  EXPECT_EQ(config.timeouts.connect_ms, 30000u);
  EXPECT_EQ(config.timeouts.greeting_ms, 300000u);
  EXPECT_EQ(config.timeouts.ehlo_ms, 300000u);
  EXPECT_EQ(config.timeouts.starttls_ms, 300000u);
  EXPECT_EQ(config.timeouts.mail_ms, 300000u);
  EXPECT_EQ(config.timeouts.rcpt_ms, 300000u);
  EXPECT_EQ(config.timeouts.data_init_ms, 120000u);
  EXPECT_EQ(config.timeouts.data_block_ms, 180000u);
  EXPECT_EQ(config.timeouts.final_dot_ms, 600000u);
  EXPECT_EQ(config.timeouts.rset_ms, 300000u);
  EXPECT_EQ(config.timeouts.quit_ms, 300000u);
  EXPECT_EQ(config.retry.initial, 5 * kMinute);
  EXPECT_EQ(config.retry.factor_permille, 2000u);
  EXPECT_EQ(config.retry.max_interval, 4 * kHour);
  EXPECT_EQ(config.retry.max_age, 5 * kDay);
  EXPECT_EQ(config.retry.jitter_permille, 100u);
  EXPECT_TRUE(config.retry.intervals.empty());
  EXPECT_TRUE(config.shaping.empty());
  EXPECT_TRUE(config.routes.empty());
  EXPECT_EQ(config.control_dir, "");
}

TEST(DeliveryConfigTest, FinalizeFillsHeloNameAndControlDir) {
  Config config;
  config.hostname = "relay.example.org";
  config.spool_dir = "/var/spool/sluice/";
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.helo_name, "relay.example.org");
  EXPECT_EQ(config.control_dir, "/var/spool/sluice/control");

  config = Config();
  config.hostname = "relay.example.org";
  config.helo_name = "out.example.org";
  config.control_dir = "/run/sluice";
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.helo_name, "out.example.org");
  EXPECT_EQ(config.control_dir, "/run/sluice");

  config = Config();
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.control_dir, "./var/spool/control");
  ASSERT_TRUE(config.Finalize().ok()) << "Finalize twice";
}

TEST(DeliveryConfigTest, EveryKeyParsed) {
  Config config;
  const absl::Status status = Apply(R"toml(
[delivery]
enabled = false
dns = ["127.0.0.1:5353", "[::1]:53", "192.0.2.53"]
dns_timeout = "250ms"
dns_tries = 3
dns_max_in_flight = 8
mx_port = 2526
source_address = "127.0.0.1"
helo_name = "mta.example.com"
max_recipients_per_transaction = 50
pipelining = false
chunking = true
idle_connection = "10s"
max_outbound_connections = 500

[delivery.timeouts]
connect = "1s"
greeting = "2s"
ehlo = "3s"
starttls = "4s"
mail = "5s"
rcpt = "6s"
data_init = "7s"
data_block = "8s"
final_dot = "9s"
rset = "10s"
quit = "11s"

[retry]
initial = "1m"
factor = 1.5
max_interval = "2h"
max_age = "3d"
jitter = 0.25
intervals = ["1m", "5m", "30m"]

[admin]
control_dir = "/run/sluice"
)toml",
                                    config);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(config.delivery_enabled);
  EXPECT_EQ(config.dns_servers,
            (std::vector<std::string>{"127.0.0.1:5353", "[::1]:53", "192.0.2.53"}));
  EXPECT_EQ(config.dns_timeout_ms, 250u);
  EXPECT_EQ(config.dns_tries, 3u);
  EXPECT_EQ(config.dns_max_in_flight, 8u);
  EXPECT_EQ(config.mx_port, 2526u);
  EXPECT_EQ(config.source_address, "127.0.0.1");
  EXPECT_EQ(config.helo_name, "mta.example.com");
  EXPECT_EQ(config.max_recipients_per_transaction, 50u);
  EXPECT_FALSE(config.outbound_pipelining);
  EXPECT_TRUE(config.outbound_chunking);
  EXPECT_EQ(config.idle_connection_ms, 10000u);
  EXPECT_EQ(config.max_outbound_connections, 500u);
  EXPECT_EQ(config.timeouts.connect_ms, 1000u);
  EXPECT_EQ(config.timeouts.greeting_ms, 2000u);
  EXPECT_EQ(config.timeouts.ehlo_ms, 3000u);
  EXPECT_EQ(config.timeouts.starttls_ms, 4000u);
  EXPECT_EQ(config.timeouts.mail_ms, 5000u);
  EXPECT_EQ(config.timeouts.rcpt_ms, 6000u);
  EXPECT_EQ(config.timeouts.data_init_ms, 7000u);
  EXPECT_EQ(config.timeouts.data_block_ms, 8000u);
  EXPECT_EQ(config.timeouts.final_dot_ms, 9000u);
  EXPECT_EQ(config.timeouts.rset_ms, 10000u);
  EXPECT_EQ(config.timeouts.quit_ms, 11000u);
  EXPECT_EQ(config.retry.initial, kMinute);
  EXPECT_EQ(config.retry.factor_permille, 1500u);
  EXPECT_EQ(config.retry.max_interval, 2 * kHour);
  EXPECT_EQ(config.retry.max_age, 3 * kDay);
  EXPECT_EQ(config.retry.jitter_permille, 250u);
  EXPECT_EQ(config.retry.intervals,
            (std::vector<queue::Micros>{kMinute, 5 * kMinute, 30 * kMinute}));
  EXPECT_EQ(config.control_dir, "/run/sluice");

  const absl::Status finalized = config.Finalize();
  ASSERT_TRUE(finalized.ok()) << finalized;
  // Finalize writes every DNS server as ADDR:PORT.
  EXPECT_EQ(config.dns_servers,
            (std::vector<std::string>{"127.0.0.1:5353", "[::1]:53", "192.0.2.53:53"}));

  config.dns_servers = {"[2001:DB8::53]", "[::ffff:127.0.0.1]:5353"};
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.dns_servers, (std::vector<std::string>{"[2001:db8::53]:53", "127.0.0.1:5353"}));
}

TEST(DeliveryConfigTest, InlineAndDottedTimeouts) {
  Config config;
  ASSERT_TRUE(Apply("[delivery]\ntimeouts = { connect = \"2s\" }\n", config).ok());
  EXPECT_EQ(config.timeouts.connect_ms, 2000u);
  ASSERT_TRUE(Apply("delivery.timeouts.quit = \"3s\"\n", config).ok());
  EXPECT_EQ(config.timeouts.quit_ms, 3000u);
  EXPECT_EQ(config.timeouts.connect_ms, 2000u);
}

TEST(DeliveryConfigTest, DurationKeysNeedStrings) {
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns_timeout = 5\n"),
                      {"sluice.toml:2: delivery.dns_timeout: expected a duration string such as "
                       "\"30s\" or \"5m\", got an integer"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nidle_connection = \"2\"\n"),
                      {"sluice.toml:2: delivery.idle_connection: '2' is not a duration: no unit"}));
  EXPECT_TRUE(IsError(Apply("[delivery.timeouts]\n\nconnect = \"1.5s\"\n"),
                      {"sluice.toml:3: delivery.timeouts.connect: ", "no fractions"}));
  EXPECT_TRUE(IsError(Apply("[retry]\ninitial = 300\n"),
                      {"sluice.toml:2: retry.initial: expected a duration string"}));
}

TEST(DeliveryConfigTest, DeliveryRanges) {
  EXPECT_TRUE(
      IsError(Apply("[delivery]\ndns_timeout = \"9ms\"\n"),
              {"sluice.toml:2: delivery.dns_timeout: must be between 10ms and 1m, got 9ms"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns_timeout = \"61s\"\n"),
                      {"delivery.dns_timeout: must be between 10ms and 1m, got 61s"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns_timeout = \"2m\"\n"), {"got 2m"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns_tries = 0\n"),
                      {"sluice.toml:2: delivery.dns_tries: must be between 1 and 10, got 0"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns_tries = 11\n"), {"delivery.dns_tries", "got 11"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nmx_port = 0\n"),
                      {"delivery.mx_port: must be between 1 and 65535, got 0"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nmx_port = 65536\n"), {"delivery.mx_port", "65536"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nmx_port = -25\n"), {"delivery.mx_port", "-25"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nmax_recipients_per_transaction = 0\n"),
                      {"delivery.max_recipients_per_transaction: must be between 1 and 100000"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nmax_recipients_per_transaction = 100001\n"),
                      {"delivery.max_recipients_per_transaction"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nidle_connection = \"301s\"\n"),
                      {"delivery.idle_connection: must be between 0s and 5m, got 301s"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nmax_outbound_connections = 0\n"),
                      {"delivery.max_outbound_connections: must be between 1 and 1000000, got 0"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nmax_outbound_connections = 1000001\n"),
                      {"delivery.max_outbound_connections"}));
  EXPECT_TRUE(IsError(Apply("[delivery.timeouts]\nfinal_dot = \"61m\"\n"),
                      {"delivery.timeouts.final_dot: must be between 10ms and 1h, got 61m"}));
  EXPECT_TRUE(IsError(Apply("[delivery.timeouts]\nrset = \"0s\"\n"),
                      {"delivery.timeouts.rset: must be between 10ms and 1h, got 0s"}));
}

TEST(DeliveryConfigTest, DeliveryRangeBoundsAreInclusive) {
  Config config;
  const absl::Status status = Apply(R"toml(
[delivery]
dns_timeout = "10ms"
dns_tries = 10
mx_port = 65535
max_recipients_per_transaction = 1
idle_connection = "0s"
max_outbound_connections = 1_000_000
[delivery.timeouts]
connect = "10ms"
final_dot = "1h"
[retry]
initial = "10ms"
factor = 1
max_interval = "30d"
max_age = "365d"
jitter = 0
)toml",
                                    config);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config.idle_connection_ms, 0u);
  EXPECT_EQ(config.retry.factor_permille, 1000u);
  EXPECT_EQ(config.retry.jitter_permille, 0u);
  const absl::Status finalized = config.Finalize();
  EXPECT_TRUE(finalized.ok()) << finalized;
  ASSERT_TRUE(Apply("[delivery]\ndns_timeout = \"60s\"\nidle_connection = \"5m\"\nmx_port = 1\n"
                    "max_outbound_connections = 1\n[retry]\nmax_age = \"10ms\"\n"
                    "jitter = 0.5\nfactor = 100.0\n",
                    config)
                  .ok());
  EXPECT_TRUE(config.Finalize().ok());
}

TEST(DeliveryConfigTest, WrongTypes) {
  EXPECT_TRUE(IsError(Apply("[delivery]\nenabled = \"yes\"\n"),
                      {"sluice.toml:2: delivery.enabled: expected a boolean (true or false), got "
                       "a string"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\npipelining = 1\n"), {"delivery.pipelining", "boolean"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nchunking = 0\n"), {"delivery.chunking", "boolean"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nmx_port = \"25\"\n"),
                      {"delivery.mx_port: expected an integer, got a string"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns = \"127.0.0.1:53\"\n"),
                      {"delivery.dns: expected an array of \"ADDR:PORT\" strings, got a string"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns = [53]\n"), {"delivery.dns", "an integer"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ntimeouts = \"5m\"\n"),
                      {"delivery.timeouts: expected a table, got a string"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nhelo_name = 5\n"), {"delivery.helo_name", "a string"}));
  EXPECT_TRUE(IsError(Apply("delivery = 1\n"), {"sluice.toml:1: delivery: expected a table"}));
  EXPECT_TRUE(IsError(Apply("[[delivery]]\nenabled = true\n"), {"delivery: expected a table"}));
  EXPECT_TRUE(IsError(Apply("[admin]\ncontrol_dir = false\n"), {"admin.control_dir", "boolean"}));
}

TEST(DeliveryConfigTest, UnknownKeys) {
  EXPECT_TRUE(IsError(Apply("[delivery]\nmx_prot = 25\n"),
                      {"sluice.toml:2: delivery.mx_prot: unknown key in [delivery]; did you mean "
                       "'mx_port'?"}));
  EXPECT_TRUE(IsError(Apply("[delivery.timeouts]\nconect = \"1s\"\n"),
                      {"delivery.timeouts.conect: unknown key in [delivery.timeouts]; did you "
                       "mean 'connect'?"}));
  EXPECT_TRUE(IsError(Apply("[delivery.timeout]\nconnect = \"1s\"\n"),
                      {"delivery.timeout: unknown table in [delivery]"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nintervalls = [\"1m\"]\n"),
                      {"retry.intervalls: unknown key in [retry]; did you mean 'intervals'?"}));
  EXPECT_TRUE(IsError(Apply("[admin]\ncontrol = \"/x\"\n"), {"admin.control: unknown key"}));
  EXPECT_TRUE(
      IsError(Apply("[delivry]\nenabled = true\n"),
              {"sluice.toml:1: delivry: unknown table", "[[route]]", "did you mean 'delivery'?"}));
  EXPECT_TRUE(IsError(Apply("[[routes]]\ndomain = \"*\"\n"),
                      {"routes: unknown table", "did you mean 'route'?"}));
}

TEST(DeliveryConfigTest, DnsServers) {
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns = [\n  \"127.0.0.1:53\",\n  \"localhost:53\",\n]\n"),
                      {"sluice.toml:4: delivery.dns: 'localhost:53' is not ADDR:PORT or an IP "
                       "address"}));
  EXPECT_TRUE(
      IsError(Apply("[delivery]\ndns = [\"127.0.0.1:99999\"]\n"), {"delivery.dns", "99999"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns = [\"127.0.0.1:0\"]\n"), {"delivery.dns", "port 0"}));
  // "::1:53" is a valid IPv6 address, and probably meant as [::1]:53: brackets, please.
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns = [\"::1:53\"]\n"),
                      {"delivery.dns: '::1:53': an IPv6 address needs brackets: \"[::1:53]\" (port "
                       "53) or \"[ADDR]:PORT\""}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns = [\"[::1\"]\n"), {"delivery.dns", "'[::1'"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns = [\"[10.0.0.1]\"]\n"), {"delivery.dns"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\ndns = [\n\"127.0.0.1\",\n\"127.0.0.1:53\"]\n"),
                      {"sluice.toml:4: delivery.dns: '127.0.0.1:53' is listed twice"}));
  Config config;
  ASSERT_TRUE(Apply("[delivery]\ndns = []\n", config).ok());
  EXPECT_TRUE(config.dns_servers.empty());

  config = Config();
  config.dns_servers = {"10.0.0.1", "nonsense"};
  EXPECT_TRUE(IsError(config.Finalize(), {"delivery.dns: 'nonsense' is not ADDR:PORT"}));
}

TEST(DeliveryConfigTest, SourceAddressAndHeloName) {
  EXPECT_TRUE(IsError(Apply("[delivery]\nsource_address = \"127.0.0.1:25\"\n"),
                      {"sluice.toml:2: delivery.source_address: '127.0.0.1:25' is not an IP "
                       "address"}));
  EXPECT_TRUE(IsError(Apply("[delivery]\nsource_address = \"mail.example.com\"\n"),
                      {"delivery.source_address"}));
  EXPECT_TRUE(Apply("[delivery]\nsource_address = \"::1\"\n").ok());
  EXPECT_TRUE(Apply("[delivery]\nsource_address = \"\"\n").ok());
  EXPECT_TRUE(IsError(Apply("[delivery]\nhelo_name = \"bad name\"\n"),
                      {"sluice.toml:2: delivery.helo_name: 'bad name' is not a valid domain"}));

  Config config;
  config.source_address = "nowhere";
  EXPECT_TRUE(IsError(config.Finalize(), {"delivery.source_address: 'nowhere'"}));
  config = Config();
  config.helo_name = "-x";
  EXPECT_TRUE(IsError(config.Finalize(), {"delivery.helo_name"}));
  config = Config();
  config.control_dir = std::string("a\0b", 3);
  EXPECT_TRUE(IsError(config.Finalize(), {"admin.control_dir", "NUL"}));
}

TEST(DeliveryConfigTest, FinalizeChecksRangesOfDirectValues) {
  Config config;
  config.mx_port = 0;
  EXPECT_TRUE(IsError(config.Finalize(), {"delivery.mx_port: must be between 1 and 65535, got 0"}));
  config = Config();
  config.dns_timeout_ms = 0;
  EXPECT_TRUE(IsError(config.Finalize(), {"delivery.dns_timeout: must be between 10ms and 1m, "
                                          "got 0s"}));
  config = Config();
  config.timeouts.data_block_ms = 3'600'001;
  EXPECT_TRUE(
      IsError(config.Finalize(),
              {"delivery.timeouts.data_block: must be between 10ms and 1h, got 3600001ms"}));
  config = Config();
  config.max_outbound_connections = 0;
  EXPECT_TRUE(IsError(config.Finalize(), {"delivery.max_outbound_connections"}));
  config = Config();
  config.retry.jitter_permille = 501;
  EXPECT_TRUE(IsError(config.Finalize(), {"retry.jitter: must be between 0 and 0.5, got 0.501"}));
  config = Config();
  config.retry.factor_permille = 999;
  EXPECT_TRUE(IsError(config.Finalize(), {"retry.factor: must be between 1 and 100, got 0.999"}));
  config = Config();
  config.retry.initial = 1;
  EXPECT_TRUE(IsError(config.Finalize(), {"retry.initial", "got 1us"}));
  config = Config();
  config.retry.intervals = {kMinute, 0};
  EXPECT_TRUE(
      IsError(config.Finalize(), {"retry.intervals: must be between 10ms and 30d, got 0s"}));
  config = Config();
  config.retry.intervals.assign(101, kMinute);
  EXPECT_TRUE(IsError(config.Finalize(), {"retry.intervals: at most 100 entries, got 101"}));
}

// --- [retry] ------------------------------------------------------------------

TEST(RetryConfigTest, Ranges) {
  EXPECT_TRUE(IsError(Apply("[retry]\ninitial = \"9ms\"\n"),
                      {"sluice.toml:2: retry.initial: must be between 10ms and 30d, got 9ms"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nmax_interval = \"31d\"\n"),
                      {"retry.max_interval: must be between 10ms and 30d, got 31d"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nmax_age = \"366d\"\n"),
                      {"retry.max_age: must be between 10ms and 365d, got 366d"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nfactor = 0.5\n"),
                      {"sluice.toml:2: retry.factor: must be between 1 and 100, got 0.5"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nfactor = 101\n"), {"retry.factor", "got 101"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nfactor = -2.0\n"), {"retry.factor", "got -2"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nfactor = nan\n"), {"retry.factor", "must be between"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nfactor = inf\n"), {"retry.factor", "must be between"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nfactor = \"2\"\n"),
                      {"retry.factor: expected a number, got a string"}));
  EXPECT_TRUE(IsError(Apply("[retry]\njitter = 0.51\n"),
                      {"retry.jitter: must be between 0 and 0.5, got 0.51"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nintervals = \"1m\"\n"),
                      {"retry.intervals: expected an array of durations"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nintervals = [\n  \"1m\",\n  \"0s\",\n]\n"),
                      {"sluice.toml:4: retry.intervals: must be between 10ms and 30d, got 0s"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nintervals = [\"1m\", 5]\n"),
                      {"retry.intervals: expected a duration string"}));
  EXPECT_TRUE(IsError(Apply("[retry]\nintervals = [\"1x\"]\n"),
                      {"retry.intervals: '1x' is not a duration"}));
  std::string many = "[retry]\nintervals = [";
  for (int i = 0; i < 101; ++i) many += "\"1m\",";
  many += "]\n";
  EXPECT_TRUE(IsError(Apply(many), {"retry.intervals: at most 100 entries, got 101"}));
}

TEST(RetryConfigTest, FractionsRoundToThousandths) {
  Config config;
  ASSERT_TRUE(Apply("[retry]\nfactor = 1.0004\njitter = 0.0625\n", config).ok());
  EXPECT_EQ(config.retry.factor_permille, 1000u);
  EXPECT_EQ(config.retry.jitter_permille, 63u);
  ASSERT_TRUE(Apply("[retry]\nfactor = 3\n", config).ok());  // an integer will do
  EXPECT_EQ(config.retry.factor_permille, 3000u);
}

TEST(RetryConfigTest, EmptyIntervalsMeanExponential) {
  Config config;
  config.retry.intervals = {kMinute};
  ASSERT_TRUE(Apply("[retry]\nintervals = []\n", config).ok());
  EXPECT_TRUE(config.retry.intervals.empty());
}

// --- [[shaping]] --------------------------------------------------------------

TEST(ShapingConfigTest, EveryKeyParsed) {
  Config config;
  const absl::Status status = Apply(R"toml(
[[shaping]]
pattern = "*"
max_connections = 10

[[shaping]]
pattern = "Example.COM."
by_mx = false
max_connections = 5
max_messages_per_connection = 50
messages_per_second = 10
message_burst = 20
messages_per_hour = 3600
connections_per_second = 2
connection_burst = 4
backoff_on_421 = false
backoff_patterns = ["rate limit", "try *later*"]
backoff_factor = 0.25
backoff_min = 0.1
backoff_duration = "30m"
recovery_successes = 7

[[shaping]]
pattern = "*.provider.example"
by_mx = true
max_connections = 100
)toml",
                                    config);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(config.shaping.size(), 3u);
  EXPECT_EQ(config.shaping[0].pattern, "*");
  EXPECT_EQ(config.shaping[0].params.max_connections, 10u);
  EXPECT_EQ(config.shaping[0].params.max_messages_per_connection, 100u);  // default kept
  const queue::ShapingRule& r = config.shaping[1];
  EXPECT_EQ(r.pattern, "example.com");  // lower case, no trailing dot
  EXPECT_FALSE(r.by_mx);
  EXPECT_EQ(r.params.max_connections, 5u);
  EXPECT_EQ(r.params.max_messages_per_connection, 50u);
  EXPECT_EQ(r.params.messages_per_second, 10u);
  EXPECT_EQ(r.params.message_burst, 20u);
  EXPECT_EQ(r.params.messages_per_hour, 3600u);
  EXPECT_EQ(r.params.connections_per_second, 2u);
  EXPECT_EQ(r.params.connection_burst, 4u);
  EXPECT_FALSE(r.params.backoff_on_421);
  EXPECT_EQ(r.params.backoff_patterns, (std::vector<std::string>{"rate limit", "try *later*"}));
  EXPECT_EQ(r.params.backoff_factor_permille, 250u);
  EXPECT_EQ(r.params.backoff_min_permille, 100u);
  EXPECT_EQ(r.params.backoff_duration, 30 * kMinute);
  EXPECT_EQ(r.params.recovery_successes, 7u);
  EXPECT_TRUE(config.shaping[2].by_mx);
  EXPECT_EQ(config.shaping[2].pattern, "*.provider.example");

  const absl::Status finalized = config.Finalize();
  ASSERT_TRUE(finalized.ok()) << finalized;
  auto policy = queue::ShapingPolicy::Create(config.shaping);
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->ForDomain("EXAMPLE.com").max_connections, 5u);
  EXPECT_EQ(policy->ForDomain("other.org").max_connections, 10u);
  ASSERT_NE(policy->ForMx("mx1.provider.example"), nullptr);
  EXPECT_EQ(policy->ForMx("mx1.provider.example")->max_connections, 100u);
}

TEST(ShapingConfigTest, DefaultBackoffPatternsKeptUnlessGiven) {
  Config config;
  ASSERT_TRUE(Apply("[[shaping]]\npattern = \"*\"\n", config).ok());
  EXPECT_EQ(config.shaping[0].params.backoff_patterns, queue::ShapeParams().backoff_patterns);
  ASSERT_TRUE(Apply("[[shaping]]\npattern = \"*\"\nbackoff_patterns = []\n", config).ok());
  EXPECT_TRUE(config.shaping[0].params.backoff_patterns.empty());
}

TEST(ShapingConfigTest, LaterFileReplacesTheList) {
  Config config;
  ASSERT_TRUE(
      Apply("[[shaping]]\npattern = \"a.example\"\n[[shaping]]\npattern = \"b.example\"\n", config)
          .ok());
  ASSERT_TRUE(Apply("[[shaping]]\npattern = \"c.example\"\n", config).ok());
  ASSERT_EQ(config.shaping.size(), 1u);
  EXPECT_EQ(config.shaping[0].pattern, "c.example");
  ASSERT_TRUE(Apply("[delivery]\nenabled = true\n", config).ok());  // no [[shaping]]: kept
  EXPECT_EQ(config.shaping.size(), 1u);
  ASSERT_TRUE(Apply("shaping = []\n", config).ok());
  EXPECT_TRUE(config.shaping.empty());
}

TEST(ShapingConfigTest, Errors) {
  EXPECT_TRUE(IsError(Apply("[[shaping]]\nmax_connections = 5\n"),
                      {"sluice.toml:1: shaping: missing key 'pattern'"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = \"*\"\n\n[[shaping]]\nmax_connections = 5\n"),
                      {"sluice.toml:4: shaping: missing key 'pattern'"}));
  EXPECT_TRUE(IsError(Apply("[shaping]\npattern = \"*\"\n"),
                      {"sluice.toml:1: shaping: expected an array of tables, written [[shaping]], "
                       "got a table"}));
  EXPECT_TRUE(IsError(Apply("shaping = [1]\n"), {"shaping: expected an array of tables"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = \"*example.com\"\n"),
                      {"sluice.toml:2: shaping.pattern: '*example.com' is not a domain pattern"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = \"mail.*.com\"\n"), {"not a domain pattern"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = \"\"\n"), {"shaping.pattern", "not a domain"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = \"*.\"\n"), {"shaping.pattern"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = \"a..b\"\n"), {"shaping.pattern"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = 5\n"),
                      {"shaping.pattern: expected a string, got an integer"}));
  EXPECT_TRUE(IsError(
      Apply("[[shaping]]\npattern = \"example.com\"\n[[shaping]]\npattern = \"EXAMPLE.com\"\n"),
      {"sluice.toml:4: shaping.pattern: 'example.com' already has a rule at line 2"}));
  // The same pattern once for domains and once for MX hosts is two rules.
  EXPECT_TRUE(
      Apply("[[shaping]]\npattern = \"*\"\n[[shaping]]\npattern = \"*\"\nby_mx = true\n").ok());
  EXPECT_TRUE(
      IsError(Apply("[[shaping]]\npattern = \"*\"\nby_mx = true\n[[shaping]]\n"
                    "pattern = \"*\"\nby_mx = true\n"),
              {"sluice.toml:5: shaping.pattern: '*' (by_mx) already has a rule at line 2"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = \"*\"\nby_mx = 1\n"),
                      {"shaping.by_mx: expected a boolean"}));
  EXPECT_TRUE(IsError(Apply("[[shaping]]\npattern = \"*\"\nmax_conections = 1\n"),
                      {"sluice.toml:3: shaping.max_conections: unknown key in [[shaping]]; did "
                       "you mean 'max_connections'?"}));
}

TEST(ShapingConfigTest, Ranges) {
  auto rule = [](const std::string& line) {
    return Apply("[[shaping]]\npattern = \"*\"\n" + line + "\n");
  };
  EXPECT_TRUE(IsError(rule("max_connections = 0"),
                      {"sluice.toml:3: shaping.max_connections: must be between 1 and 100000, "
                       "got 0"}));
  EXPECT_TRUE(IsError(rule("max_connections = 100001"), {"shaping.max_connections"}));
  for (const char* key : {"max_messages_per_connection", "messages_per_second", "message_burst",
                          "messages_per_hour", "connections_per_second", "connection_burst"}) {
    EXPECT_TRUE(IsError(rule(std::string(key) + " = 1000001"),
                        {std::string("shaping.") + key + ": must be between 0 and 1000000"}));
    EXPECT_TRUE(IsError(rule(std::string(key) + " = -1"), {std::string("shaping.") + key}));
    EXPECT_TRUE(rule(std::string(key) + " = 1000000").ok()) << key;
    EXPECT_TRUE(rule(std::string(key) + " = 0").ok()) << key;
  }
  EXPECT_TRUE(IsError(rule("backoff_factor = 0"),
                      {"shaping.backoff_factor: must be between 0.001 and 1, got 0"}));
  EXPECT_TRUE(IsError(rule("backoff_factor = 0.0004"), {"shaping.backoff_factor"}));
  EXPECT_TRUE(IsError(rule("backoff_factor = 1.01"), {"shaping.backoff_factor", "got 1.01"}));
  EXPECT_TRUE(rule("backoff_factor = 1").ok());
  EXPECT_TRUE(rule("backoff_factor = 0.001").ok());
  EXPECT_TRUE(
      IsError(rule("backoff_min = 2"), {"shaping.backoff_min: must be between 0.001 and 1"}));
  EXPECT_TRUE(IsError(rule("backoff_duration = \"2d\""),
                      {"shaping.backoff_duration: must be between 0s and 1d, got 2d"}));
  EXPECT_TRUE(rule("backoff_duration = \"0s\"").ok());
  EXPECT_TRUE(IsError(rule("backoff_duration = 600"), {"expected a duration string"}));
  EXPECT_TRUE(IsError(rule("recovery_successes = 0"),
                      {"shaping.recovery_successes: must be between 1 and 1000000, got 0"}));
  EXPECT_TRUE(IsError(rule("backoff_on_421 = \"no\""), {"shaping.backoff_on_421", "boolean"}));
  EXPECT_TRUE(IsError(rule("backoff_patterns = \"rate\""),
                      {"shaping.backoff_patterns: expected an array of strings, got a string"}));
  EXPECT_TRUE(IsError(rule("backoff_patterns = [\"ok\", \"\"]"),
                      {"sluice.toml:3: shaping.backoff_patterns: a pattern must not be empty"}));
  EXPECT_TRUE(IsError(rule("backoff_patterns = [\"" + std::string(257, 'x') + "\"]"),
                      {"shaping.backoff_patterns: a pattern is longer than 256 characters"}));
  EXPECT_TRUE(rule("backoff_patterns = [\"" + std::string(256, 'x') + "\"]").ok());
  std::string many = "backoff_patterns = [";
  for (int i = 0; i < 101; ++i) many += "\"x\",";
  EXPECT_TRUE(
      IsError(rule(many + "]"), {"shaping.backoff_patterns: at most 100 entries, got 101"}));
}

TEST(ShapingConfigTest, FinalizeChecksDirectRules) {
  Config config;
  queue::ShapingRule rule;
  rule.pattern = "Example.com";
  rule.params.max_connections = 0;
  config.shaping = {rule};
  EXPECT_TRUE(IsError(config.Finalize(),
                      {"shaping.max_connections (rule 'Example.com'): must be between 1 and "
                       "100000, got 0"}));

  config.shaping[0].params.max_connections = 3;
  config.shaping[0].params.backoff_patterns = {""};
  EXPECT_TRUE(IsError(config.Finalize(), {"shaping.backoff_patterns (rule 'Example.com')"}));

  config.shaping[0].params.backoff_patterns = {"x"};
  config.shaping.push_back(config.shaping[0]);
  config.shaping[1].pattern = "example.COM";
  EXPECT_TRUE(IsError(config.Finalize(), {"shaping: shaping rule example.com appears twice"}));

  config.shaping.pop_back();
  config.shaping[0].pattern = "ex*ample.com";
  EXPECT_TRUE(IsError(config.Finalize(), {"shaping.pattern: 'ex*ample.com' is not a domain"}));

  config.shaping[0].pattern = "Example.com.";
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.shaping[0].pattern, "example.com");
}

// --- [[route]] ----------------------------------------------------------------

TEST(RouteConfigTest, NextHopForms) {
  struct Case {
    const char* next_hop;
    const char* host;
    uint16_t port;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"[127.0.0.2]:2526", "127.0.0.2", 2526},
           {"[127.0.0.2]", "127.0.0.2", 25},
           {"127.0.0.2", "127.0.0.2", 25},
           {"127.0.0.2:587", "127.0.0.2", 587},
           {"[::1]:2526", "::1", 2526},
           {"[2001:DB8::1]", "2001:db8::1", 25},
           {"relay.example.com", "relay.example.com", 25},
           {"Relay.Example.com.:2525", "relay.example.com", 2525},
           {"[relay.example.com]:26", "relay.example.com", 26},
           {"localhost:1", "localhost", 1},
           {"[127.0.0.1]:65535", "127.0.0.1", 65535},
       }) {
    auto route = ParseRoute("*", c.next_hop);
    ASSERT_TRUE(route.ok()) << c.next_hop << ": " << route.status();
    EXPECT_EQ(route->host, c.host) << c.next_hop;
    EXPECT_EQ(route->port, c.port) << c.next_hop;
    EXPECT_EQ(route->pattern, "*");
  }
}

TEST(RouteConfigTest, BadNextHops) {
  EXPECT_TRUE(IsError(ParseRoute("*", "").status(), {"must not be empty"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "::1").status(),
                      {"'::1' is not a next hop: an IPv6 address needs brackets"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "2001:db8::1:25").status(), {"needs brackets"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "[::1").status(), {"no ']' after '['"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "[::1]25").status(), {"expected ':PORT' after ']'"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "[::1]:").status(), {"bad port '' (1 to 65535)"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "host:0").status(), {"bad port '0'"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "host:65536").status(), {"bad port '65536'"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "host:smtp").status(), {"bad port 'smtp'"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "[]:25").status(), {"'' is neither an IP address nor"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "bad host:25").status(),
                      {"'bad host' is neither an IP address nor a host name"}));
  // All digits and dots: a mistyped address, not a host name.
  EXPECT_TRUE(IsError(ParseRoute("*", "999.1.1.1").status(),
                      {"'999.1.1.1' is neither an IP address nor a host name"}));
  EXPECT_TRUE(IsError(ParseRoute("*", "[10.0.0.1.]").status(), {"neither"}));
  EXPECT_TRUE(IsError(ParseRoute("*.", "host").status(), {"'*.' is not a domain pattern"}));
  EXPECT_TRUE(IsError(ParseRoute("x*", "host").status(), {"not a domain pattern"}));
}

TEST(RouteConfigTest, ParsedFromToml) {
  Config config;
  const absl::Status status = Apply(R"toml(
[[route]]
domain = "*"
next_hop = "[127.0.0.2]:2526"

[[route]]
domain = "Example.com"
next_hop = "relay.example.net"

[[route]]
domain = "*.example.com"
next_hop = "[::1]:2527"
)toml",
                                    config);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(config.routes.size(), 3u);
  EXPECT_EQ(config.routes[0].pattern, "*");
  EXPECT_EQ(config.routes[0].host, "127.0.0.2");
  EXPECT_EQ(config.routes[0].port, 2526u);
  EXPECT_EQ(config.routes[1].pattern, "example.com");
  EXPECT_EQ(config.routes[1].host, "relay.example.net");
  EXPECT_EQ(config.routes[1].port, 25u);
  EXPECT_EQ(config.routes[2].host, "::1");
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.routes.size(), 3u);
}

TEST(RouteConfigTest, TomlErrors) {
  EXPECT_TRUE(IsError(Apply("[[route]]\ndomain = \"*\"\nnext_hop = \"::1\"\n"),
                      {"sluice.toml:3: route.next_hop: '::1' is not a next hop: an IPv6 address "
                       "needs brackets"}));
  EXPECT_TRUE(IsError(Apply("[[route]]\ndomain = \"*\"\nnext_hop = \"[127.0.0.1]:99999\"\n"),
                      {"sluice.toml:3: route.next_hop", "bad port '99999'"}));
  EXPECT_TRUE(IsError(Apply("[[route]]\ndomain = \"*\"\nnext_hop = 25\n"),
                      {"route.next_hop: expected a string, got an integer"}));
  EXPECT_TRUE(IsError(Apply("[[route]]\ndomain = \"e*.com\"\nnext_hop = \"h\"\n"),
                      {"sluice.toml:2: route.domain: 'e*.com' is not a domain pattern"}));
  EXPECT_TRUE(IsError(Apply("\n[[route]]\nnext_hop = \"h\"\n"),
                      {"sluice.toml:2: route: missing key 'domain'"}));
  EXPECT_TRUE(IsError(Apply("[[route]]\ndomain = \"*\"\n"),
                      {"sluice.toml:1: route: missing key 'next_hop'"}));
  EXPECT_TRUE(IsError(Apply("[[route]]\ndomain = \"*\"\nnext_hop = \"a\"\nport = 25\n"),
                      {"sluice.toml:4: route.port: unknown key in [[route]]"}));
  EXPECT_TRUE(IsError(Apply("[[route]]\ndomain = \"*\"\nnexthop = \"a\"\n"),
                      {"route.nexthop: unknown key in [[route]]; did you mean 'next_hop'?"}));
  EXPECT_TRUE(IsError(Apply("[[route]]\ndomain = \"a.example\"\nnext_hop = \"h\"\n"
                            "[[route]]\ndomain = \"A.example.\"\nnext_hop = \"i\"\n"),
                      {"sluice.toml:5: route.domain: 'a.example' already has a route at line 2"}));
  EXPECT_TRUE(IsError(Apply("[route]\ndomain = \"*\"\n"),
                      {"route: expected an array of tables, written [[route]], got a table"}));
  // Inline tables in an array are an array of tables too.
  Config config;
  ASSERT_TRUE(Apply("route = [{ domain = \"*\", next_hop = \"h\" }]\n", config).ok());
  EXPECT_EQ(config.routes.size(), 1u);
}

TEST(RouteConfigTest, FinalizeChecksDirectRoutes) {
  Config config;
  config.routes.push_back(*ParseRoute("example.com", "[10.0.0.1]:25"));
  config.routes.push_back(*ParseRoute("EXAMPLE.com.", "h"));
  EXPECT_TRUE(IsError(config.Finalize(), {"route.domain: 'example.com' has two routes"}));

  config.routes.pop_back();
  config.routes[0].port = 0;
  EXPECT_TRUE(
      IsError(config.Finalize(), {"route.next_hop (domain 'example.com')", "bad port '0'"}));
  config.routes[0].port = 25;
  config.routes[0].host = "not a host";
  EXPECT_TRUE(IsError(config.Finalize(), {"route.next_hop", "'not a host' is neither"}));
  config.routes[0].host = "10.0.0.1";
  config.routes[0].pattern = "*x";
  EXPECT_TRUE(IsError(config.Finalize(), {"route.domain: '*x' is not a domain pattern"}));
  config.routes[0].pattern = "Example.COM";
  ASSERT_TRUE(config.Finalize().ok());
  EXPECT_EQ(config.routes[0].pattern, "example.com");
}

TEST(RouteConfigTest, FindRouteMostSpecificWins) {
  Config config;
  EXPECT_EQ(FindRoute(config, "example.com"), nullptr);
  // Listed least specific first: the order in the file must not matter.
  for (const auto& [pattern, hop] : std::initializer_list<std::pair<const char*, const char*>>{
           {"*", "any"},
           {"*.com", "com"},
           {"*.example.com", "below-example"},
           {"mail.example.com", "mail-exact"},
           {"example.com", "example-exact"},
       }) {
    config.routes.push_back(*ParseRoute(pattern, hop));
  }
  auto hop = [&](const char* domain) {
    const Route* r = FindRoute(config, domain);
    return r == nullptr ? std::string("(none)") : r->host;
  };
  EXPECT_EQ(hop("example.com"), "example-exact");
  EXPECT_EQ(hop("EXAMPLE.COM."), "example-exact");
  EXPECT_EQ(hop("mail.example.com"), "mail-exact");
  EXPECT_EQ(hop("Mail.Example.Com"), "mail-exact");
  EXPECT_EQ(hop("other.example.com"), "below-example");
  EXPECT_EQ(hop("a.b.example.com"), "below-example");
  EXPECT_EQ(hop("example.net"), "any");
  EXPECT_EQ(hop("other.com"), "com");
  EXPECT_EQ(hop("com"), "any");           // "*.com" is for names below com only
  EXPECT_EQ(hop("xexample.com"), "com");  // not below example.com
  EXPECT_EQ(hop(""), "any");

  config.routes.erase(config.routes.begin());  // no "*"
  EXPECT_EQ(hop("example.net"), "(none)");
  EXPECT_EQ(hop("x.com"), "com");
}

}  // namespace
}  // namespace sluice::config

namespace sluice::config {
namespace {

TEST(OutboundTlsConfigTest, DefaultPolicyAndPerDomainOverrides) {
  Config config;
  EXPECT_EQ(FindOutboundTls(config, "example.com"), OutboundTls::kOpportunistic);
  const absl::Status status = Apply(R"toml(
[delivery]
tls = "required"
tls_ca_file = "/etc/ssl/certs/ca-certificates.crt"

[delivery.tls_policy]
"*" = "opportunistic"
"*.bank.example" = "verify"
"Legacy.Example" = "disabled"
)toml",
                                    config);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config.outbound_tls, OutboundTls::kRequired);
  EXPECT_EQ(config.outbound_tls_ca_file, "/etc/ssl/certs/ca-certificates.crt");
  EXPECT_EQ(FindOutboundTls(config, "mail.bank.example"), OutboundTls::kVerify);
  EXPECT_EQ(FindOutboundTls(config, "bank.example"), OutboundTls::kOpportunistic);  // "*"
  EXPECT_EQ(FindOutboundTls(config, "legacy.example."), OutboundTls::kDisabled);
  EXPECT_EQ(FindOutboundTls(config, "other.test"), OutboundTls::kOpportunistic);
}

TEST(OutboundTlsConfigTest, Errors) {
  const absl::Status unknown = Apply("[delivery]\ntls = \"sometimes\"\n");
  EXPECT_FALSE(unknown.ok());
  EXPECT_NE(std::string(unknown.message()).find("unknown TLS policy 'sometimes'"),
            std::string::npos)
      << unknown;
  EXPECT_FALSE(Apply("[delivery]\ntls = true\n").ok());
  EXPECT_FALSE(Apply("[delivery.tls_policy]\n\"a.example\" = \"verify\"\n\"A.example\" = "
                     "\"disabled\"\n")
                   .ok());  // the same pattern twice
  EXPECT_FALSE(Apply("[delivery.tls_policy]\n\"ex*ample\" = \"verify\"\n").ok());
  EXPECT_EQ(ParseOutboundTls("verify").value(), OutboundTls::kVerify);
  EXPECT_STREQ(OutboundTlsName(OutboundTls::kDisabled), "disabled");
}

// Issue 10: server.max_hops and server.postmaster_address.
TEST(IntegrityConfigTest, MaxHopsAndPostmasterAddress) {
  Config config;
  EXPECT_EQ(config.max_hops, 50u);
  EXPECT_EQ(config.postmaster_address, "");
  ASSERT_TRUE(
      Apply("[server]\nmax_hops = 20\npostmaster_address = \"ops@corp.example\"\n", config).ok());
  EXPECT_EQ(config.max_hops, 20u);
  EXPECT_EQ(config.postmaster_address, "ops@corp.example");
  EXPECT_FALSE(Apply("[server]\nmax_hops = 0\n").ok());
  EXPECT_FALSE(Apply("[server]\nmax_hops = 1001\n").ok());
  for (const char* bad : {"ops", "@corp.example", "ops@", "o ps@corp.example", "ops@corp_x",
                          "a..b@corp.example", "ops@corp.example\\n"}) {
    EXPECT_FALSE(Apply(absl::StrCat("[server]\npostmaster_address = \"", bad, "\"\n")).ok()) << bad;
  }
  EXPECT_TRUE(Apply("[server]\npostmaster_address = \"\"\n").ok());
}

}  // namespace
}  // namespace sluice::config
