#include "sluice/smtp/dot_decoder.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "block_masks.h"

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

// ---------------------------------------------------------------------------
// The block scanner.
//
// A block is up to 64 bytes seen as three bit masks (bit k = byte k): its CRs,
// LFs and dots. With the state before the block folded in as a virtual bit -1
// (kCr: a CR there; kLineStart: an LF there), the bytes the state machine
// would treat as plain text are exactly those where
//   - every LF follows a CR and every CR is followed by an LF (LF mask ==
//     CR mask shifted up one), and
//   - a dot that starts a line (dot mask & LF mask shifted up one) is followed
//     by neither CR nor LF (it is a stuffing dot: drop it, keep going).
// The first byte that breaks these rules (a bare CR or LF, ".\r" which may be
// the end, or a line-leading dot as the block's last byte, whose follower we
// cannot see) and everything after it goes to Step(); the clean prefix before
// it is taken in a few mask operations.
//
// Line lengths: every LF in a clean prefix ends a CRLF line. Lines wholly
// inside one block are shorter than 64 bytes, so with a limit of at least 64
// only the line ending at a block's first LF can be too long. The hot loops
// do not measure it: they only run while the line so far is short enough that
// no line ending in the next block can pass the limit, and hand the block to
// TakeBlock(), which measures exactly, when it might.

