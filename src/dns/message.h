// Pure helpers over raw DNS answers (no I/O): the TTLs c-ares 1.18's parsers
// do not report (MX answer TTL, SOA-derived negative TTL) and the MX
// classification (RFC 7505 null MX). Unit-tested with canned answers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::dns {

// Smallest TTL of the answer-section records of type `rr_type`; nullopt if
// there is none or the message is malformed.
std::optional<uint32_t> MinAnswerTtl(const unsigned char* msg, int len, uint16_t rr_type);

// RFC 2308 §5 negative TTL: min(SOA record TTL, SOA MINIMUM) of the first
// SOA in the authority section; nullopt without one.
std::optional<uint32_t> NegativeTtlFromSoa(const unsigned char* msg, int len);

struct MxRecord {
  std::string host;  // lower case, no trailing dot; "" is the root (".")
  uint16_t preference = 0;
};

enum class MxAnswerKind { kRecords, kNullMx, kNoData, kMalformed };

struct MxAnswer {
  MxAnswerKind kind = MxAnswerKind::kMalformed;
  std::vector<MxRecord> records;  // kRecords: root targets dropped, unsorted
};

// Parses an MX answer (ancount > 0) with ares_parse_mx_reply; kNoData when
// the answer holds no MX (e.g. only a CNAME). A single MX
// whose target is "." is a null MX (RFC 7505 says its preference is 0, but
// any preference is taken as null: the domain says it takes no mail).
MxAnswer ParseMxAnswer(const unsigned char* msg, int len);

}  // namespace sluice::dns
