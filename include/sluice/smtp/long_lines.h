// RFC 5322 2.1.1 for outbound mail: no line may exceed 998 octets. Sluice
// accepts longer body lines (server.max_data_line_length, 64 KiB by default,
// as bulk HTML often has them and Postfix accepts them), so before such a
// message leaves, every MIME part holding a long line is re-encoded:
//   7bit / 8bit / binary / no Content-Transfer-Encoding  -> quoted-printable
//     (the header is replaced; MIME-Version added to a top-level entity
//     without one), which decodes to exactly the same bytes;
//   quoted-printable with long lines -> soft line breaks ("=" CRLF) added;
//   base64 with long lines           -> re-wrapped at 76 characters.
// Multipart bodies are walked (the boundary from Content-Type), parts
// without long lines are copied untouched. Unlike Postfix's folding (which
// inserts CRLF + space into the text) the content survives; the caller must
// run this before any DKIM signing, since it changes the body.
//
// Trusts nothing: the message is whatever a client sent. Limits: nesting
// deeper than kMaxMimeDepth, message/* parts (which may not be encoded) and
// a long line in a header, a preamble or an epilogue are left as they are.
// Pure: no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::smtp {

// RFC 5322 2.1.1: 998 characters, excluding the CRLF.
inline constexpr size_t kMaxLineOctets = 998;
// Multipart nesting walked; real mail nests 3 or 4 deep.
inline constexpr int kMaxMimeDepth = 16;

// True when some line of `text` is longer than kMaxLineOctets (without its
// line ending).
bool HasLongLine(std::string_view text);

// The message (header and body, CRLF line endings) with every part that
// holds a long line re-encoded as above; nullopt when there is no long line
// (the common case: one scan, no copy).
std::optional<std::string> ReencodeLongLines(std::string_view message);

}  // namespace sluice::smtp
