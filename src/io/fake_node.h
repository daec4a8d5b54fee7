// FakeLoop's file system nodes, descriptors and network pieces (private to
// src/io): a node is a directory, a file or one end of a connection.
#pragma once

#include <sys/socket.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  // ---- sockets ----
  int family = 0;
  bool connected = false;
  bool eof = false;   // the other end closed: once the inbox is empty, reads give 0
  bool shut = false;  // this end was shut down or closed: reads give 0, sends -EPIPE
  int error = 0;      // reset: reads and sends fail with -error
  std::optional<sockaddr_storage> bound;
  Connection* connection = nullptr;  // this end is a FakePeer's
  // Bytes into this (client) end arrive paced like this; the last arrival.
  std::optional<FakeEndpointOptions> pacing;
  uint64_t paced_until = 0;
  // A listening socket (ListenSocket): its key and accepted ends.
  std::string listen_key;
  std::deque<std::shared_ptr<Node>> backlog;
};

struct FakeLoop::Descriptor {
  std::shared_ptr<Node> node;
  int flags = 0;
  uint64_t position = 0;
};

struct FakeLoop::Endpoint {
  FakeEndpointOptions options;
  FakePeer* peer = nullptr;        // a scripted peer serves it, or
  std::shared_ptr<Node> listener;  // a listening socket does
};

// Receive buffers of one group (RecvMultishot): ids the fake may fill.
class FakeLoop::BufferPool {
 public:
  std::deque<uint16_t> free;
  std::vector<uint16_t> queued;  // released, not yet published
};

class FakeLoop::Connection final : public FakeConnection {
 public:
  Connection(FakeLoop& loop, FakePeer& peer, std::shared_ptr<Node> mine, uint64_t id)
      : loop_(loop), peer_(peer), mine_(std::move(mine)), id_(id) {}

  void Send(std::string_view bytes) override;
  void Close() override;
  void Reset() override;
  bool closed() const override { return closed_; }
  uint64_t id() const override { return id_; }
  uint64_t received() const override { return received_; }

  FakePeer& peer() { return peer_; }
  void Received(size_t n) { received_ += n; }

 private:
  FakeLoop& loop_;
  FakePeer& peer_;
  std::shared_ptr<Node> mine_;
  uint64_t id_;
  uint64_t received_ = 0;
  bool closed_ = false;
};

}  // namespace sluice::io
