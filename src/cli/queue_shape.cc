// `sluice queue shape`, like Postfix's qshape: pending recipients per
// destination domain and age (since the message was received), in doubling
// buckets. From the daemon (each shard counts the recipients of its queued
// and in-flight jobs, `shape EDGES` on the control socket), or, when no
// daemon answers (or --spool-only), from the spool files: every recipient
// of a queued file. Rows: TOTAL, the --top N largest domains (default 10,
// 0: all), then the rest as "(K other)". The counting and the JSON are
// admin/shape.h's, shared with GET /api/admin/v1/shape.
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "admin_client.h"
#include "queue_command.h"
#include "sluice/admin/shape.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"
#include "sluice/spool/spool_directory.h"
#include "table.h"

namespace sluice::cli {
namespace {

std::string DomainOf(std::string_view address) {
  const size_t at = address.rfind('@');
  std::string d(at == std::string_view::npos ? std::string_view() : address.substr(at + 1));
  while (!d.empty() && (d.back() == '>' || d.back() == '.')) d.pop_back();
  for (char& c : d) c = base::AsciiLower(c);
  return d;
}

absl::Status FromSpool(const std::string& spool_dir, admin::ShapeCounts& counts) {
  spool::ScanOptions scan;
  scan.merge_values = false;
  auto report = spool::ScanSpool(spool_dir, scan);
  if (!report.ok()) return report.status();
  const uint64_t now = base::WallMicros();
  for (const spool::QueuedMessage& m : report->messages) {
    const uint64_t t0 = m.envelope.id.micros();
    const uint64_t age_s = now > t0 ? (now - t0) / 1000000 : 0;
    for (const spool::Recipient& r : m.envelope.recipients) {
      admin::AddShapeRecipient(counts, DomainOf(r.address), age_s);
    }
  }
  return absl::OkStatus();
}

std::string ShapeTable(const admin::Shape& shape) {
  std::vector<std::string> headers = {"DOMAIN", "TOTAL"};
  headers.insert(headers.end(), admin::ShapeLabels().begin(), admin::ShapeLabels().end());
  std::vector<bool> right(headers.size(), true);
  right[0] = false;
  Table t(headers, right);
  auto add = [&](const admin::ShapeRow& r) {
    std::vector<std::string> row = {r.domain, absl::StrCat(r.total)};
    for (uint64_t v : r.counts) row.push_back(absl::StrCat(v));
    t.Add(std::move(row));
  };
  add(shape.total);
  for (const admin::ShapeRow& r : shape.rows) add(r);
  if (shape.other_domains > 0) {
    admin::ShapeRow other = shape.other;
    other.domain = absl::StrCat("(", shape.other_domains, " other)");
    add(other);
  }
  return t.Render();
}

}  // namespace

int QueueShape(const QueueContext& q) {
  if (q.args.size() != 1) return QueueUsage("queue shape takes no argument");
  uint64_t top = 10;
  if (const std::string t = Flag(q, "--top"); !t.empty() && !base::ParseUint64(t, top)) {
    return QueueUsage("--top needs a number (0: every domain)");
  }
  admin::ShapeCounts counts;
  std::string source = "daemon";
  const bool spool_only = !Flag(q, "--spool-only").empty();
  auto replies = spool_only ? absl::StatusOr<std::vector<JsonValue>>(absl::NotFoundError(""))
                            : AdminCallJson(q.control_dir, admin::ShapeCommand());
  if (replies.ok()) {
    admin::AddShapeReplies(*replies, counts);
  } else {  // no daemon, or --no-delivery: the files
    source = "spool";
    if (!spool_only) {
      std::fprintf(stderr,
                   "sluice: note: %s: counted from the spool files (every recipient of a queued "
                   "file)\n",
                   std::string(replies.status().message()).c_str());
    }
    if (absl::Status s = FromSpool(q.spool_dir, counts); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  const admin::Shape shape = admin::RankShape(counts, top);
  const std::string out = q.json ? admin::ShapeJson(source, shape) : ShapeTable(shape);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace sluice::cli
