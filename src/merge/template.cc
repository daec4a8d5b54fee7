#include "sluice/merge/template.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::merge {
namespace {

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9') || c == '.' || c == '-'; }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// What the error message shows of the bytes after a bad "{{": printable
// ASCII only, short.
std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 24)) {
    if (c == '\r' || c == '\n') break;
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return out;
}

class Compiler {
 public:
  Compiler(std::string_view text, CompiledTemplate& t, TemplateError& e)
      : text_(text), t_(t), e_(e) {}

  bool Run() {
    t_ = CompiledTemplate{};
    if (text_.size() > UINT32_MAX) return Fail(0, 0, "template larger than 4 GiB");
    size_t pos = 0;
    uint32_t number = 1;
    while (pos < text_.size()) {
      const size_t nl = text_.find('\n', pos);
      const size_t end = nl == std::string_view::npos ? text_.size() : nl + 1;
      if (!Line(text_.substr(pos, end - pos), number)) return false;
      pos = end;
      ++number;
    }
    return true;
  }

 private:
  bool Fail(size_t line, size_t column, std::string reason) {
    e_ = TemplateError{line, column, std::move(reason)};
    return false;
  }

  void Literal(std::string_view s) {
    if (s.empty()) return;
    if (!t_.pieces.empty() && t_.pieces.back().field < 0) {
      t_.pieces.back().size += static_cast<uint32_t>(s.size());
    } else {
      t_.pieces.push_back({static_cast<uint32_t>(t_.literals.size()),
                           static_cast<uint32_t>(s.size()), -1, Filter::kNone});
    }
    t_.literals.append(s);
  }

  int32_t FieldIndex(std::string_view name, uint32_t line, uint32_t column, bool header) {
    for (size_t i = 0; i < t_.fields.size(); ++i) {
      if (t_.fields[i] == name) {
        if (header) t_.in_header[i] = true;
        return static_cast<int32_t>(i);
      }
    }
    if (t_.fields.size() >= kMaxFields) return -1;
    t_.fields.emplace_back(name);
    t_.first_use.push_back({line, column});
    t_.uses.push_back(0);
    t_.url_uses.push_back(0);
    t_.in_header.push_back(header);
    return static_cast<int32_t>(t_.fields.size() - 1);
  }

  // A placeholder "{{ name }}" or "{{ name | url }}", read by ReadPlaceholder.
  struct Placeholder {
    std::string_view name;
    Filter filter = Filter::kNone;
    size_t end = 0;  // just past its "}}"
  };

  // Reads the placeholder whose "{{" is at l[b] (not a "{{{{"). False, with
  // the error set (column: the "{{"), when it is malformed.
  bool ReadPlaceholder(std::string_view l, size_t b, uint32_t number, uint32_t column,
                       Placeholder& p) {
    size_t k = b + 2;
    while (k < l.size() && IsBlank(l[k])) ++k;
    const size_t name_start = k;
    if (k < l.size() && IsNameStart(l[k])) {
      ++k;
      while (k < l.size() && IsNameChar(l[k])) ++k;
    }
    const std::string_view name = l.substr(name_start, k - name_start);
    while (k < l.size() && IsBlank(l[k])) ++k;
    p.filter = Filter::kNone;
    if (!name.empty() && k < l.size() && l[k] == '|') {
      ++k;
      while (k < l.size() && IsBlank(l[k])) ++k;
      const size_t filter_start = k;
      while (k < l.size() && IsNameChar(l[k])) ++k;
      const std::string_view filter_name = l.substr(filter_start, k - filter_start);
      while (k < l.size() && IsBlank(l[k])) ++k;
      if (filter_name != "url") {
        return Fail(number, column,
                    absl::StrCat("unknown filter '", Shown(filter_name),
                                 "' in a placeholder (the only filter is 'url': {{name|url}})"));
      }
      p.filter = Filter::kUrl;
    }
    const bool closed = l.substr(k, 2) == "}}";
    if (name.empty() || !closed) {
      const std::string after = Shown(l.substr(b));
      if (l.find("}}", b + 2) == std::string_view::npos) {
        return Fail(number, column,
                    absl::StrCat("unterminated placeholder '", after,
                                 "': no '}}' on this line (write '{{{{' for a literal '{{')"));
      }
      if (name.empty() && l.substr(k, 2) == "}}") {
        return Fail(number, column, "empty placeholder '{{}}'");
      }
      return Fail(number, column,
                  absl::StrCat("bad placeholder '", after,
                               "': a field name is a letter or '_', then letters, digits, '_', "
                               "'.' or '-' (write '{{{{' for a literal '{{')"));
    }
    p.name = name;
    p.end = k + 2;
    return true;
  }

