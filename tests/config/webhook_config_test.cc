// [[webhook]] entries: defaults, every key, and the refusals with the key
// and line they name.
#include <gtest/gtest.h>

#include <string>

#include "config_test_util.h"
#include "sluice/config/config.h"
#include "sluice/config/reload.h"

namespace sluice::config {
namespace {

using test_util::Apply;
using test_util::IsError;

constexpr char kMinimal[] = "[[webhook]]\nname = \"events\"\nurl = \"http://127.0.0.1:9000/in\"\n";

TEST(WebhookConfigTest, MinimalWithDefaults) {
  Config c;
  ASSERT_TRUE(Apply(kMinimal, c).ok());
  ASSERT_TRUE(c.Finalize().ok());
  ASSERT_EQ(c.webhooks.size(), 1u);
  const WebhookConfig& w = c.webhooks[0];
  EXPECT_EQ(w.name, "events");
  EXPECT_EQ(w.url, "http://127.0.0.1:9000/in");
  EXPECT_TRUE(w.types.empty());
  EXPECT_EQ(w.batch_max_records, 1000u);
  EXPECT_EQ(w.batch_max_bytes, 1u << 20);
  EXPECT_EQ(w.batch_max_wait_ms, 1000u);
  EXPECT_EQ(w.timeout_s, 30u);
  EXPECT_EQ(w.backoff_min_ms, 1000u);
  EXPECT_EQ(w.backoff_max_ms, 300000u);
  EXPECT_EQ(w.authorization, "");
}

TEST(WebhookConfigTest, EveryKey) {
  Config c;
  ASSERT_TRUE(Apply("[[webhook]]\nname = \"a\"\nurl = \"http://h.example:81/x\"\n"
                    "types = [\"Delivery\", \"Bounce\"]\nbatch_max_records = 5\n"
                    "batch_max_bytes = 2048\nbatch_max_wait_ms = 0\ntimeout_s = 3\n"
                    "backoff_min_ms = 10\nbackoff_max_ms = 20\n"
                    "authorization = \"Bearer abc\"\n"
                    "[[webhook]]\nname = \"b-2\"\nurl = \"https://[::1]/\"\n"
                    "tls_ca_file = \"/etc/ssl/ca.pem\"\n",
                    c)
                  .ok());
  ASSERT_TRUE(c.Finalize().ok());
  ASSERT_EQ(c.webhooks.size(), 2u);
  const WebhookConfig& w = c.webhooks[0];
  EXPECT_EQ(w.types, (std::vector<std::string>{"Delivery", "Bounce"}));
  EXPECT_EQ(w.batch_max_records, 5u);
  EXPECT_EQ(w.batch_max_bytes, 2048u);
  EXPECT_EQ(w.batch_max_wait_ms, 0u);
  EXPECT_EQ(w.timeout_s, 3u);
  EXPECT_EQ(w.backoff_min_ms, 10u);
  EXPECT_EQ(w.backoff_max_ms, 20u);
  EXPECT_EQ(w.authorization, "Bearer abc");
  EXPECT_EQ(c.webhooks[1].name, "b-2");
  EXPECT_EQ(c.webhooks[1].tls_ca_file, "/etc/ssl/ca.pem");
}

TEST(WebhookConfigTest, Refusals) {
  const std::string url = "url = \"http://127.0.0.1/\"\n";
  EXPECT_TRUE(IsError(Apply("[[webhook]]\n" + url), {"sluice.toml:1", "webhook.name", "missing"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\n"), {"webhook.url", "missing"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\nurl = \"ftp://h/\"\n"),
                      {"sluice.toml:3", "webhook.url", "not http or https"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\n" + url + "tls_ca_file = \"/ca.pem\"\n"),
                      {"webhook.tls_ca_file", "for https://"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\nurl = \"http://h:99999/\"\n"),
                      {"webhook.url", "port"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x y\"\n" + url), {"webhook.name", "letters"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\n" + url + "types = [\"Deliveries\"]\n"),
                      {"webhook.types", "unknown record type 'Deliveries'"}));
  EXPECT_TRUE(
      IsError(Apply("[[webhook]]\nname = \"x\"\n" + url + "types = [\"Bounce\", \"Bounce\"]\n"),
              {"webhook.types", "twice"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\n" + url + "batch_max_records = 0\n"),
                      {"sluice.toml:4", "webhook.batch_max_records", "between 1 and 100000"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\n" + url + "timeout_s = \"5\"\n"),
                      {"webhook.timeout_s", "integer"}));
  EXPECT_TRUE(IsError(
      Apply("[[webhook]]\nname = \"x\"\n" + url + "backoff_min_ms = 5000\nbackoff_max_ms = 100\n"),
      {"webhook.backoff_max_ms", "at least backoff_min_ms"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\n" + url + "colour = 1\n"),
                      {"webhook.colour", "unknown key"}));
  EXPECT_TRUE(IsError(Apply("[[webhook]]\nname = \"x\"\n" + url + "authorization = \"a\\nb\"\n"),
                      {"webhook.authorization", "control character"}));
  EXPECT_TRUE(IsError(Apply(std::string(kMinimal) + kMinimal), {"'events' is used twice"}));
  EXPECT_TRUE(IsError(Apply("[webhook]\nname = \"x\"\n"), {"array of tables"}));
}

TEST(WebhookConfigTest, NeedsTheAccountingLog) {
  Config c;
  ASSERT_TRUE(Apply(std::string("[log]\nfile = \"\"\n") + kMinimal, c).ok());
  EXPECT_TRUE(IsError(c.Finalize(), {"webhook", "log.file"}));
}

TEST(WebhookConfigTest, ChangesNeedARestart) {
  Config a, b;
  ASSERT_TRUE(Apply(kMinimal, a).ok());
  ASSERT_TRUE(Apply(kMinimal, b).ok());
  ASSERT_TRUE(a.Finalize().ok());
  ASSERT_TRUE(b.Finalize().ok());
  EXPECT_TRUE(DiffConfig(a, b).restart.empty());
  b.webhooks[0].batch_max_records = 7;
  const ConfigDiff diff = DiffConfig(a, b);
  ASSERT_EQ(diff.restart.size(), 1u);
  EXPECT_EQ(diff.restart[0], "webhook");
}

}  // namespace
}  // namespace sluice::config
