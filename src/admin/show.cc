// One message's envelope joined with its recipients' delivery state; see
// sluice/admin/show.h.
#include "sluice/admin/show.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"

namespace sluice::admin {
namespace {

std::string Quote(std::string_view s) {
  std::string out;
  log::AppendJsonString(out, s);
  return out;
}

// The domain of an address, as queues name it.
std::string DomainOf(std::string_view address) {
  const size_t at = address.rfind('@');
  return NormalDomain(at == std::string_view::npos ? std::string_view() : address.substr(at + 1));
}

struct Holder {
  uint64_t shard = 0;
  const JsonValue* job = nullptr;
};

// Recipient index -> the job that holds it, from every shard's "jobs".
absl::flat_hash_map<uint64_t, Holder> Holders(const std::vector<JsonValue>& replies,
                                              std::string_view id) {
  absl::flat_hash_map<uint64_t, Holder> out;
  for (const JsonValue& r : replies) {
    const JsonValue* jobs = r.Get("jobs");
    if (jobs == nullptr) continue;
    for (const JsonValue& j : jobs->items) {
      if (j.Str("id") != id) continue;
      const JsonValue* rcpts = j.Get("recipients");
      if (rcpts == nullptr) continue;
      for (const JsonValue& i : rcpts->items) {
        uint64_t n = 0;
        if (base::ParseUint64(i.text, n)) out[n] = Holder{r.U64("shard"), &j};
      }
    }
  }
  return out;
}

// What a recipient no job holds is: see admin/show.h.
std::string_view Unheld(bool delivery, bool young) {
  return !delivery ? "queued" : young ? "new" : "final";
}

void AppendRecipient(std::string& out, const JsonValue& r, const Holder* h,
                     std::string_view unheld) {
  const std::string address = r.Str("recipient");
  absl::StrAppend(&out, "{\"index\":", r.U64("index"), ",\"recipient\":", Quote(address));
  if (h == nullptr) {
    absl::StrAppend(&out, ",\"domain\":", Quote(DomainOf(address)), ",\"state\":\"",
                    base::Av(unheld), "\",\"pending\":", unheld != "final" ? "true" : "false",
                    ",\"shard\":null,\"attempts\":0,\"next_us\":0,\"error\":\"\"}");
    return;
  }
  const JsonValue& j = *h->job;
  absl::StrAppend(&out, ",\"domain\":", Quote(j.Str("domain")),
                  ",\"state\":", Quote(j.Str("state")), ",\"pending\":true,\"shard\":", h->shard,
                  ",\"attempts\":", j.U64("attempts"), ",\"next_us\":", j.U64("next_us"),
                  ",\"error\":", Quote(j.Str("error")), "}");
}

}  // namespace

std::string ShowCommand(base::QueueId id, uint64_t content_max, std::string_view recipient) {
  std::string line = absl::StrCat("show ", id.ToString(), " ", content_max);
  if (!recipient.empty()) absl::StrAppend(&line, " ", base::Av(recipient));
  return line;
}

Outcome MergeShow(const std::vector<JsonValue>& replies, std::string_view id,
                  std::string_view recipient, uint64_t now_us) {
  Outcome o;
  const JsonValue* home = nullptr;
  for (const JsonValue& r : replies) {
    if (r.Bool("home")) home = &r;
  }
  if (home == nullptr) {
    o.status = absl::NotFoundError(absl::StrCat("no queued message ", base::Av(id)));
    return o;
  }
  if (home->Bool("busy")) {
    o.status = absl::UnavailableError(absl::StrCat(
        "shard ", home->U64("shard"), " has no helper thread free to read the message; retry"));
    return o;
  }
  const JsonValue* message = home->Get("message");
  if (message == nullptr || message->type != JsonValue::Type::kObject) {
    o.status = absl::InternalError(absl::StrCat("shard ", home->U64("shard"), ": reading ",
                                                base::Av(id), ": ", home->Str("read_error")));
    return o;
  }
  const JsonValue* listed = message->Get("recipients");
  if (!recipient.empty() && (listed == nullptr || listed->items.empty())) {
    o.status = absl::NotFoundError(
        absl::StrCat("message ", base::Av(id), " has no recipient ", base::Av(recipient)));
    return o;
  }
  const absl::flat_hash_map<uint64_t, Holder> holders = Holders(replies, id);
  const uint64_t arrival_us = message->U64("arrival_us");
  bool delivery = true;
  for (const JsonValue& r : replies) {
    if (const JsonValue* d = r.Get("delivery"); d != nullptr && !d->boolean) delivery = false;
  }
  const std::string_view unheld = Unheld(delivery, arrival_us + kShowAnnounceSlackUs > now_us);
  std::string out = "{";
  for (const JsonMember& m : message->members) {
    if (m.first == "recipients" || m.first == "content") continue;
    absl::StrAppend(&out, out.size() > 1 ? "," : "", Quote(m.first), ":", ToJson(m.second));
  }
  absl::StrAppend(
      &out, ",\"shard\":", home->U64("shard"),
      ",\"age_s\":", now_us > arrival_us ? (now_us - arrival_us) / 1000000 : 0,
      ",\"recipients_pending\":", delivery ? holders.size() : message->U64("recipients_total"),
      ",\"recipients\":[");
  if (listed != nullptr) {
    for (size_t i = 0; i < listed->items.size(); ++i) {
      if (i > 0) out += ',';
      const JsonValue& r = listed->items[i];
      const auto h = holders.find(r.U64("index"));
      AppendRecipient(out, r, h == holders.end() ? nullptr : &h->second, unheld);
    }
  }
  out += ']';
  if (const JsonValue* content = message->Get("content")) {
    absl::StrAppend(&out, ",\"content\":", ToJson(*content));
  }
  o.json = out + "}";
  for (const JsonValue& r : replies) {
    if (r.Bool("truncated")) {
      o.warnings.push_back(absl::StrCat("shard ", r.U64("shard"),
                                        " listed only some of the message's jobs: recipients "
                                        "past them show as final"));
    }
  }
  return o;
}

}  // namespace sluice::admin
