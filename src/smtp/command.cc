#include "sluice/smtp/command.h"

#include <cstring>
#include <utility>

#include "sluice/base/strings.h"

namespace sluice::smtp {
namespace {

using base::EqualsIgnoreCase;
using base::ParseUint64;
using base::StartsWithIgnoreCase;

struct VerbEntry {
  std::string_view name;
  Verb verb;
};

constexpr VerbEntry kVerbs[] = {
    {"EHLO", Verb::kEhlo},         {"HELO", Verb::kHelo}, {"MAIL", Verb::kMail},
    {"RCPT", Verb::kRcpt},         {"DATA", Verb::kData}, {"BDAT", Verb::kBdat},
    {"RSET", Verb::kRset},         {"NOOP", Verb::kNoop}, {"QUIT", Verb::kQuit},
    {"VRFY", Verb::kVrfy},         {"HELP", Verb::kHelp}, {"EXPN", Verb::kExpn},
    {"STARTTLS", Verb::kStartTls}, {"AUTH", Verb::kAuth}, {"ETRN", Verb::kEtrn},
    {"TURN", Verb::kTurn},
};

std::string_view TrimTrailingSpace(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view SkipSpaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

}  // namespace

Command ParseCommand(std::string_view line) {
  Command cmd;
  // Strict framing: the line must end in CRLF and hold no other CR or NUL.
  if (line.size() < 2 || line[line.size() - 1] != '\n' || line[line.size() - 2] != '\r') {
    cmd.verb = Verb::kBadSyntax;
    return cmd;
  }
  line.remove_suffix(2);
  if (line.find('\r') != std::string_view::npos ||
      std::memchr(line.data(), '\0', line.size()) != nullptr) {
    cmd.verb = Verb::kBadSyntax;
    return cmd;
  }
  size_t verb_end = line.find(' ');
  std::string_view verb = line.substr(0, verb_end);
  std::string_view rest =
      verb_end == std::string_view::npos ? std::string_view() : line.substr(verb_end + 1);
  for (const VerbEntry& v : kVerbs) {
    if (EqualsIgnoreCase(verb, v.name)) {
      cmd.verb = v.verb;
      break;
    }
  }
  rest = TrimTrailingSpace(rest);
  if (cmd.verb == Verb::kMail || cmd.verb == Verb::kRcpt) {
    const std::string_view prefix = cmd.verb == Verb::kMail ? "FROM:" : "TO:";
    if (StartsWithIgnoreCase(rest, prefix)) {
      rest.remove_prefix(prefix.size());
      rest = SkipSpaces(rest);  // "MAIL FROM: <a@b>" is common; accept it
    } else {
      cmd.has_prefix = false;
    }
  }
  cmd.argument = rest;
  return cmd;
}

ParamResult ParseMailParameters(std::string_view text, MailParameters& out) {
  bool seen_size = false, seen_body = false, seen_smtputf8 = false;
  // Marks a keyword as seen; false when it already was.
  auto first = [](bool& seen) { return !std::exchange(seen, true); };
  while (!text.empty()) {
    if (text.front() != ' ') return {ParamError::kSyntax, text};
    text = SkipSpaces(text);
    if (text.empty()) break;
    size_t end = text.find(' ');
    std::string_view param = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end);
    size_t eq = param.find('=');
    std::string_view key = param.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (EqualsIgnoreCase(key, "SIZE")) {
      if (!first(seen_size)) return {ParamError::kDuplicate, key};
      if (!ParseUint64(value, out.size)) {
        return {ParamError::kBadValue, key};
      }
    } else if (EqualsIgnoreCase(key, "BODY")) {
      if (!first(seen_body)) return {ParamError::kDuplicate, key};
      if (EqualsIgnoreCase(value, "7BIT")) {
        out.body = BodyType::k7Bit;
      } else if (EqualsIgnoreCase(value, "8BITMIME")) {
        out.body = BodyType::k8BitMime;
      } else {
        return {ParamError::kBadValue, key};
      }
    } else if (EqualsIgnoreCase(key, "SMTPUTF8")) {
      if (!first(seen_smtputf8)) return {ParamError::kDuplicate, key};
      if (eq != std::string_view::npos) return {ParamError::kBadValue, key};
      out.smtputf8 = true;
    } else {
      return {ParamError::kUnknown, key};
    }
  }
  return {};
}

ParamResult ParseRcptParameters(std::string_view text) {
  text = SkipSpaces(text);
  if (text.empty()) return {};
  std::string_view param = text.substr(0, text.find(' '));
  return {ParamError::kUnknown, param.substr(0, param.find('='))};
}

bool ParseBdatArgument(std::string_view argument, uint64_t& size, bool& last, bool& size_ok) {
  size_ok = false;
  last = false;
  size_t space = argument.find(' ');
  std::string_view size_text = argument.substr(0, space);
  if (!ParseUint64(size_text, size)) {
    return false;
  }
  size_ok = true;
  if (space == std::string_view::npos) return true;
  std::string_view tail = SkipSpaces(argument.substr(space));
  if (EqualsIgnoreCase(tail, "LAST")) {
    last = true;
    return true;
  }
  return false;
}

std::string_view VerbName(Verb verb) {
  for (const VerbEntry& v : kVerbs) {
    if (v.verb == verb) return v.name;
  }
  return "";
}

}  // namespace sluice::smtp
