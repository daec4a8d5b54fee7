// SMTP reply parsing for the outbound client (RFC 5321 4.2, enhanced status
// codes RFC 3463 / RFC 2034): bytes in, one whole reply at a time out.
//
// A reply may span many lines ("250-..." continued until "250 ...") and any
// line may be split anywhere across reads; an incomplete line is copied into
// a bounded buffer until its end arrives. Everything here comes from the
// network, so every size is bounded and every malformation is an error
// result, never a crash:
//   - a line longer than kMaxLine (4 KiB, CRLF included),
//   - a reply of more than kMaxLines lines or kMaxReplyBytes of text,
//   - a line that does not start with a code 2yz..5yz followed by ' ', '-'
//     or the end of the line,
//   - a continuation line whose code differs from the first line's.
// After an error the parser stays in error until Reset().
//
// Lines end in CRLF; a bare LF is accepted as a line end too (a trailing CR
// is stripped), since being strict about replies buys nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::smtp {

// "X.Y.Z" (RFC 3463). cls == 0: none.
struct EnhancedCode {
  uint8_t cls = 0;
  uint16_t subject = 0;
  uint16_t detail = 0;

  bool valid() const { return cls != 0; }
  std::string ToString() const;  // "" when not valid
  bool operator==(const EnhancedCode&) const = default;

  // Parses "X.Y.Z" at the start of `text` (followed by the end or a space);
  // sets `length` to the bytes it took. X is 2, 4 or 5; Y and Z 0..999.
  static bool Parse(std::string_view text, EnhancedCode& out, size_t& length);
};

struct Reply {
  int code = 0;           // 200..599
  bool local = false;     // made up by the client (timeout, lost connection, ...)
  EnhancedCode enhanced;  // from the first line, when its class matches the code
  // The text of every line after "NNN-"/"NNN ", without the enhanced code
  // when one was found on that line, joined with '\n'.
  std::string text;
  size_t lines = 0;

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // The lines of text one by one (for EHLO keywords).
  template <typename F>
  void ForEachLine(F f) const {
    std::string_view t = text;
    for (;;) {
      const size_t nl = t.find('\n');
      f(t.substr(0, nl));
      if (nl == std::string_view::npos) break;
      t.remove_prefix(nl + 1);
    }
  }
};

class ReplyParser {
 public:
  static constexpr size_t kMaxLine = 4096;
  static constexpr size_t kMaxLines = 128;
  static constexpr size_t kMaxReplyBytes = 64 * 1024;

  enum class Status : uint8_t { kNeedMore, kReply, kError };

  // Parses from `data` until one reply is complete (kReply: see reply(); it
  // stays valid until the next call), the input runs out (kNeedMore), or the
  // input is malformed (kError: see error()). `consumed` is how many bytes
  // were used; on kReply the rest of the input belongs to the next reply.
  Status Parse(const char* data, size_t size, size_t& consumed);

  const Reply& reply() const { return reply_; }
  bool error() const { return !error_.empty(); }
  const std::string& error_text() const { return error_; }
  // Bytes of an unfinished reply are waiting.
  bool partial() const { return !line_.empty() || in_reply_; }
  void Reset();

 private:
  // One whole line without its line end; false on a protocol error.
  bool TakeLine(std::string_view line, bool& complete);
  bool Fail(std::string_view why);

  Reply reply_;
  std::string line_;  // a line split across inputs
  bool in_reply_ = false;
  std::string error_;
};

}  // namespace sluice::smtp
