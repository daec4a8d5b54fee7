// The administration endpoint of one shard: a Unix stream socket at
// "<control_dir>/<shard>.sock" (mode 0600, so only the daemon's user and
// root can use it). `sluice queue ...` connects to every shard's socket,
// sends one command line and reads one reply until the shard closes.
//
// Commands (one line, at most 1 KiB, LF or CRLF); every reply is one JSON
// value, an error is {"error":"..."}:
//   list                       array of this shard's destination queues
//   stats                      object of this shard's delivery counters
//   flush [DOMAIN]             deferred jobs become ready now: {"domains":N}
//   suspend DOMAIN [UNTIL_US [REASON]]  no new deliveries to DOMAIN until
//                              UNTIL_US (wall clock µs; 0: until resumed);
//                              in-flight ones finish: {"owner":true,"recipients":N}
//   resume DOMAIN              {"owner":true,"was_suspended":B}
//   suspensions                array of {domain,since_us,until_us,reason,recipients}
//   bounce|delete|hold|release id ID | domain DOMAIN
//                              {"recipients":N,"in_flight":M}; release also
//                              "held":false when it was not held
//   messages [MAX [ID]]        {"truncated":B,"jobs":[{id,domain,state,
//                              attempts,next_us,recipients,error}]}
//   shape EDGE_S...            [{domain,counts:[...]}]: pending recipients
//                              per age bucket
//   show ID CONTENT_MAX [RCPT] {"shard","home":B,"truncated","jobs":[...]}:
//                              the jobs as `messages`; the home shard adds
//                              "message" (the record, read on a helper
//                              thread: server/admin_show.h)
//   metrics                    not JSON: every shard's metrics in the
//                              Prometheus text format (server/metrics_text.h),
//                              the same on whichever shard is asked
// Domain commands are answered by the domain's owner shard; the others reply
// {"owner":false}. Changes to suspensions and holds are saved in
// <spool>/admin.state before the reply ("saved":true).
//
// Runs on the shard's ring like everything else: multishot accept, one
// receive and one send per client, at most kMaxClients at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "sluice/delivery/admin_state.h"
#include "sluice/io/loop.h"

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

  // Clients at once: operators' `sluice queue` runs, plus the HTTP admin
  // API's fan-outs (up to HttpListener::kAdminInFlightMax per shard, one
  // connection to each shard each); past it a client is closed unanswered.
  static constexpr size_t kMaxClients = 64;
  static constexpr size_t kMaxLine = 1024;
  // Jobs one `messages` reply lists per shard by default: the reply is built
  // in memory on the shard's thread (about 150 bytes a job).
  static constexpr uint64_t kMaxJobsListed = 200000;

 private:
  std::string Stats();
  std::string SuspendOrResume(std::string_view verb, std::string_view rest);
  std::string ActOnSelection(std::string_view verb, std::string_view rest);
  std::string Save(absl::FunctionRef<void(delivery::AdminState&)> change);
  struct Client;
  bool AnswerLater(Client* c, std::string_view line);
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
