// One inbound SMTP connection: glues a pure smtp::ServerSession to a socket
// and to the shard's spool writer.
//
// Input arrives by multishot recv into the shard's buffer ring. Each buffer
// is fed to the session in place and goes back to the ring before the
// completion returns, with one exception: a body span that fills most of
// its buffer is handed to the spool writer as a pointer into it (zero copy),
// and the writer holds that buffer until its write completes, within a
// per-message cap and only while the ring keeps a reserve. Smaller spans
// (a trickled body, MSS-sized segments) are copied into the message's
// pages. Input the session cannot take yet (it waits for a commit, or for
// a client that does not read its replies) is copied into `carry_`; past
// kCarryMax the connection stops reading. So what one client makes the
// shard hold is bounded per connection (docs/ARCHITECTURE.md, "Receive
// memory"), and no client can take the ring from the others.
// Replies produced by one round of input leave in one send; one send is in
// flight at a time.
//
// TLS (STARTTLS, or an implicit-TLS listener): received buffers are
// ciphertext. They are fed to a tls::Session (bounded input), the plaintext
// it yields goes through a 16 KiB buffer to the session, and body bytes are
// copied to the spool (AppendOwned) since the plaintext buffer is reused.
// Replies are encrypted into the TLS session's output before sending. At
// STARTTLS every byte received after the command line is dropped unread
// (RFC 3207 command injection), the 220 goes out in clear, and the
// handshake runs as input arrives; its failure or a peer that vanishes
// mid-handshake just closes the connection.
//
// Time: besides the idle and DATA timeouts (which restart on progress), a
// transaction deadline (MAIL to its reply) and a session deadline (checked
// between transactions) that nothing resets.
//
// Lifetime: the shard creates it on accept; it deletes itself once the
// socket is shut down and no receive, send or spool commit references it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/base/cidr.h"
#include "sluice/smtp/server_session.h"
#include "sluice/spool/spool_writer.h"
#include "sluice/tls/credentials.h"
#include "sluice/tls/tls.h"

namespace sluice::server {

class Shard;

class Connection final : public smtp::SessionHandler {
 public:
  Connection(Shard& shard, int fd, std::string client_ip, bool relay_allowed,
             tls::ListenerPolicy policy = {});
  ~Connection() override;

  void Start();
  // The shard is stopping: let the session say goodbye.
  void Shutdown();
  // Cut the connection now (grace period over).
  void ForceClose();
  // Called by the shard's timer: enforce idle, DATA and send timeouts.
  void CheckTimeouts(uint64_t now_ms);
  // Re-arm a receive that stopped for lack of buffers.
  void ArmReceive();

  size_t shard_slot = 0;            // position in the shard's connection table
  base::IpAddress peer;             // the client's address
  bool counted_by_limiter = false;  // the shard's ClientLimiter counts it

  // smtp::SessionHandler
  bool SpoolAvailable() override;
  void BeginMessage(const smtp::Envelope& envelope) override;
  void AppendBody(const char* data, size_t size) override;
  void CommitMessage(const smtp::Envelope& envelope, const smtp::MessageFacts& facts) override;
  void AbortMessage() override;
  void Authenticate(std::string_view user, std::string_view password) override;
  // The verdict of a password check, applied on this shard's thread.
  void Authenticated(std::string_view user, bool ok);
  void Rejected(std::string_view command, std::string_view argument,
                std::string_view reply) override;

 private:
  static constexpr uint16_t kNoBuffer = 0xffff;
  // Unread input a waiting session may leave: a few pipelined command
  // lines, or the start of the next message. Past it, reading stops.
  static constexpr size_t kCarryMax = 16 * 1024;
  // An idle connection gives back a carry buffer larger than this.
  static constexpr size_t kCarryKeep = 4 * 1024;
  // Zero copy pays for a span filling at least half its 4 KiB buffer...
  static constexpr size_t kZeroCopyMinBytes = 2048;
  // ...while the message holds fewer buffers than this (64 KiB)...
  static constexpr size_t kHeldBuffersPerMessageMax = 16;
  // ...and more than 1/kBufferReserveFraction of the ring is free.
  static constexpr uint32_t kBufferReserveFraction = 4;

  void OnReceive(int result, uint32_t flags);
  // One receive buffer's bytes: parsed in place when nothing older waits.
  void TakeInput(uint16_t buffer, size_t size);
  // Feeds the session (through TLS when on); returns the bytes used.
  // `buffer` is the receive buffer `data` lies in, or kNoBuffer.
  size_t Consume(const char* data, size_t size, uint16_t buffer);
  size_t ConsumeTls(const char* data, size_t size);
  bool FeedPlaintext();  // decrypted bytes into the session; false if none
  size_t carried() const { return carry_.size() - carry_pos_; }
  void DropCarry();
  void OnSend(int result, uint32_t flags);
  void OnCommitted(const absl::Status& status, const std::string& id, uint64_t size);
  void ProcessInput();
  void BeginTls();  // after STARTTLS's 220, or at once on an implicit-TLS listener
  void TlsFailed(std::string_view why);
  void MaybeSend();
  void BeginShutdown();  // stop reading, close once everything drained
  void MaybeDestroy();
  std::string AddedHeaders(const smtp::Envelope& envelope, const smtp::MessageFacts& facts,
                           const std::string& id) const;

  Shard& shard_;
  int fd_;
  std::string client_ip_;
  smtp::ServerSession session_;
  std::string carry_;  // input the session has not taken yet, in order
  size_t carry_pos_ = 0;
  bool starttls_drop_ = false;  // STARTTLS began: the carried rest is dropped
  uint16_t feeding_buffer_ = kNoBuffer;

  std::string sending_;
  size_t sent_ = 0;
  bool send_in_flight_ = false;
  uint64_t send_started_ms_ = 0;
  bool recv_armed_ = false;
  bool recv_paused_ = false;  // too much unconsumed input: not reading
  bool shut_down_ = false;    // socket shut down, waiting for ops to drain
  bool destroyed_ = false;
  uint64_t last_input_ms_ = 0;
  uint64_t started_ms_ = 0;
  uint64_t transaction_started_ms_ = 0;  // 0: no transaction open

  spool::SpoolWriter::Message* message_ = nullptr;
  base::QueueId message_id_;
  uint64_t message_arrival_us_ = 0;
  bool commit_in_flight_ = false;
  bool auth_in_flight_ = false;  // a password check on a helper thread holds us

  // TLS: null until STARTTLS (or from the start on an implicit listener).
  tls::ListenerPolicy policy_;
  std::unique_ptr<tls::Session> tls_;
  bool tls_handshaking_ = false;
  bool tls_failed_ = false;
  bool tls_closing_ = false;       // close_notify queued
  std::string clear_out_;          // replies up to STARTTLS's 220, sent before any ciphertext
  std::unique_ptr<char[]> plain_;  // decrypted input, kPlainBuffer bytes
  size_t plain_pos_ = 0;
  size_t plain_end_ = 0;
  static constexpr size_t kPlainBuffer = 16384;

  io::MemberCompletion<Connection, &Connection::OnReceive> recv_done_{this};
  io::MemberCompletion<Connection, &Connection::OnSend> send_done_{this};
};

}  // namespace sluice::server
