// The wolfSSL adapter: a server and a client Session connected through
// memory, every byte moved by the test. Certificates come from the real
// `openssl` command at test time (a CA, a leaf signed by it, a self-signed
// leaf), so the verification paths are the ones production uses.
#include "sluice/tls/tls.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace sluice::tls {
namespace {

namespace fs = std::filesystem;

int Run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

class Certs : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-tls-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    const std::string d = dir;
    // A self-signed server certificate for mx.test.
    ASSERT_EQ(Run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.test "
                  "-addext subjectAltName=DNS:mx.test -keyout " +
                  d + "/self.key -out " + d + "/self.crt"),
              0);
    // A CA and a leaf for mx.test signed by it (the chain in the cert file).
    ASSERT_EQ(Run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=Test-CA "
                  "-keyout " +
                  d + "/ca.key -out " + d + "/ca.crt"),
              0);
    ASSERT_EQ(Run("openssl req -newkey rsa:2048 -nodes -subj /CN=mx.test -keyout " + d +
                  "/leaf.key -out " + d + "/leaf.csr"),
              0);
    ASSERT_EQ(
        Run("printf 'subjectAltName=DNS:mx.test\\n' > " + d +
            "/ext.cnf && "
            "openssl x509 -req -in " +
            d + "/leaf.csr -CA " + d + "/ca.crt -CAkey " + d +
            "/ca.key -CAcreateserial -days 2 -extfile " + d + "/ext.cnf -out " + d + "/leaf.crt"),
        0);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  static std::string dir;
};
std::string Certs::dir;

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new Certs);

std::string P(const std::string& name) { return Certs::dir + "/" + name; }

std::shared_ptr<const Context> ServerCtx(const std::string& cert = "self",
                                         std::string min = "1.2") {
  ContextOptions o;
  o.mode = Mode::kServer;
  o.cert_file = P(cert + ".crt");
  o.key_file = P(cert + ".key");
  o.min_version = std::move(min);
  auto c = Context::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : nullptr;
}

std::shared_ptr<const Context> ClientCtx(bool verify, const std::string& ca = "",
                                         std::string min = "1.2") {
  ContextOptions o;
  o.mode = Mode::kClient;
  o.verify_peer = verify;
  o.ca_file = ca.empty() ? "" : P(ca);
  o.min_version = std::move(min);
  auto c = Context::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : nullptr;
}

// Moves what `from` produced into `to`, at most `chunk` bytes per call.
void Pump(Session& from, Session& to, size_t chunk = 1 << 20) {
  std::string& out = from.ciphertext_out();
  size_t offset = 0;
  while (offset < out.size()) {
    const size_t n = std::min(chunk, out.size() - offset);
    const size_t took = to.PutCiphertext(out.data() + offset, n);
    if (took == 0) break;  // full: the caller reads plaintext first
    offset += took;
  }
  out.erase(0, offset);
}

// Runs both handshakes to the end, moving `chunk` bytes at a time.
bool Handshake(Session& client, Session& server, size_t chunk = 1 << 20) {
  for (int i = 0; i < 10000; ++i) {
    const auto c = client.Handshake();
    Pump(client, server, chunk);
    const auto s = server.Handshake();
    Pump(server, client, chunk);
    if (c == Session::Progress::kFailed || s == Session::Progress::kFailed) return false;
    if (c == Session::Progress::kEstablished && s == Session::Progress::kEstablished) return true;
  }
  ADD_FAILURE() << "handshake did not finish";
  return false;
}

std::string ReadAll(Session& s) {
  std::string got;
  char buf[4096];
  while (true) {
    auto n = s.Read(buf, sizeof buf);
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok() || *n == 0) break;
    got.append(buf, *n);
  }
  return got;
}

