// The Resolver against a real dnsmasq on 127.0.0.1 at a free high port, and
// against a UDP socket that never answers. Each test drives its own io::Ring
// loop, bounded in time.
#include "sluice/dns/resolver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/base/clock.h"
#include "sluice/io/ring.h"

extern char** environ;

namespace sluice::dns {
namespace {

std::string DnsmasqPath() {
  const char* env = std::getenv("DNSMASQ");
  return env != nullptr ? env : "/usr/sbin/dnsmasq";
}

// A port nobody holds right now, UDP and TCP.
int FreePort() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(u, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(u, reinterpret_cast<sockaddr*>(&a), &len);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    const bool tcp_ok = bind(t, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(t);
    close(u);
    if (tcp_ok && ntohs(a.sin_port) > 10000) return ntohs(a.sin_port);
  }
  return -1;
}

bool UdpPortTaken(int port) {
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool taken = bind(u, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0;
  close(u);
  return taken;
}

class Dnsmasq {
 public:
  // Starts dnsmasq with the test zone plus `extra` arguments; false if it
  // could not be started.
  bool Start(const std::vector<std::string>& extra) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = FreePort();
      std::vector<std::string> args = {
          DnsmasqPath(),
          "--no-daemon",
          "--no-resolv",
          "--no-hosts",
          "--conf-file=/dev/null",
          "--port=" + std::to_string(port_),
          "--listen-address=127.0.0.1",
          "--bind-interfaces",
          "--local=/test/",
          "--log-facility=/dev/null",
          // Several MXs, equal and different preferences.
          "--mx-host=multi.test,mx1.multi.test,10",
          "--mx-host=multi.test,mx2.multi.test,10",
          "--mx-host=multi.test,mx3.multi.test,10",
          "--mx-host=multi.test,mx4.multi.test,20",
          "--mx-host=multi.test,mx5.multi.test,30",
          "--host-record=mx1.multi.test,127.0.0.2",
          "--host-record=mx2.multi.test,127.0.0.3",
          "--host-record=mx3.multi.test,127.0.0.4",
          "--host-record=mx4.multi.test,127.0.0.5,::5",
          "--host-record=mx5.multi.test,::6",
          // A only: implicit MX.
          "--host-record=implicit.test,127.0.0.9",
          // Null MX (RFC 7505).
          "--mx-host=nullmx.test,.,0",
          // MX whose only host does not exist.
          "--mx-host=noaddr.test,gone.test,10",
          // MX whose host has no address but another has one.
          "--mx-host=partial.test,gone.test,5",
          "--mx-host=partial.test,mx1.multi.test,10",
      };
      // An MX answer too big for 512 bytes of UDP: c-ares retries over TCP.
      for (int i = 0; i < 40; ++i) {
        const std::string host =
            "a-rather-long-mail-exchanger-name-" + std::to_string(i) + ".big.test";
        args.push_back("--mx-host=big.test," + host + "," + std::to_string(10 + i % 4));
        args.push_back("--host-record=" + host + ",127.0.1." + std::to_string(i + 1));
      }
      for (const std::string& e : extra) {
        // --no-daemon also serves TCP in the main process, which then waits
        // on an idle TCP connection (c-ares keeps it open) and stops answering
        // UDP; --keep-in-foreground forks for TCP as a real server does.
        if (e == "--keep-in-foreground") args[1] = "--pid-file";
        args.push_back(e);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
      const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&actions);
      if (rc != 0) return false;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
      while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;  // died (port raced away?): try another port
        }
        if (UdpPortTaken(port_)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      Stop();
    }
    return false;
  }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  ~Dnsmasq() { Stop(); }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = -1;
};

class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = io::Ring::Create(64);
    ASSERT_TRUE(ring.ok()) << ring.status();
    ring_ = std::move(*ring);
  }

  void TearDown() override {
    // Poll records still in the kernel free themselves when their
    // cancellations complete: give the ring a few turns before it goes.
    resolver_.reset();
    for (int i = 0; i < 3; ++i) ring_->RunOnce(10);
  }

  void StartDns(std::vector<std::string> extra = {"--local-ttl=60"}) {
    ASSERT_TRUE(dnsmasq_.Start(extra)) << "could not start " << DnsmasqPath();
    config_.servers = {dnsmasq_.server()};
    MakeResolver();
  }

  void MakeResolver() {
    resolver_.reset();
    auto r = Resolver::Create(*ring_, config_);
    ASSERT_TRUE(r.ok()) << r.status();
    resolver_ = std::move(*r);
    resolver_->SetRandomForTest([this] { return rng_(); });
  }

  // Runs the loop until `done` or `max_ms`.
  bool RunUntil(const std::function<bool()>& done, int max_ms = 5000) {
    const uint64_t deadline = base::MonotonicMillis() + static_cast<uint64_t>(max_ms);
    while (!done()) {
      if (base::MonotonicMillis() > deadline) return false;
      ring_->RunOnce(resolver_ != nullptr ? resolver_->NextTickMs(50) : 50);
      if (resolver_ != nullptr) resolver_->Tick(base::MonotonicMillis());
    }
    return true;
  }

  MxResult Resolve(const std::string& domain, int max_ms = 5000) {
    bool done = false;
    MxResult out;
    resolver_->ResolveMx(domain, [&](const MxResult& r) {
      out = r;
      done = true;
    });
    EXPECT_TRUE(RunUntil([&] { return done; }, max_ms)) << "no answer for " << domain;
    return out;
  }

  std::unique_ptr<io::Ring> ring_;
  Dnsmasq dnsmasq_;
  ResolverConfig config_;
  std::unique_ptr<Resolver> resolver_;
  std::mt19937_64 rng_{42};
};

