// A shard's answer to `show` (server/admin_show.h): its jobs for the
// message and, on the message's home shard, the record read and decoded on
// a helper thread.
#include "sluice/server/admin_show.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shard.h"
#include "sluice/admin/show.h"
#include "sluice/base/strings.h"
#include "sluice/delivery/engine.h"
#include "sluice/delivery/ledger.h"
#include "sluice/io/helper_pool.h"
#include "sluice/log/json.h"
#include "sluice/merge/template.h"
#include "sluice/server/control_socket.h"
#include "sluice/spool/spool_directory.h"

namespace sluice::server {
namespace {

std::string Quote(std::string_view s) {
  std::string out;
  log::AppendJsonString(out, s);
  return out;
}

// The added headers and the body, at most `max` bytes of them.
std::string Prefix(std::string_view headers, std::string_view body, uint64_t max) {
  std::string out(headers.substr(0, max));
  if (out.size() < max) out.append(body.substr(0, max - out.size()));
  return out;
}

absl::StatusOr<std::string> ContentJson(const spool::ParsedFile& record, const ShowRequest& request,
                                        const spool::Recipient* chosen) {
  const spool::Envelope& e = record.envelope;
  std::string_view body = record.body;
  std::string rendered;
  const bool is_template = e.is_merge() && chosen == nullptr;
  if (e.is_merge() && chosen != nullptr) {
    auto r = merge::RenderStored(record.body, e.merge_fields, chosen->values);
    if (!r.ok()) return r.status();
    rendered = std::move(*r);
    body = rendered;
  }
  const uint64_t size = e.added_headers.size() + body.size();
  return absl::StrCat("{\"size\":", size,
                      ",\"truncated\":", size > request.content_max ? "true" : "false",
                      is_template ? ",\"template\":true" : "",
                      ",\"text\":", Quote(Prefix(e.added_headers, body, request.content_max)), "}");
}

// This shard's jobs for `id`: ",\"truncated\":B,\"jobs\":[...]".
std::string JobsMembers(Shard& shard, base::QueueId id) {
  delivery::Engine* engine = shard.engine();
  // --no-delivery: nothing is attempted, every recipient stays queued.
  if (engine == nullptr) return ",\"delivery\":false,\"truncated\":false,\"jobs\":[]";
  bool truncated = false;
  std::string jobs = engine->JobsJson(ControlSocket::kMaxJobsListed, id, truncated);
  return absl::StrCat(",\"truncated\":", truncated ? "true" : "false", ",\"jobs\":", jobs);
}

std::string Reply(Shard& shard, base::QueueId id, std::string_view home_members) {
  return absl::StrCat("{\"shard\":", shard.index(), base::Av(home_members), JobsMembers(shard, id),
                      "}");
}

// On a helper thread: touches only its arguments.
absl::StatusOr<std::string> ReadAndShow(const spool::RecordLocation& where,
                                        const ShowRequest& request) {
  auto bytes = spool::ReadRecord(where);
  if (!bytes.ok()) return bytes.status();
  auto parsed = spool::ParseFile(*bytes);
  if (!parsed.ok()) return parsed.status();
  if (parsed->envelope.id != request.id) {
    return absl::DataLossError(absl::StrCat(where.path, " holds another message"));
  }
  return ShowRecordJson(*parsed, request);
}

// Back on the shard: the reply for what the helper found.
std::string HomeReply(Shard& shard, const ShowRequest& request,
                      const absl::StatusOr<std::string>& shown) {
  if (shown.ok()) return Reply(shard, request.id, ",\"home\":true,\"message\":" + *shown);
  // Retired while it was read (its last recipients became final): gone.
  if (!shard.ledger().Find(request.id)) return Reply(shard, request.id, ",\"home\":false");
  return Reply(shard, request.id,
               ",\"home\":true,\"read_error\":" + Quote(base::Sv(shown.status().message())));
}

}  // namespace

std::optional<ShowRequest> ParseShowRequest(std::string_view rest) {
  ShowRequest r;
  const auto id = base::QueueId::Parse(base::NextWord(rest));
  if (!id || !base::ParseUint64(base::NextWord(rest), r.content_max)) return std::nullopt;
  r.id = *id;
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  if (rest.size() > admin::kShowRecipientFilterMax) return std::nullopt;
  r.recipient = std::string(rest);
  return r;
}

absl::StatusOr<std::string> ShowRecordJson(const spool::ParsedFile& record,
                                           const ShowRequest& request) {
  const spool::Envelope& e = record.envelope;
  std::string out =
      absl::StrCat("{\"id\":\"", e.id.ToString(), "\",\"arrival_us\":", e.arrival_micros,
                   ",\"size\":", e.added_headers.size() + e.body_size,
                   ",\"sender\":", Quote(e.sender), ",\"client\":", Quote(e.client_ip),
                   ",\"helo\":", Quote(e.helo), ",\"protocol\":", Quote(e.protocol));
  if (!e.campaign.empty()) absl::StrAppend(&out, ",\"campaign\":", Quote(e.campaign));
  if (!e.tenant.empty()) absl::StrAppend(&out, ",\"tenant\":", Quote(e.tenant));
  absl::StrAppend(&out, ",\"eight_bit\":", e.eight_bit ? "true" : "false",
                  ",\"smtputf8\":", e.smtputf8 ? "true" : "false");
  std::string listed;
  uint64_t matched = 0;
  const spool::Recipient* chosen = nullptr;
  for (size_t i = 0; i < e.recipients.size(); ++i) {
    const std::string& address = e.recipients[i].address;
    if (!request.recipient.empty() && !base::EqualsIgnoreCase(address, request.recipient)) continue;
    if (chosen == nullptr) chosen = &e.recipients[i];
    if (matched++ >= admin::kShowRecipientsMax) continue;
    absl::StrAppend(&listed, listed.empty() ? "" : ",", "{\"index\":", i,
                    ",\"recipient\":", Quote(address), "}");
  }
  absl::StrAppend(&out, ",\"recipients_total\":", e.recipients.size(), ",\"recipients_truncated\":",
                  matched > admin::kShowRecipientsMax ? "true" : "false", ",\"recipients\":[",
                  listed, "]");
  if (request.content_max > 0) {
    auto content = ContentJson(record, request, request.recipient.empty() ? nullptr : chosen);
    if (!content.ok()) return content.status();
    absl::StrAppend(&out, ",\"content\":", *content);
  }
  return out + "}";
}

void AnswerShow(Shard& shard, std::string_view rest, std::function<void(std::string)> reply) {
  const std::optional<ShowRequest> request = ParseShowRequest(rest);
  if (!request) return reply("{\"error\":\"show: needs ID CONTENT_MAX [RECIPIENT]\"}");
  const std::optional<delivery::RecordRef> where = shard.ledger().Find(request->id);
  if (!where) return reply(Reply(shard, request->id, ",\"home\":false"));
  spool::RecordLocation location{
      absl::StrCat(shard.config().spool_dir, "/", where->dir, "/", where->file), where->offset,
      where->length};
  io::HelperPool* helpers = shard.helpers();
  if (helpers == nullptr) {  // tests without a pool: read here
    return reply(HomeReply(shard, *request, ReadAndShow(location, *request)));
  }
  auto shown = std::make_shared<absl::StatusOr<std::string>>();
  io::HelperPool::Job job;
  job.work = [shown, location = std::move(location), request = *request] {
    *shown = ReadAndShow(location, request);
  };
  // The shard outlives the pool's drains (Drain runs in its loop only).
  job.done = [&shard, shown, request = *request, reply] {
    reply(HomeReply(shard, request, *shown));
  };
  if (!helpers->Submit(shard.index(), std::move(job))) {
    reply(Reply(shard, request->id, ",\"home\":true,\"busy\":true"));
  }
}

}  // namespace sluice::server
