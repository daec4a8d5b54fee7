#include "sluice/smtp/reply_parser.h"

#include <cstring>

namespace sluice::smtp {
namespace {

bool Digits(std::string_view text, size_t& i, uint32_t& value, size_t max_digits) {
  const size_t start = i;
  value = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < max_digits) {
    value = value * 10 + static_cast<uint32_t>(text[i] - '0');
    ++i;
  }
  return i > start;
}

}  // namespace

bool EnhancedCode::Parse(std::string_view text, EnhancedCode& out, size_t& length) {
  size_t i = 0;
  uint32_t c = 0, s = 0, d = 0;
  if (!Digits(text, i, c, 1) || (c != 2 && c != 4 && c != 5)) return false;
  if (i >= text.size() || text[i] != '.') return false;
  ++i;
  if (!Digits(text, i, s, 3)) return false;
  if (i >= text.size() || text[i] != '.') return false;
  ++i;
  if (!Digits(text, i, d, 3)) return false;
  if (i < text.size() && text[i] != ' ') return false;
  out.cls = static_cast<uint8_t>(c);
  out.subject = static_cast<uint16_t>(s);
  out.detail = static_cast<uint16_t>(d);
  length = i;
  return true;
}

std::string EnhancedCode::ToString() const {
  if (!valid()) return std::string();
  return std::to_string(cls) + "." + std::to_string(subject) + "." + std::to_string(detail);
}

void ReplyParser::Reset() {
  reply_ = Reply();
  line_.clear();
  in_reply_ = false;
  error_.clear();
}

bool ReplyParser::Fail(std::string_view why) {
  error_.assign(why);
  line_.clear();
  return false;
}

ReplyParser::Status ReplyParser::Parse(const char* data, size_t size, size_t& consumed) {
  consumed = 0;
  if (error()) return Status::kError;
  while (consumed < size) {
    const char* p = data + consumed;
    const size_t avail = size - consumed;
    const void* lf = std::memchr(p, '\n', avail);
    if (lf == nullptr) {
      if (line_.size() + avail > kMaxLine) {
        Fail("reply line too long");
        return Status::kError;
      }
      line_.append(p, avail);
      consumed = size;
      return Status::kNeedMore;
    }
    const size_t len = static_cast<size_t>(static_cast<const char*>(lf) - p);
    consumed += len + 1;
    bool complete = false;
    bool ok;
    if (line_.empty()) {
      ok = len + 1 <= kMaxLine ? TakeLine(std::string_view(p, len), complete)
                               : Fail("reply line too long");
    } else {
      if (line_.size() + len + 1 > kMaxLine) {
        ok = Fail("reply line too long");
      } else {
        line_.append(p, len);
        ok = TakeLine(line_, complete);
        line_.clear();
      }
    }
    if (!ok) return Status::kError;
    if (complete) return Status::kReply;
  }
  return Status::kNeedMore;
}

bool ReplyParser::TakeLine(std::string_view line, bool& complete) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() < 3) return Fail("reply line without a code");
  const char a = line[0], b = line[1], c = line[2];
  if (a < '2' || a > '5' || b < '0' || b > '9' || c < '0' || c > '9') {
    return Fail("reply line without a valid code");
  }
  const int code = (a - '0') * 100 + (b - '0') * 10 + (c - '0');
  bool more = false;
  if (line.size() > 3) {
    if (line[3] == '-') {
      more = true;
    } else if (line[3] != ' ') {
      return Fail("reply code not followed by space or hyphen");
    }
  }
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
  if (!in_reply_) {
    reply_.code = code;
    reply_.enhanced = EnhancedCode();
    reply_.text.clear();
    reply_.lines = 0;
    in_reply_ = true;
  } else if (code != reply_.code) {
    return Fail("reply code changed inside a multi-line reply");
  }
  if (++reply_.lines > kMaxLines) return Fail("reply has too many lines");
  // An enhanced code whose class matches the reply's is taken from the first
  // line and stripped from every line that repeats one.
  EnhancedCode ec;
  size_t ec_len = 0;
  if (EnhancedCode::Parse(text, ec, ec_len) && ec.cls == code / 100) {
    if (reply_.lines == 1) reply_.enhanced = ec;
    text.remove_prefix(ec_len);
    if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  }
  if (reply_.text.size() + text.size() + 1 > kMaxReplyBytes) return Fail("reply too long");
  if (reply_.lines > 1) reply_.text.push_back('\n');
  reply_.text.append(text);
  if (!more) {
    in_reply_ = false;
    complete = true;
  }
  return true;
}

}  // namespace sluice::smtp