std::vector<std::string> Names(const MxResult& r) {
  std::vector<std::string> out;
  for (const MxHost& h : r.hosts) out.push_back(h.name);
  return out;
}

TEST_F(ResolverTest, SeveralMxSortedByPreferenceAndShuffledWithin) {
  StartDns();
  std::map<std::string, int> first_seen;
  std::set<std::vector<std::string>> orders;
  for (int run = 0; run < 60; ++run) {
    resolver_->ClearCache();
    MxResult r = Resolve("Multi.Test.");
    ASSERT_TRUE(r.ok()) << r.text;
    ASSERT_EQ(r.hosts.size(), 5u);
    std::set<std::string> top({r.hosts[0].name, r.hosts[1].name, r.hosts[2].name});
    EXPECT_EQ(top, (std::set<std::string>{"mx1.multi.test", "mx2.multi.test", "mx3.multi.test"}));
    EXPECT_EQ(r.hosts[0].preference, 10);
    EXPECT_EQ(r.hosts[3].name, "mx4.multi.test");
    EXPECT_EQ(r.hosts[3].preference, 20);
    EXPECT_EQ(r.hosts[4].name, "mx5.multi.test");
    EXPECT_FALSE(r.implicit_mx);
    EXPECT_GT(r.ttl_s, 0u);
    EXPECT_LE(r.ttl_s, 60u);
    ++first_seen[r.hosts[0].name];
    orders.insert(Names(r));
  }
  // Every equal-preference host leads sometimes; all 6 orders of the three
  // appear over 60 seeded runs.
  EXPECT_EQ(first_seen.size(), 3u);
  for (auto& [name, count] : first_seen) EXPECT_GE(count, 5) << name;
  EXPECT_EQ(orders.size(), 6u);
}

TEST_F(ResolverTest, SameSeedSameOrders) {
  StartDns();
  std::vector<std::vector<std::string>> a, b;
  for (auto* out : {&a, &b}) {
    rng_.seed(7);
    for (int run = 0; run < 10; ++run) {
      resolver_->ClearCache();
      out->push_back(Names(Resolve("multi.test")));
    }
  }
  EXPECT_EQ(a, b);
}

