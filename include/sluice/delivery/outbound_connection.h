// One outbound SMTP connection: the io_uring glue around the pure
// smtp::ClientSession (connect, receive, send, timeouts). It knows nothing of
// queues or jobs; its Delegate (the delivery engine) decides what to send.
//
// A connection is given the destination's targets in delivery order (MX
// hosts by preference, each host's addresses). A target that cannot be
// reached, or that refuses us before the session is ready (greeting or EHLO
// not 2xx, 421, timeout), is skipped for the next one on a fresh socket; when
// all are exhausted the delegate hears OnFinished with ever_ready = false.
//
// I/O: all through the io::Loop, sockets included (Socket, Bind, Shutdown,
// CloseNow), so it runs unchanged on io::FakeLoop's simulated network
// (tests/delivery/outbound_connection_test.cc). Connect with a linked timeout;
// one receive (into a 16 KiB buffer) and at most one send in flight. STARTTLS:
// when the session asks (OnStartTls), a tls::Session (client mode) is put
// between the socket and the session: ciphertext in, plaintext to
// ClientSession::Feed; the session's output is encrypted only once the
// previous ciphertext was sent, so it stays bounded. An opportunistic
// handshake that fails is retried once in the clear with the same target (RFC
// 3207 leaves that to the client; Postfix does the same); required/verify
// policies make it a transient failure. With a TlsSessionCache the handshake
// offers the peer's last session, and the session this one ends up with is
// cached once the first reply over TLS was read (a TLS 1.3 ticket comes after
// the handshake). The session's timeouts are checked from the engine's tick.
// The object is freed by the engine only after every operation it started has
// completed (Released).
#pragma once

#include <linux/time_types.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/base/cidr.h"
#include "sluice/dns/resolver.h"
#include "sluice/io/loop.h"
#include "sluice/smtp/client_session.h"
#include "sluice/tls/tls.h"

namespace sluice::delivery {

struct Target {
  std::string host;  // MX host name (or the route's host)
  dns::IpAddress ip;
};

class OutboundConnection;

class ConnectionDelegate {
 public:
  virtual ~ConnectionDelegate() = default;
  // The session is idle: start a message on it, or Quit().
  virtual void OnReady(OutboundConnection& c) = 0;
  virtual void OnBodyWanted(OutboundConnection& c) = 0;
  virtual void OnRecipientResult(OutboundConnection& c, size_t index, smtp::Outcome outcome,
                                 const smtp::Reply& reply) = 0;
  virtual void OnMessageDone(OutboundConnection& c, const smtp::MessageResult& result) = 0;
  // The connection is over. ever_ready: some target reached an idle session.
  virtual void OnFinished(OutboundConnection& c, const smtp::CloseInfo& info, bool ever_ready) = 0;
  // Every operation has completed: the object may be freed (after this turn).
  virtual void Released(OutboundConnection& c) = 0;
};

// The last TLS session of each outbound peer, offered on the next STARTTLS
// to it so that handshake resumes (TLS 1.3 ticket / TLS 1.2 session: no
// certificate chain, no signature, one round trip less). One per shard
// (the engine's), so no locking; bounded, the least recently used entry
// goes first. Entries are about 1 KB (tls::SavedSession).
//
// Keyed by address, MX host name and whether the peer was verified: a
// resumed handshake skips the certificate check, so a session from an
// unverified connection, or one verified for another name (two domains
// whose MX hosts share an address), must never stand in for a verified one.
class TlsSessionCache {
 public:
  explicit TlsSessionCache(size_t capacity) : capacity_(capacity) {}
  TlsSessionCache(const TlsSessionCache&) = delete;
  TlsSessionCache& operator=(const TlsSessionCache&) = delete;

  static std::string Key(const Target& target, bool verified);
  // The entry for `key` (now the most recently used), or null.
  const tls::SavedSession* Find(const std::string& key);
  // Replaces `key`'s entry; evicts the least recently used one when full.
  void Put(const std::string& key, tls::SavedSession session);
  void Erase(const std::string& key);
  size_t size() const { return index_.size(); }

 private:
  using Entry = std::pair<std::string, tls::SavedSession>;
  size_t capacity_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

// STARTTLS for one connection: the session's policy and the client context
// (verifying or not). kNone: plaintext. `sessions`: where to find a session
// to offer and to keep the new one (null: every handshake is a full one).
struct OutboundTlsSetup {
  smtp::TlsPolicy policy = smtp::TlsPolicy::kNone;
  std::shared_ptr<const tls::Context> context;
  TlsSessionCache* sessions = nullptr;
  // Metrics (the engine's EngineStats): handshakes that completed, and
  // STARTTLS attempts that broke before or during the handshake.
  uint64_t* handshakes = nullptr;
  uint64_t* handshake_failures = nullptr;
};

struct OutboundOptions {
  smtp::ClientConfig client;
  std::optional<base::SocketAddress> source;  // bind before connect
  uint32_t connect_timeout_ms = 30000;
};

class OutboundConnection final : public smtp::ClientHandler {
 public:
  OutboundConnection(io::Loop& ring, ConnectionDelegate& delegate, const OutboundOptions& options,
                     std::vector<Target> targets, uint16_t port, OutboundTlsSetup tls = {});
  ~OutboundConnection() override;
  OutboundConnection(const OutboundConnection&) = delete;
  OutboundConnection& operator=(const OutboundConnection&) = delete;

