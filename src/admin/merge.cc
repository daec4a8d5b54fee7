// Merging the shards' control replies; see sluice/admin/merge.h. The logic
// and the JSON were `sluice queue`'s (cli/queue_command.cc); they moved here
// so that the HTTP admin API gives the same answers.
#include "sluice/admin/merge.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"

namespace sluice::admin {
namespace {

std::string JsonString(std::string_view s) {
  std::string out;
  log::AppendJsonString(out, s);
  return out;
}

// A change the daemon could not save in admin.state: it holds until the
// next restart only. Said loudly, since the point of saving is restarts.
void WarnUnsaved(const std::vector<JsonValue>& replies, Outcome& out) {
  for (const JsonValue& r : replies) {
    if (r.Has("saved") && !r.Bool("saved")) {
      out.warnings.push_back(absl::StrCat("the change is in force but not saved (",
                                          r.Str("save_error"), "): a restart forgets it"));
      return;
    }
  }
}

// The reply of the shard that owns the domain ({"owner":true,...}).
const JsonValue* OwnerReply(const std::vector<JsonValue>& replies) {
  for (const JsonValue& r : replies) {
    if (r.Bool("owner")) return &r;
  }
  return nullptr;
}

Outcome Failed(absl::Status status) {
  Outcome out;
  out.status = std::move(status);
  return out;
}

}  // namespace

absl::StatusOr<std::vector<JsonValue>> ParseReplies(const std::vector<std::string>& replies) {
  std::vector<JsonValue> out;
  for (const std::string& r : replies) {
    auto v = ParseJson(r);
    if (!v.ok()) {
      return absl::InternalError(
          absl::StrCat("unexpected reply from the daemon: ", r.substr(0, 200)));
    }
    if (v->type == JsonValue::Type::kObject && v->Has("error")) {
      return absl::FailedPreconditionError(v->Str("error"));
    }
    out.push_back(*std::move(v));
  }
  return out;
}

std::vector<const JsonValue*> SortedByDomain(const std::vector<JsonValue>& replies) {
  std::vector<const JsonValue*> all;
  for (const JsonValue& r : replies) {
    for (const JsonValue& d : r.items) all.push_back(&d);
  }
  std::sort(all.begin(), all.end(), [](const JsonValue* a, const JsonValue* b) {
    return a->Str("domain") < b->Str("domain");
  });
  return all;
}

Outcome MergeList(const std::vector<JsonValue>& replies) {
  Outcome result;
  std::string& out = result.json;
  out = "[";
  for (const JsonValue* d : SortedByDomain(replies)) {
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
  out += "\n]";
  return result;
}

Outcome MergeStats(const std::vector<JsonValue>& replies) {
  std::vector<std::pair<std::string, uint64_t>> totals;
  Outcome result;
  std::string& out = result.json;
  out = "{\"shards\":[";
  for (size_t i = 0; i < replies.size(); ++i) {
    const JsonValue& r = replies[i];
    absl::StrAppend(&out, i > 0 ? ",\n  " : "\n  ", "{");
    bool first = true;
    for (const JsonMember& member : r.members) {
      // Not a structured binding: clang 14 (the fuzz build) cannot capture
      // one in the lambda below.
      const std::string& k = member.first;
      absl::StrAppend(&out, first ? "" : ",", "\"", k, "\":", member.second.text);
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
  out += "}}";
  return result;
}

Outcome MergeFlush(const std::vector<JsonValue>& replies, std::string_view domain) {
  uint64_t n = 0;
  for (const JsonValue& r : replies) n += r.U64("domains");
  if (!domain.empty() && n == 0) {
    return Failed(absl::NotFoundError(absl::StrCat("no mail queued for ", base::Av(domain))));
  }
  Outcome out;
  out.count = n;
  out.json = absl::StrCat("{\"domains_flushed\":", n, "}");
  return out;
}

Outcome MergeSuspend(const std::vector<JsonValue>& replies, std::string_view domain,
                     uint64_t until_us, std::string_view reason) {
  const JsonValue* owner = OwnerReply(replies);
  if (owner == nullptr) {
    return Failed(absl::FailedPreconditionError(
        absl::StrCat("the shard that owns ", base::Av(domain), " did not answer")));
  }
  Outcome out;
  WarnUnsaved(replies, out);
  out.count = owner->U64("recipients");
  if (out.count == 0) {
    out.warnings.push_back(
        absl::StrCat("no mail queued for ", base::Av(domain), "; suspended anyway"));
  }
  out.json = absl::StrCat("{\"domain\":", JsonString(domain), ",\"until_us\":", until_us,
                          ",\"reason\":", JsonString(reason), ",\"recipients\":", out.count, "}");
  return out;
}

Outcome MergeResume(const std::vector<JsonValue>& replies, std::string_view domain) {
  const JsonValue* owner = OwnerReply(replies);
  if (owner == nullptr) {
    return Failed(absl::FailedPreconditionError(
        absl::StrCat("the shard that owns ", base::Av(domain), " did not answer")));
  }
  if (!owner->Bool("was_suspended")) {
    return Failed(
        absl::FailedPreconditionError(absl::StrCat(base::Av(domain), " is not suspended")));
  }
  Outcome out;
  WarnUnsaved(replies, out);
  out.json = absl::StrCat("{\"domain\":", JsonString(domain), ",\"resumed\":true}");
  return out;
}

Outcome MergeSuspensions(const std::vector<JsonValue>& replies) {
  Outcome result;
  std::string& out = result.json;
  out = "[";
  for (const JsonValue* s : SortedByDomain(replies)) {
    absl::StrAppend(&out, out.size() > 1 ? ",\n" : "\n",
                    "{\"domain\":", JsonString(s->Str("domain")),
                    ",\"since_us\":", s->U64("since_us"), ",\"until_us\":", s->U64("until_us"),
                    ",\"recipients\":", s->U64("recipients"),
                    ",\"reason\":", JsonString(s->Str("reason")), "}");
  }
  out += "\n]";
  return result;
}

Outcome MergeSelection(const std::vector<JsonValue>& replies, std::string_view verb,
                       std::string_view id, std::string_view domain) {
  uint64_t recipients = 0, in_flight = 0;
  bool held = false;
  for (const JsonValue& r : replies) {
    recipients += r.U64("recipients");
    in_flight += r.U64("in_flight");
    held |= r.Bool("held");
  }
  const std::string target = id.empty() ? absl::StrCat("domain ", base::Av(domain))
                                        : absl::StrCat("message ", base::Av(id));
  if (verb == "release" && !held) {
    return Failed(absl::FailedPreconditionError(absl::StrCat(target, " is not held")));
  }
  Outcome out;
  if (recipients + in_flight == 0 && verb != "release") {
    if (verb == "hold" && id.empty()) {
      // Like a suspension, a domain hold may be set before the mail comes.
      out.warnings.push_back(
          absl::StrCat("no mail queued for ", base::Av(domain), "; held anyway"));
    } else {
      return Failed(
          absl::NotFoundError(id.empty() ? absl::StrCat("no mail queued for ", base::Av(domain))
                                         : absl::StrCat("no queued mail with id ", base::Av(id))));
    }
  }
  WarnUnsaved(replies, out);
  out.count = recipients;
  out.in_flight = in_flight;
  out.json =
      absl::StrCat("{\"action\":\"", base::Av(verb), "\",",
                   id.empty() ? "\"domain\":" : "\"id\":", JsonString(id.empty() ? domain : id),
                   ",\"recipients\":", recipients, ",\"in_flight\":", in_flight, "}");
  return out;
}

Outcome MergeJobs(const std::vector<JsonValue>& replies) {
  bool truncated = false;
  std::string jobs;
  size_t n = 0;
  for (const JsonValue& r : replies) {
    truncated |= r.Bool("truncated");
    const JsonValue* list = r.Get("jobs");
    if (list == nullptr) continue;
    for (const JsonValue& j : list->items) {
      absl::StrAppend(&jobs, n++ > 0 ? ",\n" : "\n", ToJson(j));
    }
  }
  Outcome out;
  out.count = n;
  out.json = absl::StrCat("{\"truncated\":", truncated ? "true" : "false", ",\"jobs\":[", jobs,
                          n > 0 ? "\n" : "", "]}");
  return out;
}

std::string NormalDomain(std::string_view d) {
  while (!d.empty() && d.back() == '.') d.remove_suffix(1);
  std::string out(d);
  for (char& c : out) c = base::AsciiLower(c);
  return out;
}

absl::StatusOr<uint64_t> ParseDurationSeconds(std::string_view text) {
  uint64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        unit = 0;
    }
    if (unit != 0) text.remove_suffix(1);
    if (unit == 0) unit = 1;
  }
  uint64_t n = 0;
  // Ten years: anything longer is a typo, and the microseconds must not wrap.
  if (!base::ParseUint64(text, n) || n == 0 || n > 10ull * 365 * 86400 / unit) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a duration: '", base::Av(text), "' (e.g. 90s, 15m, 2h, 1d)"));
  }
  return n * unit;
}

}  // namespace sluice::admin
