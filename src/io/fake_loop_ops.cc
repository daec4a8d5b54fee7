// io::FakeLoop's operations: each queues a closure RunOnce executes. Paths
// are copied at submission (io_uring copies them when the SQE is
// submitted); data buffers are read when the operation runs, as the kernel
// does. Faults are drawn when an operation runs, in run order.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fake_node.h"
#include "sluice/base/check.h"
#include "sluice/io/fake_loop.h"

namespace sluice::io {

using Run = std::function<std::optional<int>(bool&)>;

int FakeLoop::DoWrite(int fd, const std::vector<std::string_view>& pieces, uint64_t offset,
                      bool& short_transfer) {
  size_t total = 0;
  for (std::string_view p : pieces) total += p.size();
  size_t allowed = total;
  if (std::optional<int> f = Injected(Kind::kWrite)) {
    if (*f < 0) return *f;
    allowed = std::min(total, static_cast<size_t>(*f));
  }
  Descriptor* d = Find(fd);
  if (d == nullptr || d->node->dir) return -EBADF;
  if ((d->flags & O_ACCMODE) == O_RDONLY) return -EBADF;
  std::string& data = d->node->data;
  uint64_t at = offset;
  if (offset == static_cast<uint64_t>(-1)) at = (d->flags & O_APPEND) ? data.size() : d->position;
  size_t left = allowed;
  uint64_t pos = at;
  for (std::string_view p : pieces) {
    const size_t n = std::min(left, p.size());
    if (data.size() < pos + n) data.resize(pos + n, '\0');
    std::memcpy(data.data() + pos, p.data(), n);
    pos += n;
    left -= n;
  }
  if (offset == static_cast<uint64_t>(-1)) d->position = pos;
  short_transfer = allowed < total;
  return static_cast<int>(allowed);
}

void FakeLoop::Write(Completion* c, int fd, const void* data, unsigned size, uint64_t offset,
                     Op op) {
  Queue(c, Kind::kWrite, op, [this, fd, data, size, offset](bool& s) -> std::optional<int> {
    return DoWrite(fd, {std::string_view(static_cast<const char*>(data), size)}, offset, s);
  });
}

void FakeLoop::Writev(Completion* c, int fd, const iovec* iov, unsigned count, uint64_t offset,
                      Op op) {
  Queue(c, Kind::kWrite, op, [this, fd, iov, count, offset](bool& s) -> std::optional<int> {
    std::vector<std::string_view> pieces;
    for (unsigned i = 0; i < count; ++i) {
      pieces.emplace_back(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    }
    return DoWrite(fd, pieces, offset, s);
  });
}

void FakeLoop::Read(Completion* c, int fd, void* data, unsigned size, uint64_t offset, Op op) {
  Queue(c, Kind::kRead, op, [this, fd, data, size, offset](bool&) -> std::optional<int> {
    if (std::optional<int> f = Injected(Kind::kRead); f && *f < 0) return *f;
    Descriptor* d = Find(fd);
    if (d == nullptr || d->node->dir || d->node->socket) return -EBADF;
    const std::string& bytes = d->node->data;
    const uint64_t at = offset == static_cast<uint64_t>(-1) ? d->position : offset;
    if (at >= bytes.size()) return 0;
    const size_t n = std::min<size_t>(size, bytes.size() - at);
    std::memcpy(data, bytes.data() + at, n);
    if (offset == static_cast<uint64_t>(-1)) d->position += n;
    return static_cast<int>(n);
  });
}

void FakeLoop::Fsync(Completion* c, int fd, Op op) {
  Queue(c, Kind::kSync, op, [this, fd](bool&) -> std::optional<int> {
    if (std::optional<int> f = Injected(Kind::kSync); f && *f < 0) return *f;
    Descriptor* d = Find(fd);
    if (d == nullptr) return -EBADF;
    if (d->node->dir) {
      d->node->durable_entries = d->node->entries;
    } else {
      d->node->durable = d->node->data;
    }
    return 0;
  });
}

// Data and size are all the fake keeps of a file: fdatasync is fsync.
void FakeLoop::Fdatasync(Completion* c, int fd, Op op) { Fsync(c, fd, op); }

void FakeLoop::Openat(Completion* c, int dir_fd, const char* path, int flags, mode_t, Op op) {
  Queue(c, Kind::kOpen, op,
        [this, dir_fd, p = std::string(path), flags](bool&) -> std::optional<int> {
          if (std::optional<int> f = Injected(Kind::kOpen); f && *f < 0) return *f;
          std::string name;
          int err = 0;
          std::shared_ptr<Node> parent = Parent(dir_fd, p, name, err);
          if (!parent) return -err;
          auto it = parent->entries.find(name);
          if (it != parent->entries.end()) {
            if ((flags & O_CREAT) && (flags & O_EXCL)) return -EEXIST;
            if ((flags & O_DIRECTORY) && !it->second->dir) return -ENOTDIR;
            if (flags & O_TRUNC) it->second->data.clear();
            return AddDescriptor(it->second, flags);
          }
          if (!(flags & O_CREAT)) return -ENOENT;
          auto node = std::make_shared<Node>();
          parent->entries[name] = node;  // durable once the directory is synced
          return AddDescriptor(node, flags);
        });
}

void FakeLoop::Close(Completion* c, int fd, Op op) {
  Queue(c, Kind::kOther, op, [this, fd](bool&) -> std::optional<int> { return CloseNow(fd); });
}

void FakeLoop::Statx(Completion* c, int fd, const char* path, int flags, unsigned,
                     struct statx* out, Op op) {
  Queue(c, Kind::kOther, op,
        [this, fd, p = std::string(path), flags, out](bool&) -> std::optional<int> {
          std::shared_ptr<Node> node;
          if (p.empty() && (flags & AT_EMPTY_PATH)) {
            if (Descriptor* d = Find(fd)) node = d->node;
          } else {
            std::string name;
            int err = 0;
            std::shared_ptr<Node> parent = Parent(fd, p, name, err);
            if (!parent) return -err;
            auto it = parent->entries.find(name);
            if (it != parent->entries.end()) node = it->second;
          }
          if (!node) return -ENOENT;
          *out = {};
          // Links: the names the node has now, counted over the whole tree.
          uint32_t links = 0;
          std::vector<std::shared_ptr<Node>> todo{root_};
          while (!todo.empty()) {
            auto n = todo.back();
            todo.pop_back();
            for (const auto& [name, child] : n->entries) {
              if (child == node) ++links;
              if (child->dir) todo.push_back(child);
            }
          }
          out->stx_nlink = links;
          out->stx_size = node->data.size();
          out->stx_mode = node->dir ? S_IFDIR : S_IFREG;
          return 0;
        });
}

void FakeLoop::Unlinkat(Completion* c, int dir_fd, const char* path, int, Op op) {
  Queue(c, Kind::kUnlink, op, [this, dir_fd, p = std::string(path)](bool&) -> std::optional<int> {
    if (std::optional<int> f = Injected(Kind::kUnlink); f && *f < 0) return *f;
    std::string name;
    int err = 0;
    std::shared_ptr<Node> parent = Parent(dir_fd, p, name, err);
    if (!parent) return -err;
    return parent->entries.erase(name) == 1 ? 0 : -ENOENT;
  });
}

void FakeLoop::Renameat(Completion* c, int old_dir, const char* old_path, int new_dir,
                        const char* new_path, Op op) {
  Queue(c, Kind::kRename, op,
        [this, old_dir, from = std::string(old_path), new_dir,
         to = std::string(new_path)](bool&) -> std::optional<int> {
          if (std::optional<int> f = Injected(Kind::kRename); f && *f < 0) return *f;
          std::string old_name, new_name;
          int err = 0;
          std::shared_ptr<Node> a = Parent(old_dir, from, old_name, err);
          if (!a) return -err;
          std::shared_ptr<Node> b = Parent(new_dir, to, new_name, err);
          if (!b) return -err;
          auto it = a->entries.find(old_name);
          if (it == a->entries.end()) return -ENOENT;
          std::shared_ptr<Node> node = it->second;
          a->entries.erase(it);
          b->entries[new_name] = std::move(node);
          return 0;
        });
}

int FakeLoop::Truncate(int fd, uint64_t length) {
  Descriptor* d = Find(fd);
  if (d == nullptr || d->node->dir) return -EBADF;
  d->node->data.resize(length, '\0');
  return 0;
}

// ---- control ----

void FakeLoop::Nop(Completion* c, Op op) {
  Queue(c, Kind::kOther, op, [](bool&) -> std::optional<int> { return 0; });
}

namespace {
uint64_t Micros(const Timespec* t) {
  return static_cast<uint64_t>(t->tv_sec) * 1000000 + static_cast<uint64_t>(t->tv_nsec) / 1000;
}
}  // namespace

void FakeLoop::Timeout(Completion* c, const Timespec* after) {
  timers_.push_back(Timer{c, now_us_ + Micros(after), timer_seq_++});
}

void FakeLoop::TimeoutRemove(Completion* c, const Completion* target) {
  auto it = std::find_if(timers_.begin(), timers_.end(),
                         [target](const Timer& t) { return t.completion == target; });
  int result = -ENOENT;
  if (it != timers_.end()) {
    Completion* removed = it->completion;
    timers_.erase(it);
    Queue(removed, Kind::kOther, {}, [](bool&) -> std::optional<int> { return -ECANCELED; });
    result = 0;
  }
  Queue(c, Kind::kOther, {}, [result](bool&) -> std::optional<int> { return result; });
}

// Bounds the op submitted just before (see RunChains); when that op
// finished first, this runs and reports -ECANCELED, as io_uring does.
void FakeLoop::LinkTimeout(Completion* c, const Timespec* after) {
  SLUICE_CHECK(!pending_.empty() && pending_.back().op.link);
  Queue(c, Kind::kOther, {}, [](bool&) -> std::optional<int> { return -ECANCELED; });
  pending_.back().link_timeout = true;
  pending_.back().deadline = now_us_ + Micros(after);
}

void FakeLoop::Cancel(Completion* c, const Completion* target) {
  // At submission: the target, if still queued, ends with -ECANCELED.
  int result = -ENOENT;
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [target](const Pending& p) { return p.completion == target; });
  auto timer = std::find_if(timers_.begin(), timers_.end(),
                            [target](const Timer& t) { return t.completion == target; });
  auto shot = std::find_if(multishots_.begin(), multishots_.end(), [target](const Multishot& m) {
    return m.completion == target && !m.cancelled;
  });
  if (it != pending_.end()) {
    it->run = [](bool&) -> std::optional<int> { return -ECANCELED; };
    result = 0;
  } else if (timer != timers_.end()) {
    Completion* removed = timer->completion;
    timers_.erase(timer);
    Queue(removed, Kind::kOther, {}, [](bool&) -> std::optional<int> { return -ECANCELED; });
    result = 0;
  } else if (shot != multishots_.end()) {
    shot->cancelled = true;  // RunMultishots ends it
    result = 0;
  }
  Queue(c, Kind::kOther, {}, [result](bool&) -> std::optional<int> { return result; });
}

void FakeLoop::PollRemove(Completion* c, const Completion* target) { Cancel(c, target); }

}  // namespace sluice::io