TEST_F(ResolverTest, AddressesAndFamilyPreference) {
  StartDns();
  MxResult r = Resolve("multi.test");
  ASSERT_TRUE(r.ok());
  for (const MxHost& h : r.hosts) {
    if (h.name == "mx1.multi.test") {
      ASSERT_EQ(h.addresses.size(), 1u);
      EXPECT_EQ(h.addresses[0].ToString(), "127.0.0.2");
    }
    if (h.name == "mx4.multi.test") {
      ASSERT_EQ(h.addresses.size(), 2u);
      EXPECT_EQ(h.addresses[0].ToString(), "127.0.0.5");  // IPv4 preferred by default
      EXPECT_EQ(h.addresses[1].ToString(), "::5");
    }
    if (h.name == "mx5.multi.test") {
      ASSERT_EQ(h.addresses.size(), 1u);
      EXPECT_EQ(h.addresses[0].ToString(), "::6");
    }
  }
  config_.addresses = AddressPreference::kPreferIpv6;
  MakeResolver();
  r = Resolve("multi.test");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.hosts[3].addresses[0].ToString(), "::5");
  config_.addresses = AddressPreference::kIpv4Only;
  MakeResolver();
  r = Resolve("multi.test");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.hosts.size(), 4u);  // mx5 has only IPv6
  EXPECT_EQ(r.hosts[3].addresses.size(), 1u);
  EXPECT_EQ(r.hosts[3].addresses[0].ToString(), "127.0.0.5");
}

TEST_F(ResolverTest, ImplicitMxFromTheDomainsAddress) {
  StartDns();
  MxResult r = Resolve("implicit.test");
  ASSERT_TRUE(r.ok()) << r.text;
  EXPECT_TRUE(r.implicit_mx);
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].name, "implicit.test");
  ASSERT_EQ(r.hosts[0].addresses.size(), 1u);
  EXPECT_EQ(r.hosts[0].addresses[0].ToString(), "127.0.0.9");
}

// A route's next hop: the host's own addresses, never its MX records, and
// cached apart from the MX answer for the same name.
TEST_F(ResolverTest, ResolveHostLooksUpAddressesOnly) {
  StartDns();
  auto host = [&](const std::string& name) {
    bool done = false;
    MxResult out;
    resolver_->ResolveHost(name, [&](const MxResult& r) {
      out = r;
      done = true;
    });
    EXPECT_TRUE(RunUntil([&] { return done; }, 5000)) << "no answer for " << name;
    return out;
  };
  MxResult r = host("MX1.multi.test.");
  ASSERT_TRUE(r.ok()) << r.text;
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].name, "mx1.multi.test");
  ASSERT_EQ(r.hosts[0].addresses.size(), 1u);
  EXPECT_EQ(r.hosts[0].addresses[0].ToString(), "127.0.0.2");
  // multi.test has MX records but no address of its own.
  MxResult multi = host("multi.test");
  EXPECT_FALSE(multi.ok());
  MxResult mx = Resolve("multi.test");  // the MX question is another cache entry
  ASSERT_TRUE(mx.ok()) << mx.text;
  EXPECT_FALSE(mx.from_cache);
  EXPECT_EQ(mx.hosts.size(), 5u);
}

TEST_F(ResolverTest, NullMxIsPermanent5110) {
  StartDns();
  MxResult r = Resolve("nullmx.test");
  EXPECT_EQ(r.kind, ResultKind::kPermanent) << r.text;
  EXPECT_EQ(r.enhanced_code, "5.1.10") << r.text;
}

TEST_F(ResolverTest, NxdomainIsPermanent512AndNegativelyCached) {
  config_.negative_ttl_default_s = 7;
  config_.negative_ttl_cap_s = 30;
  StartDns();
  MxResult r = Resolve("nowhere.test");
  EXPECT_EQ(r.kind, ResultKind::kPermanent) << r.text;
  EXPECT_EQ(r.enhanced_code, "5.1.2");
  EXPECT_GT(r.ttl_s, 0u);
  EXPECT_LE(r.ttl_s, 30u);
  // dnsmasq's --local answers carry no SOA, so this is the configured default.
  std::cout << "NXDOMAIN negative TTL: " << r.ttl_s << " s\n";
  const uint64_t sent = resolver_->queries_sent();
  MxResult again = Resolve("nowhere.test");
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(again.enhanced_code, "5.1.2");
  EXPECT_EQ(resolver_->queries_sent(), sent);
}

