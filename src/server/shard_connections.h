// The shard's table of inbound SMTP connections (server/connection.h): the
// open ones, the ones whose receive starved for buffers, and the closed
// ones waiting to be freed. A closed connection is freed one loop turn
// later, after the SQEs it prepared were submitted: a cancel names its
// target by address, so a new connection at the same address could
// otherwise be taken for the old one (docs/ARCHITECTURE.md, "Lifetimes").
//
// Owns every connection it holds. Shard thread only; nothing is locked.
// Admission (max_connections, the per-address limiter) is the listener's
// (shard_listener.h), not this table's.
#pragma once

#include <cstddef>
#include <vector>

namespace sluice::server {

class Connection;

class ConnectionTable {
 public:
  ConnectionTable() = default;
  ~ConnectionTable() { DeleteAll(); }
  ConnectionTable(const ConnectionTable&) = delete;
  ConnectionTable& operator=(const ConnectionTable&) = delete;

  // A connection just accepted (and not yet started).
  void Add(Connection* c);
  // The connection is done: out of the table, freed after the next turn's
  // submission (FreeClosed).
  void Remove(Connection* c);
  // Its multishot receive found no buffer: re-armed once buffers are back.
  void Starved(Connection* c) { starved_.push_back(c); }

  // End of a loop turn, after RunOnce submitted every SQE of the turn
  // before: frees what closed then; what closed in this turn waits.
  void FreeClosed();
  // Re-arms every starved receive (call when buffers are available).
  void RearmStarved();
  bool has_starved() const { return !starved_.empty(); }

  // A copy of the open connections, for calls that may close (and so
  // remove) some of them.
  std::vector<Connection*> Snapshot() const { return open_; }
  size_t size() const { return open_.size(); }
  bool empty() const { return open_.empty(); }

  // Frees every connection, open or closed (the shard is being destroyed,
  // its loop no longer runs).
  void DeleteAll();

 private:
  std::vector<Connection*> open_;  // index kept in Connection::shard_slot
  std::vector<Connection*> starved_;
  std::vector<Connection*> dying_;  // closed this turn
  std::vector<Connection*> dead_;   // closed last turn: safe to free now
};

}  // namespace sluice::server
