#include "sluice/smtp/dot_encoder.h"

#include <cstdint>
#include <cstring>

#include "block_masks.h"

namespace sluice::smtp {
namespace {

constexpr size_t kBlock = 64;

using dot_decoder_internal::Masks;

// The whole 64-byte blocks at the start of data[0..size) that go out as they
// are: every LF right after a CR, every CR right before an LF and none as a
// block's last byte (its LF would be in the next block), and with stuffing
// no dot at the start of a line. `line_start`: the byte before data ended a
// line (or there is none). The usual CRLF text passes a block per step.
size_t CleanBlocks(const char* data, size_t size, bool line_start, bool stuff) {
  uint64_t starts = line_start ? 1 : 0;  // bit 0: data[0] starts a line
  size_t i = 0;
  while (size - i >= kBlock) {
    const Masks m = BlockMasks64(data + i);
    const uint64_t pairing = m.lf ^ (m.cr << 1);  // LF without CR before, CR without LF after
    const uint64_t line_dots = stuff ? m.dot & ((m.lf << 1) | starts) : 0;
    if ((pairing | (m.cr >> 63) | line_dots) != 0) break;
    starts = m.lf >> 63;
    i += kBlock;
  }
  return i;
}

}  // namespace

void DotEncoder::Reset(bool stuff) {
  state_ = State::kLineStart;
  stuff_ = stuff;
  normalised_ = false;
  input_bytes_ = 0;
}

void DotEncoder::Encode(const char* data, size_t size, std::string& out) {
  input_bytes_ += size;
  size_t i = 0;
  while (i < size) {
    if (state_ != State::kCr) {
      const size_t clean = CleanBlocks(data + i, size - i, state_ == State::kLineStart, stuff_);
      if (clean > 0) {
        out.append(data + i, clean);
        i += clean;
        state_ = data[i - 1] == '\n' ? State::kLineStart : State::kText;
        if (i == size) return;
      }
    }
    if (state_ == State::kCr) {
      // The CR was held back: CRLF stays one line end, a bare CR becomes one.
      out.append("\r\n", 2);
      state_ = State::kLineStart;
      if (data[i] == '\n') {
        ++i;
        continue;
      }
      normalised_ = true;
    }
    if (state_ == State::kLineStart) {
      if (data[i] == '.' && stuff_) out.push_back('.');
      state_ = State::kText;
    }
    // Inside a line: copy up to the next CR or LF in one append. The usual
    // line is "text\r\n": one memchr finds the LF, a second shows the only
    // CR is the one right before it.
    const char* p = data + i;
    const size_t avail = size - i;
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', avail));
    const size_t run_end = lf ? static_cast<size_t>(lf - p) : avail;
    const char* cr = static_cast<const char*>(std::memchr(p, '\r', run_end));
    if (cr == nullptr) {
      if (lf == nullptr) {
        out.append(p, avail);
        return;
      }
      // Bare LF.
      out.append(p, run_end);
      out.append("\r\n", 2);
      normalised_ = true;
      state_ = State::kLineStart;
      i += run_end + 1;
      continue;
    }
    const size_t cr_at = static_cast<size_t>(cr - p);
    if (lf != nullptr && cr_at + 1 == run_end) {
      // Text CRLF, copied as it is.
      out.append(p, run_end + 1);
      state_ = State::kLineStart;
      i += run_end + 1;
      continue;
    }
    // A CR not directly followed by LF here (or at the end of the span):
    // copy up to it and decide on the next byte.
    out.append(p, cr_at);
    state_ = State::kCr;
    i += cr_at + 1;
  }
}

void DotEncoder::Finish(std::string& out) {
  if (state_ == State::kCr) {
    normalised_ = true;  // a bare CR at the very end
    out.append("\r\n", 2);
  } else if (state_ == State::kText) {
    out.append("\r\n", 2);
  }
  state_ = State::kLineStart;
  if (stuff_) out.append(".\r\n", 3);
}

}  // namespace sluice::smtp
