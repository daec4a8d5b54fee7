// SMTP command lines (RFC 5321 4.1, RFC 3030 BDAT): one line in, one parsed
// command out. Pure and allocation-free: views point into the line.
//
// The caller has already cut the line at LF and checked its length; this
// code trusts nothing else about it (NULs, bare CRs, junk are all handled).
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice::smtp {

enum class Verb : uint8_t {
  kUnknown,
  kBadSyntax,  // NUL byte or bare CR inside the line, or no CRLF at its end
  kEhlo,
  kHelo,
  kMail,
  kRcpt,
  kData,
  kBdat,
  kRset,
  kNoop,
  kQuit,
  kVrfy,
  kHelp,
  kExpn,
  kStartTls,
  kAuth,
  kEtrn,
  kTurn,
};

// The verb as written in the protocol ("RCPT"); "" for kUnknown/kBadSyntax.
std::string_view VerbName(Verb verb);

struct Command {
  Verb verb = Verb::kUnknown;
  // Everything after the verb and one separating space, with trailing
  // whitespace removed. For MAIL and RCPT: the text after "FROM:"/"TO:"
  // (leading spaces skipped), and `has_prefix` says whether that prefix was
  // there.
  std::string_view argument;
  bool has_prefix = true;
};

// `line` includes its terminating LF (and CR before it, if any).
Command ParseCommand(std::string_view line);

// ESMTP parameters of MAIL (RFC 1869, 1870, 6152, 6531).
enum class BodyType : uint8_t { k7Bit, k8BitMime, kBinaryMime };

struct MailParameters {
  uint64_t size = 0;  // 0: not declared
  BodyType body = BodyType::k7Bit;
  bool smtputf8 = false;
};

// kDuplicate: the same keyword twice in one command (RFC 5321 4.1.2 gives
// each esmtp-keyword one meaning; "SIZE=1 SIZE=2" has none).
enum class ParamError : uint8_t { kNone, kUnknown, kBadValue, kSyntax, kDuplicate };

struct ParamResult {
  ParamError error = ParamError::kNone;
  std::string_view name;  // the offending keyword
};

// `text` is what follows the '>' of the path: zero or more " KEY[=VALUE]".
ParamResult ParseMailParameters(std::string_view text, MailParameters& out);
// RCPT supports no parameters yet; any one is kUnknown.
ParamResult ParseRcptParameters(std::string_view text);

// BDAT: "<size> [LAST]". Returns false on bad syntax; `size_ok` says whether
// the size itself parsed (then the chunk must still be read and dropped).
bool ParseBdatArgument(std::string_view argument, uint64_t& size, bool& last, bool& size_ok);

}  // namespace sluice::smtp
