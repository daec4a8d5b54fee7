// The header block of an outbound message as DKIM sees it: its fields, the
// fields a signature covers (the h= list, RFC 6376 5.4.2), and the author
// domain from From:. Pure: views into the caller's bytes, no crypto.
//
// Line endings as in canon.h (CRLF, bare LF, bare CR). The block ends at the
// first empty line; a message without one is all header. A line that is
// neither a field nor a continuation is kept as a nameless field (never
// selected), and so is a line whose name is not printable ASCII (RFC 5322
// 2.2). Trusts nothing: bounded by the input, never reads past it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::dkim {

struct HeaderField {
  std::string_view name;  // as written (before the colon, blanks trimmed)
  std::string_view raw;   // the whole field with its continuation lines and final line ending
};

// The offset where the body starts (just after the empty line that ends the
// header block), or text.size() when there is no empty line.
size_t HeaderBlockSize(std::string_view text);

// The fields of a header block (text up to HeaderBlockSize), top to bottom.
std::vector<HeaderField> ParseHeaderFields(std::string_view block);

// Case-insensitive ASCII comparison of header names.
bool SameName(std::string_view a, std::string_view b);

// The h= list for `wanted` names: each name once per instance present,
// plus once more for names in `oversign` (an instance added later then
// breaks the signature). Names come out in lower case, in `wanted` order
// (duplicates in `wanted` are ignored). Names in `oversign` but not in
// `wanted` are signed too.
std::vector<std::string> SelectHeaders(const std::vector<HeaderField>& fields,
                                       const std::vector<std::string>& wanted,
                                       const std::vector<std::string>& oversign);

// For each entry of h=, the field it covers (RFC 6376 5.4.2: repeated names
// are taken from the bottom up), or nullptr when none is left.
std::vector<const HeaderField*> CoveredFields(const std::vector<HeaderField>& fields,
                                              const std::vector<std::string>& h);

// The domain of the single address in the single From: field, lower case,
// without a trailing dot. nullopt when there is no From:, more than one, a
// list or group of addresses, or a domain that is not an ASCII host name
// (RFC 5322 3.6.2 obsoletes none of these, but a signer cannot pick one).
std::optional<std::string> AuthorDomain(const std::vector<HeaderField>& fields);

}  // namespace sluice::dkim
