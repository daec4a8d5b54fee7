// The DKIM-Signature header field (RFC 6376 3.5), written and folded. Pure.
//
// Tags in a fixed order: v=1; a=; c=; d=; s=; t=; [x=;] h=; bh=; b=. Never
// l= (a body-length limit lets anyone append to a signed message). Lines are
// folded at tag boundaries (h= also between names, b= anywhere) so that no
// line is longer than kFoldWidth characters; folding whitespace is ignored
// by every verifier in both canonicalizations of the tags it folds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/dkim/canon.h"

namespace sluice::dkim {

// RFC 5322 2.1.1: lines SHOULD be at most 78 characters without the CRLF.
inline constexpr size_t kFoldWidth = 78;

struct SignatureTags {
  std::string_view algorithm;  // "rsa-sha256" or "ed25519-sha256"
  Canon header_canon = Canon::kRelaxed;
  Canon body_canon = Canon::kRelaxed;
  std::string_view domain;                            // d=
  std::string_view selector;                          // s=
  uint64_t timestamp = 0;                             // t=, seconds since the epoch
  uint64_t expiration = 0;                            // x=; 0: none
  const std::vector<std::string>* headers = nullptr;  // h=, lower case
  std::string_view body_hash;                         // bh=, base64
};

// "DKIM-Signature: v=1; ...; bh=...;\r\n\tb=" without a line ending: the
// field as it is hashed (b= empty), and the prefix of the final field.
std::string UnsignedField(const SignatureTags& tags);

// The final field: `unsigned_field` followed by the base64 signature,
// folded, and CRLF.
std::string CompleteField(std::string_view unsigned_field, std::string_view signature_base64);

}  // namespace sluice::dkim
