// RenderMetrics: the text exposition format's rules (checked by a small
// reader of the format below, independent of the renderer) and the values
// of known snapshots. tests/integration/test_metrics.py runs promtool on a
// live relay's output as well.
#include "sluice/metrics/render.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "gtest/gtest.h"
#include "sluice/base/strings.h"

namespace sluice::metrics {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Reads the exposition text, checking its structure as it goes: HELP then
// TYPE once per family, before any of its samples; samples of a family
// together; label values unescaped. Fails the test on any violation.
struct Exposition {
  std::map<std::string, std::string> types;
  std::vector<Sample> samples;

  static std::string FamilyOf(const std::string& name,
                              const std::map<std::string, std::string>& t) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
        const std::string base = name.substr(0, name.size() - s.size());
        auto it = t.find(base);
        if (it != t.end() && it->second == "histogram") return base;
      }
    }
    return name;
  }

  explicit Exposition(const std::string& text) { Parse(text); }

  // Lines without the final newline; empty lines skipped.
  static std::vector<std::string_view> Lines(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
      const size_t nl = text.find('\n');
      const std::string_view line = text.substr(0, nl);
      if (!line.empty()) out.push_back(line);
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    }
    return out;
  }

  void Parse(const std::string& text) {
    std::set<std::string> closed;  // families whose samples have ended
    std::string current, helped;
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    for (std::string_view line : Lines(text)) {
      if (line.starts_with("# HELP ")) {
        std::string_view rest = line.substr(7);
        helped = std::string(rest.substr(0, rest.find(' ')));
        EXPECT_FALSE(types.contains(helped)) << "HELP twice: " << helped;
        continue;
      }
      if (line.starts_with("# TYPE ")) {
        const std::string_view rest = line.substr(7);
        const size_t space = rest.find(' ');
        ASSERT_NE(space, std::string_view::npos) << line;
        const std::string w[2] = {std::string(rest.substr(0, space)),
                                  std::string(rest.substr(space + 1))};
        EXPECT_EQ(w[0], helped) << "TYPE without its HELP first: " << line;
        EXPECT_TRUE(types.emplace(w[0], w[1]).second) << "TYPE twice: " << w[0];
        EXPECT_TRUE(w[1] == "counter" || w[1] == "gauge" || w[1] == "histogram") << line;
        if (!current.empty()) closed.insert(current);
        current = w[0];
        continue;
      }
      Sample s;
      size_t i = 0;
      while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
      s.name = std::string(line.substr(0, i));
      if (i < line.size() && line[i] == '{') {
        ++i;
        while (line[i] != '}') {
          const size_t eq = line.find('=', i);
          const std::string key(line.substr(i, eq - i));
          ASSERT_EQ(line[eq + 1], '"') << line;
          std::string value;
          size_t j = eq + 2;
          for (; line[j] != '"'; ++j) {
            if (line[j] == '\\') {
              ++j;
              ASSERT_TRUE(line[j] == '\\' || line[j] == '"' || line[j] == 'n') << line;
              value += line[j] == 'n' ? '\n' : line[j];
            } else {
              value += line[j];
            }
          }
          EXPECT_TRUE(s.labels.emplace(key, value).second) << "label twice: " << line;
          i = j + 1;
          if (line[i] == ',') ++i;
        }
        ++i;
      }
      ASSERT_EQ(line[i], ' ') << line;
      const std::string_view v = line.substr(i + 1);
      if (v == "+Inf") {
        s.value = 1e308;
      } else {
        ASSERT_TRUE(absl::SimpleAtod(base::Av(v), &s.value)) << line;
      }
      const std::string family = FamilyOf(s.name, types);
      EXPECT_EQ(family, current) << "sample outside its family: " << line;
      EXPECT_FALSE(closed.contains(family)) << line;
      if (types[family] == "counter") {
        EXPECT_TRUE(family.ends_with("_total")) << family;
      }
      samples.push_back(std::move(s));
    }
  }

  // The value of the one sample with these labels; fails if not exactly one.
  double Get(const std::string& name, const std::map<std::string, std::string>& labels) const {
    const Sample* found = nullptr;
    for (const Sample& s : samples) {
      if (s.name == name && s.labels == labels) {
        EXPECT_EQ(found, nullptr) << "twice: " << name;
        found = &s;
      }
    }
    EXPECT_NE(found, nullptr) << "missing: " << name;
    return found != nullptr ? found->value : -1;
  }
  size_t Count(const std::string& name) const {
    size_t n = 0;
    for (const Sample& s : samples) n += s.name == name;
    return n;
  }
};

