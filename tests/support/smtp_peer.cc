// ScriptedSmtpPeer: see smtp_peer.h.
#include "smtp_peer.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace sluice::testing {
namespace {

std::string Upper(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

// "<a@b> SIZE=3" -> "a@b".
std::string Angle(const std::string& arg) {
  const size_t open = arg.find('<');
  const size_t close = arg.find('>', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) return arg;
  return arg.substr(open + 1, close - open - 1);
}

// The text after "VERB " or "VERB FROM:" / "VERB TO:".
std::string Argument(const std::string& line) {
  const size_t colon = line.find(':');
  const size_t space = line.find(' ');
  if (colon != std::string::npos && (space == std::string::npos || colon < line.find('<'))) {
    return line.substr(colon + 1);
  }
  return space == std::string::npos ? std::string() : line.substr(space + 1);
}

}  // namespace

std::string ScriptedSmtpPeer::EhloReply() const {
  if (!options_.ehlo_reply.empty()) return options_.ehlo_reply;
  std::vector<std::string> lines{options_.name};
  if (options_.pipelining) lines.push_back("PIPELINING");
  if (options_.eightbitmime) lines.push_back("8BITMIME");
  if (options_.size > 0) lines.push_back("SIZE " + std::to_string(options_.size));
  if (options_.chunking) lines.push_back("CHUNKING");
  if (options_.enhanced_status_codes) lines.push_back("ENHANCEDSTATUSCODES");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += "\r\n";
    out += (i + 1 == lines.size() ? "250 " : "250-") + lines[i];
  }
  return out;
}

void ScriptedSmtpPeer::OnConnect(io::FakeConnection& c) {
  Session& s = sessions_[c.id()];
  if (options_.silent) {
    s.mode = Mode::kDone;
    return;
  }
  Reply(c, s, options_.greeting);
  if (options_.greeting.rfind("421", 0) == 0) {
    s.mode = Mode::kDone;
    c.Close();
  }
}

void ScriptedSmtpPeer::OnClientClosed(io::FakeConnection& c) {
  ++client_closes_;
  sessions_[c.id()].mode = Mode::kDone;
}

void ScriptedSmtpPeer::Reply(io::FakeConnection& c, Session&, const std::string& reply) {
  c.Send(reply + "\r\n");
}

bool ScriptedSmtpPeer::CountBody(io::FakeConnection& c, Session& s, size_t n) {
  s.body_bytes += n;
  if (options_.close_after_body_bytes == 0 || s.body_bytes < options_.close_after_body_bytes) {
    return true;
  }
  s.mode = Mode::kDone;
  if (options_.reset_instead_of_close) {
    c.Reset();
  } else {
    c.Close();
  }
  return false;
}

void ScriptedSmtpPeer::OnBytes(io::FakeConnection& c, std::string_view bytes) {
  Session& s = sessions_[c.id()];
  if (s.mode == Mode::kDone) return;
  s.input.append(bytes);
  std::vector<std::string> group;
  while (s.mode != Mode::kDone) {
    if (s.mode == Mode::kBdat) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(s.bdat_left, s.input.size()));
      if (k == 0 && s.bdat_left > 0) break;
      s.txn.body.append(s.input, 0, k);
      s.input.erase(0, k);
      s.bdat_left -= k;
      if (!CountBody(c, s, k)) break;
      if (s.bdat_left > 0) break;
      s.mode = Mode::kCommand;
      if (s.bdat_last) {
        Finish(c, s, options_.dot_reply);
      } else {
        Reply(c, s, options_.bdat_reply);
      }
      continue;
    }
    const size_t eol = s.input.find("\r\n");
    if (eol == std::string::npos) break;
    std::string line = s.input.substr(0, eol);
    s.input.erase(0, eol + 2);
    if (s.mode == Mode::kData) {
      if (!CountBody(c, s, line.size() + 2)) break;
      if (line == ".") {
        s.mode = Mode::kCommand;
        Finish(c, s, options_.dot_reply);
        continue;
      }
      if (!line.empty() && line[0] == '.') line.erase(0, 1);
      s.txn.body += line + "\r\n";
      continue;
    }
    group.push_back(line);
    commands_.push_back(line);
    Command(c, s, line);
  }
  if (!group.empty()) groups_.push_back(std::move(group));
}

void ScriptedSmtpPeer::Command(io::FakeConnection& c, Session& s, const std::string& line) {
  const std::string verb = Upper(line.substr(0, line.find(' ')));
  if (!options_.silent_after.empty() && verb == Upper(options_.silent_after)) {
    s.mode = Mode::kDone;
    return;
  }
  if (verb == "EHLO") return Reply(c, s, EhloReply());
  if (verb == "HELO" || verb == "NOOP") return Reply(c, s, "250 " + options_.name);
  if (verb == "MAIL") {
    s.txn = SmtpTransaction{};
    s.txn.connection = c.id();
    s.txn.mail_from = Argument(line);
    s.txn.sender = Angle(s.txn.mail_from);
    s.in_transaction = options_.mail_reply.rfind('2', 0) == 0;
    return Reply(c, s, options_.mail_reply);
  }
  if (verb == "RCPT") return Rcpt(c, s, Argument(line));
  if (verb == "DATA") {
    if (!s.in_transaction || s.txn.recipients.empty()) {
      return Reply(c, s, "554 5.5.1 no valid recipients");
    }
    if (options_.data_reply.rfind('3', 0) == 0) s.mode = Mode::kData;
    return Reply(c, s, options_.data_reply);
  }
  if (verb == "BDAT") return Bdat(c, s, Argument(line));
  if (verb == "RSET") {
    s.txn = SmtpTransaction{};
    s.in_transaction = false;
    return Reply(c, s, options_.rset_reply);
  }
  if (verb == "QUIT") {
    ++quits_;
    Reply(c, s, options_.quit_reply);
    s.mode = Mode::kDone;
    return c.Close();
  }
  Reply(c, s, "500 5.5.2 unknown command");
}

void ScriptedSmtpPeer::Rcpt(io::FakeConnection& c, Session& s, const std::string& arg) {
  if (!s.in_transaction) return Reply(c, s, "503 5.5.1 MAIL first");
  const std::string address = Angle(arg);
  auto it = options_.rcpt_replies.find(address);
  const std::string& reply = it != options_.rcpt_replies.end() ? it->second : options_.rcpt_reply;
  (reply.rfind('2', 0) == 0 ? s.txn.recipients : s.txn.refused).push_back(address);
  Reply(c, s, reply);
}

void ScriptedSmtpPeer::Bdat(io::FakeConnection& c, Session& s, const std::string& arg) {
  s.bdat_left = std::strtoull(arg.c_str(), nullptr, 10);
  s.bdat_last = Upper(arg).find("LAST") != std::string::npos;
  s.txn.bdat = true;
  s.mode = Mode::kBdat;
  if (s.bdat_left == 0) {  // "BDAT 0 LAST"
    s.mode = Mode::kCommand;
    if (s.bdat_last) return Finish(c, s, options_.dot_reply);
    Reply(c, s, options_.bdat_reply);
  }
}

void ScriptedSmtpPeer::Finish(io::FakeConnection& c, Session& s, const std::string& reply) {
  const bool valid = s.in_transaction && !s.txn.recipients.empty();
  const std::string answer = valid ? reply : "554 5.5.1 no valid recipients";
  if (valid) {
    s.txn.final_reply = answer;
    transactions_.push_back(s.txn);
  }
  s.txn = SmtpTransaction{};
  s.in_transaction = false;
  Reply(c, s, answer);
}

}  // namespace sluice::testing
