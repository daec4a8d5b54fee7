// BuildDsn (dsn.h): the RFC 3464 bounce for failed recipients, built from
// cleaned facts into a multipart/report message. Pure: no I/O, no clock
// (the caller passes the time).
//
// Trusts nothing in its input: addresses, diagnostics and the returned
// header section are cleaned, wrapped and folded here. Limits: the returned
// header section is cut at DsnInput::max_returned_header_bytes and
// X-Failed-Recipients at kFailedRecipientsHeaderMax.
#include "sluice/dsn/dsn.h"

#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "header_scan.h"
#include "sluice/base/limits.h"
#include "sluice/base/strings.h"
#include "sluice/base/utc_time.h"

namespace sluice::dsn {
namespace {

using base::Av;
using internal::ForEachHeaderLine;
using internal::IsSpace;

// RFC 5322 2.1.1: lines at most 998 characters, should be at most 78.
constexpr size_t kLineMax = 998;
constexpr size_t kFoldAt = 78;
constexpr size_t kWrapAt = 76;         // human text
constexpr size_t kIdTokenMax = 24;     // queue id characters used in Message-ID and boundary
constexpr size_t kOpaqueTextMax = 64;  // queue id as a field value

// Length of the valid UTF-8 sequence (2..4 bytes, shortest form, no
// surrogates) starting at s[i], 0 if there is none. Sets *cp.
size_t Utf8Sequence(std::string_view s, size_t i, uint32_t* cp) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t v;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    v = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    v = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xc0) != 0x80) return 0;
    v = (v << 6) | (d & 0x3f);
  }
  if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
      (v >= 0xd800 && v <= 0xdfff)) {
    return 0;
  }
  *cp = v;
  return n;
}

bool HasEightBit(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// Untrusted text made fit for one header field: printable ASCII and single
// spaces only. A CR/LF run becomes "; " (so a raw multi-line reply reads like
// a joined one), other controls become spaces, 8-bit bytes become '?'.
std::string CleanText(std::string_view text) {
  enum { kNone, kSpace, kBreak } pending = kNone;
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n') {
      pending = kBreak;
    } else if (c <= 0x20 || c == 0x7f) {
      if (pending == kNone) pending = kSpace;
    } else {
      if (!out.empty() && pending == kBreak) {
        out += out.back() == ';' ? " " : "; ";
      } else if (!out.empty() && pending == kSpace) {
        out.push_back(' ');
      }
      pending = kNone;
      out.push_back(c >= 0x80 ? '?' : ch);
    }
  }
  return out;
}

// An address from the envelope: one pair of angle brackets dropped, control
// bytes and invalid UTF-8 turned into '?'. Valid UTF-8 (SMTPUTF8) is kept.
std::string CleanAddress(std::string_view address) {
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
    address = address.substr(1, address.size() - 2);
  }
  std::string out;
  out.reserve(address.size());
  for (size_t i = 0; i < address.size(); ++i) {
    const auto c = static_cast<unsigned char>(address[i]);
    if (c < 0x20 || c == 0x7f) {
      out.push_back('?');
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (uint32_t cp; size_t n = Utf8Sequence(address, i, &cp)) {
      out.append(address.substr(i, n));
      i += n - 1;
    } else {
      out.push_back('?');
    }
  }
  // Trailing or leading white space would be lost in folding.
  while (!out.empty() && out.back() == ' ') out.pop_back();
  size_t lead = 0;
  while (lead < out.size() && out[lead] == ' ') ++lead;
  return out.substr(lead);
}

// Letters and digits of `text`, at most `max`: safe in a Message-ID and a
// MIME boundary whatever the queue id looks like.
std::string AlnumToken(std::string_view text, size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() == max) break;
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
      out.push_back(c);
    }
  }
  return out;
}