  void Start(uint64_t now_ms);
  // Sends whatever the session has produced (call after StartMessage,
  // AppendBody, EndBody, Quit).
  void Send();
  // Checks the session's timeout and the idle limit.
  void Tick(uint64_t now_ms);
  // Closes at once (shutdown, no QUIT): the session reports its losses.
  void Abort();

  smtp::ClientSession& session() { return *session_; }
  const Target& target() const { return targets_[target_index_]; }
  bool finished() const { return finished_; }
  // Some target reached an idle session (the destination answers).
  bool ever_ready() const { return ever_ready_; }
  // A TLS handshake failed on this connection (opportunistic: it went on in
  // the clear with the same target).
  bool tls_failed() const { return tls_failed_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" while TLS is up, "" otherwise.
  std::string tls_description() const;
  // TLS is up and its handshake resumed a cached session.
  bool tls_resumed() const;
  uint64_t idle_since_ms() const { return idle_since_ms_; }
  void set_idle_since_ms(uint64_t ms) { idle_since_ms_ = ms; }

  // The engine's bookkeeping.
  void* owner = nullptr;    // the destination it serves
  uint32_t queue_slot = 0;  // queue::ConnectionId
  void* job = nullptr;      // the job in flight, if any
  // A job's report already gave the shaping gate the 421 that closes this
  // connection: OnFinished must not count it a second time.
  bool close_reply_counted = false;
  bool seen_ready = false;  // the engine has had its first OnReady
  bool retired = false;     // a reload changed its next hop: QUIT when ready for work

 private:
  struct Op final : io::Completion {
    Op(OutboundConnection* owner, void (OutboundConnection::*method)(int)) : c(owner), fn(method) {}
    void OnComplete(int result, uint32_t) override { (c->*fn)(result); }
    OutboundConnection* c;
    void (OutboundConnection::*fn)(int);
  };

  // smtp::ClientHandler
  void OnCapabilities(const smtp::Capabilities&) override {}
  void OnStartTls() override;
  void OnSessionReady() override;
  void OnBodyWanted() override;
  void OnRecipientResult(size_t index, smtp::Outcome outcome, const smtp::Reply& reply) override;
  void OnMessageDone(const smtp::MessageResult& result) override;
  void OnClosed(const smtp::CloseInfo& info) override;

  void Connect();
  void OnConnect(int result);
  void OnConnectTimeout(int result);
  void OnReconnect(int result);
  void ArmReceive();
  void OnReceive(int result);
  void OnSent(int result);
  void CloseSocket();
  void NextTargetOrFinish(const smtp::CloseInfo& info);
  void MaybeReleased();
  void DriveHandshake();
  void TlsBroken(const std::string& why);
  bool FeedCiphertext(const char* data, size_t size);

  io::Loop& ring_;
  ConnectionDelegate& delegate_;
  const OutboundOptions& options_;
  std::vector<Target> targets_;
  const uint16_t port_;
  size_t target_index_ = 0;
  std::unique_ptr<smtp::ClientSession> session_;
  int fd_ = -1;
  sockaddr_storage peer_{};
  socklen_t peer_size_ = 0;
  bool connected_ = false;
  bool ever_ready_ = false;
  bool finished_ = false;
  bool closing_ = false;  // the session closed: flush output, then close the socket
  bool receiving_ = false;
  bool sending_ = false;
  bool connecting_ = false;
  int ops_ = 0;
  bool released_ = false;
  // Calls into session_ on the stack. Its callbacks can end the session and,
  // through Send and NextTargetOrFinish, reach MaybeReleased, which replaces
  // session_ (Connect to the next target) or releases this object. That must
  // wait until the session has returned (ClientSession::Feed goes on parsing
  // after a reply's callbacks): MaybeReleased does nothing while this is
  // non-zero, and each entry point calls it again once the call is over.
  int session_depth_ = 0;
  OutboundTlsSetup tls_setup_;
  std::unique_ptr<tls::Session> tls_;
  std::string tls_key_;       // this target's TlsSessionCache key, while TLS is on
  bool tls_offered_ = false;  // a cached session was offered in this handshake
  bool tls_saved_ = false;    // this connection's session went into the cache
  bool tls_failed_ = false;
  bool tls_fallback_ = false;  // opportunistic TLS failed: this target again in the clear
  bool fallback_used_ = false;
  std::optional<smtp::Reply> tls_error_;  // why the handshake failed, for OnClosed
  bool tls_shutdown_sent_ = false;
  bool pending_next_ = false;
  std::vector<int> closed_fds_;  // closed sockets of earlier targets, freed when ops end
  smtp::CloseInfo last_failure_;
  std::string sending_buffer_;
  size_t sent_ = 0;
  char receive_buffer_[4096];  // replies are short; TLS records arrive in parts
  uint64_t now_ms_ = 0;
  uint64_t timer_epoch_ = ~0ull;
  uint64_t deadline_ms_ = 0;
  uint64_t idle_since_ms_ = 0;
  smtp::CloseInfo last_close_;
  io::Timespec connect_timeout_{};
  Op connect_op_{this, &OutboundConnection::OnConnect};
  Op timeout_op_{this, &OutboundConnection::OnConnectTimeout};
  Op receive_op_{this, &OutboundConnection::OnReceive};
  Op send_op_{this, &OutboundConnection::OnSent};
  Op reconnect_op_{this, &OutboundConnection::OnReconnect};
};

}  // namespace sluice::delivery
