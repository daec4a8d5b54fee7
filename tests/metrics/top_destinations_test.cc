// SelectTopDestinations against a brute-force full sort: the same names in
// the same order, and "other" holds exactly the rest.
#include "sluice/metrics/top_destinations.h"

#include <algorithm>
#include <deque>
#include <random>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace sluice::metrics {
namespace {

struct World {
  std::deque<std::string> names;  // stable addresses for the samples
  std::vector<DestinationSample> samples;
  DestinationSample& Add(std::string name, uint64_t recipients, uint64_t deferred = 0,
                         uint64_t oldest = 0) {
    names.push_back(std::move(name));
    DestinationSample& s = samples.emplace_back();
    s.domain = &names.back();
    s.recipients = recipients;
    s.messages = recipients;
    s.deferred = deferred;
    s.oldest_us = oldest;
    s.connections = 1;
    return s;
  }
};

std::vector<std::string> Names(const std::vector<DestinationRow>& rows) {
  std::vector<std::string> out;
  for (const DestinationRow& r : rows) out.push_back(r.domain);
  return out;
}

TEST(TopDestinations, DeepestThenMostDeferredThenOther) {
  World w;
  w.Add("a.test", 5, 0, 500);
  w.Add("b.test", 50, 1, 400);
  w.Add("c.test", 20, 0, 300);
  w.Add("d.test", 1, 9, 200);
  w.Add("e.test", 2, 3, 100);
  w.Add("f.test", 0, 0, 0);  // nothing queued: only in "other"'s connections
  std::vector<DestinationRow> top;
  DestinationRow other;
  SelectTopDestinations(w.samples, 2, top, other);
  EXPECT_EQ(Names(top), (std::vector<std::string>{"b.test", "c.test", "d.test", "e.test"}));
  EXPECT_EQ(other.domain, "other");
  EXPECT_EQ(other.recipients, 5u);  // a.test
  EXPECT_EQ(other.messages, 5u);
  EXPECT_EQ(other.deferred, 0u);
  EXPECT_EQ(other.connections, 2u);  // a.test, f.test
  EXPECT_EQ(other.oldest_us, 500u);  // f.test has none
  EXPECT_EQ(top[0].oldest_us, 400u);
  EXPECT_EQ(top[2].deferred, 9u);
}

TEST(TopDestinations, FewerThanKAndEmpty) {
  World w;
  std::vector<DestinationRow> top = {DestinationRow{.domain = "stale"}};
  DestinationRow other;
  SelectTopDestinations(w.samples, 20, top, other);
  EXPECT_TRUE(top.empty());
  EXPECT_EQ(other.recipients, 0u);
  EXPECT_EQ(other.oldest_us, 0u);
  w.Add("only.test", 3, 3, 7);
  SelectTopDestinations(w.samples, 20, top, other);
  EXPECT_EQ(Names(top), std::vector<std::string>{"only.test"});  // named once
  EXPECT_EQ(other.recipients, 0u);
}

TEST(TopDestinations, TiesBrokenByName) {
  World w;
  for (const char* n : {"z.test", "m.test", "a.test", "q.test"}) w.Add(n, 7);
  std::vector<DestinationRow> top;
  DestinationRow other;
  SelectTopDestinations(w.samples, 2, top, other);
  EXPECT_EQ(Names(top), (std::vector<std::string>{"a.test", "m.test"}));
  EXPECT_EQ(other.recipients, 14u);
}

TEST(TopDestinations, MatchesFullSortOnRandomQueues) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 50; ++round) {
    World w;
    const size_t n = rng() % 3000;
    uint64_t total = 0, total_deferred = 0, oldest = 0;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t r = rng() % 4 == 0 ? 0 : rng() % 200;
      const uint64_t d = r == 0 ? 0 : rng() % (r + 1);
      const uint64_t o = r == 0 ? 0 : 1 + rng() % 1'000'000;
      w.Add(absl::StrCat("d", rng() % 100000, "-", i, ".test"), r, d, o);
      total += r;
      total_deferred += d;
      if (o != 0 && (oldest == 0 || o < oldest)) oldest = o;
    }
    std::vector<DestinationSample> sorted = w.samples;
    std::vector<DestinationRow> top;
    DestinationRow other;
    const size_t k = 1 + rng() % 30;
    SelectTopDestinations(w.samples, k, top, other);

    // Brute force: the k deepest with recipients, then the k most
    // deferred of the rest with deferrals.
    auto deeper = [](const DestinationSample& a, const DestinationSample& b) {
      return a.recipients != b.recipients ? a.recipients > b.recipients : *a.domain < *b.domain;
    };
    std::sort(sorted.begin(), sorted.end(), deeper);
    std::vector<std::string> expect;
    std::vector<DestinationSample> rest;
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i < k && sorted[i].recipients > 0) {
        expect.push_back(*sorted[i].domain);
      } else {
        rest.push_back(sorted[i]);
      }
    }
    std::sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) {
      return a.deferred != b.deferred ? a.deferred > b.deferred : *a.domain < *b.domain;
    });
    for (size_t i = 0; i < rest.size() && i < k && rest[i].deferred > 0; ++i) {
      expect.push_back(*rest[i].domain);
    }
    ASSERT_EQ(Names(top), expect) << "round " << round;
    uint64_t named = 0, named_deferred = 0, oldest_seen = other.oldest_us;
    for (const DestinationRow& r : top) {
      named += r.recipients;
      named_deferred += r.deferred;
      if (r.oldest_us != 0 && (oldest_seen == 0 || r.oldest_us < oldest_seen)) {
        oldest_seen = r.oldest_us;
      }
    }
    EXPECT_EQ(named + other.recipients, total);
    EXPECT_EQ(named_deferred + other.deferred, total_deferred);
    EXPECT_EQ(oldest_seen, oldest);
    EXPECT_LE(top.size(), 2 * k);
  }
}

}  // namespace
}  // namespace sluice::metrics