TEST_F(ResolverTest, MxHostsWithoutAddresses) {
  StartDns();
  MxResult r = Resolve("noaddr.test");
  EXPECT_EQ(r.kind, ResultKind::kPermanent) << r.text;
  EXPECT_EQ(r.enhanced_code, "5.4.4");
  r = Resolve("partial.test");
  ASSERT_TRUE(r.ok()) << r.text;
  EXPECT_EQ(Names(r), (std::vector<std::string>{"mx1.multi.test"}));
}

TEST_F(ResolverTest, SecondLookupIsACacheHitWithoutAPacket) {
  StartDns();
  MxResult r = Resolve("multi.test");
  ASSERT_TRUE(r.ok());
  const uint64_t sent = resolver_->queries_sent();
  EXPECT_EQ(sent, 1u + 5u * 2u);  // MX, then A and AAAA per host
  bool called = false;
  resolver_->ResolveMx("MULTI.test", [&](const MxResult& hit) {
    called = true;
    EXPECT_TRUE(hit.from_cache);
    EXPECT_EQ(hit.hosts.size(), 5u);
  });
  EXPECT_TRUE(called);  // a hit is answered at once
  EXPECT_EQ(resolver_->queries_sent(), sent);
  EXPECT_EQ(resolver_->cache_hits(), 1u);
  // Sockets c-ares let go of leave no poll records behind once their
  // removals completed.
  EXPECT_TRUE(
      RunUntil([&] { return resolver_->poll_records() == resolver_->watched_sockets(); }, 1000));
}

TEST_F(ResolverTest, TruncatedAnswerRetriedOverTcp) {
  config_.max_mx_hosts = 10;
  StartDns({"--local-ttl=60", "--keep-in-foreground"});
  MxResult r = Resolve("big.test");
  ASSERT_TRUE(r.ok()) << r.text;
  ASSERT_EQ(r.hosts.size(), 10u);
  for (const MxHost& h : r.hosts) {
    EXPECT_EQ(h.preference, 10) << h.name;  // the ten of the best preference
    EXPECT_EQ(h.addresses.size(), 1u) << h.name;
  }
  EXPECT_TRUE(
      RunUntil([&] { return resolver_->poll_records() == resolver_->watched_sockets(); }, 1000));
}

TEST_F(ResolverTest, ShortTtlExpires) {
  StartDns({"--local-ttl=1"});
  MxResult r = Resolve("implicit.test");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.ttl_s, 1u);
  const uint64_t sent = resolver_->queries_sent();
  EXPECT_TRUE(Resolve("implicit.test").from_cache);
  EXPECT_EQ(resolver_->queries_sent(), sent);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  MxResult later = Resolve("implicit.test");
  EXPECT_TRUE(later.ok());
  EXPECT_FALSE(later.from_cache);
  EXPECT_GT(resolver_->queries_sent(), sent);
}

TEST_F(ResolverTest, ZeroTtlIsNotCached) {
  StartDns({"--local-ttl=0"});
  ASSERT_TRUE(Resolve("implicit.test").ok());
  EXPECT_FALSE(Resolve("implicit.test").from_cache);
  EXPECT_EQ(resolver_->cache_size(), 0u);
}

TEST_F(ResolverTest, ConcurrentIdenticalLookupsShareOneQuery) {
  StartDns();
  std::vector<MxResult> results;
  for (int i = 0; i < 5; ++i) {
    resolver_->ResolveMx(i % 2 ? "multi.test" : "MULTI.TEST.",
                         [&](const MxResult& r) { results.push_back(r); });
  }
  EXPECT_EQ(resolver_->lookups_in_flight(), 1u);
  ASSERT_TRUE(RunUntil([&] { return results.size() == 5; }));
  EXPECT_EQ(resolver_->queries_sent(), 1u + 5u * 2u);
  EXPECT_EQ(resolver_->coalesced(), 4u);
  for (const MxResult& r : results) {
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(Names(r), Names(results[0]));
  }
}

