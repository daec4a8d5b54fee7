// The outbound body encoder: the inverse of DotDecoder. It turns body bytes,
// fed in spans of any size, into what goes on the wire:
//   - every line ending becomes CRLF: CRLF stays, a bare LF and a bare CR
//     each become CRLF, so no ambiguous line ending (and no smuggled
//     "<LF>.<CR><LF>") ever reaches the next hop;
//   - with stuffing on (DATA, RFC 5321 4.5.2) a line that starts with '.'
//     gets another '.' in front of it;
//   - Finish() ends the last line with CRLF if it lacks one and, with
//     stuffing on, appends the terminating ".\r\n".
// With stuffing off (BDAT, RFC 3030) only the line endings are normalised.
//
// Fast path: whole 64-byte blocks that need no change (CRLF line endings,
// no line-leading dot) are found with SIMD compare masks, as DotDecoder
// does, and copied at once; the rest goes a line at a time.
//
// State carried across spans: whether we are at the start of a line, and a
// CR whose partner LF may be the first byte of the next span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sluice::smtp {

class DotEncoder {
 public:
  explicit DotEncoder(bool stuff = true) { Reset(stuff); }

  // Starts a new body.
  void Reset(bool stuff);
  // Appends the encoded form of `data` to `out`.
  void Encode(const char* data, size_t size, std::string& out);
  // Ends the body (see above). The encoder must be Reset before reuse.
  void Finish(std::string& out);

  // Bytes of input taken and bytes written since Reset.
  uint64_t input_bytes() const { return input_bytes_; }
  // True if any bare CR or LF was rewritten (for the accounting log).
  bool normalised() const { return normalised_; }

 private:
  enum class State : uint8_t { kLineStart, kText, kCr };

  State state_ = State::kLineStart;
  bool stuff_ = true;
  bool normalised_ = false;
  uint64_t input_bytes_ = 0;
};

}  // namespace sluice::smtp
