// The shard's connection table (shard_connections.h).
#include "shard_connections.h"

#include <algorithm>

#include "sluice/base/check.h"
#include "sluice/server/connection.h"

namespace sluice::server {

void ConnectionTable::Add(Connection* c) {
  c->shard_slot = open_.size();
  open_.push_back(c);
}

void ConnectionTable::Remove(Connection* c) {
  // Swap-remove from the table; starved entries are dropped too.
  const size_t slot = c->shard_slot;
  SLUICE_CHECK(slot < open_.size() && open_[slot] == c);
  open_[slot] = open_.back();
  open_[slot]->shard_slot = slot;
  open_.pop_back();
  starved_.erase(std::remove(starved_.begin(), starved_.end(), c), starved_.end());
  dying_.push_back(c);
}

void ConnectionTable::FreeClosed() {
  for (Connection* c : dead_) delete c;
  dead_.swap(dying_);
  dying_.clear();
}

void ConnectionTable::RearmStarved() {
  // ArmReceive may starve again and add the connection back: take the list.
  std::vector<Connection*> starved;
  starved.swap(starved_);
  for (Connection* c : starved) c->ArmReceive();
}

void ConnectionTable::DeleteAll() {
  for (Connection* c : open_) delete c;
  for (Connection* c : dying_) delete c;
  for (Connection* c : dead_) delete c;
  open_.clear();
  starved_.clear();
  dying_.clear();
  dead_.clear();
}

}  // namespace sluice::server