// A burst of new domains: no more than max_queries_in_flight go out at
// once, the rest wait their turn, and every lookup still completes.
TEST_F(ResolverTest, QueriesInFlightAreBounded) {
  std::vector<std::string> extra = {"--local-ttl=60"};
  constexpr int kDomains = 40;
  for (int i = 0; i < kDomains; ++i) {
    extra.push_back("--mx-host=d" + std::to_string(i) + ".test,mx" + std::to_string(i) +
                    ".test,10");
    extra.push_back("--host-record=mx" + std::to_string(i) + ".test,127.0.0." +
                    std::to_string(10 + i));
  }
  config_.max_queries_in_flight = 3;
  StartDns(extra);
  int answered = 0;
  int ok = 0;
  for (int i = 0; i < kDomains; ++i) {
    resolver_->ResolveMx("d" + std::to_string(i) + ".test", [&](const MxResult& r) {
      ++answered;
      ok += r.ok() && r.hosts.size() == 1 && r.hosts[0].addresses.size() == 1;
    });
  }
  EXPECT_EQ(resolver_->queries_in_flight(), 3u);
  EXPECT_EQ(resolver_->queries_waiting(), kDomains - 3u);
  size_t most = 0;
  ASSERT_TRUE(RunUntil([&] {
    most = std::max(most, resolver_->queries_in_flight());
    return answered == kDomains;
  }));
  EXPECT_EQ(most, 3u);
  EXPECT_EQ(ok, kDomains);
  EXPECT_EQ(resolver_->queries_in_flight(), 0u);
  EXPECT_EQ(resolver_->queries_waiting(), 0u);
  EXPECT_EQ(resolver_->queries_sent(), kDomains * 3u);  // MX, A, AAAA each
}

TEST_F(ResolverTest, CacheIsBounded) {
  config_.cache_entries = 2;
  StartDns();
  for (const char* d : {"multi.test", "implicit.test", "nowhere.test"}) Resolve(d);
  EXPECT_EQ(resolver_->cache_size(), 2u);
  const uint64_t sent = resolver_->queries_sent();
  EXPECT_FALSE(Resolve("multi.test").from_cache);  // least recently used: evicted
  EXPECT_GT(resolver_->queries_sent(), sent);
  EXPECT_TRUE(Resolve("nowhere.test").from_cache);
}

