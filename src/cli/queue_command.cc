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

using admin::NormalDomain;

// A merged answer (admin/merge.h): its warnings on stderr; false (after
// saying why) when it did nothing.
bool Report(const admin::Outcome& o) {
  if (!o.status.ok()) {
    Fail(std::string(o.status.message()));
    return false;
  }
  for (const std::string& w : o.warnings) {
    std::fprintf(stderr, "sluice: warning: %s\n", w.c_str());
  }
  return true;
}

int List(const QueueContext& q) {
  auto replies = AdminCallJson(q.control_dir, "list");
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  if (q.json) {
    Print(admin::MergeList(*replies).json + "\n");
    return 0;
  }
  const uint64_t now = base::WallMicros();
  Table t({"DOMAIN", "READY", "DEFERRED", "IN-FLIGHT", "HELD", "RCPTS", "CONNS", "OLDEST",
           "NEXT-ATTEMPT", "STATE"},
          {false, true, true, true, true, true, true, true, false, false});
  for (const JsonValue* d : admin::SortedByDomain(*replies)) {
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
  Print(admin::MergeStats(*replies).json + "\n");
  return 0;
}

int Flush(const QueueContext& q) {
  if (q.args.size() > 2) return QueueUsage("queue flush takes at most one domain");
  const std::string domain = q.args.size() == 2 ? NormalDomain(q.args[1]) : "";
  auto replies = AdminCallJson(q.control_dir, absl::StrCat("flush ", domain));
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  const admin::Outcome o = admin::MergeFlush(*replies, domain);
  if (!Report(o)) return 1;
  if (q.json) {
    Print(o.json + "\n");
  } else {
    Print(absl::StrCat("flushed ", o.count, o.count == 1 ? " domain" : " domains", "\n"));
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
  const admin::Outcome o = admin::MergeSuspend(*replies, domain, until_us, reason);
  if (!Report(o)) return 1;
  if (q.json) {
    Print(o.json + "\n");
  } else {
    Print(absl::StrCat("suspended ", domain, " ",
                       until_us == 0 ? "until resumed" : "until " + FormatTime(until_us), " (",
                       o.count, " recipients queued)\n"));
  }
  return 0;
}

int Resume(const QueueContext& q) {
  if (q.args.size() != 2) return QueueUsage("queue resume needs one domain");
  const std::string domain = NormalDomain(q.args[1]);
  auto replies = AdminCallJson(q.control_dir, "resume " + domain);
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  const admin::Outcome o = admin::MergeResume(*replies, domain);
  if (!Report(o)) return 1;
  Print(q.json ? o.json + "\n" : absl::StrCat("resumed ", domain, "\n"));
  return 0;
}

int Suspensions(const QueueContext& q) {
  if (q.args.size() != 1) return QueueUsage("queue suspensions takes no argument");
  auto replies = AdminCallJson(q.control_dir, "suspensions");
  if (!replies.ok()) return Fail(std::string(replies.status().message()));
  if (q.json) {
    Print(admin::MergeSuspensions(*replies).json + "\n");
    return 0;
  }
  const uint64_t now = base::WallMicros();
  Table t({"DOMAIN", "SINCE", "UNTIL", "LEFT", "RCPTS", "REASON"},
          {false, false, false, false, true, false});
  for (const JsonValue* s : admin::SortedByDomain(*replies)) {
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
  const admin::Outcome o = admin::MergeSelection(*replies, verb, id_text, domain);
  if (!Report(o)) return 1;
  if (q.json) {
    Print(o.json + "\n");
    return 0;
  }
  const std::string target = id_text.empty() ? "domain " + domain : "message " + id_text;
  const char* done = verb == "bounce"   ? "bounced"
                     : verb == "delete" ? "deleted"
                     : verb == "hold"   ? "held"
                                        : "released";
  Print(absl::StrCat(done, " ", o.count, " queued recipients of ", target, "\n"));
  if (o.in_flight > 0) {
    Print(absl::StrCat(o.in_flight, " recipients being attempted right now were not touched",
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
