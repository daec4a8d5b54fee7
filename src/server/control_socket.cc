#include "sluice/server/control_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "shard.h"
#include "shard_note.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"
#include "sluice/delivery/admin_state.h"
#include "sluice/delivery/engine.h"
#include "sluice/log/json.h"
#include "sluice/server/admin_show.h"
#include "sluice/server/metrics_text.h"

namespace sluice::server {

struct ControlSocket::Client {
  ControlSocket* owner;
  int fd;
  std::string in;
  std::string out;
  size_t sent = 0;
  char buffer[512];
  struct Op final : io::Completion {
    Client* c;
    bool send;
    void OnComplete(int result, uint32_t) override {
      if (send) {
        c->owner->OnSent(c, result);
      } else {
        c->owner->OnReceive(c, result);
      }
    }
  };
  Op receive{};
  Op send{};
};

ControlSocket::ControlSocket(Shard& shard, std::string path)
    : shard_(shard), path_(std::move(path)) {}

ControlSocket::~ControlSocket() {
  for (Client* c : clients_) {
    close(c->fd);
    delete c;
  }
  if (fd_ >= 0) close(fd_);
}

absl::Status ControlSocket::Init() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat("control socket path too long: ", path_));
  }
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  unlink(path_.c_str());  // a stale socket of an earlier run
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  // No umask() here: it is process-wide, and shards start at once. Serve()
  // sets it once before any thread starts; the socket is then narrowed to
  // its owner (its directory is 0700 too, so nobody else sees the moment
  // between bind and chmod).
  const int rc = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0 || chmod(path_.c_str(), 0600) != 0 || listen(fd_, 64) != 0) {
    return absl::InternalError(absl::StrCat("control socket ", path_, ": ", std::strerror(errno)));
  }
  Arm();
  return absl::OkStatus();
}

void ControlSocket::Arm() {
  if (stopped_ || accepting_) return;
  accepting_ = true;
  shard_.loop().AcceptMultishot(&accept_done_, fd_);
}

void ControlSocket::Stop() {
  stopped_ = true;
  if (fd_ >= 0) {
    shutdown(fd_, SHUT_RDWR);
    unlink(path_.c_str());
  }
  if (accepting_) {
    shard_.loop().Cancel(nullptr, &accept_done_);
  }
}

void ControlSocket::OnAccept(int result, uint32_t flags) {
  if (!io::HasMore(flags)) accepting_ = false;
  if (result >= 0) {
    if (stopped_ || clients_.size() >= kMaxClients) {
      close(result);
    } else {
      auto* c = new Client();
      c->owner = this;
      c->fd = result;
      c->receive.c = c;
      c->receive.send = false;
      c->send.c = c;
      c->send.send = true;
      clients_.push_back(c);
      shard_.loop().Recv(&c->receive, c->fd, c->buffer, sizeof c->buffer);
    }
  }
  if (!accepting_) Arm();
}