namespace {

using dot_decoder_internal::Masks;
using dot_decoder_internal::ScanState;

constexpr size_t kBlock = 64;
// Blocks shorter than this at the end of the input go byte by byte: a handful
// of Step()s cost less than assembling a partial block.
constexpr size_t kMinTail = 16;

inline uint64_t Below(size_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

// The hot loop for any mask builder: whole blocks while they are clean. The
// line length is kept as `slack` = max - 64 - (bytes of the line before the
// block); while it is >= 0, no line ending in the block is too long.
template <typename K>
inline size_t HotBlocks(const char* data, size_t i, size_t size, int64_t max64, ScanState& s) {
  uint64_t ccr = s.carry_cr;
  uint64_t cls = s.carry_ls;
  int64_t slack = max64 - static_cast<int64_t>(s.len);
  while (size - i >= kBlock && slack >= 0) {
    const Masks m = K::Full(data + i);
    const uint64_t crs = (m.cr << 1) | ccr;
    const uint64_t lfs = (m.lf << 1) | cls;
    if (((m.lf ^ crs) | (m.dot & lfs)) != 0) break;
    // After the block: the bytes after its last LF, or 64 more. (C++20
    // defines countl_zero(0) as 64; that value is not selected.)
    const int64_t reset = max64 - std::countl_zero(m.lf);
    slack = m.lf != 0 ? reset : slack - 64;
    ccr = m.cr >> 63;
    cls = m.lf >> 63;
    i += kBlock;
  }
  s.carry_cr = ccr;
  s.carry_ls = cls;
  s.len = static_cast<size_t>(max64 - slack);
  return i;
}

// Portable mask builders (any CPU). A partial block is copied to a zeroed
// buffer: zero bytes are neither CR, LF nor dot.
struct PortableMasks {
  static Masks Full(const char* p) { return BlockMasks64(p); }
  // The n < 64 bytes at data[i..i+n).
  static Masks Partial(const char* data, size_t i, size_t n) {
    alignas(64) char buf[kBlock] = {};
    std::memcpy(buf, data + i, n);
    return Full(buf);
  }
  static size_t Hot(const char* data, size_t i, size_t size, int64_t max64, ScanState& s, size_t&,
                    DotDecoder::SpanSink) {
    return HotBlocks<PortableMasks>(data, i, size, max64, s);
  }
};

}  // namespace

// One block of n bytes (1..64) with masks `m` (bits >= n clear). Takes the
// clean prefix, dropping stuffing dots and measuring the line that ends at its
// first LF; returns its length (n when the whole block was clean).
inline size_t DotDecoder::TakeBlock(const char* data, size_t i, size_t n, Masks m, ScanState& s,
                                    size_t& span_start, SpanSink sink) {
  const uint64_t valid = Below(n);
  const uint64_t crs = ((m.cr << 1) | s.carry_cr) & valid;
  const uint64_t lfs = ((m.lf << 1) | s.carry_ls) & valid;
  const uint64_t pair = m.lf ^ crs;  // bit k: LF at k xor CR at k-1
  const uint64_t line_dots = m.dot & lfs;
  const uint64_t last = valid ^ (valid >> 1);
  // Where Step() must take over: at the CR or the non-CR before a pairing
  // break, at a line-leading dot followed by CR (or by nothing we can see).
  const uint64_t bad = (pair >> 1) | (pair & 1) | (line_dots & ((m.cr >> 1) | last));
  size_t w = bad != 0 ? static_cast<size_t>(std::countr_zero(bad)) : n;
  // A line-leading dot just before the break (".x\n"): leave it to Step()
  // too, so the prefix never ends in the state kDot.
  if (w > 0 && ((line_dots >> (w - 1)) & 1) != 0) --w;
  const uint64_t in = Below(w);
  for (uint64_t drop = line_dots & in; drop != 0; drop &= drop - 1) {
    const size_t pos = i + static_cast<size_t>(std::countr_zero(drop));
    if (span_start < pos) sink(data + span_start, pos - span_start);
    span_start = pos + 1;
  }
  const uint64_t lf = m.lf & in;
  if (lf != 0) {
    // len + position + 1 > max, for the line ending at the first LF.
    if (s.len + static_cast<size_t>(std::countr_zero(lf)) >= max_line_length_) s.too_long = true;
    s.len = w - 64 + static_cast<size_t>(std::countl_zero(lf));
  } else {
    s.len += w;
  }
  if (w > 0) {
    s.carry_cr = (m.cr >> (w - 1)) & 1;
    s.carry_ls = (m.lf >> (w - 1)) & 1;
  }
  return w;
}

template <typename K>
inline size_t DotDecoder::Scan(const char* data, size_t i, size_t size, size_t& span_start,
                               SpanSink sink) {
  ScanState s;
  s.carry_cr = state_ == State::kCr ? 1 : 0;
  s.carry_ls = state_ == State::kLineStart ? 1 : 0;
  s.len = line_length_;
  s.too_long = line_too_long_;
  // Limits beyond any input size behave the same; keep the arithmetic small.
  const int64_t max64 =
      static_cast<int64_t>(std::min<size_t>(max_line_length_, size_t{1} << 40)) - 64;
  for (;;) {
    const size_t n = size - i;
    if (n >= kBlock) {
      const size_t from = i;
      i = K::Hot(data, i, size, max64, s, span_start, sink);
      if (i != from) continue;
      // A block with something in it (or near the line limit).
      const size_t w = TakeBlock(data, i, kBlock, K::Full(data + i), s, span_start, sink);
      i += w;
      if (w < kBlock) break;
    } else if (n >= kMinTail) {
      const size_t w = TakeBlock(data, i, n, K::Partial(data, i, n), s, span_start, sink);
      i += w;
      break;
    } else {
      break;
    }
  }
  state_ = s.carry_cr != 0 ? State::kCr : s.carry_ls != 0 ? State::kLineStart : State::kText;
  line_length_ = s.len;
  line_too_long_ = s.too_long;
  return i;
}

#if defined(__x86_64__)
#define SLUICE_AVX2 __attribute__((target("avx2,bmi,bmi2,lzcnt")))
#define SLUICE_AVX512 __attribute__((target("avx512f,avx512bw,avx2,bmi,bmi2,lzcnt")))

namespace {

struct Avx2Masks {
  SLUICE_AVX2 static uint64_t Eq(__m256i lo, __m256i hi, char c) {
    const __m256i v = _mm256_set1_epi8(c);
    const auto a = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, v)));
    const auto b = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, v)));
    return static_cast<uint64_t>(a) | (static_cast<uint64_t>(b) << 32);
  }
  SLUICE_AVX2 static Masks Full(const char* p) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    return {Eq(lo, hi, '\r'), Eq(lo, hi, '\n'), Eq(lo, hi, '.')};
  }
  SLUICE_AVX2 static Masks Partial(const char* data, size_t i, size_t n) {
    if (i + n < kBlock) return PortableMasks::Partial(data, i, n);
    // The last 64 bytes of the input, shifted so bit 0 is byte i.
    const Masks m = Full(data + i + n - kBlock);
    const size_t shift = kBlock - n;
    return {m.cr >> shift, m.lf >> shift, m.dot >> shift};
  }
  SLUICE_AVX2 static size_t Hot(const char* data, size_t i, size_t size, int64_t max64,
                                ScanState& s, size_t&, DotDecoder::SpanSink) {
    return HotBlocks<Avx2Masks>(data, i, size, max64, s);
  }
};

