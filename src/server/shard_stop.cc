// The shard's side of the stop protocol (shard_stop.h): how it begins, and
// the step it takes once per loop turn until it may leave.
#include <vector>

#include "shard.h"
#include "sluice/pickup/ingester.h"
#include "sluice/server/connection.h"
#include "sluice/server/control_socket.h"
#include "sluice/server/http_listener.h"

namespace sluice::server {

void Shard::RequestStop() {
  stop_.Request();
  Wake();
}

void Shard::BeginStop() {
  stop_.Begin(now_ms_, uint64_t{config_.shutdown_grace_s} * 1000);
  listener_.Stop();
  if (pickup_) pickup_->Stop();
  if (engine_) engine_->BeginStop();
  if (control_) control_->Stop();
  if (http_) http_->Stop();
  // Shutdown() may destroy the connection: iterate over a copy.
  std::vector<Connection*> all = connections_.Snapshot();
  for (Connection* c : all) c->Shutdown();
}

bool Shard::OwnWorkEnded(bool late) const {
  return connections_.empty() && spool_->in_flight() == 0 &&
         (!pickup_ || pickup_->idle() || late) && (!engine_ || engine_->idle() || late) &&
         (!http_ || http_->idle() || late) && (notes_.outbox_empty() || late) &&
         (!notes_.finals_waiting() || late);
}

bool Shard::StopTurn() {
  if (!stop_.stopping()) return false;
  // First this shard's own work ends: sessions, spool writes, deliveries,
  // and the notes it still has to post. From then on it sends no note; it
  // says so on the shared barrier.
  if (!stop_.posted_last() && OwnWorkEnded(stop_.late(now_ms_))) stop_.PostLast();
  if (!stop_.posted_last()) return false;
  // It leaves only when every shard got that far (so no final outcome can
  // still be on its way here) and its ledger has made the last ones
  // durable. Past the deadline it goes regardless: what is not durable is
  // delivered again after the restart, never lost (8 ticks past the
  // deadline, the others' last notes are no longer waited for).
  const bool others_done = stop_.others_done();
  if (others_done) DrainNotes();  // the last finals, if any came in this turn
  return (others_done || stop_.late(now_ms_, kTickMs * 8)) && ledger_->idle() && log_->idle();
}

}  // namespace sluice::server
