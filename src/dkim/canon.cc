// DKIM canonicalization, RFC 6376 3.4 (see canon.h).
#include "sluice/dkim/canon.h"

namespace sluice::dkim {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsLineEnd(char c) { return c == '\r' || c == '\n'; }

void AppendLower(std::string_view s, std::string& out) {
  for (char c : s) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Simple: the field as sent, every line ending written as CRLF.
void SimpleHeader(std::string_view field, std::string& out) {
  for (size_t i = 0; i < field.size(); ++i) {
    const char c = field[i];
    if (c == '\r') {
      if (i + 1 < field.size() && field[i + 1] == '\n') ++i;
      out += "\r\n";
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  if (field.empty() || !IsLineEnd(field.back())) out += "\r\n";
}

}  // namespace

const char* CanonName(Canon c) { return c == Canon::kSimple ? "simple" : "relaxed"; }

void CanonicalizeHeader(Canon canon, std::string_view field, std::string& out) {
  if (canon == Canon::kSimple) {
    SimpleHeader(field, out);
    return;
  }
  const size_t colon = field.find(':');
  std::string_view name = field.substr(0, colon);
  // Blanks before the colon go (and so do line endings: a name cannot fold).
  while (!name.empty() && (IsBlank(name.back()) || IsLineEnd(name.back()))) name.remove_suffix(1);
  AppendLower(name, out);
  out += ':';
  if (colon == std::string_view::npos) {
    out += "\r\n";
    return;
  }
  // Unfold (drop line endings), runs of blanks become one SP, none at the
  // start (after the colon) or at the end.
  bool blank = false;
  bool any = false;
  for (size_t i = colon + 1; i < field.size(); ++i) {
    const char c = field[i];
    if (IsLineEnd(c)) continue;
    if (IsBlank(c)) {
      blank = true;
      continue;
    }
    if (blank && any) out += ' ';
    blank = false;
    any = true;
    out += c;
  }
  out += "\r\n";
}

void BodyCanonicalizer::StartContent(std::string& out) {
  line_content_ = true;
  for (; empty_lines_ > 0; --empty_lines_) {
    out += "\r\n";
    written_ += 2;
  }
}

void BodyCanonicalizer::EndLine(std::string& out) {
  pending_blank_ = false;
  if (line_content_) {
    out += "\r\n";
    written_ += 2;
    line_content_ = false;
  } else {
    ++empty_lines_;
  }
}

void BodyCanonicalizer::Feed(std::string_view piece, std::string& out) {
  const char* p = piece.data();
  const char* const end = p + piece.size();
  const bool relaxed = canon_ == Canon::kRelaxed;
  while (p < end) {
    const char c = *p;
    if (c == '\n') {
      if (!prev_cr_) EndLine(out);  // a CR already ended this line
      prev_cr_ = false;
      ++p;
      continue;
    }
    prev_cr_ = false;
    if (c == '\r') {
      EndLine(out);
      prev_cr_ = true;
      ++p;
      continue;
    }
    if (relaxed && IsBlank(c)) {
      pending_blank_ = true;
      ++p;
      continue;
    }
    // A run of bytes that come out unchanged goes out in one append: for
    // simple everything up to a line ending; for relaxed also single SPs
    // between words (usually a whole line in one run).
    const char* q = p + 1;
    if (relaxed) {
      while (q < end) {
        const char d = *q;
        if (d == ' ' && q + 1 < end && !IsBlank(q[1]) && !IsLineEnd(q[1])) {
          q += 2;
        } else if (IsBlank(d) || IsLineEnd(d)) {
          break;
        } else {
          ++q;
        }
      }
    } else {
      while (q < end && !IsLineEnd(*q)) ++q;
    }
    if (!line_content_) StartContent(out);
    if (pending_blank_) {
      out += ' ';
      ++written_;
      pending_blank_ = false;
    }
    out.append(p, q);
    written_ += static_cast<uint64_t>(q - p);
    p = q;
  }
}

void BodyCanonicalizer::Finish(std::string& out) {
  // A last line without a line ending gets one; trailing blanks of a
  // relaxed line and held-back empty lines are dropped.
  if (line_content_) EndLine(out);
  pending_blank_ = false;
  empty_lines_ = 0;
  if (canon_ == Canon::kSimple && written_ == 0) {
    out += "\r\n";
    written_ = 2;
  }
}

}  // namespace sluice::dkim
