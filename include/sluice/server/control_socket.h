// The administration endpoint of one shard: a Unix stream socket at
// "<control_dir>/<shard>.sock" (mode 0600, so only the daemon's user and
// root can use it). `sluice queue ...` connects to every shard's socket,
// sends one command line and reads one reply until the shard closes.
//
// Commands (one line, at most 1 KiB, LF or CRLF):
//   list                    JSON array of this shard's destination queues
//   stats                   JSON object of this shard's delivery counters
//   flush [DOMAIN]          deferred jobs become ready now
//   suspend DOMAIN          no new deliveries to DOMAIN (in-flight ones finish)
//   resume DOMAIN
//   bounce ID|DOMAIN        every queued job of the message / domain bounces
// Replies: "ok ..." or JSON for list/stats, "error: ..." otherwise.
//
// Runs on the shard's ring like everything else: multishot accept, one
// receive and one send per client, at most kMaxClients at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sluice/io/ring.h"

namespace sluice::server {

class Shard;

class ControlSocket {
 public:
  ControlSocket(Shard& shard, std::string path);
  ~ControlSocket();
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  absl::Status Init();
  void Stop();
  bool idle() const { return clients_.empty() && !accepting_; }

  // One command line in, the reply out (public for tests).
  std::string Execute(std::string_view line);

  static constexpr size_t kMaxClients = 16;
  static constexpr size_t kMaxLine = 1024;

 private:
  struct Client;
  void Arm();
  void OnAccept(int result, uint32_t flags);
  void OnReceive(Client* c, int result);
  void OnSent(Client* c, int result);
  void Finish(Client* c);

  Shard& shard_;
  const std::string path_;
  int fd_ = -1;
  bool accepting_ = false;
  bool stopped_ = false;
  std::vector<Client*> clients_;
  io::MemberCompletion<ControlSocket, &ControlSocket::OnAccept> accept_done_{this};
};

}  // namespace sluice::server
