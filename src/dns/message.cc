#include "message.h"

#include <ares.h>
#include <arpa/nameser.h>

#include <algorithm>

#include "sluice/base/strings.h"

namespace sluice::dns {
namespace {

uint16_t Get16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Get32(const unsigned char* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}

// Advances `pos` past a (possibly compressed) name; false if it runs off.
bool SkipName(const unsigned char* msg, int len, int& pos) {
  for (int guard = 0; guard < 128; ++guard) {
    if (pos >= len) return false;
    const unsigned char c = msg[pos];
    if ((c & 0xC0) == 0xC0) {
      if (pos + 2 > len) return false;
      pos += 2;
      return true;
    }
    if ((c & 0xC0) != 0) return false;
    if (c == 0) {
      pos += 1;
      return true;
    }
    pos += 1 + c;
  }
  return false;
}

struct Rr {
  uint16_t type;
  uint32_t ttl;
  int rdata;
  int rdlen;
};

// Walks the message; `visit(section, rr)` with section 0 = answer,
// 1 = authority, 2 = additional. False if malformed.
template <typename Visit>
bool Walk(const unsigned char* msg, int len, Visit visit) {
  if (msg == nullptr || len < 12) return false;
  const int qd = Get16(msg + 4);
  const int counts[3] = {Get16(msg + 6), Get16(msg + 8), Get16(msg + 10)};
  int pos = 12;
  for (int i = 0; i < qd; ++i) {
    if (!SkipName(msg, len, pos) || pos + 4 > len) return false;
    pos += 4;
  }
  for (int section = 0; section < 3; ++section) {
    for (int i = 0; i < counts[section]; ++i) {
      if (!SkipName(msg, len, pos) || pos + 10 > len) return false;
      Rr rr{Get16(msg + pos), Get32(msg + pos + 4), pos + 10, Get16(msg + pos + 8)};
      pos += 10;
      if (pos + rr.rdlen > len) return false;
      pos += rr.rdlen;
      if (!visit(section, rr)) return true;
    }
  }
  return true;
}

}  // namespace

std::optional<uint32_t> MinAnswerTtl(const unsigned char* msg, int len, uint16_t rr_type) {
  std::optional<uint32_t> best;
  Walk(msg, len, [&](int section, const Rr& rr) {
    if (section != 0) return false;
    if (rr.type == rr_type) best = best ? std::min(*best, rr.ttl) : rr.ttl;
    return true;
  });
  return best;
}

std::optional<uint32_t> NegativeTtlFromSoa(const unsigned char* msg, int len) {
  std::optional<uint32_t> out;
  Walk(msg, len, [&](int section, const Rr& rr) {
    if (section == 0) return true;
    if (section != 1) return false;
    if (rr.type != ns_t_soa) return true;
    // MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
    int p = rr.rdata;
    const int end = rr.rdata + rr.rdlen;
    if (!SkipName(msg, end, p) || !SkipName(msg, end, p) || p + 20 > end) return false;
    out = std::min(rr.ttl, Get32(msg + p + 16));
    return false;
  });
  return out;
}

MxAnswer ParseMxAnswer(const unsigned char* msg, int len) {
  MxAnswer out;
  ares_mx_reply* head = nullptr;
  const int rc = ares_parse_mx_reply(msg, len, &head);
  if (rc != ARES_SUCCESS) {
    if (head != nullptr) ares_free_data(head);
    if (rc == ARES_ENODATA) out.kind = MxAnswerKind::kNoData;
    return out;
  }
  std::vector<MxRecord> all;
  for (ares_mx_reply* r = head; r != nullptr; r = r->next) {
    MxRecord rec;
    rec.host.assign(r->host == nullptr ? "" : r->host);
    while (!rec.host.empty() && rec.host.back() == '.') rec.host.pop_back();
    for (char& c : rec.host) c = base::AsciiLower(c);
    rec.preference = r->priority;
    all.push_back(std::move(rec));
  }
  ares_free_data(head);
  if (all.empty()) {
    out.kind = MxAnswerKind::kNoData;
    return out;
  }
  if (all.size() == 1 && all[0].host.empty()) {
    out.kind = MxAnswerKind::kNullMx;
    return out;
  }
  out.kind = MxAnswerKind::kRecords;
  for (MxRecord& r : all) {
    if (!r.host.empty()) out.records.push_back(std::move(r));
  }
  if (out.records.empty()) out.kind = MxAnswerKind::kNullMx;
  return out;
}

}  // namespace sluice::dns