TEST(Tls, HandshakeAndDataBothWays) {
  auto server = Session::NewServer(ServerCtx());
  auto client = Session::NewClient(ClientCtx(false), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE(Handshake(**client, **server));
  EXPECT_EQ((*server)->version(), "TLSv1.3");
  EXPECT_EQ((*client)->version(), "TLSv1.3");
  EXPECT_FALSE((*server)->cipher().empty());
  EXPECT_FALSE((*client)->peer_verified());

  ASSERT_TRUE((*client)->Write("EHLO client\r\n").ok());
  Pump(**client, **server);
  EXPECT_EQ(ReadAll(**server), "EHLO client\r\n");
  ASSERT_TRUE((*server)->Write("250 ok\r\n").ok());
  Pump(**server, **client);
  EXPECT_EQ(ReadAll(**client), "250 ok\r\n");
}

TEST(Tls, OneByteAtATime) {
  auto server = Session::NewServer(ServerCtx());
  auto client = Session::NewClient(ClientCtx(false), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE(Handshake(**client, **server, 1));
  ASSERT_TRUE((*client)->Write("hello").ok());
  std::string got;
  std::string& wire = (*client)->ciphertext_out();
  for (char c : std::string(wire)) {
    ASSERT_EQ((*server)->PutCiphertext(&c, 1), 1u);
    got += ReadAll(**server);
  }
  wire.clear();
  EXPECT_EQ(got, "hello");
}

TEST(Tls, Tls12WhenTheClientCapsIt) {
  ContextOptions o;
  o.mode = Mode::kClient;
  o.max_version = "1.2";
  auto ctx = Context::Create(o);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  auto server = Session::NewServer(ServerCtx());
  auto client = Session::NewClient(*ctx, "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE(Handshake(**client, **server));
  EXPECT_EQ((*server)->version(), "TLSv1.2");
  ASSERT_TRUE((*client)->Write("over 1.2").ok());
  Pump(**client, **server);
  EXPECT_EQ(ReadAll(**server), "over 1.2");
}

TEST(Tls, Tls13OnlyServerRefusesA12Client) {
  ContextOptions o;
  o.mode = Mode::kClient;
  o.max_version = "1.2";
  auto ctx = Context::Create(o);
  ASSERT_TRUE(ctx.ok());
  auto server = Session::NewServer(ServerCtx("self", "1.3"));
  auto client = Session::NewClient(*ctx, "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  EXPECT_FALSE(Handshake(**client, **server));
}

TEST(Tls, LargeWriteIsSplitIntoRecordsAndBoundedInput) {
  auto server = Session::NewServer(ServerCtx());
  auto client = Session::NewClient(ClientCtx(false), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE(Handshake(**client, **server));
  std::string big(200000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE((*client)->Write(big).ok());
  std::string got;
  std::string& wire = (*client)->ciphertext_out();
  size_t offset = 0;
  while (offset < wire.size()) {
    // Never more than the bound is held.
    const size_t took = (*server)->PutCiphertext(wire.data() + offset, wire.size() - offset);
    EXPECT_LE(took, Session::kCipherInMax);
    offset += took;
    got += ReadAll(**server);
  }
  EXPECT_EQ(got, big);
}

TEST(Tls, GarbageInsteadOfClientHelloFails) {
  auto server = Session::NewServer(ServerCtx());
  ASSERT_TRUE(server.ok());
  const std::string junk = "EHLO not-tls\r\nMAIL FROM:<a@b>\r\n";
  (*server)->PutCiphertext(junk.data(), junk.size());
  EXPECT_EQ((*server)->Handshake(), Session::Progress::kFailed);
  EXPECT_FALSE((*server)->error().empty());
  // Reads after a failure fail too (no plaintext ever comes out of junk).
  char buf[16];
  EXPECT_FALSE((*server)->Read(buf, sizeof buf).ok());
}

TEST(Tls, PeerVanishingMidHandshakeFails) {
  auto server = Session::NewServer(ServerCtx());
  auto client = Session::NewClient(ClientCtx(false), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  (*client)->Handshake();
  // Half the ClientHello, then EOF.
  std::string& hello = (*client)->ciphertext_out();
  (*server)->PutCiphertext(hello.data(), hello.size() / 2);
  EXPECT_EQ((*server)->Handshake(), Session::Progress::kInProgress);
  (*server)->PutEof();
  EXPECT_EQ((*server)->Handshake(), Session::Progress::kFailed);
}

TEST(Tls, VerifiedAgainstCaAndName) {
  auto server = Session::NewServer(ServerCtx("leaf"));
  auto client = Session::NewClient(ClientCtx(true, "ca.crt"), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE(Handshake(**client, **server));
  EXPECT_TRUE((*client)->peer_verified());
}

TEST(Tls, WrongNameFailsVerification) {
  auto server = Session::NewServer(ServerCtx("leaf"));
  auto client = Session::NewClient(ClientCtx(true, "ca.crt"), "other.test");
  ASSERT_TRUE(server.ok() && client.ok());
  EXPECT_FALSE(Handshake(**client, **server));
  EXPECT_FALSE((*client)->error().empty());
}

TEST(Tls, UntrustedCertificateFailsVerification) {
  auto server = Session::NewServer(ServerCtx("self"));
  auto client = Session::NewClient(ClientCtx(true, "ca.crt"), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  EXPECT_FALSE(Handshake(**client, **server));
}

TEST(Tls, SystemStoreLoadsAndRejectsOurTestCa) {
  auto server = Session::NewServer(ServerCtx("leaf"));
  auto client = Session::NewClient(ClientCtx(true), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  EXPECT_FALSE(Handshake(**client, **server));
}

TEST(Tls, CloseNotifyIsSeen) {
  auto server = Session::NewServer(ServerCtx());
  auto client = Session::NewClient(ClientCtx(false), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE(Handshake(**client, **server));
  (*client)->Shutdown();
  Pump(**client, **server);
  EXPECT_EQ(ReadAll(**server), "");
  EXPECT_TRUE((*server)->peer_closed());
}

TEST(Tls, BadFilesAreClearErrors) {
  ContextOptions o;
  o.cert_file = P("missing.crt");
  o.key_file = P("self.key");
  auto c = Context::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("missing.crt"), std::string::npos);

  o.cert_file = P("self.crt");
  o.key_file = P("leaf.key");  // another key
  c = Context::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("does not match"), std::string::npos);

  o.key_file = P("self.key");
  o.min_version = "1.1";
  EXPECT_FALSE(Context::Create(o).ok());

  ContextOptions none;  // a server without a certificate
  EXPECT_FALSE(Context::Create(none).ok());
}

TEST(Tls, ModeMismatchIsRefused) {
  EXPECT_FALSE(Session::NewServer(ClientCtx(false)).ok());
  EXPECT_FALSE(Session::NewClient(ServerCtx(), "mx.test").ok());
}

TEST(Tls, ContextOutlivesItsOwnerWhileSessionsUseIt) {
  auto ctx = ServerCtx();
  auto server = Session::NewServer(ctx);
  ctx.reset();  // as after a SIGHUP reload: the session keeps it alive
  auto client = Session::NewClient(ClientCtx(false), "mx.test");
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE(Handshake(**client, **server));
}

// One client connection to `server_ctx`, offering `offer` if not empty:
// handshake, one reply read over TLS (which takes in a TLS 1.3 ticket), and
// the session it hands out. `resumed` gets both sides' view.
struct Outcome {
  bool client_resumed = false;
  bool server_resumed = false;
  bool saved_before_read = false;  // Save() had something straight after the handshake
  std::string version;
  SavedSession saved;
};

Outcome Connect(const std::shared_ptr<const Context>& server_ctx,
                const std::shared_ptr<const Context>& client_ctx, const SavedSession& offer,
                bool expect_offer_taken) {
  Outcome o;
  auto server = Session::NewServer(server_ctx);
  auto client = Session::NewClient(client_ctx, "mx.test");
  EXPECT_TRUE(server.ok() && client.ok());
  if (!server.ok() || !client.ok()) return o;
  EXPECT_EQ((*client)->Offer(offer), expect_offer_taken);
  if (!Handshake(**client, **server)) {
    ADD_FAILURE() << "handshake failed: " << (*client)->error() << " / " << (*server)->error();
    return o;
  }
  o.client_resumed = (*client)->resumed();
  o.server_resumed = (*server)->resumed();
  o.version = (*client)->version();
  o.saved_before_read = !(*client)->Save().empty();
  EXPECT_TRUE((*server)->Write("220 hello\r\n").ok());
  Pump(**server, **client);
  EXPECT_EQ(ReadAll(**client), "220 hello\r\n");
  o.saved = (*client)->Save();
  return o;
}

TEST(TlsResume, SecondHandshakeResumesTheFirstSession) {
  auto server_ctx = ServerCtx();
  auto client_ctx = ClientCtx(false);
  Outcome first = Connect(server_ctx, client_ctx, SavedSession(), false);
  EXPECT_EQ(first.version, "TLSv1.3");
  EXPECT_FALSE(first.client_resumed);
  EXPECT_FALSE(first.server_resumed);
  // TLS 1.3: the ticket comes after the handshake and is taken in by a read.
  EXPECT_FALSE(first.saved_before_read);
  ASSERT_FALSE(first.saved.empty());

  Outcome second = Connect(server_ctx, client_ctx, first.saved, true);
  EXPECT_TRUE(second.client_resumed);
  EXPECT_TRUE(second.server_resumed);
  // A resumed connection hands out nothing (see Save: its state does not
  // resume against OpenSSL servers); the first session is offered again.
  EXPECT_TRUE(second.saved.empty());
  Outcome third = Connect(server_ctx, client_ctx, first.saved, true);
  EXPECT_TRUE(third.client_resumed);
  EXPECT_TRUE(third.server_resumed);
}

TEST(TlsResume, AnotherServerContextDoesAFullHandshake) {
  auto client_ctx = ClientCtx(false);
  Outcome first = Connect(ServerCtx(), client_ctx, SavedSession(), false);
  ASSERT_FALSE(first.saved.empty());
  // Another context (as after a restart or a SIGHUP reload) has another
  // ticket key: the offer is made, refused, and the handshake is a full one.
  Outcome other = Connect(ServerCtx(), client_ctx, first.saved, true);
  EXPECT_EQ(other.version, "TLSv1.3");
  EXPECT_FALSE(other.client_resumed);
  EXPECT_FALSE(other.server_resumed);
  EXPECT_FALSE(other.saved.empty());
}

TEST(TlsResume, Tls12ResumesToo) {
  ContextOptions co;
  co.mode = Mode::kClient;
  co.max_version = "1.2";
  auto client_ctx = Context::Create(co);
  ASSERT_TRUE(client_ctx.ok()) << client_ctx.status();
  auto server_ctx = ServerCtx();
  Outcome first = Connect(server_ctx, *client_ctx, SavedSession(), false);
  EXPECT_EQ(first.version, "TLSv1.2");
  EXPECT_FALSE(first.client_resumed);
  // TLS 1.2 settles the session in the handshake itself.
  EXPECT_TRUE(first.saved_before_read);
  ASSERT_FALSE(first.saved.empty());
  Outcome second = Connect(server_ctx, *client_ctx, first.saved, true);
  EXPECT_EQ(second.version, "TLSv1.2");
  EXPECT_TRUE(second.client_resumed);
  EXPECT_TRUE(second.server_resumed);
}

TEST(TlsResume, SavedSessionOutlivesItsSessionAndContexts) {
  SavedSession saved;
  auto server_ctx = ServerCtx();
  {
    auto client_ctx = ClientCtx(false);
    saved = Connect(server_ctx, client_ctx, SavedSession(), false).saved;
  }
  ASSERT_FALSE(saved.empty());
  // Small enough to keep many per shard (the chain of a 2048-bit
  // self-signed leaf, the ticket, the secret).
  EXPECT_LT(saved.size(), 4096u);
  Outcome next = Connect(server_ctx, ClientCtx(false), saved, true);
  EXPECT_TRUE(next.client_resumed);
}

TEST(TlsResume, OfferIsRefusedWhenItCannotApply) {
  auto server_ctx = ServerCtx();
  auto client_ctx = ClientCtx(false);
  Outcome first = Connect(server_ctx, client_ctx, SavedSession(), false);
  ASSERT_FALSE(first.saved.empty());

  auto server = Session::NewServer(server_ctx);
  ASSERT_TRUE(server.ok());
  EXPECT_FALSE((*server)->Offer(first.saved));  // a server does not offer
  EXPECT_TRUE((*server)->Save().empty());

  auto client = Session::NewClient(client_ctx, "mx.test");
  ASSERT_TRUE(client.ok());
  EXPECT_FALSE((*client)->Offer(SavedSession()));  // nothing to offer
  EXPECT_TRUE((*client)->Save().empty());          // before the handshake
  (*client)->Handshake();                          // the ClientHello is out
  EXPECT_FALSE((*client)->Offer(first.saved));     // too late
}

}  // namespace
}  // namespace sluice::tls