  // One line, with its line end.
  bool Line(std::string_view l, uint32_t number) {
    std::string_view content = l;
    if (!content.empty() && content.back() == '\n') content.remove_suffix(1);
    if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
    if (in_header_ && content.empty()) in_header_ = false;  // the separator line
    // In the header section, the field name runs to the first ':' of a line
    // that is not a continuation.
    size_t name_end = 0;
    if (in_header_ && !IsBlank(content.front())) {
      name_end = content.find(':');
      if (name_end == std::string_view::npos) name_end = content.size();
    }
    const uint32_t first_piece = static_cast<uint32_t>(t_.pieces.size());
    uint32_t literal_bytes = 0;
    bool merged = false;
    size_t i = 0;
    size_t lit = 0;  // start of the pending literal
    while (true) {
      const size_t b = l.find("{{", i);
      if (b == std::string_view::npos) break;
      if (l.substr(b, 4) == "{{{{") {
        Literal(l.substr(lit, b + 2 - lit));  // up to and including the first "{{"
        literal_bytes += static_cast<uint32_t>(b + 2 - lit);
        i = b + 4;
        lit = i;
        continue;
      }
      const uint32_t column = static_cast<uint32_t>(b + 1);
      if (in_header_ && b < name_end) {
        return Fail(number, column, "placeholder in a header field name");
      }
      Placeholder p;
      if (!ReadPlaceholder(l, b, number, column, p)) return false;
      const std::string_view name = p.name;
      if (name.size() > kMaxFieldNameLength) {
        return Fail(number, column,
                    absl::StrCat("field name longer than ", kMaxFieldNameLength, " bytes"));
      }
      if (++placeholders_ > kMaxPlaceholders) {
        return Fail(number, column, absl::StrCat("more than ", kMaxPlaceholders, " placeholders"));
      }
      Literal(l.substr(lit, b - lit));
      literal_bytes += static_cast<uint32_t>(b - lit);
      const int32_t field = FieldIndex(name, number, column, in_header_);
      if (field < 0) {
        return Fail(number, column, absl::StrCat("more than ", kMaxFields, " distinct fields"));
      }
      ++t_.uses[static_cast<size_t>(field)];
      if (p.filter == Filter::kUrl) ++t_.url_uses[static_cast<size_t>(field)];
      t_.pieces.push_back({0, 0, field, p.filter});
      merged = true;
      i = p.end;
      lit = i;
    }
    Literal(l.substr(lit));
    literal_bytes += static_cast<uint32_t>(l.size() - lit);
    if (merged) {
      t_.merged_lines.push_back(
          {number, literal_bytes, first_piece, static_cast<uint32_t>(t_.pieces.size())});
    }
    return true;
  }

  std::string_view text_;
  CompiledTemplate& t_;
  TemplateError& e_;
  bool in_header_ = true;
  size_t placeholders_ = 0;
};

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// The bytes a placeholder adds for this value.
template <typename Value>
size_t PieceSize(const CompiledTemplate::Piece& p, const Value& v) {
  const std::string_view s(v.data(), v.size());
  return p.filter == Filter::kUrl ? UrlEncodedSize(s) : s.size();
}

