// The read-mostly views of `sluice queue`: `messages` (like mailq /
// postqueue -j) and `show` (like postcat); `shape` is in queue_shape.cc.
//
// They join two sources: the spool files (envelopes, read-only, safe while
// the daemon runs) and the running daemon's delivery state (which
// recipients are still pending, ready/deferred/held/in flight, attempts,
// next retry, last error), asked first so that mail arriving in between
// shows as "new" rather than done. Without a daemon they say so and show
// the spool alone: every recipient of a file is then "queued" (the spool
// scan does not read the delivery journals, so a recipient delivered from
// a partly finished message still shows).
#include <algorithm>
#include <cstdio>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "admin_client.h"
#include "queue_command.h"
#include "sluice/base/clock.h"
#include "sluice/base/queue_id.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"
#include "sluice/merge/template.h"
#include "sluice/spool/message_file.h"
#include "sluice/spool/spool_directory.h"
#include "table.h"

namespace sluice::cli {
namespace {

// Recipient rows a text view prints per message (--json has them all).
constexpr size_t kRecipientRowsMax = 50;
// A recipient of a message newer than this, when the daemon was asked, may
// not have reached its owner shard yet: "new", not "done".
constexpr uint64_t kAnnounceSlackUs = 2'000'000;

struct JobInfo {
  std::string domain, state, error;
  uint64_t attempts = 0, next_us = 0;
};

struct DaemonView {
  bool available = false;
  bool truncated = false;
  uint64_t asked_us = 0;
  // message id -> recipient index -> its job
  absl::flat_hash_map<base::QueueId, absl::flat_hash_map<uint32_t, JobInfo>> jobs;
};

struct RecipientState {
  std::string address, domain, state, error;
  uint64_t attempts = 0, next_us = 0;
};

void Print(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

std::string JsonString(std::string_view s) {
  std::string out;
  log::AppendJsonString(out, s);
  return out;
}

std::string DomainOf(std::string_view address) {
  const size_t at = address.rfind('@');
  std::string d(at == std::string_view::npos ? std::string_view() : address.substr(at + 1));
  while (!d.empty() && (d.back() == '>' || d.back() == '.')) d.pop_back();
  for (char& c : d) c = base::AsciiLower(c);
  return d;
}

// Asks the daemon unless --spool-only; a daemon that does not run (or does
// not deliver) is a note on stderr, not an error.
DaemonView AskDaemon(const QueueContext& q, std::optional<base::QueueId> only) {
  DaemonView view;
  if (!Flag(q, "--spool-only").empty()) return view;
  std::string line = absl::StrCat("messages ", Flag(q, "--limit"));
  if (only) absl::StrAppend(&line, Flag(q, "--limit").empty() ? "200000 " : " ", only->ToString());
  view.asked_us = base::WallMicros();
  auto replies = AdminCallJson(q.control_dir, line);
  if (!replies.ok()) {
    // No daemon, or one that delivers nothing (--no-delivery): the files
    // still tell what is queued.
    std::fprintf(stderr,
                 "sluice: note: %s: spool-only view (no delivery state: attempts, next retry "
                 "and last error need the running daemon)\n",
                 std::string(replies.status().message()).c_str());
    return view;
  }
  view.available = true;
  for (const JsonValue& r : *replies) {
    view.truncated |= r.Bool("truncated");
    const JsonValue* jobs = r.Get("jobs");
    if (jobs == nullptr) continue;
    for (const JsonValue& j : jobs->items) {
      auto id = base::QueueId::Parse(j.Str("id"));
      if (!id) continue;
      JobInfo info{j.Str("domain"), j.Str("state"), j.Str("error"), j.U64("attempts"),
                   j.U64("next_us")};
      auto& by_index = view.jobs[*id];
      if (const JsonValue* rc = j.Get("recipients")) {
        for (const JsonValue& i : rc->items) {
          uint64_t n = 0;
          if (base::ParseUint64(i.text, n)) by_index[static_cast<uint32_t>(n)] = info;
        }
      }
    }
  }
  if (view.truncated) {
    std::fprintf(stderr,
                 "sluice: note: the daemon listed only the first jobs (--limit N for "
                 "more): other recipients show as \"unlisted\"\n");
  }
  return view;
}

std::vector<RecipientState> StatesOf(const spool::Envelope& e, const DaemonView& view) {
  std::vector<RecipientState> out(e.recipients.size());
  auto jobs = view.jobs.find(e.id);
  for (size_t i = 0; i < e.recipients.size(); ++i) {
    RecipientState& r = out[i];
    r.address = e.recipients[i].address;
    r.domain = DomainOf(r.address);
    const JobInfo* job = nullptr;
    if (jobs != view.jobs.end()) {
      auto it = jobs->second.find(static_cast<uint32_t>(i));
      if (it != jobs->second.end()) job = &it->second;
    }
    if (job != nullptr) {
      r.state = job->state;
      r.attempts = job->attempts;
      r.next_us = job->next_us;
      r.error = job->error;
    } else if (!view.available) {
      r.state = "queued";
    } else if (view.truncated) {
      r.state = "unlisted";
    } else {
      r.state = e.id.micros() + kAnnounceSlackUs > view.asked_us ? "new" : "done";
    }
  }
  return out;
}

bool Pending(const RecipientState& r) { return r.state != "done"; }

std::string MessageJson(const spool::Envelope& e, const std::vector<RecipientState>& states,
                        uint64_t now) {
  const uint64_t size = e.added_headers.size() + e.body_size;
  const uint64_t age_s = now > e.arrival_micros ? (now - e.arrival_micros) / 1000000 : 0;
  std::string out =
      absl::StrCat("{\"id\":\"", e.id.ToString(), "\",\"age_s\":", age_s, ",\"size\":", size,
                   ",\"sender\":", JsonString(e.sender), ",\"recipients\":[");
  for (size_t i = 0; i < e.recipients.size(); ++i) {
    absl::StrAppend(&out, i > 0 ? "," : "", JsonString(e.recipients[i].address));
  }
  out += "],\"recipient_states\":[";
  for (size_t i = 0; i < states.size(); ++i) {
    const RecipientState& r = states[i];
    absl::StrAppend(&out, i > 0 ? "," : "", "{\"recipient\":", JsonString(r.address),
                    ",\"domain\":", JsonString(r.domain), ",\"state\":\"", r.state,
                    "\",\"attempts\":", r.attempts, ",\"next_us\":", r.next_us,
                    ",\"error\":", JsonString(r.error), "}");
  }
  absl::StrAppend(&out, "],\"helo\":", JsonString(e.helo), ",\"client\":", JsonString(e.client_ip),
                  ",\"arrival_us\":", e.arrival_micros);
  if (!e.campaign.empty()) absl::StrAppend(&out, ",\"campaign\":", JsonString(e.campaign));
  if (!e.tenant.empty()) absl::StrAppend(&out, ",\"tenant\":", JsonString(e.tenant));
  if (e.is_merge()) {
    out += ",\"merge_fields\":[";
    for (size_t i = 0; i < e.merge_fields.size(); ++i) {
      absl::StrAppend(&out, i > 0 ? "," : "", JsonString(e.merge_fields[i]));
    }
    out += "],\"values\":[";  // per recipient, in the order of "recipients"
    for (size_t i = 0; i < e.recipients.size(); ++i) {
      out += i > 0 ? ",[" : "[";
      for (size_t k = 0; k < e.recipients[i].values.size(); ++k) {
        absl::StrAppend(&out, k > 0 ? "," : "", JsonString(e.recipients[i].values[k]));
      }
      out += ']';
    }
    out += ']';
  }
  return out + "}";
}

// One row per shown recipient: the message's columns on its first row only.
void AddMessageRows(Table& t, const spool::Envelope& e, const std::vector<RecipientState>& states,
                    const std::string& domain, uint64_t now) {
  bool first = true;
  size_t shown = 0, hidden = 0;
  for (const RecipientState& r : states) {
    if (!Pending(r) || (!domain.empty() && r.domain != domain)) continue;
    if (shown == kRecipientRowsMax) {
      ++hidden;
      continue;
    }
    ++shown;
    std::vector<std::string> row;
    if (first) {
      row = {e.id.ToString(), FormatAge(e.arrival_micros, now),
             absl::StrCat(e.added_headers.size() + e.body_size),
             e.sender.empty() ? "<>" : e.sender};
    } else {
      row = {"", "", "", ""};
    }
    first = false;
    row.insert(row.end(), {r.address, r.state, r.attempts ? absl::StrCat(r.attempts) : "-",
                           r.state == "deferred" ? FormatDue(r.next_us, now) : "-",
                           r.error.empty() ? "-" : r.error});
    t.Add(std::move(row));
  }
  if (hidden > 0)
    t.Add({"", "", "", "", absl::StrCat("... and ", hidden, " more"), "", "", "", ""});
}

// postcat's envelope: the fields, then one row per recipient with its state.
// `framed`: "*** ENVELOPE ***" above and "*** MESSAGE ***" below.
std::string EnvelopeText(const spool::Envelope& e, const std::vector<RecipientState>& states,
                         uint64_t now, bool framed) {
  std::string out = framed ? "*** ENVELOPE ***\n" : "";
  absl::StrAppend(&out, "id:         ", e.id.ToString(), "\n");
  absl::StrAppend(&out, "arrival:    ", FormatTime(e.arrival_micros), " (",
                  FormatAge(e.arrival_micros, now), " ago)\n");
  absl::StrAppend(&out, "size:       ", e.added_headers.size() + e.body_size, " bytes\n");
  absl::StrAppend(&out, "sender:     <", e.sender, ">\n");
  absl::StrAppend(&out, "client:     ", e.client_ip.empty() ? "-" : e.client_ip,
                  e.helo.empty() ? "" : " (HELO " + e.helo + ")", "\n");
  if (!e.campaign.empty()) absl::StrAppend(&out, "campaign:   ", e.campaign, "\n");
  if (!e.tenant.empty()) absl::StrAppend(&out, "tenant:     ", e.tenant, "\n");
  size_t pending = 0;
  for (const RecipientState& r : states) pending += Pending(r);
  absl::StrAppend(&out, "recipients: ", e.recipients.size(), " (", pending, " pending)\n");
  Table t({"RECIPIENT", "STATE", "ATTEMPTS", "NEXT-RETRY", "LAST-ERROR"},
          {false, false, true, false, false});
  for (size_t i = 0; i < states.size() && i < kRecipientRowsMax; ++i) {
    const RecipientState& r = states[i];
    t.Add({r.address, r.state, r.attempts ? absl::StrCat(r.attempts) : "-",
           r.state == "deferred" ? FormatDue(r.next_us, now) : "-",
           r.error.empty() ? "-" : r.error});
  }
  if (states.size() > kRecipientRowsMax) {
    t.Add({absl::StrCat("... and ", states.size() - kRecipientRowsMax, " more (--json)")});
  }
  out += t.Render();
  if (framed) out += "*** MESSAGE ***\n";
  return out;
}

}  // namespace

int QueueMessages(const QueueContext& q) {
  if (q.args.size() != 1) return QueueUsage("queue messages takes no argument");
  const std::string domain = DomainOf(absl::StrCat("@", Flag(q, "--domain")));
  const DaemonView view = AskDaemon(q, std::nullopt);
  spool::ScanOptions scan;     // read-only: safe while the daemon runs
  scan.merge_values = q.json;  // only --json shows a batch's values
  auto report = spool::ScanSpool(q.spool_dir, scan);
  if (!report.ok()) return Fail(std::string(report.status().message()));
  const uint64_t now = base::WallMicros();
  Table t(
      {"ID", "AGE", "SIZE", "SENDER", "RECIPIENT", "STATE", "ATTEMPTS", "NEXT-RETRY", "LAST-ERROR"},
      {false, true, true, false, false, false, true, false, false});
  std::string out = q.json ? "[" : "";
  size_t messages = 0, pending = 0;
  uint64_t bytes = 0;
  for (const spool::QueuedMessage& m : report->messages) {
    const spool::Envelope& e = m.envelope;
    const std::vector<RecipientState> states = StatesOf(e, view);
    size_t mine = 0;
    for (const RecipientState& r : states) {
      mine += Pending(r) && (domain.empty() || r.domain == domain);
    }
    if (!domain.empty() && mine == 0) continue;
    ++messages;
    pending += mine;
    bytes += e.added_headers.size() + e.body_size;
    if (q.json) {
      absl::StrAppend(&out, messages > 1 ? ",\n" : "\n", MessageJson(e, states, now));
      if (out.size() > 1 << 16) {
        Print(out);
        out.clear();
      }
    } else {
      AddMessageRows(t, e, states, domain, now);
    }
  }
  for (const std::string& c : report->corrupt) std::fprintf(stderr, "corrupt: %s\n", c.c_str());
  if (q.json) {
    Print(out + "\n]\n");
    return 0;
  }
  if (messages == 0) {
    Print("queue is empty\n");
    return 0;
  }
  Print(t.Render());
  Print(absl::StrCat("-- ", messages, messages == 1 ? " message, " : " messages, ", pending,
                     " recipients pending, ", bytes, " bytes\n"));
  return 0;
}

int QueueShow(const QueueContext& q) {
  if (q.args.size() != 2) return QueueUsage("queue show needs one queue id");
  auto id = base::QueueId::Parse(q.args[1]);
  if (!id) return QueueUsage(absl::StrCat("not a queue id: ", q.args[1]));
  const bool want_envelope = Flag(q, "--body").empty();
  const bool want_body = Flag(q, "--envelope").empty();
  if (!want_envelope && !want_body) return QueueUsage("--envelope and --body exclude each other");
  auto path = spool::FindMessage(q.spool_dir, *id);
  if (!path.ok()) return Fail(std::string(path.status().message()));
  auto bytes = spool::ReadRecord(*path);
  if (!bytes.ok()) return Fail(std::string(bytes.status().message()));
  auto parsed = spool::ParseFile(*bytes);
  if (!parsed.ok()) {
    return Fail(absl::StrCat(path->path, ": ", parsed.status().message()));
  }
  const spool::Envelope& e = parsed->envelope;
  std::string body(parsed->body);
  if (!q.recipient.empty()) {
    // One recipient's message: for a mail merge, rendered from the stored
    // template with that recipient's values (what delivery sends).
    const spool::Recipient* r = nullptr;
    for (const spool::Recipient& each : e.recipients) {
      if (each.address == q.recipient) r = &each;
    }
    if (r == nullptr)
      return Fail(absl::StrCat("message ", q.args[1], " has no recipient ", q.recipient));
    if (e.is_merge()) {
      auto rendered = merge::RenderStored(parsed->body, e.merge_fields, r->values);
      if (!rendered.ok()) return Fail(absl::StrCat(path->path, ": ", rendered.status().message()));
      body = std::move(*rendered);
    }
  }
  const std::string message = e.added_headers + body;
  std::vector<RecipientState> states;
  if (want_envelope) {
    const DaemonView view = AskDaemon(q, *id);
    states = StatesOf(e, view);
  }
  const uint64_t now = base::WallMicros();
  if (q.json) {
    std::string out = "{";
    if (want_envelope) absl::StrAppend(&out, "\"envelope\":", MessageJson(e, states, now));
    if (want_body)
      absl::StrAppend(&out, want_envelope ? "," : "", "\"message\":", JsonString(message));
    Print(out + "}\n");
    return 0;
  }
  if (want_envelope) Print(EnvelopeText(e, states, now, want_body));
  if (want_body) Print(message);
  return 0;
}

}  // namespace sluice::cli
