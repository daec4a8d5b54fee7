#include "sluice/smtp/dot_decoder.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sluice::smtp {

void DotDecoder::Reset(size_t max_line_length) {
  state_ = State::kLineStart;
  line_length_ = 0;
  max_line_length_ = max_line_length;
  bare_line_ending_ = false;
  line_too_long_ = false;
}

inline void DotDecoder::EndLine() {
  if (line_length_ > max_line_length_) line_too_long_ = true;
  line_length_ = 0;
}

// The reference state machine. Line lengths count every byte of the line,
// CRLF included (the stuffing dot too, as it travelled on the wire).
inline bool DotDecoder::Step(char c) {
  ++line_length_;
  switch (state_) {
    case State::kText:
      if (c == '\r') {
        state_ = State::kCr;
      } else if (c == '\n') {
        bare_line_ending_ = true;
      }
      return false;
    case State::kCr:
      if (c == '\n') {
        state_ = State::kLineStart;
        EndLine();
      } else if (c != '\r') {
        bare_line_ending_ = true;
        state_ = State::kText;
      } else {
        bare_line_ending_ = true;  // CR CR: the first one is bare
      }
      return false;
    case State::kLineStart:
      if (c == '.') {
        state_ = State::kDot;
      } else if (c == '\r') {
        state_ = State::kCr;
      } else {
        if (c == '\n') bare_line_ending_ = true;
        state_ = State::kText;
      }
      return false;
    case State::kDot:
      if (c == '\r') {
        state_ = State::kDotCr;
      } else {
        if (c == '\n') bare_line_ending_ = true;
        state_ = State::kText;
      }
      return false;
    case State::kDotCr:
      if (c == '\n') return true;
      // ".\r" followed by anything else: that CR was bare. It is not part of
      // the spans (the message is rejected anyway).
      bare_line_ending_ = true;
      state_ = c == '\r' ? State::kCr : State::kText;
      return false;
  }
  return false;
}

DotDecoder::Result DotDecoder::Decode(const char* data, size_t size, SpanSink sink) {
  size_t i = 0;
  size_t span_start = 0;
  while (i < size) {
#if defined(__SSE2__)
    // Fast path: whole 16-byte blocks in the plain states. A block is taken
    // in one step when no LF (or the carried line start) is followed by a
    // dot; CR/LF pairing and line lengths are checked on the masks.
    if ((state_ == State::kText || state_ == State::kCr || state_ == State::kLineStart)) {
      const __m128i cr = _mm_set1_epi8('\r');
      const __m128i lf = _mm_set1_epi8('\n');
      const __m128i dot = _mm_set1_epi8('.');
      while (i + 16 <= size) {
        const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
        const uint32_t m_cr = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, cr)));
        const uint32_t m_lf = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, lf)));
        const uint32_t m_dot =
            static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, dot)));
        const uint32_t carry_cr = state_ == State::kCr ? 1u : 0u;
        const uint32_t carry_start = state_ == State::kLineStart ? 1u : 0u;
        const uint32_t line_starts = ((m_lf << 1) | carry_start) & 0xffffu;
        if (line_starts & m_dot) break;  // a line-leading dot: go byte by byte
        // Every LF must follow a CR and every CR (but a last one) precede an
        // LF: the LF mask must equal the CR mask shifted by one.
        const uint32_t expected_lf = ((m_cr << 1) | carry_cr) & 0xffffu;
        if (m_lf != expected_lf) bare_line_ending_ = true;
        if (m_lf == 0) {
          line_length_ += 16;
        } else {
          const int first_lf = __builtin_ctz(m_lf);
          const int last_lf = 31 - __builtin_clz(m_lf);
          line_length_ += static_cast<size_t>(first_lf) + 1;
          EndLine();
          // Lines wholly inside the block are shorter than 16 bytes, far
          // below any allowed limit (>= 78), so only the first is checked.
          line_length_ = static_cast<size_t>(15 - last_lf);
        }
        if (line_length_ > max_line_length_) line_too_long_ = true;
        // The last byte decides the state carried into the next block, as
        // the byte path would have left it (a bare final LF leaves kText).
        if (m_cr & 0x8000u) {
          state_ = State::kCr;
        } else if ((m_lf & 0x8000u) && (m_cr & 0x4000u)) {
          state_ = State::kLineStart;
        } else {
          state_ = State::kText;
        }
        i += 16;
      }
      if (i == size) break;
    }
#endif
    // Slow path: one byte (or up to the next block boundary).
    const size_t stop = (i + 16 <= size) ? i + 16 : size;
    for (; i < stop; ++i) {
      const State before = state_;
      if (Step(data[i])) {
        // End of data. Everything before the dropped dot was already sunk,
        // and the ".\r" before this LF was never part of a span.
        return {i + 1, true};
      }
      if (state_ == State::kDot && before == State::kLineStart) {
        // Drop the dot: close the span before it, open the next after it.
        if (span_start < i) sink(data + span_start, i - span_start);
        span_start = i + 1;
      }
    }
  }
  // Input exhausted. In kDotCr the pending CR is the last input byte and
  // span_start sits on it: it is the end marker or a bare CR, never body.
  if (state_ != State::kDotCr && span_start < size) sink(data + span_start, size - span_start);
  return {size, false};
}

}  // namespace sluice::smtp
