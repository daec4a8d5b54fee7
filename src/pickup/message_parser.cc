#include "sluice/pickup/message_parser.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/smtp/address.h"

namespace sluice::pickup {
namespace {

struct Line {
  std::string_view text;  // without its line end
  size_t number = 0;      // 1-based
};

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (IsWsp(s.front()) || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (IsWsp(s.back()) || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool HasNonAscii(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// A header field name: printable US-ASCII except ':' (RFC 5322 2.2).
bool IsFieldName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126) return false;
  }
  return true;
}

// One header field: its name, its unfolded value, its lines.
struct Field {
  std::string_view name;
  std::string value;  // continuation lines joined, CRLF removed
  size_t first = 0;   // index into lines
  size_t count = 0;   // lines it spans
};

class Parser {
 public:
  Parser(std::string_view file, const Limits& limits) : file_(file), limits_(limits) {}

  Result Run() {
    if (file_.empty()) return Fail(0, "empty file");
    if (file_.size() > limits_.max_message_size) {
      return Fail(0,
                  absl::StrCat("file of ", file_.size(), " bytes exceeds the message size limit (",
                               limits_.max_message_size, " bytes)"));
    }
    if (!SplitLines()) return std::move(result_);
    if (!ParseHeader()) return std::move(result_);
    if (!Envelope()) return std::move(result_);
    if (!Build()) return std::move(result_);
    result_.ok = true;
    return std::move(result_);
  }

 private:
  bool Failed(size_t line, std::string reason) {
    result_.ok = false;
    result_.error = Error{line, std::move(reason)};
    return false;
  }
  Result Fail(size_t line, std::string reason) {
    Failed(line, std::move(reason));
    return std::move(result_);
  }

  // Splits into lines, checking line ends, NULs and line length.
  bool SplitLines() {
    size_t pos = 0;
    size_t number = 1;
    while (pos < file_.size()) {
      size_t end = pos;
      while (end < file_.size() && file_[end] != '\n' && file_[end] != '\r' && file_[end] != '\0') {
        ++end;
      }
      std::string_view text = file_.substr(pos, end - pos);
      if (end < file_.size() && file_[end] == '\0') {
        return Failed(number, "NUL byte (binary data is not a message)");
      }
      size_t next;
      if (end == file_.size()) {
        next = end;  // last line without a line end: accepted, CRLF added
      } else if (file_[end] == '\n') {
        next = end + 1;  // bare LF: normalised to CRLF
      } else if (end + 1 < file_.size() && file_[end + 1] == '\n') {
        next = end + 2;  // CRLF
      } else {
        return Failed(number, "bare CR (a CR not followed by LF)");
      }
      if (text.size() + 2 > limits_.max_line_length) {
        return Failed(number, absl::StrCat("line of ", text.size() + 2,
                                           " bytes (with CRLF) exceeds the line length limit (",
                                           limits_.max_line_length, ")"));
      }
      lines_.push_back(Line{text, number});
      ++number;
      pos = next;
    }
    return true;
  }

  bool ParseHeader() {
    size_t i = 0;
    for (; i < lines_.size(); ++i) {
      const Line& l = lines_[i];
      if (l.text.empty()) break;  // end of the header section
      if (IsWsp(l.text.front())) {
        if (fields_.empty()) return Failed(l.number, "continuation line before any header field");
        Field& f = fields_.back();
        absl::StrAppend(&f.value, base::Av(l.text));
        ++f.count;
        continue;
      }
      const size_t colon = l.text.find(':');
      if (colon == std::string_view::npos) {
        return Failed(
            l.number,
            "not a header field (no ':'); the header section must end with an empty line");
      }
      std::string_view name = l.text.substr(0, colon);
      // RFC 822 allowed white space before the colon; RFC 5322 obsoletes it.
      if (!IsFieldName(name)) return Failed(l.number, "malformed header field name");
      Field f;
      f.name = name;
      f.value = std::string(l.text.substr(colon + 1));
      f.first = i;
      f.count = 1;
      fields_.push_back(std::move(f));
    }
    if (fields_.empty()) return Failed(1, "no header fields");
    if (i == lines_.size()) {
      return Failed(lines_.back().number,
                    "header section not followed by an empty line (truncated file?)");
    }
    body_start_ = i;  // the empty line
    return true;
  }

