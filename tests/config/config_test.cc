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
#include "gtest/gtest.h"
#include "sluice/base/cidr.h"

namespace sluice::config {
namespace {

// True if `status` is InvalidArgument and its message holds every one of `parts`.
::testing::AssertionResult IsError(const absl::Status& status,
                                   std::initializer_list<std::string> parts) {
  if (status.code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "want INVALID_ARGUMENT, got " << status;
  }
  const std::string message(status.message());
  for (const std::string& part : parts) {
    if (message.find(part) == std::string::npos) {
      return ::testing::AssertionFailure() << "'" << part << "' missing from: " << message;
    }
  }
  return ::testing::AssertionSuccess();
}

absl::Status Apply(const std::string& toml, Config& config) {
  return ApplyToml(toml, "sluice.toml", config);
}

absl::Status Apply(const std::string& toml) {
  Config config;
  return Apply(toml, config);
}

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
  EXPECT_EQ(config.spool_dir, "/var/spool/sluice");
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
