// The header block as DKIM sees it (see header_fields.h).
#include "sluice/dkim/header_fields.h"

#include <algorithm>

namespace sluice::dkim {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// The end of the line starting at `pos` (just after its line ending), and
// whether the line was empty.
size_t LineEnd(std::string_view text, size_t pos, bool* empty) {
  size_t i = pos;
  while (i < text.size() && text[i] != '\r' && text[i] != '\n') ++i;
  *empty = i == pos;
  if (i < text.size()) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    ++i;
  }
  return i;
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// The unfolded value with comments removed and quoted strings kept whole;
// nullopt when quotes or parentheses do not balance.
std::optional<std::string> StripComments(std::string_view value) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\r' || c == '\n') continue;
    if (c == '\\' && (quoted || depth > 0) && i + 1 < value.size()) {
      if (depth == 0) out.append(value.substr(i, 2));
      ++i;
    } else if (quoted) {
      out += c;
      if (c == '"') quoted = false;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (depth == 0) return std::nullopt;
      --depth;
    } else if (depth == 0) {
      if (c == '"') quoted = true;
      out += c;
    }
  }
  if (quoted || depth != 0) return std::nullopt;
  return out;
}

bool IsHostName(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  size_t label = 0;
  for (char c : d) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0;
}

}  // namespace

size_t HeaderBlockSize(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    bool empty = false;
    const size_t next = LineEnd(text, pos, &empty);
    if (empty) return next;
    pos = next;
  }
  return text.size();
}

std::vector<HeaderField> ParseHeaderFields(std::string_view block) {
  std::vector<HeaderField> fields;
  size_t pos = 0;
  while (pos < block.size()) {
    bool empty = false;
    size_t next = LineEnd(block, pos, &empty);
    if (empty) break;
    if (IsBlank(block[pos]) && !fields.empty()) {
      // A continuation line: part of the field above.
      HeaderField& f = fields.back();
      f.raw = block.substr(f.raw.data() - block.data(), next - (f.raw.data() - block.data()));
      pos = next;
      continue;
    }
    const std::string_view line = block.substr(pos, next - pos);
    const size_t colon = line.find(':');
    HeaderField f;
    f.raw = line;
    if (colon != std::string_view::npos && !IsBlank(line[0])) {
      // RFC 5322 2.2: a name is printable ASCII without ':' (obsolete
      // syntax allows blanks before the colon). Anything else is no field.
      const std::string_view name = TrimBlanks(line.substr(0, colon));
      bool ok = !name.empty();
      for (char c : name) ok = ok && c > ' ' && c < 127;
      if (ok) f.name = name;
    }
    fields.push_back(f);
    pos = next;
  }
  return fields;
}

bool SameName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::vector<std::string> SelectHeaders(const std::vector<HeaderField>& fields,
                                       const std::vector<std::string>& wanted,
                                       const std::vector<std::string>& oversign) {
  std::vector<std::string> names;
  auto add = [&](const std::string& name) {
    std::string lower;
    for (char c : name) lower += Lower(c);
    for (const std::string& seen : names) {
      if (seen == lower) return;  // already listed
    }
    const bool over = std::any_of(oversign.begin(), oversign.end(),
                                  [&](const std::string& o) { return SameName(o, name); });
    size_t count =
        static_cast<size_t>(std::count_if(fields.begin(), fields.end(), [&](const HeaderField& f) {
          return SameName(f.name, name);
        }));
    if (over) ++count;
    for (size_t i = 0; i < count; ++i) names.push_back(lower);
  };
  for (const std::string& w : wanted) add(w);
  for (const std::string& o : oversign) add(o);
  return names;
}

std::vector<const HeaderField*> CoveredFields(const std::vector<HeaderField>& fields,
                                              const std::vector<std::string>& h) {
  std::vector<const HeaderField*> covered;
  covered.reserve(h.size());
  std::vector<bool> used(fields.size(), false);
  for (const std::string& name : h) {
    const HeaderField* found = nullptr;
    for (size_t i = fields.size(); i-- > 0;) {
      if (!used[i] && SameName(fields[i].name, name)) {
        used[i] = true;
        found = &fields[i];
        break;
      }
    }
    covered.push_back(found);
  }
  return covered;
}

std::optional<std::string> AuthorDomain(const std::vector<HeaderField>& fields) {
  const HeaderField* from = nullptr;
  for (const HeaderField& f : fields) {
    if (!SameName(f.name, "from")) continue;
    if (from != nullptr) return std::nullopt;  // two From: fields
    from = &f;
  }
  if (from == nullptr) return std::nullopt;
  const std::optional<std::string> value = StripComments(from->raw.substr(from->raw.find(':') + 1));
  if (!value) return std::nullopt;
  // Outside quoted strings: a ',' means a list, a ':' or ';' a group.
  std::string_view addr = *value;
  bool quoted = false;
  size_t open = std::string_view::npos;
  size_t close = std::string_view::npos;
  for (size_t i = 0; i < addr.size(); ++i) {
    const char c = addr[i];
    if (c == '\\' && quoted) {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && (c == ',' || c == ':' || c == ';')) {
      return std::nullopt;
    } else if (!quoted && c == '<') {
      if (open != std::string_view::npos) return std::nullopt;
      open = i;
    } else if (!quoted && c == '>') {
      if (close != std::string_view::npos) return std::nullopt;
      close = i;
    }
  }
  if (open != std::string_view::npos || close != std::string_view::npos) {
    if (open == std::string_view::npos || close == std::string_view::npos || close < open ||
        !TrimBlanks(addr.substr(close + 1)).empty()) {
      return std::nullopt;
    }
    addr = addr.substr(open + 1, close - open - 1);
  }
  addr = TrimBlanks(addr);
  const size_t at = addr.rfind('@');
  if (at == std::string_view::npos || at == 0) return std::nullopt;
  std::string domain;
  for (char c : TrimBlanks(addr.substr(at + 1))) domain += Lower(c);
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (!IsHostName(domain)) return std::nullopt;
  return domain;
}

}  // namespace sluice::dkim
