// The CR, LF and '.' bytes of a 64-byte block as bit masks (bit k: byte k),
// with SSE2 where the target has it: the portable scanner under the DATA
// decoder (dot_decoder.cc, which also has AVX2/AVX-512 variants) and the
// dot-stuffing encoder's fast path (dot_encoder.cc). Private to smtp/.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sluice/smtp/dot_decoder.h"

namespace sluice::smtp {

// Reads exactly 64 bytes at `p`.
inline dot_decoder_internal::Masks BlockMasks64(const char* p) {
  dot_decoder_internal::Masks m{0, 0, 0};
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i dot = _mm_set1_epi8('.');
  for (int k = 0; k < 4; ++k) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    const auto bits = [&](__m128i c) {
      return static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, c))))
             << (16 * k);
    };
    m.cr |= bits(cr);
    m.lf |= bits(lf);
    m.dot |= bits(dot);
  }
#else
  for (size_t k = 0; k < 64; ++k) {
    m.cr |= static_cast<uint64_t>(p[k] == '\r') << k;
    m.lf |= static_cast<uint64_t>(p[k] == '\n') << k;
    m.dot |= static_cast<uint64_t>(p[k] == '.') << k;
  }
#endif
  return m;
}

}  // namespace sluice::smtp