// A UDP socket that never answers.
class Silent {
 public:
  Silent() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Silent() { close(fd_); }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(ResolverTest, UnresponsiveServerIsTransient443) {
  Silent silent;
  config_.servers = {silent.server()};
  config_.timeout_ms = 150;
  config_.tries = 2;
  MakeResolver();
  const uint64_t start = base::MonotonicMillis();
  MxResult r = Resolve("example.test", 5000);
  EXPECT_EQ(r.kind, ResultKind::kTransient) << r.text;
  EXPECT_EQ(r.enhanced_code, "4.4.3");
  EXPECT_LT(base::MonotonicMillis() - start, 3000u);
  EXPECT_EQ(resolver_->cache_size(), 0u);  // transient answers are not cached
  EXPECT_EQ(resolver_->lookups_in_flight(), 0u);
}

TEST_F(ResolverTest, NextTickFollowsTheQueryTimeout) {
  Silent silent;
  config_.servers = {silent.server()};
  config_.timeout_ms = 300;
  config_.tries = 2;
  MakeResolver();
  EXPECT_EQ(resolver_->NextTickMs(10000), 10000);  // nothing pending
  bool done = false;
  resolver_->ResolveMx("example.test", [&](const MxResult&) { done = true; });
  const int next = resolver_->NextTickMs(10000);
  EXPECT_GT(next, 0);
  EXPECT_LE(next, 300);
  ASSERT_TRUE(RunUntil([&] { return done; }, 5000));
}

// The loop sleeps NextTickMs(); once the query's timeout has passed, it says
// 0 until someone runs c-ares' timeouts. RunDueTimeouts (called every turn by
// the engine) must do that, or the loop spins until its next own tick.
TEST_F(ResolverTest, DueTimeoutsRunWithoutWaitingForATick) {
  Silent silent;
  config_.servers = {silent.server()};
  config_.timeout_ms = 100;
  config_.tries = 1;
  MakeResolver();
  bool done = false;
  resolver_->ResolveMx("example.test", [&](const MxResult&) { done = true; });
  int turns = 0;
  const uint64_t start = base::MonotonicMillis();
  while (!done && base::MonotonicMillis() - start < 3000) {
    ring_->RunOnce(resolver_->NextTickMs(250));
    resolver_->RunDueTimeouts(base::MonotonicMillis());
    ++turns;
  }
  EXPECT_TRUE(done);
  // A spinning loop turns thousands of times in 100 ms; a sleeping one a
  // handful (c-ares may retry internally once or twice).
  EXPECT_LT(turns, 20);
  EXPECT_EQ(resolver_->NextTickMs(250), 250);  // nothing pending: no busy wait
}

TEST_F(ResolverTest, RefusedIsTransient) {
  StartDns();
  // dnsmasq has no upstream for names outside --local=/test/ and answers
  // REFUSED; c-ares tries every server and reports ARES_ECONNREFUSED.
  MxResult r = Resolve("example.com");
  EXPECT_EQ(r.kind, ResultKind::kTransient) << r.text;
  EXPECT_EQ(r.enhanced_code, "4.4.3");
  std::cout << "outside the local zone: " << r.text << "\n";
}

// A UDP server that answers every query with SERVFAIL (dnsmasq cannot be
// told to), on its own thread with plain blocking calls.
class ServFail {
 public:
  ServFail() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    timeval tv{0, 50 * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    thread_ = std::thread([this] {
      unsigned char buf[512];
      while (!stop_) {
        sockaddr_in from{};
        socklen_t flen = sizeof(from);
        const ssize_t n =
            recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
        if (n < 12) continue;
        buf[2] |= 0x80;                                 // QR
        buf[3] = static_cast<unsigned char>(0x80 | 2);  // RA, RCODE SERVFAIL
        ++answered_;
        sendto(fd_, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), flen);
      }
    });
  }
  ~ServFail() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  int answered() const { return answered_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

TEST_F(ResolverTest, ServfailIsTransient443AndNotCached) {
  ServFail servfail;
  config_.servers = {servfail.server()};
  config_.timeout_ms = 500;
  MakeResolver();
  MxResult r = Resolve("example.test");
  EXPECT_EQ(r.kind, ResultKind::kTransient) << r.text;
  EXPECT_EQ(r.enhanced_code, "4.4.3");
  EXPECT_GE(servfail.answered(), 1);
  EXPECT_EQ(resolver_->cache_size(), 0u);
}

TEST_F(ResolverTest, DestroyWithQueriesInFlightLeavesNoDanglingPolls) {
  Silent silent;
  config_.servers = {silent.server()};
  config_.timeout_ms = 2000;
  MakeResolver();
  bool called = false;
  resolver_->ResolveMx("example.test", [&](const MxResult&) { called = true; });
  RunUntil([&] { return resolver_->watched_sockets() > 0; }, 1000);
  EXPECT_GT(resolver_->poll_records(), 0u);
  resolver_.reset();
  // The orphaned poll records free themselves when their cancellations land
  // (ASan / valgrind would flag a use after free here).
  for (int i = 0; i < 5; ++i) ring_->RunOnce(20);
  EXPECT_FALSE(called);
}

TEST_F(ResolverTest, DestroyWithQueriesWaitingFreesThem) {
  Silent silent;
  config_.servers = {silent.server()};
  config_.max_queries_in_flight = 1;
  MakeResolver();
  int called = 0;
  for (const char* d : {"a.test", "b.test", "c.test"}) {
    resolver_->ResolveMx(d, [&](const MxResult&) { ++called; });
  }
  EXPECT_EQ(resolver_->queries_waiting(), 2u);
  resolver_.reset();  // LeakSanitizer fails the test if a waiting query leaked
  for (int i = 0; i < 5; ++i) ring_->RunOnce(20);
  EXPECT_EQ(called, 0);
}

TEST_F(ResolverTest, BadServerSpecIsRejected) {
  config_.servers = {"not an address"};
  EXPECT_FALSE(Resolver::Create(*ring_, config_).ok());
}

}  // namespace
}  // namespace sluice::dns
