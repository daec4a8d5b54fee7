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
// Speed: 64-byte blocks (AVX-512BW or AVX2, chosen at run time; SSE2 or
// plain C++ elsewhere) are checked on their CR, LF and dot masks for CR/LF
// pairing, line lengths and dots at the start of a line. Stuffing dots are
// dropped there too; only the bytes around a bare CR or LF, ".\r" (maybe the
// end) and the short tail of an input go through the byte-at-a-time state
// machine.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"

namespace sluice::smtp {

namespace dot_decoder_internal {
// The CRs, LFs and dots of a block of up to 64 bytes: bit k = byte k.
struct Masks {
  uint64_t cr, lf, dot;
};
// The block scanner's copy of the decoder's state, in registers. Between
// blocks the state is always kText, kCr or kLineStart.
struct ScanState {
  uint64_t carry_cr;  // 1 in kCr
  uint64_t carry_ls;  // 1 in kLineStart
  size_t len;         // line_length_
  bool too_long;      // line_too_long_
};
}  // namespace dot_decoder_internal

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

  using Masks = dot_decoder_internal::Masks;
  using ScanState = dot_decoder_internal::ScanState;

  // Advances through one byte; returns true at the end of data.
  bool Step(char c);
  void EndLine();

  // Scan*: take blocks from data[i] on while the bytes are plain; return
  // where Step() must take over (or `size`).
  template <typename MaskBuilder>
  size_t Scan(const char* data, size_t i, size_t size, size_t& span_start, SpanSink sink);
  size_t TakeBlock(const char* data, size_t i, size_t n, Masks m, ScanState& s, size_t& span_start,
                   SpanSink sink);
  size_t ScanPortable(const char* data, size_t i, size_t size, size_t& span_start, SpanSink sink);
  size_t ScanAvx2(const char* data, size_t i, size_t size, size_t& span_start, SpanSink sink);
  size_t ScanAvx512(const char* data, size_t i, size_t size, size_t& span_start, SpanSink sink);

  State state_ = State::kLineStart;
  size_t line_length_ = 0;  // bytes of the current line so far
  size_t max_line_length_ = 1000;
  bool bare_line_ending_ = false;
  bool line_too_long_ = false;
};

}  // namespace sluice::smtp