  bool ParseAddress(std::string_view text, size_t line, smtp::PathKind kind, std::string& out,
                    std::string_view what) {
    std::string_view a = Trim(text);
    std::string wrapped;
    if (a.empty() || a.front() != '<') {
      wrapped = absl::StrCat("<", base::Av(a), ">");
      a = wrapped;
    }
    const bool utf8 = HasNonAscii(a);
    auto parsed = smtp::ParsePath(a, kind, utf8);
    if (!parsed.ok() || !Trim(parsed->rest).empty()) {
      std::string shown(Trim(text).substr(0, 200));
      for (char& c : shown) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      }
      return Failed(line,
                    absl::StrCat("bad ", base::Av(what), " address '", shown, "'",
                                 parsed.ok() ? ": text after '>'"
                                             : absl::StrCat(": ", parsed.status().message())));
    }
    out = parsed->mailbox.ToString();
    result_.message.smtputf8 |= utf8;
    return true;
  }

  // Envelope lines first, then recipients and sender from the header if the
  // envelope did not give them.
  bool Envelope() {
    const Message& m = result_.message;
    if (!EnvelopeLines() || !HeaderFacts()) return false;
    if (!m.envelope_to_given && !RecipientsFromHeader()) return false;
    if (!m.envelope_from_given && !SenderFromHeader()) return false;
    return RequireFrom();
  }

  // The X-Sluice-Envelope-From/To lines, which must lead the header.
  bool EnvelopeLines() {
    Message& m = result_.message;
    bool leading = true;
    for (size_t k = 0; k < fields_.size(); ++k) {
      const Field& f = fields_[k];
      const size_t line = lines_[f.first].number;
      const bool is_from = base::EqualsIgnoreCase(f.name, kEnvelopeFrom);
      const bool is_to = base::EqualsIgnoreCase(f.name, kEnvelopeTo);
      if (!is_from && !is_to) {
        leading = false;
        continue;
      }
      if (!leading) {
        return Failed(line,
                      absl::StrCat(base::Av(f.name), " must come before every other header field"));
      }
      ++envelope_fields_;
      if (is_from) {
        if (m.envelope_from_given) return Failed(line, "more than one X-Sluice-Envelope-From");
        if (!ParseAddress(f.value, line, smtp::PathKind::kReversePath, m.sender,
                          "envelope sender")) {
          return false;
        }
        m.envelope_from_given = true;
      } else {
        std::string rcpt;
        if (!ParseAddress(f.value, line, smtp::PathKind::kForwardPath, rcpt,
                          "envelope recipient")) {
          return false;
        }
        if (!AddRecipient(std::move(rcpt), line)) return false;
        m.envelope_to_given = true;
      }
    }
    return true;
  }

  // Date:, Message-ID:, From: seen; the hop count checked.
  bool HeaderFacts() {
    Message& m = result_.message;
    size_t hops = 0;
    for (const Field& f : fields_) {
      if (base::EqualsIgnoreCase(f.name, "Date")) m.has_date = true;
      if (base::EqualsIgnoreCase(f.name, "Message-ID")) m.has_message_id = true;
      if (base::EqualsIgnoreCase(f.name, "From")) ++m.from_count;
      if (base::EqualsIgnoreCase(f.name, "Received")) ++hops;
    }
    if (hops > limits_.max_hops) {
      return Failed(0, absl::StrCat("too many hops: ", hops, " Received: header fields (limit ",
                                    limits_.max_hops, ")"));
    }
    return true;
  }

