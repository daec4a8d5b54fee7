// `sluice queue shape`, like Postfix's qshape: pending recipients per
// destination domain and age (since the message was received), in doubling
// buckets. From the daemon (each shard counts the recipients of its queued
// and in-flight jobs, `shape EDGES` on the control socket), or, when no
// daemon answers (or --spool-only), from the spool files: every recipient
// of a queued file. Rows: TOTAL, the --top N largest domains (default 10,
// 0: all), then the rest as "(K other)".
#include <algorithm>
#include <cstdio>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "admin_client.h"
#include "queue_command.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"
#include "sluice/spool/spool_directory.h"
#include "table.h"

namespace sluice::cli {
namespace {

// qshape's doubling buckets, in seconds: 0-5m, 5-10m, ... 160m+.
const std::vector<uint64_t> kEdges = {300, 600, 1200, 2400, 4800, 9600};
const std::vector<std::string> kLabels = {"0-5m",   "5-10m",   "10-20m", "20-40m",
                                          "40-80m", "80-160m", "160m+"};

using Counts = absl::flat_hash_map<std::string, std::vector<uint64_t>>;

struct Row {
  std::string domain;
  uint64_t total = 0;
  std::vector<uint64_t> counts = std::vector<uint64_t>(kLabels.size());
};

std::string DomainOf(std::string_view address) {
  const size_t at = address.rfind('@');
  std::string d(at == std::string_view::npos ? std::string_view() : address.substr(at + 1));
  while (!d.empty() && (d.back() == '>' || d.back() == '.')) d.pop_back();
  for (char& c : d) c = base::AsciiLower(c);
  return d;
}

void FromDaemon(const std::vector<JsonValue>& replies, Counts& counts) {
  for (const JsonValue& r : replies) {
    for (const JsonValue& d : r.items) {
      std::vector<uint64_t>& c = counts[d.Str("domain")];
      c.resize(kLabels.size());
      const JsonValue* n = d.Get("counts");
      for (size_t i = 0; n != nullptr && i < n->items.size() && i < c.size(); ++i) {
        uint64_t v = 0;
        base::ParseUint64(n->items[i].text, v);
        c[i] += v;
      }
    }
  }
}

absl::Status FromSpool(const std::string& spool_dir, Counts& counts) {
  spool::ScanOptions scan;
  scan.merge_values = false;
  auto report = spool::ScanSpool(spool_dir, scan);
  if (!report.ok()) return report.status();
  const uint64_t now = base::WallMicros();
  for (const spool::QueuedMessage& m : report->messages) {
    const uint64_t t0 = m.envelope.id.micros();
    const uint64_t age_s = now > t0 ? (now - t0) / 1000000 : 0;
    size_t b = 0;
    while (b < kEdges.size() && age_s >= kEdges[b]) ++b;
    for (const spool::Recipient& r : m.envelope.recipients) {
      std::vector<uint64_t>& c = counts[DomainOf(r.address)];
      c.resize(kLabels.size());
      ++c[b];
    }
  }
  return absl::OkStatus();
}

// Sorted largest first; `total` and `other` (past the top N) summed.
std::vector<Row> Rank(const Counts& counts, uint64_t top, Row& total, Row& other,
                      size_t& other_domains) {
  std::vector<Row> rows;
  for (const auto& [domain, c] : counts) {
    Row r{domain, 0, c};
    for (uint64_t v : c) r.total += v;
    if (r.total > 0) rows.push_back(std::move(r));
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.total != b.total ? a.total > b.total : a.domain < b.domain;
  });
  other_domains = 0;
  for (size_t k = 0; k < rows.size(); ++k) {
    const bool past = top != 0 && k >= top;
    for (size_t i = 0; i < kLabels.size(); ++i) {
      total.counts[i] += rows[k].counts[i];
      if (past) other.counts[i] += rows[k].counts[i];
    }
    total.total += rows[k].total;
    if (past) {
      other.total += rows[k].total;
      ++other_domains;
    }
  }
  if (top != 0 && rows.size() > top) rows.resize(top);
  return rows;
}

std::string CountsJson(const Row& r) {
  std::string out = absl::StrCat("\"total\":", r.total, ",\"counts\":[");
  for (size_t i = 0; i < r.counts.size(); ++i) absl::StrAppend(&out, i > 0 ? "," : "", r.counts[i]);
  return out + "]";
}

std::string ShapeJson(const std::string& source, const std::vector<Row>& rows, const Row& total,
                      const Row& other, size_t other_domains) {
  std::string out = absl::StrCat("{\"source\":\"", source, "\",\"buckets\":[");
  for (size_t i = 0; i < kLabels.size(); ++i) {
    absl::StrAppend(&out, i > 0 ? "," : "", "\"", kLabels[i], "\"");
  }
  out += "],\"edges_s\":[";
  for (size_t i = 0; i < kEdges.size(); ++i) absl::StrAppend(&out, i > 0 ? "," : "", kEdges[i]);
  absl::StrAppend(&out, "],\"total\":{", CountsJson(total), "},\"domains\":[");
  for (size_t k = 0; k < rows.size(); ++k) {
    std::string domain;
    log::AppendJsonString(domain, rows[k].domain);
    absl::StrAppend(&out, k > 0 ? ",\n" : "\n", "{\"domain\":", domain, ",", CountsJson(rows[k]),
                    "}");
  }
  absl::StrAppend(&out, "],\n\"other\":{\"domains\":", other_domains, ",", CountsJson(other),
                  "}}\n");
  return out;
}

std::string ShapeTable(const std::vector<Row>& rows, const Row& total, Row other,
                       size_t other_domains) {
  std::vector<std::string> headers = {"DOMAIN", "TOTAL"};
  headers.insert(headers.end(), kLabels.begin(), kLabels.end());
  std::vector<bool> right(headers.size(), true);
  right[0] = false;
  Table t(headers, right);
  auto add = [&](const Row& r) {
    std::vector<std::string> row = {r.domain, absl::StrCat(r.total)};
    for (uint64_t v : r.counts) row.push_back(absl::StrCat(v));
    t.Add(std::move(row));
  };
  add(total);
  for (const Row& r : rows) add(r);
  if (other_domains > 0) {
    other.domain = absl::StrCat("(", other_domains, " other)");
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
  Counts counts;
  std::string source = "daemon";
  const bool spool_only = !Flag(q, "--spool-only").empty();
  std::string line = "shape";
  for (uint64_t e : kEdges) absl::StrAppend(&line, " ", e);
  auto replies = spool_only ? absl::StatusOr<std::vector<JsonValue>>(absl::NotFoundError(""))
                            : AdminCallJson(q.control_dir, line);
  if (replies.ok()) {
    FromDaemon(*replies, counts);
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
  Row total{"TOTAL"}, other{"(other)"};
  size_t other_domains = 0;
  const std::vector<Row> rows = Rank(counts, top, total, other, other_domains);
  const std::string out = q.json ? ShapeJson(source, rows, total, other, other_domains)
                                 : ShapeTable(rows, total, other, other_domains);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace sluice::cli