struct Avx512Masks {
  SLUICE_AVX512 static Masks Of(__m512i b) {
    return {_mm512_cmpeq_epi8_mask(b, _mm512_set1_epi8('\r')),
            _mm512_cmpeq_epi8_mask(b, _mm512_set1_epi8('\n')),
            _mm512_cmpeq_epi8_mask(b, _mm512_set1_epi8('.'))};
  }
  SLUICE_AVX512 static Masks Full(const char* p) { return Of(_mm512_loadu_si512(p)); }
  // A masked load never touches (or faults on) the bytes it leaves out.
  SLUICE_AVX512 static Masks Partial(const char* data, size_t i, size_t n) {
    return Of(_mm512_maskz_loadu_epi8(Below(n), data + i));
  }

  // Clean blocks from i on, while i <= last and run <= max_run; returns the
  // masks of the block it stopped at, if it is neither. Kept out of line so
  // that its few values stay in registers (Hot() calls the sink).
  SLUICE_AVX512 __attribute__((noinline)) static Masks CleanBlocks(const char* data, size_t last,
                                                                   int64_t max_run, size_t& i_io,
                                                                   int64_t& run_io,
                                                                   uint64_t& ccr_io,
                                                                   uint64_t& cls_io) {
    size_t i = i_io;
    int64_t run = run_io;
    uint64_t ccr = ccr_io;
    uint64_t cls = cls_io;
    Masks stop{0, 0, 0};
    while (i <= last && run <= max_run) {
      const Masks m = Full(data + i);
      uint64_t dot = m.dot;
      // Keep the dot mask a plain integer: GCC would otherwise fold the AND
      // below into a masked compare, two more mask-register transfers.
      asm("" : "+r"(dot));
      const uint64_t crs = (m.cr << 1) | ccr;
      const uint64_t lfs = (m.lf << 1) | cls;
      if (((m.lf ^ crs) | (dot & lfs)) != 0) {
        // Recomputed rather than kept: keeping them costs stores every block.
        stop = Full(data + i);
        break;
      }
      // run = lf ? 0 : run + 1, without a branch: whether a block has an LF
      // follows the text's line lengths, which a predictor cannot learn.
      ++run;
      asm("test %[lf], %[lf]\n\tcmovnz %[zero], %[run]"
          : [run] "+r"(run)
          : [lf] "r"(m.lf), [zero] "r"(int64_t{0})
          : "cc");
      ccr = m.cr >> 63;
      cls = m.lf >> 63;
      i += kBlock;
    }
    i_io = i;
    run_io = run;
    ccr_io = ccr;
    cls_io = cls;
    return stop;
  }

  // The hot loop, tuned on Zen 5 (each block: one load, three compares, a
  // dozen scalar operations). Stuffing dots are dropped here, not handed to
  // TakeBlock(), as they come every few lines in some mail.
  //
  // Line length: `run` counts the blocks without LF since the last block with
  // one, which ended at most 63 bytes before the run; the line before the
  // block is at most 63 + 64 * run bytes, so a line ending in the block is
  // within the limit while run <= (max - 127) / 64. The exact length is
  // worked out when the loop ends. This costs less than tracking the last
  // LF's position in every block (no mask leaves for lzcnt), and lines near
  // the limit, where the bound is loose, are rare.
  SLUICE_AVX512 static size_t Hot(const char* data, size_t i, size_t size, int64_t max64,
                                  ScanState& s, size_t& span_start, DotDecoder::SpanSink sink) {
    const int64_t max_run = (max64 - 63) / 64;
    if (max64 < 63) return HotBlocks<Avx512Masks>(data, i, size, max64, s);
    const size_t len0 = s.len;
    // Blocks' worth of the line carried in, rounded up, as the bound assumes.
    const int64_t run0 = len0 <= 63 ? 0 : static_cast<int64_t>((len0 - 63 + 63) / 64);
    int64_t run = run0;
    uint64_t ccr = s.carry_cr;
    uint64_t cls = s.carry_ls;
    const size_t from = i;
    const size_t last = size - kBlock;  // size >= 64: the caller has a whole block
    for (;;) {
      const Masks m = CleanBlocks(data, last, max_run, i, run, ccr, cls);
      if (i > last || run > max_run) break;
      // A block with a line-leading dot or a pairing break. Stuffing dots are
      // fine if each is followed, in this block, by a byte that is not CR (nor
      // LF, but that breaks the pairing): drop them and go on.
      const uint64_t pair = m.lf ^ ((m.cr << 1) | ccr);
      const uint64_t line_dots = m.dot & ((m.lf << 1) | cls);
      if (pair != 0 || (line_dots & ((m.cr >> 1) | (uint64_t{1} << 63))) != 0) break;
      for (uint64_t drop = line_dots; drop != 0; drop &= drop - 1) {
        const size_t pos = i + static_cast<size_t>(std::countr_zero(drop));
        if (span_start < pos) sink(data + span_start, pos - span_start);
        span_start = pos + 1;
      }
      run = m.lf != 0 ? 0 : run + 1;
      ccr = m.cr >> 63;
      cls = m.lf >> 63;
      i += kBlock;
    }
    s.carry_cr = ccr;
    s.carry_ls = cls;
    const int64_t blocks = static_cast<int64_t>((i - from) / kBlock);
    if (run == run0 + blocks) {
      s.len = len0 + (i - from);  // no LF since `from`
    } else {
      // The last block with an LF is just before the run.
      const uint64_t lf = Full(data + i - kBlock * static_cast<size_t>(run + 1)).lf;
      s.len = static_cast<size_t>(std::countl_zero(lf)) + kBlock * static_cast<size_t>(run);
    }
    return i;
  }
};

}  // namespace

