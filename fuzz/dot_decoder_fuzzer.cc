// DotDecoder fed the input in pieces. Byte 0: bits 0-2 = how many piece
// lengths follow (cycled through), bits 3-4 = the line limit (1000, 78, 200
// or 64: each puts the block scanner's line-length shortcuts at a different
// edge). The chosen split, one single piece and one byte at a time (pieces
// under 16 bytes go through the reference state machine only, never the
// block scanner) must agree on where the message ends, its body and its
// flags. Pieces of the first two are each copied to an exact-size heap
// buffer, so ASan catches a vector load past the end of a piece. Set
// SLUICE_DOT_DECODER_ISA=avx2 or portable to fuzz the narrower scanners.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "sluice/smtp/dot_decoder.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

namespace {

struct Outcome {
  std::string body;
  size_t consumed = 0;
  bool done = false, bare = false, too_long = false;
};

// `isolate`: copy each piece into its own heap buffer.
template <typename NextLength>
Outcome Run(const char* in, size_t size, size_t max_line, bool isolate, NextLength next_length) {
  sluice::smtp::DotDecoder decoder(max_line);
  Outcome out;
  while (out.consumed < size || size == 0) {
    const size_t len = std::min(next_length(), size - out.consumed);
    std::unique_ptr<char[]> copy(isolate ? new char[len] : nullptr);
    if (isolate) std::copy(in + out.consumed, in + out.consumed + len, copy.get());
    const char* const piece = isolate ? copy.get() : in + out.consumed;
    const char* end_of_spans = piece;
    auto r = decoder.Decode(piece, len, [&](const char* p, size_t n) {
      FUZZ_CHECK(n > 0 && p >= end_of_spans && p + n <= piece + len);  // inside, in order
      end_of_spans = p + n;
      out.body.append(p, n);
    });
    FUZZ_CHECK(r.consumed <= len && (r.done || r.consumed == len));
    FUZZ_CHECK(end_of_spans <= piece + r.consumed);  // nothing sunk past the end marker
    out.consumed += r.consumed;
    if (r.done) {
      out.done = true;
      break;
    }
    if (size == 0) break;
  }
  out.bare = decoder.bare_line_ending();
  out.too_long = decoder.line_too_long();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t nlen = data[0] & 7;
  constexpr size_t kLimits[] = {1000, 78, 200, 64};
  const size_t max_line = kLimits[(data[0] >> 3) & 3];
  if (size < 1 + nlen) return 0;
  const uint8_t* lengths = data + 1;
  const char* in = reinterpret_cast<const char*>(data + 1 + nlen);
  const size_t n = size - 1 - nlen;

  size_t k = 0;  // lengths are 0..255; a 0 feeds an empty piece once, then 1 byte
  bool gave_empty = false;
  const Outcome split = Run(in, n, max_line, true, [&]() -> size_t {
    if (nlen == 0) return n;
    const size_t len = lengths[k % nlen];
    if (len == 0 && !gave_empty) return gave_empty = true, 0;
    gave_empty = false;
    ++k;
    return len == 0 ? 1 : len;
  });
  const Outcome whole = Run(in, n, max_line, true, [&] { return n; });
  const Outcome bytes = Run(in, n, max_line, false, [] { return size_t{1}; });
  for (const Outcome* o : {&split, &whole}) {
    FUZZ_CHECK(o->done == bytes.done && o->consumed == bytes.consumed);
    if (o->done) FUZZ_CHECK(o->bare == bytes.bare);
    // A message with a bare CR or LF is rejected whatever its body: then the
    // bytes around the bare ending and the line counts may depend on the split.
    if (o->bare || bytes.bare) continue;
    FUZZ_CHECK(o->body == bytes.body);
    if (o->done) FUZZ_CHECK(o->too_long == bytes.too_long);
  }
  return 0;
}
