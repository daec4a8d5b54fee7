// The DKIM-Signature field, written and folded (see signature.h).
#include "signature.h"

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::dkim {
namespace {

using base::Av;

// Appends tokens to a header field, folding before a token that would run
// past kFoldWidth.
class Folder {
 public:
  explicit Folder(std::string& out) : out_(out) { column_ = out_.size(); }
  // `space`: a blank separates this token from the one before on the line.
  void Add(std::string_view token, bool space) {
    const size_t need = token.size() + (space ? 1 : 0);
    if (column_ + need > kFoldWidth && column_ > 1) {
      out_ += "\r\n\t";
      column_ = 1;
    } else if (space) {
      out_ += ' ';
      ++column_;
    }
    out_.append(token);
    column_ += token.size();
  }
  size_t column() const { return column_; }

 private:
  std::string& out_;
  size_t column_;
};

}  // namespace

std::string UnsignedField(const SignatureTags& t) {
  std::string out = "DKIM-Signature:";
  Folder f(out);
  f.Add("v=1;", true);
  f.Add(absl::StrCat("a=", Av(t.algorithm), ";"), true);
  f.Add(absl::StrCat("c=", CanonName(t.header_canon), "/", CanonName(t.body_canon), ";"), true);
  f.Add(absl::StrCat("d=", Av(t.domain), ";"), true);
  f.Add(absl::StrCat("s=", Av(t.selector), ";"), true);
  f.Add(absl::StrCat("t=", t.timestamp, ";"), true);
  if (t.expiration != 0) f.Add(absl::StrCat("x=", t.expiration, ";"), true);
  if (t.headers != nullptr && !t.headers->empty()) {
    const std::vector<std::string>& h = *t.headers;
    for (size_t i = 0; i < h.size(); ++i) {
      const bool last = i + 1 == h.size();
      f.Add(absl::StrCat(i == 0 ? "h=" : "", h[i], last ? ";" : ":"), i == 0);
    }
  }
  f.Add(absl::StrCat("bh=", Av(t.body_hash), ";"), true);
  f.Add("b=", true);
  return out;
}

std::string CompleteField(std::string_view unsigned_field, std::string_view signature) {
  std::string out(unsigned_field);
  size_t column = out.size() - (out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  while (!signature.empty()) {
    if (column >= kFoldWidth) {
      out += "\r\n\t";
      column = 1;
    }
    const size_t n = std::min(signature.size(), kFoldWidth - column);
    out.append(signature.substr(0, n));
    signature.remove_prefix(n);
    column += n;
  }
  out += "\r\n";
  return out;
}

}  // namespace sluice::dkim
