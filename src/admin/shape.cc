// The queue's shape (qshape); see sluice/admin/shape.h.
#include "sluice/admin/shape.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/log/json.h"

namespace sluice::admin {

const std::vector<uint64_t>& ShapeEdges() {
  static const std::vector<uint64_t> kEdges = {300, 600, 1200, 2400, 4800, 9600};
  return kEdges;
}

const std::vector<std::string>& ShapeLabels() {
  static const std::vector<std::string> kLabels = {"0-5m",   "5-10m",   "10-20m", "20-40m",
                                                   "40-80m", "80-160m", "160m+"};
  return kLabels;
}

std::string ShapeCommand() {
  std::string line = "shape";
  for (uint64_t e : ShapeEdges()) absl::StrAppend(&line, " ", e);
  return line;
}

void AddShapeReplies(const std::vector<JsonValue>& replies, ShapeCounts& counts) {
  for (const JsonValue& r : replies) {
    for (const JsonValue& d : r.items) {
      std::vector<uint64_t>& c = counts[d.Str("domain")];
      c.resize(ShapeLabels().size());
      const JsonValue* n = d.Get("counts");
      for (size_t i = 0; n != nullptr && i < n->items.size() && i < c.size(); ++i) {
        uint64_t v = 0;
        base::ParseUint64(n->items[i].text, v);
        c[i] += v;
      }
    }
  }
}

void AddShapeRecipient(ShapeCounts& counts, const std::string& domain, uint64_t age_s) {
  size_t b = 0;
  while (b < ShapeEdges().size() && age_s >= ShapeEdges()[b]) ++b;
  std::vector<uint64_t>& c = counts[domain];
  c.resize(ShapeLabels().size());
  ++c[b];
}

Shape RankShape(const ShapeCounts& counts, uint64_t top) {
  Shape s;
  for (const auto& [domain, c] : counts) {
    ShapeRow r{domain, 0, c};
    for (uint64_t v : c) r.total += v;
    if (r.total > 0) s.rows.push_back(std::move(r));
  }
  std::sort(s.rows.begin(), s.rows.end(), [](const ShapeRow& a, const ShapeRow& b) {
    return a.total != b.total ? a.total > b.total : a.domain < b.domain;
  });
  for (size_t k = 0; k < s.rows.size(); ++k) {
    const bool past = top != 0 && k >= top;
    for (size_t i = 0; i < ShapeLabels().size(); ++i) {
      s.total.counts[i] += s.rows[k].counts[i];
      if (past) s.other.counts[i] += s.rows[k].counts[i];
    }
    s.total.total += s.rows[k].total;
    if (past) {
      s.other.total += s.rows[k].total;
      ++s.other_domains;
    }
  }
  if (top != 0 && s.rows.size() > top) s.rows.resize(top);
  return s;
}

namespace {

std::string CountsJson(const ShapeRow& r) {
  std::string out = absl::StrCat("\"total\":", r.total, ",\"counts\":[");
  for (size_t i = 0; i < r.counts.size(); ++i) absl::StrAppend(&out, i > 0 ? "," : "", r.counts[i]);
  return out + "]";
}

}  // namespace

std::string ShapeJson(const std::string& source, const Shape& shape) {
  std::string out = absl::StrCat("{\"source\":\"", source, "\",\"buckets\":[");
  for (size_t i = 0; i < ShapeLabels().size(); ++i) {
    absl::StrAppend(&out, i > 0 ? "," : "", "\"", ShapeLabels()[i], "\"");
  }
  out += "],\"edges_s\":[";
  for (size_t i = 0; i < ShapeEdges().size(); ++i) {
    absl::StrAppend(&out, i > 0 ? "," : "", ShapeEdges()[i]);
  }
  absl::StrAppend(&out, "],\"total\":{", CountsJson(shape.total), "},\"domains\":[");
  for (size_t k = 0; k < shape.rows.size(); ++k) {
    std::string domain;
    log::AppendJsonString(domain, shape.rows[k].domain);
    absl::StrAppend(&out, k > 0 ? ",\n" : "\n", "{\"domain\":", domain, ",",
                    CountsJson(shape.rows[k]), "}");
  }
  absl::StrAppend(&out, "],\n\"other\":{\"domains\":", shape.other_domains, ",",
                  CountsJson(shape.other), "}}\n");
  return out;
}

Outcome MergeShape(const std::vector<JsonValue>& replies, uint64_t top) {
  ShapeCounts counts;
  AddShapeReplies(replies, counts);
  Outcome o;
  o.json = ShapeJson("daemon", RankShape(counts, top));
  if (!o.json.empty() && o.json.back() == '\n') o.json.pop_back();
  return o;
}

}  // namespace sluice::admin
