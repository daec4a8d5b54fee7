// The queue's shape, like Postfix's qshape: pending recipients per
// destination domain and age (since the message was received), in doubling
// buckets. Counted by each shard (`shape EDGES` on the control socket) or
// from the spool files by `sluice queue shape --spool-only`, and merged
// here into one document, so `sluice queue shape --json` and
// `GET /api/admin/v1/shape` print the same thing. Pure: no I/O.
//
// What it trusts: the replies come from our own daemon; a missing or
// malformed count is taken as 0. Bounded by the queue: one row per domain
// with mail, at most `top` of them named.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "sluice/admin/json_value.h"
#include "sluice/admin/merge.h"

namespace sluice::admin {

// qshape's doubling buckets, in seconds: 0-5m, 5-10m, ... 160m+.
const std::vector<uint64_t>& ShapeEdges();
const std::vector<std::string>& ShapeLabels();
// The control command that asks a shard for its counts.
std::string ShapeCommand();

// Recipients per domain, one count per bucket (ShapeLabels().size()).
using ShapeCounts = absl::flat_hash_map<std::string, std::vector<uint64_t>>;

// Adds every shard's `shape` reply to `counts`.
void AddShapeReplies(const std::vector<JsonValue>& replies, ShapeCounts& counts);
// Adds one recipient of a message `age_s` old (the spool path).
void AddShapeRecipient(ShapeCounts& counts, const std::string& domain, uint64_t age_s);

struct ShapeRow {
  std::string domain;
  uint64_t total = 0;
  std::vector<uint64_t> counts = std::vector<uint64_t>(ShapeLabels().size());
};

struct Shape {
  std::vector<ShapeRow> rows;  // the `top` largest (0: all), largest first
  ShapeRow total{"TOTAL"};
  ShapeRow other{"(other)"};  // the domains past `top`, summed
  size_t other_domains = 0;
};

Shape RankShape(const ShapeCounts& counts, uint64_t top);
// {"source","buckets","edges_s","total","domains":[...],"other"} (with a
// final newline).
std::string ShapeJson(const std::string& source, const Shape& shape);
// The daemon's replies as the document above (source "daemon").
Outcome MergeShape(const std::vector<JsonValue>& replies, uint64_t top);

}  // namespace sluice::admin
