// DKIM canonicalization (RFC 6376 3.4): the header and body forms that are
// hashed, "simple" and "relaxed". Pure: bytes in, bytes out, no crypto.
//
// Line endings are taken the way smtp::DotEncoder sends them: CRLF, a bare
// LF and a bare CR each end a line (the encoder turns the last two into
// CRLF on the wire), so what is hashed here is what the next hop receives.
// Trusts nothing about its input; any byte sequence is canonicalized.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::dkim {

enum class Canon : uint8_t { kSimple, kRelaxed };
const char* CanonName(Canon c);

// One header field, as it appears in the message (name, colon, value and
// its folded continuation lines, with or without the final line ending),
// canonicalized and appended to `out`, ending with CRLF. Relaxed: the name
// in lower case, the value unfolded, runs of SP/HTAB as one SP, no blanks
// around the colon or at the end. Simple: unchanged (line endings as CRLF).
void CanonicalizeHeader(Canon canon, std::string_view field, std::string& out);

// The body, fed in pieces of any size (a line ending may be split across
// pieces). Appends canonical bytes to `out` as it goes; empty lines are held
// back until a non-empty line follows, because trailing ones are dropped.
//   simple:  bytes unchanged; trailing empty lines dropped; an empty body
//            is one CRLF; a last line without CRLF gets one
//   relaxed: also blanks at line ends dropped and runs of SP/HTAB become
//            one SP; an empty body stays empty
class BodyCanonicalizer {
 public:
  explicit BodyCanonicalizer(Canon canon) : canon_(canon) {}
  void Feed(std::string_view piece, std::string& out);
  void Finish(std::string& out);

 private:
  void EndLine(std::string& out);
  void StartContent(std::string& out);

  Canon canon_;
  bool prev_cr_ = false;        // the last byte was a CR (its LF may follow)
  bool line_content_ = false;   // the current line has bytes to keep
  bool pending_blank_ = false;  // relaxed: SP/HTAB seen, not yet written
  uint64_t empty_lines_ = 0;    // empty lines held back
  uint64_t written_ = 0;        // bytes appended so far
};

}  // namespace sluice::dkim
