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
  timers_.clear();
  multishots_.clear();
  events_.clear();
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
  a->connected = b->connected = true;
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

void FakeLoop::RunChains(std::vector<Done>& done) {
  // Cut what was submitted into chains; run them in seeded order.
  std::vector<std::vector<Pending>> chains;
  for (Pending& p : pending_) {
    if (chains.empty() || !chains.back().back().op.link) chains.emplace_back();
    chains.back().push_back(std::move(p));
  }
  pending_.clear();
  std::shuffle(chains.begin(), chains.end(), random_);
  std::vector<Pending> waiting;
  for (std::vector<Pending>& chain : chains) {
    bool cancelled = false;
    for (size_t i = 0; i < chain.size(); ++i) {
      Pending& p = chain[i];
      if (cancelled) {
        done.push_back({p.completion, -ECANCELED, 0});
        continue;
      }
      bool short_transfer = false;
      std::optional<int> result = p.run(short_transfer);
      if (!result && i + 1 < chain.size() && chain[i + 1].link_timeout &&
          chain[i + 1].deadline <= now_us_) {
        // Its LinkTimeout expired first: the op is cancelled, the timeout
        // reports -ETIME, anything linked after it is cancelled.
        done.push_back({p.completion, -ECANCELED, 0});
        done.push_back({chain[i + 1].completion, -ETIME, 0});
        ++i;
        cancelled = true;
        continue;
      }
      if (!result) {  // not ready: it and the rest of its chain wait
        for (size_t k = i; k < chain.size(); ++k) waiting.push_back(std::move(chain[k]));
        break;
      }
      ++executed_[static_cast<size_t>(p.kind)];
      if (*result < 0 || short_transfer) cancelled = p.op.link;
      if (!(p.op.skip_success && *result >= 0)) done.push_back({p.completion, *result, 0});
    }
  }
  // Submitted while running (a peer never does; kept for safety) go after.
  for (Pending& p : pending_) waiting.push_back(std::move(p));
  pending_ = std::move(waiting);
}

void FakeLoop::FireTimers(std::vector<Done>& done) {
  std::vector<Timer> due;
  std::erase_if(timers_, [&](const Timer& t) {
    if (t.deadline > now_us_) return false;
    due.push_back(t);
    return true;
  });
  std::sort(due.begin(), due.end(), [](const Timer& a, const Timer& b) {
    return a.deadline != b.deadline ? a.deadline < b.deadline : a.seq < b.seq;
  });
  for (const Timer& t : due) done.push_back({t.completion, -ETIME, 0});
}

void FakeLoop::Schedule(uint64_t at, std::function<void()> fn) {
  events_.emplace(std::max(at, now_us_), std::move(fn));
}

bool FakeLoop::RunDueEvents() {
  bool ran = false;
  // One at a time: an event may schedule more (at this time, after it).
  while (!events_.empty() && events_.begin()->first <= now_us_) {
    std::function<void()> fn = std::move(events_.begin()->second);
    events_.erase(events_.begin());
    fn();
    ran = true;
  }
  return ran;
}

std::optional<uint64_t> FakeLoop::NextDeadline() const {
  std::optional<uint64_t> next;
  auto consider = [&next](uint64_t at) {
    if (!next || at < *next) next = at;
  };
  for (const Timer& t : timers_) consider(t.deadline);
  for (const Pending& p : pending_) {
    // One already due bounds an op that is not waiting (io_uring's bounds
    // only the op just before it): it never fires, so it is no deadline.
    if (p.link_timeout && p.deadline > now_us_) consider(p.deadline);
  }
  if (!events_.empty()) consider(events_.begin()->first);
  return next;
}

void FakeLoop::Turn(std::vector<Done>& done) {
  RunDueEvents();
  RunChains(done);
  RunMultishots(done);
  FireTimers(done);
}

int FakeLoop::RunOnce(int timeout_ms) {
  const uint64_t limit =
      timeout_ms < 0 ? ~0ull : now_us_ + static_cast<uint64_t>(timeout_ms) * 1000;
  std::vector<Done> done;
  stalled_ = false;
  for (;;) {
    Turn(done);
    if (!done.empty()) break;
    // Peers reacted to this turn (events due now): run again at this time.
    if (!events_.empty() && events_.begin()->first <= now_us_) continue;
    const std::optional<uint64_t> next = NextDeadline();
    if (!next || *next > limit) {
      stalled_ = !next;
      if (timeout_ms >= 0) now_us_ = std::max(now_us_, limit);  // waited it out
      break;
    }
    now_us_ = std::max(now_us_, *next);
  }
  int ran = 0;
  for (const Done& d : done) {
    if (d.c == nullptr) continue;
    d.c->OnComplete(d.result, d.flags);
    ++ran;
  }
  return ran;
}

bool FakeLoop::RunUntil(const std::function<bool()>& done, int max_turns) {
  // Stalled: nothing completed, nothing is scheduled: nothing will happen.
  for (int i = 0; i < max_turns && !done(); ++i) {
    RunOnce(-1);
    if (stalled_) break;
  }
  return done();
}

}  // namespace sluice::io
