#include "sluice/smtp/dot_decoder.h"

#if defined(__x86_64__)
#include <immintrin.h>
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

// One block of W bytes (W = 16 or 64) in a plain state, given its CR, LF
// and dot masks (bit k = byte k). Returns false, changing nothing, when a
// line starts with a dot inside it: that block goes byte by byte.
template <int W>
inline bool DotDecoder::TakeBlock(uint64_t cr, uint64_t lf, uint64_t dot) {
  constexpr uint64_t kAll = W == 64 ? ~uint64_t{0} : (uint64_t{1} << W) - 1;
  constexpr uint64_t kTop = uint64_t{1} << (W - 1);
  const uint64_t carry_cr = state_ == State::kCr ? 1 : 0;
  const uint64_t carry_start = state_ == State::kLineStart ? 1 : 0;
  if ((((lf << 1) | carry_start) & kAll) & dot) return false;
  // Every LF must follow a CR and every CR (but a last one) precede an LF:
  // the LF mask must equal the CR mask shifted by one.
  if (lf != (((cr << 1) | carry_cr) & kAll)) bare_line_ending_ = true;
  if (lf == 0) {
    line_length_ += W;
  } else {
    line_length_ += static_cast<size_t>(__builtin_ctzll(lf)) + 1;
    EndLine();
    // Lines wholly inside the block are shorter than W bytes; callers use
    // a block size no larger than the line limit, so only the first counts.
    line_length_ = static_cast<size_t>(W - 1 - (63 - __builtin_clzll(lf)));
  }
  if (line_length_ > max_line_length_) line_too_long_ = true;
  // The last byte decides the state carried into the next block, as the
  // byte path would have left it (a bare final LF leaves kText).
  if (cr & kTop) {
    state_ = State::kCr;
  } else if ((lf & kTop) && (cr & (kTop >> 1))) {
    state_ = State::kLineStart;
  } else {
    state_ = State::kText;
  }
  return true;
}

#if defined(__x86_64__)
namespace {
__attribute__((target("avx2"))) inline uint64_t Mask64(__m256i lo, __m256i hi, __m256i c) {
  const auto low = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, c)));
  const auto high = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, c)));
  return static_cast<uint64_t>(low) | (static_cast<uint64_t>(high) << 32);
}
}  // namespace

// 64 bytes per step with AVX2, when the CPU has it (checked once).
__attribute__((target("avx2"))) size_t DotDecoder::ScanAvx2(const char* data, size_t i,
                                                            size_t size) {
  const __m256i cr = _mm256_set1_epi8('\r');
  const __m256i lf = _mm256_set1_epi8('\n');
  const __m256i dot = _mm256_set1_epi8('.');
  while (i + 64 <= size) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i + 32));
    if (!TakeBlock<64>(Mask64(a, b, cr), Mask64(a, b, lf), Mask64(a, b, dot))) break;
    i += 64;
  }
  return i;
}

static const bool kHaveAvx2 = __builtin_cpu_supports("avx2");
#endif

DotDecoder::Result DotDecoder::Decode(const char* data, size_t size, SpanSink sink) {
  size_t i = 0;
  size_t span_start = 0;
  while (i < size) {
    if (state_ == State::kText || state_ == State::kCr || state_ == State::kLineStart) {
#if defined(__x86_64__)
      if (kHaveAvx2 && max_line_length_ >= 64) i = ScanAvx2(data, i, size);
#endif
#if defined(__SSE2__)
      const __m128i cr = _mm_set1_epi8('\r');
      const __m128i lf = _mm_set1_epi8('\n');
      const __m128i dot = _mm_set1_epi8('.');
      while (i + 16 <= size && max_line_length_ >= 16) {
        const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
        const auto m = [&](__m128i c) {
          return static_cast<uint64_t>(
              static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, c))));
        };
        if (!TakeBlock<16>(m(cr), m(lf), m(dot))) break;
        i += 16;
      }
#endif
      if (i == size) break;
    }
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
      } else if (before == State::kDotCr && span_start < i) {
        // ".\r" then not LF: the held CR was bare and is never body, however
        // the input was split (the message is rejected anyway).
        span_start = i;
      }
    }
  }
  // Input exhausted. In kDotCr the pending CR is the last input byte and
  // span_start sits on it: it is the end marker or a bare CR, never body.
  if (state_ != State::kDotCr && span_start < size) sink(data + span_start, size - span_start);
  return {size, false};
}

}  // namespace sluice::smtp