// RFC 6533 utf-8-addr-xtext: QCHAR as is, everything else (non-ASCII code
// points, '\', '+', '=', space, controls) as \x{HEX}, upper case, no leading
// zeros, at least two digits.
std::string Utf8AddrXtext(std::string_view address) {
  std::string out;
  for (size_t i = 0; i < address.size(); ++i) {
    const auto c = static_cast<unsigned char>(address[i]);
    uint32_t cp = c;
    size_t n = 1;
    if (c >= 0x80) {
      n = Utf8Sequence(address, i, &cp);
      if (n == 0) {
        cp = 0xfffd;  // CleanAddress leaves none; stay total anyway
        n = 1;
      }
    }
    const bool qchar = cp >= 0x21 && cp <= 0x7e && cp != '\\' && cp != '+' && cp != '=';
    if (qchar) {
      out.push_back(static_cast<char>(cp));
    } else {
      absl::StrAppendFormat(&out, "\\x{%02X}", cp);
    }
    i += n - 1;
  }
  return out;
}

// Appends "Name: value" CRLF, folded at spaces so lines stay near kFoldAt and
// never pass kLineMax. `value` has no CR or LF. A run of spaces stays before
// the word it precedes, so a fold (CRLF inserted before the run) unfolds to
// the same text and no continuation line is only white space. A word too long
// for any line is cut by an inserted fold.
void AppendField(std::string& out, std::string_view name, std::string_view value) {
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  out.append(name);
  out.push_back(':');
  size_t line = name.size() + 1;
  bool line_has_words = false;
  size_t i = 0;
  std::string first;
  while (i < value.size()) {
    size_t j = i;
    while (j < value.size() && value[j] == ' ') ++j;
    while (j < value.size() && value[j] != ' ') ++j;
    std::string_view piece = value.substr(i, j - i);
    if (i == 0) {
      first = absl::StrCat(" ", Av(piece));
      piece = first;
    }
    i = j;
    if (line_has_words && line + piece.size() > kFoldAt) {
      out += "\r\n";
      line = 0;
    }
    while (line + piece.size() > kLineMax) {
      const size_t room = kLineMax - line;
      out.append(piece.substr(0, room));
      piece.remove_prefix(room);
      out += "\r\n ";
      line = 1;
    }
    out.append(piece);
    line += piece.size();
    line_has_words = true;
  }
  out += "\r\n";
}

// Appends `text` (one paragraph, no CR/LF) word-wrapped at kWrapAt,
// continuation lines indented by `indent`; a word too long for a line is cut.
void AppendWrapped(std::string& out, std::string_view text, std::string_view indent) {
  size_t line = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t j = i;
    while (j < text.size() && text[j] != ' ') ++j;
    if (i == j) break;
    std::string_view word = text.substr(i, j - i);
    i = j;
    if (line > 0 && line + 1 + word.size() > kWrapAt) {
      out += "\r\n";
      out.append(indent);
      line = indent.size();
    } else if (line > 0) {
      out.push_back(' ');
      ++line;
    }
    while (line + word.size() > kLineMax) {
      const size_t room = kLineMax - line;
      out.append(word.substr(0, room));
      word.remove_prefix(room);
      out += "\r\n";
      out.append(indent);
      line = indent.size();
    }
    out.append(word);
    line += word.size();
  }
  out += "\r\n";
}

// "5 days", "1 day 3 hours", "2 hours", "10 minutes", "30 seconds".
std::string HumanDuration(uint64_t micros) {
  const uint64_t secs = micros / 1000000;
  auto unit = [](uint64_t n, const char* name) {
    return absl::StrCat(n, " ", name, n == 1 ? "" : "s");
  };
  if (secs >= 86400) {
    const uint64_t hours = secs % 86400 / 3600;
    return hours == 0 ? unit(secs / 86400, "day")
                      : absl::StrCat(unit(secs / 86400, "day"), " ", unit(hours, "hour"));
  }
  if (secs >= 3600) return unit(secs / 3600, "hour");
  if (secs >= 60) return unit(secs / 60, "minute");
  return unit(secs, "second");
}