// `flatten` inlines Scan and the mask builders into these, so the whole loop
// is compiled for the wider instruction set (and only these functions are).
__attribute__((flatten)) SLUICE_AVX2 size_t DotDecoder::ScanAvx2(const char* data, size_t i,
                                                                 size_t size, size_t& span_start,
                                                                 SpanSink sink) {
  return Scan<Avx2Masks>(data, i, size, span_start, sink);
}

__attribute__((flatten)) SLUICE_AVX512 size_t DotDecoder::ScanAvx512(const char* data, size_t i,
                                                                     size_t size,
                                                                     size_t& span_start,
                                                                     SpanSink sink) {
  return Scan<Avx512Masks>(data, i, size, span_start, sink);
}

namespace {
enum class Isa { kPortable, kAvx2, kAvx512 };
Isa DetectIsa() {
  // SLUICE_DOT_DECODER_ISA=portable or avx2 forces a narrower path, so tests
  // can cover each one on a machine that has them all.
  const char* force = std::getenv("SLUICE_DOT_DECODER_ISA");
  if (force != nullptr && std::strcmp(force, "portable") == 0) return Isa::kPortable;
  const bool no_avx512 = force != nullptr && std::strcmp(force, "avx2") == 0;
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool lzcnt = __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 5)) != 0;
  const bool bmi = lzcnt && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  if (bmi && !no_avx512 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw")) {
    return Isa::kAvx512;
  }
  if (bmi && __builtin_cpu_supports("avx2")) return Isa::kAvx2;
  return Isa::kPortable;
}
const Isa kIsa = DetectIsa();
}  // namespace
#endif

size_t DotDecoder::ScanPortable(const char* data, size_t i, size_t size, size_t& span_start,
                                SpanSink sink) {
  return Scan<PortableMasks>(data, i, size, span_start, sink);
}

DotDecoder::Result DotDecoder::Decode(const char* data, size_t size, SpanSink sink) {
  size_t i = 0;
  size_t span_start = 0;
  // The block scanner needs lines within a block to be under the limit.
  const bool blocks = max_line_length_ >= kBlock;
  while (i < size) {
    if (blocks && (state_ == State::kText || state_ == State::kCr || state_ == State::kLineStart)) {
#if defined(__x86_64__)
      switch (kIsa) {
        case Isa::kAvx512:
          i = ScanAvx512(data, i, size, span_start, sink);
          break;
        case Isa::kAvx2:
          i = ScanAvx2(data, i, size, span_start, sink);
          break;
        case Isa::kPortable:
          i = ScanPortable(data, i, size, span_start, sink);
          break;
      }
#else
      i = ScanPortable(data, i, size, span_start, sink);
#endif
      if (i == size) break;
    }
    // Byte by byte: past whatever stopped the scanner (two bytes cover a bare
    // CR or LF and ".\r"), and on until the state is plain again; or the
    // short tail of the input.
    const size_t resume = size - i < kMinTail ? size : i + 2;
    for (; i < size && (i < resume || state_ == State::kDot || state_ == State::kDotCr); ++i) {
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
