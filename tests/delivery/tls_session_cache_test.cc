// delivery::TlsSessionCache: keys and least-recently-used eviction. The
// sessions themselves are tls::SavedSession values (tested with real
// handshakes in tests/tls/); empty ones stand in here, the cache does not
// look inside them.
#include <gtest/gtest.h>

#include <cstring>

#include "sluice/delivery/outbound_connection.h"

namespace sluice::delivery {
namespace {

Target T(const char* host, uint8_t last) {
  Target t;
  t.host = host;
  t.ip.family = AF_INET;
  const uint8_t addr[4] = {192, 0, 2, last};
  std::memcpy(t.ip.bytes, addr, 4);
  return t;
}

TEST(TlsSessionCache, KeyHasAddressNameAndVerification) {
  const std::string a = TlsSessionCache::Key(T("mx1.test", 1), false);
  EXPECT_EQ(a, "192.0.2.1 mx1.test");
  // Another name on the same address, or a verified connection, must not
  // resume an entry made for something else.
  EXPECT_NE(TlsSessionCache::Key(T("mx2.test", 1), false), a);
  EXPECT_NE(TlsSessionCache::Key(T("mx1.test", 1), true), a);
  EXPECT_NE(TlsSessionCache::Key(T("mx1.test", 2), false), a);
}

TEST(TlsSessionCache, EvictsTheLeastRecentlyUsed) {
  TlsSessionCache cache(2);
  cache.Put("a", tls::SavedSession());
  cache.Put("b", tls::SavedSession());
  EXPECT_NE(cache.Find("a"), nullptr);  // "a" is now the most recent
  cache.Put("c", tls::SavedSession());  // evicts "b"
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.Find("b"), nullptr);
  EXPECT_NE(cache.Find("c"), nullptr);
  cache.Put("a", tls::SavedSession());  // replaces, no eviction
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.Find("c"), nullptr);
  cache.Erase("c");
  cache.Erase("missing");
  EXPECT_EQ(cache.Find("c"), nullptr);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TlsSessionCache, ZeroCapacityKeepsNothing) {
  TlsSessionCache cache(0);
  cache.Put("a", tls::SavedSession());
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace sluice::delivery