void ControlSocket::OnReceive(Client* c, int result) {
  if (result <= 0) return Finish(c);
  c->in.append(c->buffer, static_cast<size_t>(result));
  const size_t nl = c->in.find('\n');
  if (nl == std::string::npos) {
    if (c->in.size() > kMaxLine) {
      c->out = "{\"error\":\"command line too long\"}\n";
    } else {
      shard_.loop().Recv(&c->receive, c->fd, c->buffer, sizeof c->buffer);
      return;
    }
  } else {
    std::string_view line(c->in.data(), nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (AnswerLater(c, line)) return;  // `show`: the reply may wait for a helper thread
    c->out = Execute(line);
    if (c->out.empty() || c->out.back() != '\n') c->out += '\n';
  }
  shard_.loop().Send(&c->send, c->fd, c->out.data(), c->out.size());
}

void ControlSocket::OnSent(Client* c, int result) {
  if (result <= 0) return Finish(c);
  c->sent += static_cast<size_t>(result);
  if (c->sent < c->out.size()) {
    shard_.loop().Send(&c->send, c->fd, c->out.data() + c->sent, c->out.size() - c->sent);
    return;
  }
  Finish(c);
}

void ControlSocket::Finish(Client* c) {
  close(c->fd);
  clients_.erase(std::remove(clients_.begin(), clients_.end(), c), clients_.end());
  delete c;
}

namespace {

std::string Error(std::string_view why) {
  std::string out = "{\"error\":";
  log::AppendJsonString(out, why);
  return out + "}";
}

// "d0.Example." -> "d0.example": queues and OwnerShard use the lower-case
// name without the root dot.
std::string NormalDomain(std::string_view d) {
  while (!d.empty() && d.back() == '.') d.remove_suffix(1);
  std::string out(d);
  for (char& c : out) c = base::AsciiLower(c);
  return out;
}

std::string TouchedJson(const delivery::Engine::Touched& t) {
  return absl::StrCat("{\"recipients\":", t.recipients, ",\"in_flight\":", t.in_flight);
}

}  // namespace

std::string ControlSocket::Stats() {
  delivery::Engine* engine = shard_.engine();
  std::string out = absl::StrCat("{\"shard\":", shard_.index());
  if (engine != nullptr) {
    const delivery::EngineStats& s = engine->stats();
    absl::StrAppend(&out, ",\"jobs_received\":", s.jobs_received, ",\"delivered\":", s.delivered,
                    ",\"deferred\":", s.deferred, ",\"bounced\":", s.bounced,
                    ",\"expired\":", s.expired, ",\"deleted\":", s.deleted, ",\"dsns\":", s.dsns,
                    ",\"connections_opened\":", s.connections_opened,
                    ",\"connection_failures\":", s.connection_failures,
                    ",\"dkim_signed\":", s.dkim_signed, ",\"dkim_reused\":", s.dkim_reused,
                    ",\"engine_messages\":", engine->messages(),
                    ",\"file_names\":", engine->interned_file_names());
  }
  const delivery::LedgerStats& l = shard_.ledger().stats();
  absl::StrAppend(&out, ",\"live_messages\":", shard_.ledger().live_messages(),
                  ",\"messages_retired\":", l.messages_retired,
                  ",\"journal_entries\":", l.journal_entries,
                  ",\"segments_removed\":", l.segments_removed, "}");
  return out;
}

// Writes the administrator's change to admin.state: a small synchronous
// write (temporary file, fdatasync, rename) on this shard's thread. Only
// `sluice queue` commands get here, rarely and one at a time per operator,
// so the shard's loop pausing for a few milliseconds is acceptable; moving
// it to a helper thread would need a reply that waits for it. The
// returned text ends the reply object.
std::string ControlSocket::Save(absl::FunctionRef<void(delivery::AdminState&)> change) {
  delivery::AdminStore* store = shard_.admin_store();
  if (store == nullptr) return ",\"saved\":false}";
  const absl::Status s = store->Update(change, base::WallMicros());
  if (s.ok()) return ",\"saved\":true}";
  std::string out = ",\"saved\":false,\"save_error\":";
  log::AppendJsonString(out, std::string(s.message()));
  return out + "}";
}

std::string ControlSocket::Execute(std::string_view line) {
  std::string_view rest = line;
  const std::string_view verb = base::NextWord(rest);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  delivery::Engine* engine = shard_.engine();
  if (verb == "list") return engine != nullptr ? engine->ListJson() : "[]";
  if (verb == "stats") return Stats();
  if (verb == "metrics") return MetricsText(shard_);  // not JSON: Prometheus text, every shard
  if (verb != "flush" && verb != "suspend" && verb != "resume" && verb != "suspensions" &&
      verb != "bounce" && verb != "delete" && verb != "hold" && verb != "release" &&
      verb != "messages" && verb != "shape") {
    // Unknown verbs first, so that a typo is not answered "needs an argument".
    return Error(absl::StrCat("unknown command \"", std::string(verb).substr(0, 32), "\""));
  }
  if (engine == nullptr) return Error("delivery is disabled (--no-delivery)");
  if (verb == "flush") {
    return absl::StrCat("{\"domains\":", engine->Flush(NormalDomain(rest)), "}");
  }
  if (verb == "suspensions") return engine->SuspensionsJson();
  if (verb == "messages") {
    uint64_t max = kMaxJobsListed;
    const std::string_view limit = base::NextWord(rest);
    if (!limit.empty() && !base::ParseUint64(limit, max)) return Error("messages: bad limit");
    std::optional<base::QueueId> only;
    if (!rest.empty() && !(only = base::QueueId::Parse(rest))) return Error("messages: bad id");
    bool truncated = false;
    std::string jobs = engine->JobsJson(max, only, truncated);
    return absl::StrCat("{\"truncated\":", truncated ? "true" : "false", ",\"jobs\":", jobs, "}");
  }
  if (verb == "shape") {
    std::vector<uint64_t> edges;
    for (std::string_view w = base::NextWord(rest); !w.empty(); w = base::NextWord(rest)) {
      uint64_t e = 0;
      if (!base::ParseUint64(w, e) || (!edges.empty() && e <= edges.back()) || edges.size() > 64) {
        return Error("shape: bucket edges must be increasing seconds");
      }
      edges.push_back(e);
    }
    return engine->ShapeJson(edges);
  }
  if (verb == "suspend" || verb == "resume") return SuspendOrResume(verb, rest);
  return ActOnSelection(verb, rest);
}

// suspend DOMAIN [UNTIL_US [REASON...]] | resume DOMAIN. Only the domain's
// owner shard acts; the others answer {"owner":false}.
std::string ControlSocket::SuspendOrResume(std::string_view verb, std::string_view rest) {
  delivery::Engine* engine = shard_.engine();
  const std::string domain = NormalDomain(base::NextWord(rest));
  if (domain.empty()) return Error(absl::StrCat(base::Av(verb), " needs a domain"));
  if (OwnerShard(domain, shard_.shard_count()) != shard_.index()) return "{\"owner\":false}";
  if (verb == "resume") {
    const bool was = engine->Resume(domain);
    std::string out = absl::StrCat("{\"owner\":true,\"was_suspended\":", was ? "true" : "false");
    if (!was) return out + "}";
    return out + Save([&](delivery::AdminState& st) {
             std::erase_if(st.suspensions, [&](const auto& s) { return s.domain == domain; });
           });
  }
  uint64_t until_us = 0;  // absent: until resumed
  if (const std::string_view until = base::NextWord(rest);
      !until.empty() && !base::ParseUint64(until, until_us)) {
    return Error("suspend: bad end time");
  }
  const std::string reason = delivery::CleanReason(rest);
  const size_t queued = engine->Suspend(domain, until_us, reason);
  const uint64_t now_us = base::WallMicros();
  return absl::StrCat("{\"owner\":true,\"recipients\":", queued) +
         Save([&](delivery::AdminState& st) {
           std::erase_if(st.suspensions, [&](const auto& s) { return s.domain == domain; });
           st.suspensions.push_back(delivery::Suspension{domain, now_us, until_us, reason});
         });
}

// bounce|delete|hold|release  id ID | domain DOMAIN.
std::string ControlSocket::ActOnSelection(std::string_view verb, std::string_view rest) {
  delivery::Engine* engine = shard_.engine();
  const std::string_view kind = base::NextWord(rest);
  delivery::Engine::Selector what;
  if (kind == "id") {
    what.id = base::QueueId::Parse(rest);
    if (!what.id) return Error(absl::StrCat("not a queue id: ", std::string(rest).substr(0, 32)));
  } else if (kind == "domain") {
    what.domain = NormalDomain(rest);
    if (what.domain.empty()) return Error(absl::StrCat(base::Av(verb), " domain needs a domain"));
    // Domain-wide actions belong to the owner shard (it alone queues the domain).
    if (OwnerShard(what.domain, shard_.shard_count()) != shard_.index()) {
      return "{\"owner\":false}";
    }
  } else {
    return Error(absl::StrCat(base::Av(verb), " needs \"id ID\" or \"domain DOMAIN\""));
  }
  const std::string owner = what.id ? "" : ",\"owner\":true";
  auto forget_id = [&](delivery::AdminState& st) {
    std::erase_if(st.held_ids, [&](base::QueueId id) { return id == *what.id; });
  };
  if (verb == "bounce" || verb == "delete") {
    const delivery::Engine::Touched t =
        verb == "bounce" ? engine->BounceQueued(what) : engine->DeleteQueued(what);
    std::string out = TouchedJson(t) + owner;
    // A held message that is gone needs no hold any more.
    const bool was_held = what.id && shard_.admin_store() != nullptr &&
                          std::ranges::count(shard_.admin_store()->Snapshot().held_ids, *what.id);
    return was_held ? out + Save(forget_id) : out + "}";
  }
  if (verb == "hold") {
    const delivery::Engine::Touched t = engine->Hold(what);
    std::string out = TouchedJson(t) + owner;
    if (what.id && t.recipients + t.in_flight == 0) return out + "}";
    return out + Save([&](delivery::AdminState& st) {
             if (what.id) {
               if (!std::ranges::count(st.held_ids, *what.id)) st.held_ids.push_back(*what.id);
             } else if (!std::ranges::count(st.held_domains, what.domain)) {
               st.held_domains.push_back(what.domain);
             }
           });
  }
  const std::optional<delivery::Engine::Touched> t = engine->Release(what);
  if (!t) return absl::StrCat("{\"held\":false", owner, "}");
  return absl::StrCat(TouchedJson(*t), ",\"held\":true", owner) +
         Save([&](delivery::AdminState& st) {
           if (what.id) return forget_id(st);
           std::erase_if(st.held_domains, [&](const std::string& d) { return d == what.domain; });
         });
}

// `show` (server/admin_show.h) answers once the home shard's helper read
// the record: the client waits with no operation in flight (so nothing else
// ends it), then its reply is sent as Execute's would be. If the shard stops
// meanwhile, the helper's `done` never runs (the pool drains only in the
// shard's loop) and ~ControlSocket closes the client.
bool ControlSocket::AnswerLater(Client* c, std::string_view line) {
  std::string_view rest = line;
  if (base::NextWord(rest) != "show") return false;
  AnswerShow(shard_, rest, [this, c](std::string reply) {
    c->out = std::move(reply);
    c->out += '\n';
    shard_.loop().Send(&c->send, c->fd, c->out.data(), c->out.size());
  });
  return true;
}

}  // namespace sluice::server