ShardSnapshot Shard(int index, bool delivery) {
  ShardSnapshot s;
  s.shard = index;
  s.delivery = delivery;
  s.taken_at_us = 1'000'000'000;
  s.connections_accepted = 10 + index;
  s.connections_refused = 2;
  s.messages_accepted = 7;
  s.delivered = 100 + index;
  s.bounced = 3;
  s.deferred = 4;
  s.expired = 1;
  s.spool_free_bytes = 5'000'000'000;
  s.tls_out_failures = 6;
  return s;
}

TEST(Render, EscapesLabelValues) {
  std::string out;
  AppendLabelValue(out, "a\\b\"c\nd.test");
  EXPECT_EQ(out, "a\\\\b\\\"c\\nd.test");
}

TEST(Render, MicrosAsExactSeconds) {
  auto f = [](uint64_t us) {
    std::string out;
    AppendMicrosAsSeconds(out, us);
    return out;
  };
  EXPECT_EQ(f(0), "0");
  EXPECT_EQ(f(1), "0.000001");
  EXPECT_EQ(f(1500), "0.0015");
  EXPECT_EQ(f(250'000), "0.25");
  EXPECT_EQ(f(2'000'000), "2");
  EXPECT_EQ(f(3'600'000'001), "3600.000001");
  EXPECT_EQ(f(432'000'000'000), "432000");
}

TEST(Render, CountersByShardAndOutcome) {
  ShardSnapshot a = Shard(0, true), b = Shard(1, true);
  const ShardSnapshot* both[] = {&a, &b};
  const Exposition e(RenderMetrics(both, a.taken_at_us + 1'500'000));
  EXPECT_EQ(e.Get("sluice_recipients_total", {{"shard", "1"}, {"outcome", "delivered"}}), 101);
  EXPECT_EQ(e.Get("sluice_recipients_total", {{"shard", "0"}, {"outcome", "bounced"}}), 3);
  EXPECT_EQ(e.Get("sluice_recipients_total", {{"shard", "0"}, {"outcome", "expired"}}), 1);
  EXPECT_EQ(e.Get("sluice_inbound_connections_total", {{"shard", "1"}, {"outcome", "accepted"}}),
            11);
  EXPECT_EQ(e.Get("sluice_tls_handshakes_total",
                  {{"shard", "0"}, {"direction", "outbound"}, {"outcome", "failed"}}),
            6);
  EXPECT_EQ(e.Get("sluice_spool_free_bytes", {{"shard", "0"}}), 5e9);
  EXPECT_EQ(e.Get("sluice_metrics_snapshot_age_seconds", {{"shard", "1"}}), 1.5);
  EXPECT_EQ(e.types.at("sluice_recipients_total"), "counter");
  EXPECT_EQ(e.types.at("sluice_queue_recipients"), "gauge");
  EXPECT_EQ(e.types.at("sluice_delivery_duration_seconds"), "histogram");
}

TEST(Render, NoDeliveryShardHasNoEngineSamples) {
  ShardSnapshot a = Shard(0, false);
  const ShardSnapshot* one[] = {&a, nullptr};  // shard 1 never published
  const Exposition e(RenderMetrics(one, a.taken_at_us));
  EXPECT_EQ(e.Count("sluice_recipients_total"), 0u);
  EXPECT_EQ(e.Count("sluice_queue_recipients"), 0u);
  EXPECT_EQ(e.Count("sluice_delivery_duration_seconds_count"), 0u);
  EXPECT_EQ(e.Get("sluice_messages_received_total", {{"shard", "0"}, {"outcome", "accepted"}}), 7);
  EXPECT_EQ(e.Get("sluice_spool_commit_duration_seconds_count", {{"shard", "0"}}), 0);
  EXPECT_TRUE(e.types.contains("sluice_recipients_total"));  // the family is still described
}

TEST(Render, DestinationsWithOtherAndAges) {
  ShardSnapshot a = Shard(0, true);
  const uint64_t now = a.taken_at_us;
  a.top.push_back(DestinationRow{.domain = "big.test",
                                 .recipients = 900,
                                 .messages = 300,
                                 .deferred = 12,
                                 .oldest_us = now - 90'000'000,
                                 .connections = 4,
                                 .limit_permille = 500});
  a.top.push_back(DestinationRow{
      .domain = "we\"ird\\.test", .recipients = 1, .messages = 1, .suspended = true});
  a.other = DestinationRow{.domain = "other",
                           .recipients = 50,
                           .messages = 40,
                           .deferred = 2,
                           .oldest_us = now - 2'500'000,
                           .connections = 3};
  const ShardSnapshot* one[] = {&a};
  const Exposition e(RenderMetrics(one, now));
  EXPECT_EQ(e.Get("sluice_queue_recipients", {{"shard", "0"}, {"domain", "big.test"}}), 900);
  EXPECT_EQ(e.Get("sluice_queue_recipients", {{"shard", "0"}, {"domain", "other"}}), 50);
  EXPECT_EQ(e.Get("sluice_queue_messages", {{"shard", "0"}, {"domain", "other"}}), 40);
  EXPECT_EQ(e.Get("sluice_queue_deferred_messages", {{"shard", "0"}, {"domain", "big.test"}}), 12);
  EXPECT_EQ(e.Get("sluice_queue_oldest_age_seconds", {{"shard", "0"}, {"domain", "big.test"}}), 90);
  EXPECT_EQ(e.Get("sluice_queue_oldest_age_seconds", {{"shard", "0"}, {"domain", "other"}}), 2.5);
  EXPECT_EQ(
      e.Get("sluice_queue_oldest_age_seconds", {{"shard", "0"}, {"domain", "we\"ird\\.test"}}), 0);
  EXPECT_EQ(e.Get("sluice_destination_limit_ratio", {{"shard", "0"}, {"domain", "big.test"}}), 0.5);
  EXPECT_EQ(e.Get("sluice_destination_suspended", {{"shard", "0"}, {"domain", "we\"ird\\.test"}}),
            1);
  EXPECT_EQ(e.Get("sluice_destination_connections", {{"shard", "0"}, {"domain", "other"}}), 3);
  // "other" has no single shaping state.
  EXPECT_EQ(e.Count("sluice_destination_limit_ratio"), 2u);
}

TEST(Render, HistogramsAreCumulativeWithInfEqualCount) {
  ShardSnapshot a = Shard(0, true);
  for (uint64_t v : {50, 300, 300, 7'000, 9'000'000}) a.commit_latency.Record(v);
  for (uint64_t v : {uint64_t{20'000}, uint64_t{600'000'000'000}}) a.delivery_latency.Record(v);
  const ShardSnapshot* one[] = {&a};
  const Exposition e(RenderMetrics(one, a.taken_at_us));
  const std::string b = "sluice_spool_commit_duration_seconds_bucket";
  EXPECT_EQ(e.Get(b, {{"shard", "0"}, {"le", "0.0001"}}), 1);
  EXPECT_EQ(e.Get(b, {{"shard", "0"}, {"le", "0.0005"}}), 3);
  EXPECT_EQ(e.Get(b, {{"shard", "0"}, {"le", "0.01"}}), 4);
  EXPECT_EQ(e.Get(b, {{"shard", "0"}, {"le", "2.5"}}), 4);
  EXPECT_EQ(e.Get(b, {{"shard", "0"}, {"le", "+Inf"}}), 5);
  EXPECT_EQ(e.Get("sluice_spool_commit_duration_seconds_count", {{"shard", "0"}}), 5);
  EXPECT_DOUBLE_EQ(e.Get("sluice_spool_commit_duration_seconds_sum", {{"shard", "0"}}), 9.00765);
  EXPECT_EQ(e.Get("sluice_delivery_duration_seconds_bucket", {{"shard", "0"}, {"le", "432000"}}),
            1);
  EXPECT_EQ(e.Get("sluice_delivery_duration_seconds_bucket", {{"shard", "0"}, {"le", "+Inf"}}), 2);
  // Every histogram: buckets never decrease, and +Inf is the count.
  std::map<std::string, double> last;
  for (const Sample& s : e.samples) {
    if (!s.name.ends_with("_bucket")) continue;
    const std::string key = s.name + s.labels.at("shard");
    EXPECT_GE(s.value, last[key]) << s.name;
    last[key] = s.value;
    if (s.labels.at("le") == "+Inf") {
      const std::string base = s.name.substr(0, s.name.size() - 7);
      EXPECT_EQ(s.value, e.Get(base + "_count", {{"shard", s.labels.at("shard")}}));
    }
  }
}

}  // namespace
}  // namespace sluice::metrics
