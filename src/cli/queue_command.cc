// `sluice queue` dispatch and the commands that act through the daemon:
// list, stats, flush, suspend, resume, suspensions, bounce, delete, hold,
// release. See queue_command.h.
#include "queue_command.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "admin_client.h"
#include "sluice/base/clock.h"
#include "sluice/base/queue_id.h"
#include "sluice/base/strings.h"
#include "sluice/delivery/admin_state.h"
#include "sluice/log/json.h"
#include "table.h"

namespace sluice::cli {
namespace {

constexpr char kQueueUsage[] =
    "usage: sluice queue <command> [--spool DIR | --config FILE] [--json]\n"
    "  list                          destination queues of the running daemon\n"
    "  messages [--domain D] [--spool-only]\n"
    "                                queued messages: pending recipients, state, attempts,\n"
    "                                next retry, last error (like mailq)\n"
    "  show ID [--envelope|--body] [--recipient ADDRESS]\n"
    "                                a message's envelope and contents (like postcat)\n"
    "  shape [--top N]               pending recipients per domain and age (like qshape)\n"
    "  stats                         delivery counters per shard and totals (JSON)\n"
    "  flush [DOMAIN]                retry deferred mail now\n"
    "  suspend DOMAIN [--for 2h] [--reason TEXT]\n"
    "                                no new deliveries to DOMAIN (kept across restarts)\n"
    "  resume DOMAIN                 end a suspension\n"
    "  suspensions                   suspensions in force\n"
    "  hold --id ID | --domain D     keep mail from delivery until released\n"
    "  release --id ID | --domain D  end a hold\n"
    "  bounce --id ID | --domain D   fail queued mail now, DSN to the sender\n"
    "  delete --id ID | --domain D   remove queued mail, no DSN (logged as Deletion)\n";

void Print(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

std::string JsonString(std::string_view s) {
  std::string out;
  log::AppendJsonString(out, s);
  return out;
}

std::string NormalDomain(std::string_view d) {
  while (!d.empty() && d.back() == '.') d.remove_suffix(1);
  std::string out(d);
  for (char& c : out) c = base::AsciiLower(c);
  return out;
}

// The reply of the shard that owns the domain ({"owner":true,...}).
const JsonValue* OwnerReply(const std::vector<JsonValue>& replies) {
  for (const JsonValue& r : replies) {
    if (r.Bool("owner")) return &r;
  }
  return nullptr;
}

// A change the daemon could not save in admin.state: it holds until the
// next restart only. Said loudly, since the point of saving is restarts.
void WarnUnsaved(const std::vector<JsonValue>& replies) {
  for (const JsonValue& r : replies) {
    if (r.Has("saved") && !r.Bool("saved")) {
      std::fprintf(stderr,
                   "sluice: warning: the change is in force but not saved (%s): a restart "
                   "forgets it\n",
                   r.Str("save_error").c_str());
      return;
    }
  }
}

int List(const QueueContext& q) {
  auto replies = AdminCallJson(q.control_dir, "list");
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  std::vector<const JsonValue*> domains;
  for (const JsonValue& r : *replies) {
    for (const JsonValue& d : r.items) domains.push_back(&d);
  }
  std::sort(domains.begin(), domains.end(), [](const JsonValue* a, const JsonValue* b) {
    return a->Str("domain") < b->Str("domain");
  });
  if (q.json) {
    std::string out = "[";
    for (const JsonValue* d : domains) {
      // Re-emitted in the daemon's own field order.
      absl::StrAppend(&out, out.size() > 1 ? ",\n" : "\n",
                      "{\"domain\":", JsonString(d->Str("domain")));
      for (const auto& [k, v] : d->members) {
        if (k == "domain") continue;
        absl::StrAppend(&out, ",\"", k, "\":",
                        v.type == JsonValue::Type::kBool ? (v.boolean ? "true" : "false") : v.text);
      }
      out += "}";
    }
    Print(out + "\n]\n");
    return 0;
  }
  const uint64_t now = base::WallMicros();
  Table t({"DOMAIN", "READY", "DEFERRED", "IN-FLIGHT", "HELD", "RCPTS", "CONNS", "OLDEST",
           "NEXT-ATTEMPT", "STATE"},
          {false, true, true, true, true, true, true, true, false, false});
  for (const JsonValue* d : domains) {
    std::string state;
    if (d->Bool("suspended")) state = "suspended";
    if (d->Bool("held_domain")) absl::StrAppend(&state, state.empty() ? "" : ",", "held");
    if (d->U64("rate_permille") != 1000) {
      absl::StrAppend(&state, state.empty() ? "" : ",", "backoff ", d->U64("rate_permille"),
                      "/1000");
    }
    t.Add({d->Str("domain"), absl::StrCat(d->U64("ready")), absl::StrCat(d->U64("deferred")),
           absl::StrCat(d->U64("in_flight")), absl::StrCat(d->U64("held")),
           absl::StrCat(d->U64("recipients")), absl::StrCat(d->U64("connections")),
           FormatAge(d->U64("oldest_us"), now), FormatDue(d->U64("next_attempt_us"), now),
           state.empty() ? "active" : state});
  }
  Print(t.Render());
  return 0;
}

// One JSON document: {"shards":[...], "totals":{...}}. Totals add every
// numeric counter except the shard number.
int Stats(const QueueContext& q) {
  auto replies = AdminCallJson(q.control_dir, "stats");
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  std::vector<std::pair<std::string, uint64_t>> totals;
  std::string out = "{\"shards\":[";
  for (size_t i = 0; i < replies->size(); ++i) {
    const JsonValue& r = (*replies)[i];
    absl::StrAppend(&out, i > 0 ? ",\n  " : "\n  ", "{");
    bool first = true;
    for (const auto& [k, v] : r.members) {
      absl::StrAppend(&out, first ? "" : ",", "\"", k, "\":", v.text);
      first = false;
      if (k == "shard") continue;
      auto it =
          std::find_if(totals.begin(), totals.end(), [&](const auto& p) { return p.first == k; });
      if (it == totals.end()) it = totals.insert(totals.end(), {k, 0});
      it->second += r.U64(k);
    }
    out += "}";
  }
  out += "\n],\n\"totals\":{";
  for (size_t i = 0; i < totals.size(); ++i) {
    absl::StrAppend(&out, i > 0 ? "," : "", "\"", totals[i].first, "\":", totals[i].second);
  }
  absl::StrAppend(&out, "}}\n");
  Print(out);
  return 0;
}

int Flush(const QueueContext& q) {
  if (q.args.size() > 2) return QueueUsage("queue flush takes at most one domain");
  const std::string domain = q.args.size() == 2 ? NormalDomain(q.args[1]) : "";
  auto replies = AdminCallJson(q.control_dir, absl::StrCat("flush ", domain));
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  uint64_t n = 0;
  for (const JsonValue& r : *replies) n += r.U64("domains");
  if (!domain.empty() && n == 0) return Fail(absl::StrCat("no mail queued for ", domain));
  if (q.json) {
    Print(absl::StrCat("{\"domains_flushed\":", n, "}\n"));
  } else {
    Print(absl::StrCat("flushed ", n, n == 1 ? " domain" : " domains", "\n"));
  }
  return 0;
}

int Suspend(const QueueContext& q) {
  if (q.args.size() != 2) return QueueUsage("queue suspend needs one domain");
  const std::string domain = NormalDomain(q.args[1]);
  uint64_t until_us = 0;
  if (const std::string d = Flag(q, "--for"); !d.empty()) {
    auto seconds = ParseDurationSeconds(d);
    if (!seconds.ok()) return QueueUsage(absl::StrCat("--for: ", seconds.status().message()));
    until_us = base::WallMicros() + *seconds * 1000000;
  }
  const std::string reason = Flag(q, "--reason");
  if (reason.find('\n') != std::string::npos || reason.size() > delivery::kMaxReasonSize) {
    return QueueUsage(
        absl::StrCat("--reason must be one line of at most ", delivery::kMaxReasonSize, " bytes"));
  }
  auto replies =
      AdminCallJson(q.control_dir, absl::StrCat("suspend ", domain, " ", until_us, " ", reason));
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  const JsonValue* owner = OwnerReply(*replies);
  if (owner == nullptr) return Fail("the shard that owns " + domain + " did not answer");
  WarnUnsaved(*replies);
  const uint64_t queued = owner->U64("recipients");
  if (queued == 0) {
    std::fprintf(stderr, "sluice: warning: no mail queued for %s; suspended anyway\n",
                 domain.c_str());
  }
  if (q.json) {
    Print(absl::StrCat("{\"domain\":", JsonString(domain), ",\"until_us\":", until_us,
                       ",\"reason\":", JsonString(reason), ",\"recipients\":", queued, "}\n"));
  } else {
    Print(absl::StrCat("suspended ", domain, " ",
                       until_us == 0 ? "until resumed" : "until " + FormatTime(until_us), " (",
                       queued, " recipients queued)\n"));
  }
  return 0;
}

int Resume(const QueueContext& q) {
  if (q.args.size() != 2) return QueueUsage("queue resume needs one domain");
  const std::string domain = NormalDomain(q.args[1]);
  auto replies = AdminCallJson(q.control_dir, "resume " + domain);
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  const JsonValue* owner = OwnerReply(*replies);
  if (owner == nullptr) return Fail("the shard that owns " + domain + " did not answer");
  if (!owner->Bool("was_suspended")) return Fail(domain + " is not suspended");
  WarnUnsaved(*replies);
  Print(q.json ? absl::StrCat("{\"domain\":", JsonString(domain), ",\"resumed\":true}\n")
               : absl::StrCat("resumed ", domain, "\n"));
  return 0;
}

int Suspensions(const QueueContext& q) {
  if (q.args.size() != 1) return QueueUsage("queue suspensions takes no argument");
  auto replies = AdminCallJson(q.control_dir, "suspensions");
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  std::vector<const JsonValue*> all;
  for (const JsonValue& r : *replies) {
    for (const JsonValue& s : r.items) all.push_back(&s);
  }
  std::sort(all.begin(), all.end(), [](const JsonValue* a, const JsonValue* b) {
    return a->Str("domain") < b->Str("domain");
  });
  const uint64_t now = base::WallMicros();
  if (q.json) {
    std::string out = "[";
    for (const JsonValue* s : all) {
      absl::StrAppend(&out, out.size() > 1 ? ",\n" : "\n",
                      "{\"domain\":", JsonString(s->Str("domain")),
                      ",\"since_us\":", s->U64("since_us"), ",\"until_us\":", s->U64("until_us"),
                      ",\"recipients\":", s->U64("recipients"),
                      ",\"reason\":", JsonString(s->Str("reason")), "}");
    }
    Print(out + "\n]\n");
    return 0;
  }
  Table t({"DOMAIN", "SINCE", "UNTIL", "LEFT", "RCPTS", "REASON"},
          {false, false, false, false, true, false});
  for (const JsonValue* s : all) {
    const uint64_t until = s->U64("until_us");
    t.Add({s->Str("domain"), FormatTime(s->U64("since_us")),
           until == 0 ? "resumed by hand" : FormatTime(until),
           until == 0 ? "-" : FormatDue(until, now), absl::StrCat(s->U64("recipients")),
           s->Str("reason").empty() ? "-" : s->Str("reason")});
  }
  Print(t.Render());
  return 0;
}

// bounce|delete|hold|release --id ID | --domain D.
int ActOnSelection(const QueueContext& q) {
  const std::string& verb = q.args[0];
  const std::string id_text = Flag(q, "--id");
  const std::string domain = NormalDomain(Flag(q, "--domain"));
  if (q.args.size() != 1 || id_text.empty() == domain.empty()) {
    return QueueUsage(absl::StrCat("queue ", verb,
                                   " needs exactly one of --id ID or --domain DOMAIN",
                                   q.args.size() > 1 ? " (not a bare argument)" : ""));
  }
  if (!id_text.empty() && !base::QueueId::Parse(id_text)) {
    return QueueUsage("not a queue id: " + id_text);
  }
  const std::string what = id_text.empty() ? domain : id_text;
  auto replies =
      AdminCallJson(q.control_dir, absl::StrCat(verb, id_text.empty() ? " domain " : " id ", what));
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  uint64_t recipients = 0, in_flight = 0;
  bool held = false;
  for (const JsonValue& r : *replies) {
    recipients += r.U64("recipients");
    in_flight += r.U64("in_flight");
    held |= r.Bool("held");
  }
  const std::string target = id_text.empty() ? "domain " + domain : "message " + id_text;
  if (verb == "release" && !held) return Fail(target + " is not held");
  if (recipients + in_flight == 0 && verb != "release") {
    if (verb == "hold" && !id_text.empty()) return Fail("no queued mail with id " + id_text);
    if (verb == "hold") {
      // Like a suspension, a domain hold may be set before the mail comes.
      std::fprintf(stderr, "sluice: warning: no mail queued for %s; held anyway\n", domain.c_str());
    } else {
      return Fail(id_text.empty() ? "no mail queued for " + domain
                                  : "no queued mail with id " + id_text);
    }
  }
  WarnUnsaved(*replies);
  if (q.json) {
    Print(absl::StrCat("{\"action\":\"", verb, "\",",
                       id_text.empty() ? "\"domain\":" : "\"id\":", JsonString(what),
                       ",\"recipients\":", recipients, ",\"in_flight\":", in_flight, "}\n"));
    return 0;
  }
  const char* done = verb == "bounce"   ? "bounced"
                     : verb == "delete" ? "deleted"
                     : verb == "hold"   ? "held"
                                        : "released";
  Print(absl::StrCat(done, " ", recipients, " queued recipients of ", target, "\n"));
  if (in_flight > 0) {
    Print(absl::StrCat(in_flight, " recipients being attempted right now were not touched",
                       verb == "hold" ? " (held if they are deferred)" : "", "\n"));
  }
  return 0;
}

}  // namespace

bool IsQueueFlag(std::string_view flag, bool& takes_value) {
  for (const char* f : {"--id", "--domain", "--for", "--reason", "--top", "--limit"}) {
    if (flag == f) return takes_value = true;
  }
  takes_value = false;
  return flag == "--envelope" || flag == "--body" || flag == "--spool-only";
}

std::string Flag(const QueueContext& q, const std::string& name) {
  auto it = q.flags.find(name);
  return it == q.flags.end() ? std::string() : it->second;
}

int QueueUsage(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "sluice: %s\n", error.c_str());
  std::fputs(kQueueUsage, error.empty() ? stdout : stderr);
  return error.empty() ? 0 : 2;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "sluice: %s\n", message.c_str());
  return 1;
}

int RunQueueCommand(const QueueContext& q) {
  const std::string verb = q.args.empty() ? "" : q.args[0];
  if (verb == "messages") return QueueMessages(q);
  if (verb == "show") return QueueShow(q);
  if (verb == "shape") return QueueShape(q);
  if (verb == "list" || verb == "stats") {
    if (q.args.size() != 1) return QueueUsage(absl::StrCat("queue ", verb, " takes no argument"));
    return verb == "list" ? List(q) : Stats(q);
  }
  if (verb == "flush") return Flush(q);
  if (verb == "suspend") return Suspend(q);
  if (verb == "resume") return Resume(q);
  if (verb == "suspensions") return Suspensions(q);
  if (verb == "bounce" || verb == "delete" || verb == "hold" || verb == "release") {
    return ActOnSelection(q);
  }
  return QueueUsage(verb.empty() ? "queue needs a command"
                                 : absl::StrCat("unknown queue command '", verb, "'"));
}

}  // namespace sluice::cli
