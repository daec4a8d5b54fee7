#include "tools/common/header_field.h"

#include "sluice/base/strings.h"

namespace sluice::tools {

bool HasHeaderField(std::string_view message, std::string_view name) {
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = message.size();
    std::string_view line = message.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) return false;  // the end of the header block
    if (!base::StartsWithIgnoreCase(line, name)) continue;
    line.remove_prefix(name.size());
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (!line.empty() && line.front() == ':') return true;
  }
  return false;
}

}  // namespace sluice::tools
