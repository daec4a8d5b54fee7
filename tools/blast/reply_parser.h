// SMTP reply parsing (RFC 5321 4.2) for the blast client: bytes in, whole
// replies out. A reply may span many lines ("250-..." continued until
// "250 ...") and any line may be split across reads; partial input is kept
// until the rest arrives. A line without a valid three-digit code, a code
// that changes inside a multi-line reply, or a line longer than kLineMax is a
// protocol error, after which the parser stays in error.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::tools {

struct Reply {
  int code = 0;
  std::vector<std::string> lines;  // text after "NNN-" / "NNN ", no CRLF
  bool positive() const { return code >= 200 && code < 400; }
  std::string first() const { return lines.empty() ? std::string() : lines.front(); }
};

class ReplyParser {
 public:
  static constexpr size_t kLineMax = 4096;

  // Appends each reply completed by `data` to `out`. False on a protocol
  // error (now or earlier).
  bool Feed(std::string_view data, std::vector<Reply>& out);
  bool error() const { return error_; }
  // Bytes of an unfinished reply are waiting.
  bool partial() const { return !line_.empty() || in_reply_; }

 private:
  bool TakeLine(std::string_view line, std::vector<Reply>& out);

  std::string line_;
  Reply current_;
  bool in_reply_ = false;
  bool error_ = false;
};

}  // namespace sluice::tools
