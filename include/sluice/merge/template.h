// Mail-merge templates (docs/PICKUP.md, "Batches"): an RFC 5322 message
// whose header values and body hold {{field}} placeholders, filled per
// recipient from the batch's recipients file.
//
// Syntax, one line at a time (a placeholder never spans lines):
//   {{name}} or {{ name }}   a placeholder; name: a letter or '_', then
//                            letters, digits, '_', '.', '-' (at most 64 bytes)
//   {{name|url}}             the value percent-encoded (AppendUrlEncoded): for
//                            values inside URLs (List-Unsubscribe, links)
//   {{{{                     a literal "{{" (the escape)
//   anything else            itself: a lone '{', "}}", ...
// A "{{" that does not start a valid placeholder is an error naming its
// line and column, as is a placeholder inside a header field name.
//
// The spool stores a merge batch once: the template source as the body and,
// per recipient, its values in the order of CompiledTemplate::fields (the
// envelope's merge_fields, spool/message_file.h). The delivery engine
// compiles the stored body once per job (CompileStored) and renders each
// recipient's message (Render). Pure: no I/O, fuzzed (fuzz/template_fuzzer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::merge {

inline constexpr size_t kMaxFieldNameLength = 64;
inline constexpr size_t kMaxFields = 64;            // distinct fields (= spool::kMaxMergeFields)
inline constexpr size_t kMaxPlaceholders = 10'000;  // placeholders in one template

struct TemplateError {
  size_t line = 0;    // 1-based; 0: the template as a whole
  size_t column = 0;  // 1-based byte column of the offending "{{"
  std::string reason;
  // "line L, column C: reason" (or "line L: reason", "reason").
  std::string ToString() const;
};

// How a placeholder inserts its value.
enum class Filter : uint8_t {
  kNone,  // {{name}}: as it is
  kUrl,   // {{name|url}}: percent-encoded (AppendUrlEncoded)
};

// RFC 3986 percent-encoding of everything but the unreserved characters
// (ALPHA DIGIT - . _ ~): the result holds no CR, LF, space, '<', '>', ',',
// '"', '/', '?', '&', '=', '@' or '%' of its own, so a value can neither end
// the URL, nor the header line, nor add a query parameter. Each byte of a
// UTF-8 value becomes %XX (upper-case hex).
void AppendUrlEncoded(std::string& out, std::string_view value);
size_t UrlEncodedSize(std::string_view value);

struct CompiledTemplate {
  struct Piece {
    uint32_t offset = 0;  // literal: bytes [offset, offset + size) of `literals`
    uint32_t size = 0;
    int32_t field = -1;  // >= 0: a placeholder for fields[field]
    Filter filter = Filter::kNone;
  };
  // A line holding placeholders, so the length of its rendered form can be
  // checked per recipient without rendering.
  struct MergedLine {
    uint32_t number = 0;         // 1-based line of the template
    uint32_t literal_bytes = 0;  // its rendered length without values, line end included
    uint32_t first_piece = 0;    // its placeholders are among pieces[first_piece, end_piece)
    uint32_t end_piece = 0;
  };
  struct Position {
    uint32_t line = 0;
    uint32_t column = 0;
  };

  std::string literals;             // the literal text, escapes resolved
  std::vector<Piece> pieces;        // in order; adjacent literals merged
  std::vector<std::string> fields;  // distinct names, in order of first use
  std::vector<Position> first_use;  // per field: where it first appears
  std::vector<uint32_t> uses;       // per field: how many placeholders name it
  std::vector<uint32_t> url_uses;   // per field: how many of those are {{name|url}}
  std::vector<bool> in_header;      // per field: used in the header section
  std::vector<MergedLine> merged_lines;

  bool has_placeholders() const { return !fields.empty(); }
};

// Compiles `text` (lines end with LF or CRLF; the header section ends at
// the first empty line). On failure returns false and fills `error`.
bool Compile(std::string_view text, CompiledTemplate& out, TemplateError& error);

// The rendered size, and the longest rendered line holding a placeholder
// (with its line end), for these values (one per field, in field order;
// a missing value counts as empty). Cost: O(placeholders).
size_t RenderedSize(const CompiledTemplate& t, const std::vector<std::string_view>& values);
size_t LongestMergedLine(const CompiledTemplate& t, const std::vector<std::string_view>& values);

// One recipient's message: the literals with each placeholder replaced by
// values[field] (values in the order of t.fields; a missing one renders
// empty). Values are inserted as they are (the batch reader has already
// refused values with CR, LF or NUL), or percent-encoded for {{name|url}}.
std::string Render(const CompiledTemplate& t, const std::vector<std::string>& values);
std::string Render(const CompiledTemplate& t, const std::vector<std::string_view>& values);

// The delivery side. `body` is a merge record's stored body (the template,
// CRLF line ends) and `merge_fields` its envelope's merge_fields: compiles
// it and checks that its fields are exactly merge_fields, in order (a
// mismatch means a damaged record).
absl::StatusOr<CompiledTemplate> CompileStored(std::string_view body,
                                               const std::vector<std::string>& merge_fields);
// CompileStored + Render for one recipient, for callers that render once.
absl::StatusOr<std::string> RenderStored(std::string_view body,
                                         const std::vector<std::string>& merge_fields,
                                         const std::vector<std::string>& values);

}  // namespace sluice::merge
