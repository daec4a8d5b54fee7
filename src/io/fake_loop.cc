// io::FakeLoop: the in-memory file system, fault injection and the seeded
// run order; see fake_loop.h.
#include "sluice/io/fake_loop.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fake_node.h"
#include "sluice/base/check.h"

namespace sluice::io {

namespace {

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = std::min(path.find('/', start), path.size());
    if (slash > start && path.compare(start, slash - start, ".") != 0) {
      parts.push_back(path.substr(start, slash - start));
    }
    start = slash + 1;
  }
  return parts;
}

}  // namespace

FakeLoop::FakeLoop(uint64_t seed) : random_(seed), root_(std::make_shared<Node>()) {
  root_->dir = true;
}

FakeLoop::~FakeLoop() = default;

int FakeLoop::OpenDirectory(const std::string& path) {
  std::shared_ptr<Node> at = root_;
  for (const std::string& part : Split(path)) {
    auto& slot = at->entries[part];
    if (!slot) {
      slot = std::make_shared<Node>();
      slot->dir = true;
      at->durable_entries[part] = slot;
    }
    SLUICE_CHECK(slot->dir);
    at = slot;
  }
  return AddDescriptor(at, O_RDONLY | O_DIRECTORY);
}

std::shared_ptr<FakeLoop::Node> FakeLoop::Walk(const std::string& path, bool durable) const {
  std::shared_ptr<Node> at = root_;
  for (const std::string& part : Split(path)) {
    if (!at->dir) return nullptr;
    const auto& names = durable ? at->durable_entries : at->entries;
    auto it = names.find(part);
    if (it == names.end()) return nullptr;
    at = it->second;
  }
  return at;
}

std::optional<std::string> FakeLoop::FileContents(const std::string& path) const {
  auto n = Walk(path, false);
  if (!n || n->dir) return std::nullopt;
  return n->data;
}

std::optional<std::string> FakeLoop::DurableContents(const std::string& path) const {
  auto n = Walk(path, true);
  if (!n || n->dir) return std::nullopt;
  return n->durable;
}

std::vector<std::string> FakeLoop::List(const std::string& dir) const {
  std::vector<std::string> out;
  if (auto n = Walk(dir, false); n && n->dir) {
    for (const auto& [name, node] : n->entries) out.push_back(name);
  }
  return out;
}

std::vector<std::string> FakeLoop::DurableList(const std::string& dir) const {
  std::vector<std::string> out;
  if (auto n = Walk(dir, true); n && n->dir) {
    for (const auto& [name, node] : n->durable_entries) out.push_back(name);
  }
  return out;
}

void FakeLoop::Crash() {
  std::vector<std::shared_ptr<Node>> todo{root_};
  while (!todo.empty()) {
    std::shared_ptr<Node> n = todo.back();
    todo.pop_back();
    n->data = n->durable;
    n->entries = n->durable_entries;
    for (const auto& [name, child] : n->entries) todo.push_back(child);
  }
  pending_.clear();
}

void FakeLoop::FailNth(Kind kind, int nth, int err) {
  SLUICE_CHECK(nth >= 1 && err > 0);
  faults_.push_back({kind, nth, err, 0});
}

void FakeLoop::ShortWriteNth(int nth, size_t bytes) {
  SLUICE_CHECK(nth >= 1);
  faults_.push_back({Kind::kWrite, nth, 0, bytes});
}

std::pair<int, int> FakeLoop::SocketPair() {
  auto a = std::make_shared<Node>();
  auto b = std::make_shared<Node>();
  a->socket = b->socket = true;
  a->peer = b;
  b->peer = a;
  return {AddDescriptor(a, O_RDWR), AddDescriptor(b, O_RDWR)};
}

int FakeLoop::AddDescriptor(std::shared_ptr<Node> node, int flags) {
  const int fd = next_fd_++;
  auto d = std::make_unique<Descriptor>();
  d->node = std::move(node);
  d->flags = flags;
  fds_[fd] = std::move(d);
  return fd;
}

FakeLoop::Descriptor* FakeLoop::Find(int fd) {
  auto it = fds_.find(fd);
  return it == fds_.end() ? nullptr : it->second.get();
}

std::shared_ptr<FakeLoop::Node> FakeLoop::Parent(int dir_fd, const std::string& path,
                                                 std::string& name, int& err) {
  Descriptor* d = Find(dir_fd);
  if (d == nullptr || !d->node->dir) {
    err = EBADF;
    return nullptr;
  }
  std::vector<std::string> parts = Split(path);
  if (parts.empty()) {
    err = EINVAL;
    return nullptr;
  }
  name = parts.back();
  parts.pop_back();
  std::shared_ptr<Node> at = d->node;
  for (const std::string& part : parts) {
    auto it = at->entries.find(part);
    if (it == at->entries.end() || !it->second->dir) {
      err = ENOENT;
      return nullptr;
    }
    at = it->second;
  }
  return at;
}

// ---- queueing and running ----

void FakeLoop::Queue(Completion* c, Kind kind, Op op,
                     std::function<std::optional<int>(bool& short_transfer)> run) {
  pending_.push_back(Pending{c, kind, op, std::move(run)});
}

std::optional<int> FakeLoop::Injected(Kind kind) {
  // Every fault of this kind counts this operation; the first due fires.
  std::optional<int> fired;
  for (size_t i = 0; i < faults_.size();) {
    if (faults_[i].kind != kind || --faults_[i].countdown > 0) {
      ++i;
      continue;
    }
    const Fault f = faults_[i];
    faults_.erase(faults_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!fired) fired = f.err > 0 ? -f.err : static_cast<int>(f.bytes);
  }
  return fired;
}

int FakeLoop::RunOnce(int) {
  // Cut what was submitted into chains; run them in seeded order.
  std::vector<std::vector<Pending>> chains;
  for (Pending& p : pending_) {
    if (chains.empty() || !chains.back().back().op.link) chains.emplace_back();
    chains.back().push_back(std::move(p));
  }
  pending_.clear();
  std::shuffle(chains.begin(), chains.end(), random_);
  struct Done {
    Completion* c;
    int result;
  };
  std::vector<Done> done;
  std::vector<Pending> waiting;
  for (std::vector<Pending>& chain : chains) {
    bool cancelled = false;
    for (size_t i = 0; i < chain.size(); ++i) {
      Pending& p = chain[i];
      if (cancelled) {
        done.push_back({p.completion, -ECANCELED});
        continue;
      }
      bool short_transfer = false;
      std::optional<int> result = p.run(short_transfer);
      if (!result) {  // not ready: it and the rest of its chain wait
        for (size_t k = i; k < chain.size(); ++k) waiting.push_back(std::move(chain[k]));
        break;
      }
      ++executed_[static_cast<size_t>(p.kind)];
      if (*result < 0 || short_transfer) cancelled = p.op.link;
      if (!(p.op.skip_success && *result >= 0)) done.push_back({p.completion, *result});
    }
  }
  for (Pending& p : waiting) pending_.push_back(std::move(p));
  int ran = 0;
  for (const Done& d : done) {
    if (d.c == nullptr) continue;
    d.c->OnComplete(d.result, 0);
    ++ran;
  }
  return ran;
}

}  // namespace sluice::io
