// merge::Compile and pickup::PrepareTemplate on arbitrary bytes (a batch
// template is untrusted).
//
// Checks, for a template that compiles: the pieces cover the literals
// exactly, in order; fields are distinct, valid and each used as counted;
// RenderedSize equals the size Render produces and LongestMergedLine bounds
// every rendered line holding a placeholder; each value appears in the
// output exactly as often as its field is used (values are marker bytes the
// literals cannot forge: each is unique and starts with \x01; a {{name|url}}
// placeholder inserts it percent-encoded, so only plain ones count); CompileStored
// accepts the text with its own fields. A template PrepareTemplate accepts
// has CRLF line ends only, no NUL, and compiles again from what is stored.
// A manifest URL template that is accepted cannot end the URI or the line.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/merge/template.h"
#include "sluice/pickup/batch.h"
#include "sluice/pickup/bulk_headers.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice;

namespace {

size_t Count(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string_view::npos; at = hay.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

void CheckCompiled(std::string_view in, const merge::CompiledTemplate& t) {
  size_t literal = 0;
  for (const merge::CompiledTemplate::Piece& p : t.pieces) {
    if (p.field >= 0) {
      FUZZ_CHECK(static_cast<size_t>(p.field) < t.fields.size());
      continue;
    }
    FUZZ_CHECK(p.offset == literal && p.size > 0);
    literal += p.size;
  }
  FUZZ_CHECK(literal == t.literals.size());
  FUZZ_CHECK(t.fields.size() <= merge::kMaxFields);
  FUZZ_CHECK(t.first_use.size() == t.fields.size() && t.uses.size() == t.fields.size());
  FUZZ_CHECK(t.url_uses.size() == t.fields.size());
  for (size_t i = 0; i < t.fields.size(); ++i) {
    FUZZ_CHECK(!t.fields[i].empty() && t.fields[i].size() <= merge::kMaxFieldNameLength);
    FUZZ_CHECK(t.uses[i] > 0 && t.url_uses[i] <= t.uses[i]);
    for (size_t j = 0; j < i; ++j) FUZZ_CHECK(t.fields[i] != t.fields[j]);
  }
  std::vector<std::string> values;
  for (size_t i = 0; i < t.fields.size(); ++i) values.push_back("\x01<" + std::to_string(i) + ">");
  // The input has no \x01 marker of ours unless it had \x01 bytes.
  const bool input_has_marker = in.find('\x01') != std::string_view::npos;
  const std::string out = merge::Render(t, values);
  const std::vector<std::string_view> views(values.begin(), values.end());
  FUZZ_CHECK(merge::RenderedSize(t, views) == out.size());
  if (!input_has_marker) {
    // {{name|url}} inserts the value percent-encoded: the raw marker
    // appears once per plain placeholder.
    for (size_t i = 0; i < values.size(); ++i) {
      FUZZ_CHECK(Count(out, values[i]) == t.uses[i] - t.url_uses[i]);
    }
  }
  const size_t longest = merge::LongestMergedLine(t, views);
  size_t start = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    const size_t end = nl == std::string::npos ? out.size() : nl + 1;
    const std::string_view line = std::string_view(out).substr(start, end - start);
    if (!input_has_marker && line.find('\x01') != std::string_view::npos) {
      FUZZ_CHECK(line.size() <= longest);
    }
    start = end;
  }
  auto again = merge::CompileStored(in, t.fields);
  FUZZ_CHECK(again.ok());
}

}  // namespace

// A manifest URL template (pickup/bulk_headers.h) that is accepted holds
// nothing that could end the URI or the header line, compiles as a
// List-Unsubscribe line, and renders as one line whatever the values.
void CheckUriTemplate(std::string_view in) {
  for (pickup::UriKind kind : {pickup::UriKind::kHttp, pickup::UriKind::kMailto}) {
    std::string uri, why;
    bool https = false;
    if (!pickup::ParseUriTemplate(in, kind, uri, https, why)) {
      FUZZ_CHECK(!why.empty());
      continue;
    }
    FUZZ_CHECK(uri.find_first_of(std::string_view("\r\n\0 <>,\"", 8)) == std::string::npos);
    merge::CompiledTemplate t;
    merge::TemplateError e;
    const std::string text = "L: <" + uri + ">\r\n\r\nx\r\n";
    FUZZ_CHECK(merge::Compile(text, t, e));
    FUZZ_CHECK(t.url_uses == t.uses);  // every value is encoded
    const std::vector<std::string> hostile(t.fields.size(), "a>\r\nBcc: x, <y> \"z\"");
    const std::string out = merge::Render(t, hostile);
    FUZZ_CHECK(out.find("\r\n") == out.find(">\r\n\r\nx") + 1);
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckUriTemplate(in);
  merge::CompiledTemplate t;
  merge::TemplateError e;
  if (merge::Compile(in, t, e)) {
    CheckCompiled(in, t);
  } else {
    FUZZ_CHECK(!e.reason.empty());
  }

  pickup::BatchLimits limits;
  limits.max_template_size = 16 * 1024;
  limits.max_message_size = 16 * 1024;
  limits.max_line_length = 200;
  pickup::PreparedTemplate p;
  pickup::BatchError be;
  if (!pickup::PrepareTemplate("t.eml", in, limits, p, be)) {
    FUZZ_CHECK(!be.reason.empty());
    return 0;
  }
  const std::string& s = p.stored;
  FUZZ_CHECK(s.size() >= 2 && s.substr(s.size() - 2) == "\r\n");
  for (size_t i = 0; i < s.size(); ++i) {
    FUZZ_CHECK(s[i] != '\0');
    if (s[i] == '\r') FUZZ_CHECK(i + 1 < s.size() && s[i + 1] == '\n');
    if (s[i] == '\n') FUZZ_CHECK(i > 0 && s[i - 1] == '\r');
  }
  if (p.compiled.has_placeholders()) {
    FUZZ_CHECK(merge::CompileStored(s, p.compiled.fields).ok());
  }
  return 0;
}