  // No X-Sluice-Envelope-To: every address of To, Cc and Bcc.
  bool RecipientsFromHeader() {
    for (const Field& f : fields_) {
      if (!base::EqualsIgnoreCase(f.name, "To") && !base::EqualsIgnoreCase(f.name, "Cc") &&
          !base::EqualsIgnoreCase(f.name, "Bcc")) {
        continue;
      }
      const size_t line = lines_[f.first].number;
      std::vector<std::string> addresses;
      if (!ExtractAddresses(f.value, addresses)) {
        return Failed(line, absl::StrCat("malformed address list in ", base::Av(f.name)));
      }
      for (const std::string& a : addresses) {
        std::string rcpt;
        if (!ParseAddress(a, line, smtp::PathKind::kForwardPath, rcpt, "recipient")) return false;
        if (!AddRecipient(std::move(rcpt), line)) return false;
      }
    }
    if (result_.message.recipients.empty()) {
      return Failed(0,
                    "no recipients: no X-Sluice-Envelope-To line and no address in To, Cc or Bcc");
    }
    return true;
  }

  // No X-Sluice-Envelope-From: the last Sender:, else the first From:.
  bool SenderFromHeader() {
    const Field* source = nullptr;
    for (const Field& f : fields_) {
      if (base::EqualsIgnoreCase(f.name, "Sender")) source = &f;
    }
    if (source == nullptr) {
      for (const Field& f : fields_) {
        if (base::EqualsIgnoreCase(f.name, "From") && source == nullptr) source = &f;
      }
    }
    if (source == nullptr) {
      return Failed(0, "no sender: no X-Sluice-Envelope-From line and no Sender or From field");
    }
    const size_t line = lines_[source->first].number;
    std::vector<std::string> addresses;
    if (!ExtractAddresses(source->value, addresses)) {
      return Failed(line, absl::StrCat("malformed address in ", base::Av(source->name)));
    }
    if (addresses.empty()) {
      return Failed(line, absl::StrCat("no address in ", base::Av(source->name)));
    }
    return ParseAddress(addresses.front(), line, smtp::PathKind::kReversePath,
                        result_.message.sender, "sender");
  }

  // server.require_from: exactly one From field (RFC 5322 3.6). Checked
  // last, so the envelope's faults are reported first.
  bool RequireFrom() {
    if (!limits_.require_from) return true;
    size_t seen = 0;
    for (const Field& f : fields_) {
      if (base::EqualsIgnoreCase(f.name, "From") && ++seen == 2) {
        return Failed(lines_[f.first].number,
                      "a second From field (RFC 5322 3.6 allows exactly one; receivers such as "
                      "Gmail refuse the message)");
      }
    }
    if (seen == 0) {
      return Failed(0,
                    "no From field in the header (RFC 5322 3.6 requires exactly one; receivers "
                    "such as Gmail refuse the message)");
    }
    return true;
  }

  bool AddRecipient(std::string rcpt, size_t line) {
    std::vector<std::string>& r = result_.message.recipients;
    // The same address twice gets one copy (as an MTA does with RCPT TO).
    for (const std::string& seen : r) {
      if (seen == rcpt) return true;
    }
    if (r.size() >= limits_.max_recipients) {
      return Failed(line, absl::StrCat("more than ", limits_.max_recipients, " recipients"));
    }
    r.push_back(std::move(rcpt));
    return true;
  }

  bool Build() {
    Message& m = result_.message;
    std::string& out = m.body;
    out.reserve(file_.size() + lines_.size() + 2);
    std::vector<bool> drop(body_start_, false);
    for (size_t k = 0; k < fields_.size(); ++k) {
      const Field& f = fields_[k];
      if (k < envelope_fields_ || base::EqualsIgnoreCase(f.name, "Bcc")) {
        for (size_t j = f.first; j < f.first + f.count; ++j) drop[j] = true;
      }
    }
    for (size_t i = 0; i < lines_.size(); ++i) {
      if (i < body_start_ && drop[i]) continue;
      // The last line gets a CRLF even when the file lacked its line end.
      absl::StrAppend(&out, base::Av(lines_[i].text), "\r\n");
      if (HasNonAscii(lines_[i].text)) m.eight_bit = true;
    }
    if (out.size() > limits_.max_message_size) {
      return Failed(0, absl::StrCat("message of ", out.size(),
                                    " bytes (after CRLF normalisation) exceeds the message size "
                                    "limit (",
                                    limits_.max_message_size, " bytes)"));
    }
    return true;
  }

