// Whether a received message's header block carries a field of a given name
// (sluice-sink counts DKIM-Signature fields with it, so a benchmark can prove
// that what it measured was signed). Trusts nothing: the message is whatever
// a peer sent, already dot-unstuffed. Looks only at the header block (up to
// the first empty line, or the whole message if there is none); continuation
// lines are skipped; names compare case-insensitively (RFC 5322 2.2).
#pragma once

#include <string_view>

namespace sluice::tools {

// True if a line of the header block starts with `name` followed by optional
// white space and ':'.
bool HasHeaderField(std::string_view message, std::string_view name);

}  // namespace sluice::tools
