// FakeLoop's file system nodes and descriptors (private to src/io): a node
// is a directory, a file or one end of a socket pair.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>

#include "sluice/io/fake_loop.h"

namespace sluice::io {

struct FakeLoop::Node {
  bool dir = false;
  std::string data;                                              // what a reader sees
  std::string durable;                                           // as of the last fsync/fdatasync
  std::map<std::string, std::shared_ptr<Node>> entries;          // a directory's names now
  std::map<std::string, std::shared_ptr<Node>> durable_entries;  // ... as of its last fsync
  bool socket = false;
  std::deque<char> inbox;    // a socket's unread bytes
  std::weak_ptr<Node> peer;  // a socket's other end
};

struct FakeLoop::Descriptor {
  std::shared_ptr<Node> node;
  int flags = 0;
  uint64_t position = 0;
};

}  // namespace sluice::io
