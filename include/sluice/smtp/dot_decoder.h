// The DATA decoder (RFC 5321 4.5.2): finds the end of the message and undoes
// dot-stuffing in place, across any split of the input into buffers, without
// copying a byte. It reports the body as spans of the input it was given, so
// the caller can write those bytes straight from its receive buffers.
//
// Framing is strict: only <CRLF>.<CRLF> ends DATA. A bare CR or bare LF never
// ends anything; it is remembered (bare_line_ending()) so the caller can
// reject the message once the real end arrives. Lines longer than the limit
// (counted with their CRLF) are remembered the same way.
//
// Speed: blocks of 64 bytes (AVX2, chosen at run time) or 16 (SSE2) are
// checked on their CR, LF and dot masks for CR/LF pairing, line lengths and
// a dot at the start of a line; only a block with a line-leading dot goes
// through the byte-at-a-time state machine.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"

namespace sluice::smtp {

class DotDecoder {
 public:
  using SpanSink = absl::FunctionRef<void(const char* data, size_t size)>;

  struct Result {
    size_t consumed = 0;  // bytes of the input used; the rest follows DATA
    bool done = false;    // <CRLF>.<CRLF> seen
  };

  explicit DotDecoder(size_t max_line_length = 1000) { Reset(max_line_length); }

  // Starts a new message. DATA's own CRLF puts us at the start of a line.
  void Reset(size_t max_line_length);

  // Feeds the next bytes. Calls `sink` for each run of body bytes (in order),
  // never with the stuffing dots or the final ".\r\n".
  Result Decode(const char* data, size_t size, SpanSink sink);

  bool bare_line_ending() const { return bare_line_ending_; }
  bool line_too_long() const { return line_too_long_; }

 private:
  enum class State : uint8_t {
    kText,       // inside a line
    kCr,         // just saw CR
    kLineStart,  // just saw CRLF (or DATA began)
    kDot,        // a line began with '.', which was dropped
    kDotCr,      // ".\r" at the start of a line
  };

  // Advances through one byte; returns true at the end of data.
  bool Step(char c);
  template <int W>
  bool TakeBlock(uint64_t cr, uint64_t lf, uint64_t dot);
  size_t ScanAvx2(const char* data, size_t i, size_t size);
  void EndLine();

  State state_ = State::kLineStart;
  size_t line_length_ = 0;  // bytes of the current line so far
  size_t max_line_length_ = 1000;
  bool bare_line_ending_ = false;
  bool line_too_long_ = false;
};

}  // namespace sluice::smtp
