// One queued message shown whole, like `sluice queue show ID --json` but
// from the daemon alone: GET /api/admin/v1/message?id=ID (docs/HTTP.md).
//
// Every shard is asked `show ID CONTENT_MAX [RECIPIENT]` (ShowCommand) on
// its control socket (server/control_socket.h). The message's home shard
// (the one whose ledger holds its record: directory % shards) reads and
// decodes the record on a helper thread and answers with the envelope
// ("message", server/admin_show.h); every shard answers with the delivery
// jobs it holds for the message ("jobs", as `messages` does). MergeShow
// joins the two: one row per recipient with the state of the job that holds
// it, on whichever shard owns its domain.
//
// A recipient no shard holds a job for is final (delivered, bounced,
// expired or deleted: the ledger keeps no per-recipient outcome), or, for a
// message younger than kShowAnnounceSlackUs, possibly still on its way to
// its owner shard: "new", as `sluice queue show` says. A daemon that does
// not deliver (--no-delivery: its shards reply "delivery":false) holds no
// jobs: every recipient is "queued".
//
// Pure: JSON in, JSON out. What it trusts: the replies come from our own
// daemon; a missing field reads as empty or 0.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/admin/json_value.h"
#include "sluice/admin/merge.h"
#include "sluice/base/queue_id.h"

namespace sluice::admin {

// Recipients one reply lists (after the recipient filter): the reply is
// built in memory on a helper thread and parsed on the asking shard (about
// 400 bytes a recipient there), and a bulk batch may have a million. The
// rest is counted ("recipients_total", "recipients_truncated"); one of them
// is shown with recipient=ADDRESS.
inline constexpr uint64_t kShowRecipientsMax = 10'000;
// The longest recipient= filter: it travels on the control line (at most
// 1 KiB with the verb and the id) and no address is longer (RFC 5321 4.5.3.1:
// 256 for a path).
inline constexpr size_t kShowRecipientFilterMax = 512;
// As cli/queue_view.cc: a recipient of a message younger than this may not
// have reached its owner shard yet.
inline constexpr uint64_t kShowAnnounceSlackUs = 2'000'000;

// The control line. `content_max` 0: no headers and body in the reply.
std::string ShowCommand(base::QueueId id, uint64_t content_max, std::string_view recipient);

// The shards' replies as one document:
//   {"id","shard","arrival_us","age_s","size","sender","client","helo",
//    "protocol",["campaign"],["tenant"],"eight_bit","smtputf8",
//    "recipients_total","recipients_pending","recipients_truncated",
//    "recipients":[{"index","recipient","domain","state","pending","shard",
//                   "attempts","next_us","error"}],
//    ["content":{"size","truncated","text"[,"template"]}]}
// NotFound when no shard holds the message (or it has no recipient
// `recipient`), Unavailable when its home shard had no helper free,
// Internal when the record could not be read.
Outcome MergeShow(const std::vector<JsonValue>& replies, std::string_view id,
                  std::string_view recipient, uint64_t now_us);

}  // namespace sluice::admin
