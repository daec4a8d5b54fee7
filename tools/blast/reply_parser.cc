#include "tools/blast/reply_parser.h"

namespace sluice::tools {

bool ReplyParser::Feed(std::string_view data, std::vector<Reply>& out) {
  while (!error_ && !data.empty()) {
    const size_t lf = data.find('\n');
    if (lf == std::string_view::npos) {
      if (line_.size() + data.size() > kLineMax) {
        error_ = true;
        break;
      }
      line_.append(data);
      break;
    }
    if (line_.empty()) {
      if (!TakeLine(data.substr(0, lf), out)) error_ = true;
    } else {
      line_.append(data.substr(0, lf));
      if (line_.size() > kLineMax || !TakeLine(line_, out)) error_ = true;
      line_.clear();
    }
    data.remove_prefix(lf + 1);
  }
  return !error_;
}

bool ReplyParser::TakeLine(std::string_view line, std::vector<Reply>& out) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() < 3 || line.size() > kLineMax) return false;
  int code = 0;
  for (int i = 0; i < 3; ++i) {
    const char c = line[static_cast<size_t>(i)];
    if (c < '0' || c > '9') return false;
    code = code * 10 + (c - '0');
  }
  if (code < 100 || code > 599) return false;
  bool more = false;
  if (line.size() > 3) {
    if (line[3] == '-') {
      more = true;
    } else if (line[3] != ' ') {
      return false;
    }
  }
  if (in_reply_ && code != current_.code) return false;
  if (!in_reply_) {
    current_.code = code;
    current_.lines.clear();
    in_reply_ = true;
  }
  current_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  if (!more) {
    out.push_back(std::move(current_));
    current_ = Reply();
    in_reply_ = false;
  }
  return true;
}

}  // namespace sluice::tools
