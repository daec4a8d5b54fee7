// The shard's SMTP listening sockets and admission. Each shard binds its own
// socket per address with SO_REUSEPORT (the kernel spreads connections over
// the shards): the plain listeners, then the implicit-TLS ones. A multishot
// accept per socket; each new connection is admitted or refused here:
//   - the process-wide count against server.max_connections (shared, atomic);
//   - the per-address ClientLimiter (shared, lock-free) for clients outside
//     relay_from (Postfix exempts $mynetworks from anvil the same way);
//   - refused: one 421 line is sent, then the socket is closed whatever
//     became of the send.
// An admitted connection goes to the shard's ConnectionTable; Release undoes
// its admission when it closes. Shard thread only, except the shared counts.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "sluice/io/loop.h"
#include "sluice/tls/credentials.h"

namespace sluice::server {

class ClientLimiter;
class Connection;
class Shard;

class ShardListener {
 public:
  // `open_connections`: shared by every shard. The 421 for a full server
  // is built once, from the host name at start-up.
  ShardListener(Shard& shard, std::atomic<int64_t>& open_connections);
  ~ShardListener();  // Close()
  ShardListener(const ShardListener&) = delete;
  ShardListener& operator=(const ShardListener&) = delete;

  // Per-address limits, shared by the shards; null: none. Before Open.
  void set_client_limiter(ClientLimiter* l) { client_limiter_ = l; }

  // Binds every listener of the shard's configuration (and credentials'
  // implicit-TLS addresses). Init, on the shard thread.
  absl::Status Open();
  // Arms the accepts (Shard::Run).
  void Start();
  // Stopping: ends the accepts and shuts the sockets (a connection that
  // still arrives is closed at once).
  void Stop();
  // A connection it admitted closed: gives back its place in the counts.
  void Release(const Connection& c);
  // Closes the sockets and the refused connections still being answered
  // (the loop no longer runs).
  void Close();

 private:
  struct Socket;
  struct Refusal;
  void Arm(Socket* s);
  void OnAccept(Socket* s, int result, uint32_t flags);
  void Accepted(Socket* s, int fd);
  // Sends `reply` and closes `fd` (a connection past a limit).
  void Refuse(int fd, std::string reply);

  Shard& shard_;
  std::atomic<int64_t>& open_connections_;
  ClientLimiter* client_limiter_ = nullptr;  // shared, owned by the server
  const std::string too_many_connections_;   // the reply, sent from this buffer
  std::vector<std::unique_ptr<Socket>> sockets_;
  absl::flat_hash_set<Refusal*> refusals_;  // replies in flight to refused connections
};

}  // namespace sluice::server
