// One inbound SMTP connection: glues a pure smtp::ServerSession to a socket
// and to the shard's spool writer.
//
// Input arrives by multishot recv into the shard's buffer ring. Each buffer
// is fed to the session in place; the body spans the session reports are
// handed to the spool writer as pointers into that same buffer, which stays
// held until its write completes (zero copy). Unconsumed input (the session
// paused for a commit or for output to drain) waits in `input_` in order.
// Replies produced by one round of input leave in one send; one send is in
// flight at a time.
//
// Lifetime: the shard creates it on accept; it deletes itself once the
// socket is shut down and no receive, send or spool commit references it.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "sluice/smtp/server_session.h"
#include "sluice/spool/spool_writer.h"

namespace sluice::server {

class Shard;

class Connection final : public smtp::SessionHandler {
 public:
  Connection(Shard& shard, int fd, std::string client_ip, bool relay_allowed);
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

  size_t shard_slot = 0;  // position in the shard's connection table

  // smtp::SessionHandler
  bool SpoolAvailable() override;
  void BeginMessage(const smtp::Envelope& envelope) override;
  void AppendBody(const char* data, size_t size) override;
  void CommitMessage(const smtp::Envelope& envelope, const smtp::MessageFacts& facts) override;
  void AbortMessage() override;

 private:
  struct Pending {
    uint16_t buffer;
    uint32_t offset;
    uint32_t size;
  };

  void OnReceive(int result, uint32_t flags);
  void OnSend(int result, uint32_t flags);
  void OnCommitted(const absl::Status& status, const std::string& id, uint64_t size);
  void ProcessInput();
  void MaybeSend();
  void BeginShutdown();  // stop reading, close once everything drained
  void MaybeDestroy();
  std::string AddedHeaders(const smtp::Envelope& envelope, const smtp::MessageFacts& facts,
                           const std::string& id) const;

  Shard& shard_;
  int fd_;
  std::string client_ip_;
  smtp::ServerSession session_;
  std::deque<Pending> input_;
  uint16_t feeding_buffer_ = 0;

  std::string sending_;
  size_t sent_ = 0;
  bool send_in_flight_ = false;
  uint64_t send_started_ms_ = 0;
  bool recv_armed_ = false;
  bool recv_paused_ = false;  // too much unconsumed input: not reading
  bool shut_down_ = false;    // socket shut down, waiting for ops to drain
  bool destroyed_ = false;
  uint64_t last_input_ms_ = 0;

  spool::SpoolWriter::Message* message_ = nullptr;
  base::QueueId message_id_;
  uint64_t message_arrival_us_ = 0;
  bool commit_in_flight_ = false;

  io::MemberCompletion<Connection, &Connection::OnReceive> recv_done_{this};
  io::MemberCompletion<Connection, &Connection::OnSend> send_done_{this};
};

}  // namespace sluice::server