  std::string_view file_;
  const Limits& limits_;
  std::vector<Line> lines_;
  std::vector<Field> fields_;
  size_t body_start_ = 0;
  size_t envelope_fields_ = 0;
  Result result_;
};

}  // namespace

std::string Error::ToString() const {
  if (line == 0) return absl::StrCat("file: ", reason);
  return absl::StrCat("line ", line, ": ", reason);
}

namespace {

// Walks an address list once, tracking quotes, comments and angle
// brackets; a top-level ',' ends an entry, a top-level ':' ends a group
// name and a top-level ';' ends a group.
class AddressListScanner {
 public:
  AddressListScanner(std::string_view value, std::vector<std::string>& out)
      : value_(value), out_(out) {}

  bool Run() {
    for (i_ = 0; i_ < value_.size(); ++i_) {
      if (in_quote_) {
        Quoted();
      } else if (comment_ > 0) {
        Comment();
      } else if (!TopLevel(value_[i_])) {
        return false;
      }
    }
    if (in_quote_ || comment_ > 0 || in_angle_) return false;
    Finish();
    // Display-name words before a bare addr-spec would have been caught by
    // the caller's address check; an entry with spaces outside quotes and
    // no angle brackets is left for it to reject.
    return true;
  }

 private:
  std::string& text() { return in_angle_ ? angle_ : plain_; }

  void Quoted() {
    const char c = value_[i_];
    if (c == '\\' && i_ + 1 < value_.size()) {
      text() += c;
      text() += value_[++i_];
      return;
    }
    if (c == '"') in_quote_ = false;
    text() += c;
  }

  void Comment() {
    const char c = value_[i_];
    if (c == '\\' && i_ + 1 < value_.size()) {
      ++i_;
    } else if (c == '(') {
      ++comment_;
    } else if (c == ')') {
      --comment_;
    }
  }

  // A byte outside quotes and comments; false when the list is malformed.
  bool TopLevel(char c) {
    switch (c) {
      case '"':
        in_quote_ = true;
        text() += c;
        return true;
      case '(':
        comment_ = 1;
        return true;
      case ')':
        return false;
      case '<':
        if (in_angle_) return false;
        in_angle_ = have_angle_ = true;
        angle_.clear();
        return true;
      case '>':
        if (!in_angle_) return false;
        in_angle_ = false;
        return true;
      case ',':
      case ';':
        if (in_angle_) return false;
        Finish();
        return true;
      case ':':
        if (in_angle_) {
          angle_ += c;  // a source route
        } else if (!have_angle_) {
          plain_.clear();  // "group name:" — what follows are its members
        } else {
          return false;
        }
        return true;
      default:
        text() += c;
        return true;
    }
  }

  void Finish() {
    std::string_view t = Trim(have_angle_ ? angle_ : plain_);
    if (!t.empty()) out_.emplace_back(t);
    plain_.clear();
    angle_.clear();
    have_angle_ = false;
  }

  const std::string_view value_;
  std::vector<std::string>& out_;
  size_t i_ = 0;
  std::string plain_;  // the entry with comments removed
  std::string angle_;  // the last <...> of the entry
  bool have_angle_ = false;
  bool in_quote_ = false;
  int comment_ = 0;
  bool in_angle_ = false;
};

}  // namespace

bool ExtractAddresses(std::string_view value, std::vector<std::string>& out) {
  return AddressListScanner(value, out).Run();
}

Result ParseMessage(std::string_view file, const Limits& limits) {
  return Parser(file, limits).Run();
}

}  // namespace sluice::pickup
