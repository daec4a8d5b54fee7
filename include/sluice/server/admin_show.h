// A shard's part of `show ID CONTENT_MAX [RECIPIENT]` on its control socket
// (server/control_socket.h), the command behind GET /api/admin/v1/message
// (admin/show.h merges the shards' replies).
//
// Every shard lists the delivery jobs it holds for the message. The home
// shard (its ledger holds the record: directory % shards) also reads the
// record and decodes it with the spool's own reader (spool::ReadRecord and
// ParseFile, which verify every CRC) on a helper thread
// (io/helper_pool.h), never on its own: a message file can be tens of
// megabytes and the disk slow. The reply then waits for the helper; the
// jobs are listed when it is sent, so they are as fresh as the record.
//
// Limits: the whole record is read (as `sluice queue show` reads it), so a
// show holds up to one message's record in memory on a helper thread; the
// reply carries at most admin::kShowRecipientsMax recipients and
// CONTENT_MAX bytes of the message's headers and body. No helper slot free:
// {"home":true,"busy":true} (the API answers 503).
//
// What it trusts: the control line comes from the operator (the HTTP side
// checked it); the record is verified like any spool read.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "sluice/base/queue_id.h"
#include "sluice/spool/message_file.h"

namespace sluice::server {

class Shard;

struct ShowRequest {
  base::QueueId id;
  uint64_t content_max = 0;  // 0: no content
  std::string recipient;     // "": every recipient (ASCII case ignored)
};

// "ID CONTENT_MAX [RECIPIENT]" (what follows the verb); nullopt if malformed.
std::optional<ShowRequest> ParseShowRequest(std::string_view rest);

// The "message" object of a home shard's reply (pure):
//   {"id","arrival_us","size","sender","client","helo","protocol",
//    ["campaign"],["tenant"],"eight_bit","smtputf8","recipients_total",
//    "recipients_truncated","recipients":[{"index","recipient"}],
//    ["content":{"size","truncated","text"[,"template":true]}]}
// "content" is the added headers and the body, cut at content_max bytes;
// for a mail merge with a recipient filter, rendered for that recipient
// (what delivery sends it), else the stored template ("template":true).
absl::StatusOr<std::string> ShowRecordJson(const spool::ParsedFile& record,
                                           const ShowRequest& request);

// Answers `show` on `shard`: `reply` gets the reply (without newline), at
// once or, on the home shard, once the helper read the record. Shard thread.
void AnswerShow(Shard& shard, std::string_view rest, std::function<void(std::string)> reply);

}  // namespace sluice::server