template <typename Values>
size_t RenderedSizeImpl(const CompiledTemplate& t, const Values& values) {
  size_t size = t.literals.size();
  for (size_t f = 0; f < t.uses.size() && f < values.size(); ++f) {
    const std::string_view v(values[f].data(), values[f].size());
    const size_t url_uses = f < t.url_uses.size() ? t.url_uses[f] : 0;
    size += size_t{t.uses[f] - url_uses} * v.size();
    if (url_uses > 0) size += url_uses * UrlEncodedSize(v);
  }
  return size;
}

template <typename Values>
std::string RenderImpl(const CompiledTemplate& t, const Values& values) {
  std::string out;
  out.reserve(RenderedSizeImpl(t, values));
  for (const CompiledTemplate::Piece& p : t.pieces) {
    if (p.field < 0) {
      out.append(t.literals, p.offset, p.size);
    } else if (static_cast<size_t>(p.field) < values.size()) {
      const auto& v = values[static_cast<size_t>(p.field)];
      if (p.filter == Filter::kUrl) {
        AppendUrlEncoded(out, std::string_view(v.data(), v.size()));
      } else {
        out.append(v.data(), v.size());
      }
    }
  }
  return out;
}

}  // namespace

std::string TemplateError::ToString() const {
  if (line == 0) return reason;
  if (column == 0) return absl::StrCat("line ", line, ": ", reason);
  return absl::StrCat("line ", line, ", column ", column, ": ", reason);
}

bool Compile(std::string_view text, CompiledTemplate& out, TemplateError& error) {
  return Compiler(text, out, error).Run();
}

void AppendUrlEncoded(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : value) {
    if (IsUnreserved(c)) {
      out.push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
}

size_t UrlEncodedSize(std::string_view value) {
  size_t n = value.size();
  for (char c : value) {
    if (!IsUnreserved(c)) n += 2;
  }
  return n;
}

size_t RenderedSize(const CompiledTemplate& t, const std::vector<std::string_view>& values) {
  return RenderedSizeImpl(t, values);
}

size_t LongestMergedLine(const CompiledTemplate& t, const std::vector<std::string_view>& values) {
  size_t longest = 0;
  for (const CompiledTemplate::MergedLine& l : t.merged_lines) {
    size_t n = l.literal_bytes;
    for (uint32_t p = l.first_piece; p < l.end_piece; ++p) {
      const CompiledTemplate::Piece& piece = t.pieces[p];
      if (piece.field >= 0 && static_cast<size_t>(piece.field) < values.size()) {
        n += PieceSize(piece, values[static_cast<size_t>(piece.field)]);
      }
    }
    if (n > longest) longest = n;
  }
  return longest;
}

std::string Render(const CompiledTemplate& t, const std::vector<std::string>& values) {
  return RenderImpl(t, values);
}

std::string Render(const CompiledTemplate& t, const std::vector<std::string_view>& values) {
  return RenderImpl(t, values);
}

absl::StatusOr<CompiledTemplate> CompileStored(std::string_view body,
                                               const std::vector<std::string>& merge_fields) {
  CompiledTemplate t;
  TemplateError e;
  if (!Compile(body, t, e)) {
    return absl::DataLossError(absl::StrCat("stored template: ", e.ToString()));
  }
  if (t.fields != merge_fields) {
    return absl::DataLossError("stored template's fields differ from the envelope's merge fields");
  }
  return t;
}

absl::StatusOr<std::string> RenderStored(std::string_view body,
                                         const std::vector<std::string>& merge_fields,
                                         const std::vector<std::string>& values) {
  auto t = CompileStored(body, merge_fields);
  if (!t.ok()) return t.status();
  if (values.size() != merge_fields.size()) {
    return absl::DataLossError("a recipient's merge values do not match the merge fields");
  }
  return Render(*t, values);
}

}  // namespace sluice::merge