// "4.x.y" or "5.x.y" with 1-3 digit fields (RFC 3463).
bool IsFailureStatus(std::string_view s) {
  if (s.size() < 5 || (s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

// Three digits 4xx/5xx, then the end, a space or '-': an SMTP reply.
bool LooksLikeSmtpReply(std::string_view s) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return s.size() >= 3 && (s[0] == '4' || s[0] == '5') && digit(s[1]) && digit(s[2]) &&
         (s.size() == 3 || s[3] == ' ' || s[3] == '-');
}

bool IsHostName(std::string_view name) {
  if (name.empty() || name.size() > limits::kDomainMax) return false;
  for (char c : name) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

struct ReturnedHeaders {
  std::string text;
  bool cut = false;
};

// The original header section, CRLF lines of at most kLineMax, cut at the
// last line boundary within `max` bytes.
ReturnedHeaders CopyHeaders(std::string_view message, size_t max) {
  ReturnedHeaders r;
  ForEachHeaderLine(message, [&](std::string_view line) {
    if (r.cut) return;
    std::string out;
    size_t len = 0;
    for (char c : line) {
      if (len == kLineMax) {
        out += "\r\n ";
        len = 1;
      }
      out.push_back(c == '\0' || c == '\r' ? ' ' : c);
      ++len;
    }
    out += "\r\n";
    if (r.text.size() + out.size() > max) {
      r.cut = true;
      return;
    }
    r.text += out;
  });
  return r;
}

}  // namespace

namespace {

// One failed recipient, cleaned for both parts of the report.
struct Rcpt {
  std::string address;
  std::string status;
  std::string remote_mta;
  std::string diagnostic;
  bool smtp_reply;
  uint64_t last_attempt_micros;
};

absl::StatusOr<std::vector<Rcpt>> CleanRecipients(const DsnInput& in) {
  std::vector<Rcpt> rcpts;
  rcpts.reserve(in.recipients.size());
  for (const FailedRecipient& f : in.recipients) {
    Rcpt r;
    r.address = CleanAddress(f.address);
    if (r.address.empty()) return absl::InvalidArgumentError("dsn: a recipient address is empty");
    r.status = IsFailureStatus(f.status) ? f.status : in.expired ? "4.4.7" : "5.0.0";
    // A host name from DNS is one word; anything else in it is dropped.
    r.remote_mta = CleanText(f.remote_mta);
    std::erase(r.remote_mta, ' ');
    r.diagnostic = CleanText(f.diagnostic);
    r.smtp_reply = LooksLikeSmtpReply(r.diagnostic);
    r.last_attempt_micros = f.last_attempt_micros;
    rcpts.push_back(std::move(r));
  }
  return rcpts;
}

// Part 1, the opening paragraphs: who reports, what happened, which message.
void AppendIntro(std::string& text, const DsnInput& in, const std::string& queue_id) {
  AppendWrapped(text, absl::StrCat("This is the mail system at host ", in.reporting_mta, "."), "");
  text += "\r\n";
  if (in.expired) {
    const uint64_t lifetime = in.max_queue_time_micros != 0 ? in.max_queue_time_micros
                              : in.now_micros > in.arrival_micros
                                  ? in.now_micros - in.arrival_micros
                                  : 0;
    AppendWrapped(
        text,
        absl::StrCat("Your message could not be delivered within ", HumanDuration(lifetime),
                     " to one or more of its recipients. Delivery to them has been "
                     "given up. The last reasons are listed below."),
        "");
  } else {
    AppendWrapped(text,
                  "Your message could not be delivered to one or more of its recipients. "
                  "They were refused for good, for the reasons listed below; no further "
                  "attempts will be made.",
                  "");
  }
  text += "\r\n";
  std::string about = "Queue ID: " + (queue_id.empty() ? std::string("unknown") : queue_id);
  if (in.arrival_micros != 0) {
    absl::StrAppend(&about, ", received ", base::Rfc5322Date(in.arrival_micros));
  }
  AppendWrapped(text, about + ".", "");
  text += "\r\n";
}

// Part 1: for people.
std::string HumanPart(const DsnInput& in, const std::string& queue_id, bool headers_cut,
                      const std::vector<Rcpt>& rcpts) {
  std::string text;
  AppendIntro(text, in, queue_id);
  AppendWrapped(text,
                absl::StrCat("For further assistance, contact <postmaster@", in.reporting_mta,
                             ">. The delivery report and the header section of your message "
                             "are attached."),
                "");
  if (headers_cut) {
    AppendWrapped(text,
                  absl::StrCat("The header section was longer than ", in.max_returned_header_bytes,
                               " bytes and has been cut."),
                  "");
  }
  for (const Rcpt& r : rcpts) {
    text += "\r\n";
    std::string line = absl::StrCat("<", r.address, ">: ");
    if (r.diagnostic.empty()) {
      absl::StrAppend(&line, "delivery failed (", r.status, ")");
    } else if (r.smtp_reply && !r.remote_mta.empty()) {
      absl::StrAppend(&line, "host ", r.remote_mta, " said: ", r.diagnostic);
    } else {
      line += r.diagnostic;
    }
    AppendWrapped(text, line, "    ");
  }
  return text;
}

// Part 2: for machines (RFC 3464 section 2).
std::string StatusPart(const DsnInput& in, const std::string& queue_id,
                       const std::vector<Rcpt>& rcpts) {
  std::string status;
  AppendField(status, "Reporting-MTA", absl::StrCat("dns; ", in.reporting_mta));
  if (!queue_id.empty()) AppendField(status, "X-Sluice-Queue-ID", queue_id);
  if (in.arrival_micros != 0)
    AppendField(status, "Arrival-Date", base::Rfc5322Date(in.arrival_micros));
  for (const Rcpt& r : rcpts) {
    status += "\r\n";
    AppendField(status, "Final-Recipient",
                HasEightBit(r.address) ? absl::StrCat("utf-8; ", Utf8AddrXtext(r.address))
                                       : absl::StrCat("rfc822; ", r.address));
    AppendField(status, "Action", "failed");
    AppendField(status, "Status", r.status);
    if (!r.remote_mta.empty()) {
      AppendField(status, "Remote-MTA", absl::StrCat("dns; ", r.remote_mta));
    }
    if (!r.diagnostic.empty()) {
      AppendField(status, "Diagnostic-Code",
                  absl::StrCat(r.smtp_reply ? "smtp; " : "X-Sluice; ", r.diagnostic));
    }
    if (r.last_attempt_micros != 0) {
      AppendField(status, "Last-Attempt-Date", base::Rfc5322Date(r.last_attempt_micros));
    }
  }
  return status;
}

// The three parts of the report, as they go into the message.
struct Parts {
  std::string text;     // part 1, for people
  std::string status;   // part 2, message/delivery-status
  std::string headers;  // part 3, the returned header section
};

// A boundary that occurs nowhere in the parts (so "--boundary" cannot start
// a line inside one). Each retry is a new string, and the content holds
// only so many, so this ends.
std::string PickBoundary(const DsnInput& in, const std::string& id_token, const Parts& parts) {
  const std::string boundary_base =
      absl::StrFormat("sluice-dsn-%s-%x", id_token.empty() ? "x" : id_token, in.now_micros);
  std::string boundary = boundary_base;
  for (uint64_t n = 1; parts.text.find(boundary) != std::string::npos ||
                       parts.status.find(boundary) != std::string::npos ||
                       parts.headers.find(boundary) != std::string::npos;
       ++n) {
    boundary = absl::StrCat(boundary_base, ".", n);
  }
  return boundary;
}

// The report's own header fields up to (not including) MIME-Version.
std::string TopFields(const DsnInput& in, const std::string& sender, const std::string& id_token,
                      const std::vector<Rcpt>& rcpts) {
  const std::string& host = in.reporting_mta;
  std::string top;
  AppendField(top, "From", absl::StrCat("Mail Delivery System <MAILER-DAEMON@", host, ">"));
  AppendField(top, "To", sender);
  AppendField(top, "Subject", "Undelivered Mail Returned to Sender");
  AppendField(top, "Date", base::Rfc5322Date(in.now_micros));
  AppendField(
      top, "Message-ID",
      absl::StrCat("<", id_token, id_token.empty() ? "" : ".", in.now_micros, ".dsn@", host, ">"));
  AppendField(top, "Auto-Submitted", "auto-replied");
  std::string failed;
  for (const Rcpt& r : rcpts) {
    if (!failed.empty() && failed.size() + 2 + r.address.size() > kFailedRecipientsHeaderMax) break;
    if (!failed.empty()) failed += ", ";
    failed += r.address;
  }
  AppendField(top, "X-Failed-Recipients", failed);
  return top;
}

// The multipart/report message: `top` (TopFields), then the three parts
// between boundaries.
Dsn Assemble(std::string top, const Parts& parts, const std::string& boundary) {
  const bool text_8bit = HasEightBit(parts.text);
  const bool headers_8bit = HasEightBit(parts.headers);
  const bool smtputf8 = HasEightBit(top);
  top += "MIME-Version: 1.0\r\n";
  absl::StrAppend(&top, "Content-Type: multipart/report; report-type=delivery-status;\r\n",
                  "\tboundary=\"", boundary, "\"\r\n");
  if (text_8bit || headers_8bit) top += "Content-Transfer-Encoding: 8bit\r\n";

  Dsn dsn;
  std::string& m = dsn.message;
  m.reserve(top.size() + parts.text.size() + parts.status.size() + parts.headers.size() + 1024);
  m += top;
  m += "\r\nThis is a MIME-encapsulated message.\r\n";
  absl::StrAppend(&m, "\r\n--", boundary, "\r\n");
  m += "Content-Description: Notification\r\n";
  absl::StrAppend(&m, "Content-Type: text/plain; charset=", text_8bit ? "utf-8" : "us-ascii",
                  "\r\n");
  if (text_8bit) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  m += parts.text;
  absl::StrAppend(&m, "\r\n--", boundary, "\r\n");
  m += "Content-Description: Delivery report\r\n";
  m += "Content-Type: message/delivery-status\r\n\r\n";
  m += parts.status;
  absl::StrAppend(&m, "\r\n--", boundary, "\r\n");
  m += "Content-Description: Undelivered Message Headers\r\n";
  m += "Content-Type: text/rfc822-headers\r\n";
  if (headers_8bit) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  m += parts.headers;
  absl::StrAppend(&m, "\r\n--", boundary, "--\r\n");
  dsn.eight_bit = text_8bit || headers_8bit || smtputf8;
  dsn.smtputf8 = smtputf8;
  return dsn;
}

}  // namespace

absl::StatusOr<Dsn> BuildDsn(const DsnInput& in) {
  if (!IsHostName(in.reporting_mta)) {
    return absl::InvalidArgumentError(
        "dsn: reporting_mta must be a host name (letters, digits, '-', '.')");
  }
  const std::string sender = CleanAddress(in.original_sender);
  if (sender.empty()) {
    return absl::InvalidArgumentError("dsn: the original sender is empty (no DSN for a bounce)");
  }
  if (in.recipients.empty()) return absl::InvalidArgumentError("dsn: no failed recipients");
  absl::StatusOr<std::vector<Rcpt>> rcpts = CleanRecipients(in);
  if (!rcpts.ok()) return rcpts.status();

  std::string queue_id = CleanText(in.original_id);
  std::erase(queue_id, ' ');
  if (queue_id.size() > kOpaqueTextMax) queue_id.resize(kOpaqueTextMax);
  const std::string id_token = AlnumToken(in.original_id, kIdTokenMax);
  ReturnedHeaders headers = CopyHeaders(in.original_message, in.max_returned_header_bytes);

  Parts parts;
  parts.text = HumanPart(in, queue_id, headers.cut, *rcpts);
  parts.status = StatusPart(in, queue_id, *rcpts);
  parts.headers = std::move(headers.text);
  const std::string boundary = PickBoundary(in, id_token, parts);
  return Assemble(TopFields(in, sender, id_token, *rcpts), parts, boundary);
}

}  // namespace sluice::dsn
