#include "sluice/pickup/batch.h"

#include <algorithm>

// toml++ compiled inline with exceptions off, exactly as config/toml_walk.h
// does (see there): toml::parse() returns a parse_result and never throws.
#undef TOML_SHARED_LIB
#define TOML_SHARED_LIB 0
#undef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 1
#undef TOML_EXCEPTIONS
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "batch_text.h"
#include "sluice/base/strings.h"
#include "sluice/smtp/address.h"
#include "sluice/spool/message_file.h"

namespace sluice::pickup {
namespace {

using base::Av;
using internal::HasNonAscii;
using internal::ParseAddress;
using internal::Shown;
using internal::Trim;

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

bool IsFieldName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126) return false;
  }
  return true;
}

bool IsId(std::string_view id, size_t max) {
  if (id.empty() || id.size() > max) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// The [unsubscribe] table: url, mailto, one_click.
bool ParseUnsubscribe(const toml::table& table, BulkHeaders& out, BatchError& error) {
  auto fail = [&](size_t line, std::string reason) {
    error = BatchError{std::string(kManifestName), line, 0, std::move(reason)};
    return false;
  };
  bool https = false;
  const toml::value<bool>* one_click = nullptr;
  size_t one_click_line = 0;
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    const size_t line = node.source().begin.line;
    if (k == "one_click") {
      one_click = node.as_boolean();
      one_click_line = line;
      if (one_click == nullptr) return fail(line, "unsubscribe.one_click: must be true or false");
      continue;
    }
    if (k != "url" && k != "mailto") {
      return fail(key.source().begin.line,
                  absl::StrCat("unknown key 'unsubscribe.", Shown(k, 64),
                               "' (the keys of [unsubscribe] are url, mailto, one_click)"));
    }
    const toml::value<std::string>* value = node.as_string();
    if (value == nullptr)
      return fail(line, absl::StrCat("unsubscribe.", Av(k), ": must be a string"));
    std::string why;
    bool is_https = false;
    const bool url = k == "url";
    if (!ParseUriTemplate(value->get(), url ? UriKind::kHttp : UriKind::kMailto,
                          url ? out.url : out.mailto, is_https, why)) {
      return fail(line, absl::StrCat("unsubscribe.", Av(k), ": ", why));
    }
    if (url) https = is_https;
  }
  if (!out.unsubscribe()) return fail(0, "[unsubscribe] needs url or mailto (or both)");
  out.one_click = one_click == nullptr ? https : one_click->get();
  if (out.one_click && out.url.empty()) {
    return fail(one_click_line,
                "unsubscribe.one_click needs an https url (RFC 8058: the one-click POST goes to "
                "an https URI)");
  }
  if (out.one_click && !https) {
    return fail(one_click_line,
                "unsubscribe.one_click with an http:// url: RFC 8058 requires https (use an "
                "https url, or one_click = false)");
  }
  return true;
}

// Feedback-ID = campaign:tenant:sender (bulk_headers.h). On entry
// out.bulk.feedback_id holds the manifest's sender id, if any.
bool FinishFeedbackId(const BatchLimits& limits, Manifest& out, BatchError& error) {
  BulkHeaders& b = out.bulk;
  const std::string sender =
      b.feedback_id_from_manifest ? b.feedback_id : limits.feedback_id_sender;
  b.feedback_id.clear();
  if (sender.empty()) return true;
  if (out.campaign.empty() || out.tenant.empty()) {
    if (!b.feedback_id_from_manifest) return true;  // the configuration's default: not for this one
    error = BatchError{std::string(kManifestName), 0, 0,
                       "feedback_id_sender needs campaign and tenant (Feedback-ID is "
                       "campaign:tenant:sender)"};
    return false;
  }
  for (const std::string* part : {&out.campaign, &out.tenant}) {
    if (!IsFeedbackIdPart(*part)) {
      error = BatchError{std::string(kManifestName), 0, 0,
                         absl::StrCat(part == &out.campaign ? "campaign" : "tenant", " '",
                                      Shown(*part), "' has a ':', Feedback-ID's separator")};
      return false;
    }
  }
  b.feedback_id = absl::StrCat(out.campaign, ":", out.tenant, ":", sender);
  return true;
}

// A template header field the manifest's fields would clash with: the
// reason, or "". `keep_feedback_id`: the template's Feedback-ID stays and
// the configuration's default is not added.
std::string BulkConflict(std::string_view name, const BulkHeaders& bulk, bool& keep_feedback_id) {
  if (bulk.unsubscribe() && (base::EqualsIgnoreCase(name, "List-Unsubscribe") ||
                             base::EqualsIgnoreCase(name, "List-Unsubscribe-Post"))) {
    return absl::StrCat(Av(name),
                        " in the template and [unsubscribe] in manifest.toml: give it in one "
                        "place (the manifest's fills in each recipient's values, encoded)");
  }
  if (!bulk.feedback_id.empty() && base::EqualsIgnoreCase(name, "Feedback-ID")) {
    if (!bulk.feedback_id_from_manifest) {
      keep_feedback_id = true;
      return "";
    }
    return "Feedback-ID in the template and feedback_id_sender in manifest.toml: give it in one "
           "place";
  }
  return "";
}

// One header field name of a template: the reason it is refused, or "".
// Notes Date, Message-ID and From in `out`.
std::string TemplateField(std::string_view name, const BatchLimits& limits, const BulkHeaders* bulk,
                          PreparedTemplate& out, bool& keep_feedback_id) {
  if (base::EqualsIgnoreCase(name, "Bcc")) {
    return "Bcc field in a batch template (every recipient gets a message of their own; list "
           "extra recipients in the recipients file)";
  }
  if (base::StartsWithIgnoreCase(name, "X-Sluice-Envelope-")) {
    return absl::StrCat(Av(name),
                        " in a batch template (the envelope comes from the manifest and the "
                        "recipients file)");
  }
  if (base::EqualsIgnoreCase(name, "Date")) out.has_date = true;
  if (base::EqualsIgnoreCase(name, "Message-ID")) out.has_message_id = true;
  if (base::EqualsIgnoreCase(name, "From") && ++out.from_count == 2 && limits.require_from) {
    return "a second From field (RFC 5322 3.6 allows exactly one; receivers such as Gmail refuse "
           "the message)";
  }
  return bulk != nullptr ? BulkConflict(name, *bulk, keep_feedback_id) : "";
}

// Writes `fields` (CRLF lines) after the first `header_lines` lines of
// `text` (the end of the header section). Each line must fit the line
// length limit before any value is filled in.
bool AddHeaderFields(std::string_view fields, size_t header_lines, const BatchLimits& limits,
                     std::string& text, size_t& added_lines, BatchError& error) {
  size_t at = 0;
  for (size_t i = 0; i < header_lines; ++i) at = text.find("\r\n", at) + 2;
  for (size_t p = 0; p < fields.size();) {
    const size_t end = fields.find("\r\n", p) + 2;
    if (end - p > limits.max_line_length) {
      error = BatchError{std::string(kManifestName), 0, 0,
                         absl::StrCat("the ", Shown(fields.substr(p, fields.find(':', p) - p)),
                                      " line would be ", end - p,
                                      " bytes, over the line length "
                                      "limit (",
                                      limits.max_line_length, ")")};
      return false;
    }
    ++added_lines;
    p = end;
  }
  text.insert(at, fields);
  return true;
}

// After compiling the template with the manifest's fields added: positions
// are given back in the template file's lines; a field first used by the
// added lines gets {0, 0} (the manifest's).
void TemplatePositions(size_t header_lines, size_t added_lines, merge::CompiledTemplate& t) {
  for (merge::CompiledTemplate::Position& at : t.first_use) {
    if (at.line > header_lines + added_lines) {
      at.line -= static_cast<uint32_t>(added_lines);
    } else if (at.line > header_lines) {
      at = {0, 0};
    }
  }
}

}  // namespace

std::string BatchError::ToString() const {
  std::string out = file;
  if (line > 0) absl::StrAppend(&out, " line ", line);
  if (column > 0) absl::StrAppend(&out, ", column ", column);
  absl::StrAppend(&out, ": ", reason);
  return out;
}

bool IsBatchFileName(std::string_view name) {
  return !name.empty() && name.size() <= 255 && name.front() != '.' &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos &&
         name != kManifestName;
}

// ---------------------------------------------------------------------------
// The manifest

namespace {

// One string value of the manifest, just stored in `value` (a field of
// `out`): checked, the sender parsed. Returns why it is wrong, or "".
std::string CheckManifestValue(std::string_view k, const BatchLimits& limits, Manifest& out,
                               std::string& value) {
  if (k == "sender") {
    if (out.sender.empty() || out.sender == "<>") {
      out.sender.clear();
      return "";
    }
    std::string why, parsed;
    if (!ParseAddress(out.sender, smtp::PathKind::kReversePath, parsed, out.smtputf8, why)) {
      return absl::StrCat("sender: bad address '", Shown(out.sender), "': ", why);
    }
    out.sender = std::move(parsed);
  } else if (k == "template" || k == "recipients") {
    if (!IsBatchFileName(value)) {
      return absl::StrCat(Av(k), ": '", Shown(value),
                          "' is not a plain file name inside the batch directory");
    }
  } else if (k == "feedback_id_sender") {
    if (!IsFeedbackIdPart(value)) {
      return "feedback_id_sender: must be 1 to 128 printable ASCII characters without spaces or "
             "':'";
    }
  } else if (!IsId(value, limits.max_id_length)) {
    return absl::StrCat(Av(k), ": must be 1 to ", limits.max_id_length,
                        " printable ASCII characters without spaces");
  }
  return "";
}

}  // namespace

bool ParseManifest(std::string_view text, const BatchLimits& limits, Manifest& out,
                   BatchError& error) {
  const std::string file(kManifestName);
  auto fail = [&](size_t line, std::string reason) {
    error = BatchError{file, line, 0, std::move(reason)};
    return false;
  };
  out = Manifest{};
  if (text.empty()) return fail(0, "empty file");
  if (text.size() > limits.max_manifest_size) {
    return fail(0, absl::StrCat("file of ", text.size(), " bytes exceeds the limit (",
                                limits.max_manifest_size, " bytes)"));
  }
  if (text.find('\0') != std::string_view::npos) return fail(0, "NUL byte (not a TOML file)");
  toml::parse_result result = toml::parse(text, file);
  if (!result) {
    const toml::parse_error& e = result.error();
    return fail(e.source().begin.line, std::string(e.description()));
  }
  const toml::table& table = result.table();
  bool have_sender = false, have_template = false, have_recipients = false;
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    const size_t line = node.source().begin.line;
    std::string* target = nullptr;
    if (k == "unsubscribe") {
      const toml::table* t = node.as_table();
      if (t == nullptr) return fail(line, "unsubscribe: must be a table ([unsubscribe])");
      if (!ParseUnsubscribe(*t, out.bulk, error)) return false;
      continue;
    } else if (k == "feedback_id_sender") {
      target = &out.bulk.feedback_id;  // the sender id until FinishFeedbackId
      out.bulk.feedback_id_from_manifest = true;
    } else if (k == "sender") {
      target = &out.sender;
      have_sender = true;
    } else if (k == "template") {
      target = &out.template_file;
      have_template = true;
    } else if (k == "recipients") {
      target = &out.recipients_file;
      have_recipients = true;
    } else if (k == "campaign") {
      target = &out.campaign;
    } else if (k == "tenant") {
      target = &out.tenant;
    } else {
      return fail(key.source().begin.line,
                  absl::StrCat("unknown key '", Shown(k, 64),
                               "' (the keys are sender, template, recipients, campaign, tenant, "
                               "feedback_id_sender and the table [unsubscribe])"));
    }
    const toml::value<std::string>* value = node.as_string();
    if (value == nullptr) return fail(line, absl::StrCat(Av(k), ": must be a string"));
    *target = value->get();
    if (std::string why = CheckManifestValue(k, limits, out, *target); !why.empty()) {
      return fail(line, std::move(why));
    }
  }
  if (!have_sender) return fail(0, "no sender (write sender = \"\" for the null sender <>)");
  if (!have_template) return fail(0, "no template (the template file's name)");
  if (!have_recipients) return fail(0, "no recipients (the recipients file's name)");
  if (out.template_file == out.recipients_file) {
    return fail(0, "template and recipients name the same file");
  }
  return FinishFeedbackId(limits, out, error);
}

// ---------------------------------------------------------------------------
// The template

namespace {

// What reading the template's lines found.
struct TemplateLines {
  size_t header_lines = 0;  // lines of the header section
  size_t count = 0;         // lines in all
  bool in_header = true;    // no empty line ended the header section
  bool keep_template_feedback_id = false;
};

// One header line of the template (not empty); returns why it is wrong, or "".
std::string TemplateHeaderLine(std::string_view line, bool& any_field, const BatchLimits& limits,
                               const BulkHeaders* bulk, PreparedTemplate& out, bool& keep_fbid) {
  if (IsWsp(line.front())) {
    return any_field ? "" : "continuation line before any header field";
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return "not a header field (no ':'); the header section must end with an empty line";
  }
  const std::string_view name = line.substr(0, colon);
  if (!IsFieldName(name)) return "malformed header field name";
  any_field = true;
  return TemplateField(name, limits, bulk, out, keep_fbid);
}

// Lines: CRLF or bare LF (normalised to CRLF into out.stored), no NUL, no
// bare CR, bounded; the header fields checked. Returns why it is wrong (at
// line lines.count + 1), or "".
std::string ReadTemplateLines(std::string_view bytes, const BatchLimits& limits,
                              const BulkHeaders* bulk, PreparedTemplate& out,
                              TemplateLines& lines) {
  std::string& text = out.stored;
  text.reserve(bytes.size() + bytes.size() / 32 + 2);
  bool any_field = false;
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t end = pos;
    while (end < bytes.size() && bytes[end] != '\n' && bytes[end] != '\r' && bytes[end] != '\0') {
      ++end;
    }
    const std::string_view line = bytes.substr(pos, end - pos);
    if (end < bytes.size() && bytes[end] == '\0') return "NUL byte (binary data is not a message)";
    size_t next;
    if (end == bytes.size()) {
      next = end;
    } else if (bytes[end] == '\n') {
      next = end + 1;
    } else if (end + 1 < bytes.size() && bytes[end + 1] == '\n') {
      next = end + 2;
    } else {
      return "bare CR (a CR not followed by LF)";
    }
    if (line.size() + 2 > limits.max_line_length) {
      return absl::StrCat("line of ", line.size() + 2,
                          " bytes (with CRLF) exceeds the line length limit (",
                          limits.max_line_length, ")");
    }
    if (lines.in_header) {
      if (line.empty()) {
        if (!any_field) return "no header fields before the empty line";
        lines.in_header = false;
      } else if (std::string why = TemplateHeaderLine(line, any_field, limits, bulk, out,
                                                      lines.keep_template_feedback_id);
                 !why.empty()) {
        return why;
      }
      if (lines.in_header) ++lines.header_lines;
    }
    absl::StrAppend(&text, Av(line), "\r\n");
    pos = next;
    ++lines.count;
  }
  return "";
}

}  // namespace

bool PrepareTemplate(std::string_view file, std::string_view bytes, const BatchLimits& limits,
                     PreparedTemplate& out, BatchError& error, const Manifest* manifest) {
  auto fail = [&](size_t line, size_t column, std::string reason) {
    error = BatchError{std::string(file), line, column, std::move(reason)};
    return false;
  };
  out = PreparedTemplate{};
  if (bytes.empty()) return fail(0, 0, "empty file");
  if (bytes.size() > limits.max_template_size) {
    return fail(0, 0,
                absl::StrCat("file of ", bytes.size(), " bytes exceeds the message size limit (",
                             limits.max_template_size, " bytes)"));
  }
  const BulkHeaders* bulk = manifest != nullptr && manifest->bulk.any() ? &manifest->bulk : nullptr;
  TemplateLines lines;
  if (std::string why = ReadTemplateLines(bytes, limits, bulk, out, lines); !why.empty()) {
    return fail(lines.count + 1, 0, std::move(why));
  }
  std::string& text = out.stored;
  const size_t header_lines = lines.header_lines;
  const bool in_header = lines.in_header;
  const size_t number = lines.count + 1;
  const bool keep_template_feedback_id = lines.keep_template_feedback_id;
  if (in_header) {
    return fail(number - 1, 0, "header section not followed by an empty line (truncated file?)");
  }
  if (limits.require_from && out.from_count == 0) {
    return fail(0, 0,
                "no From field in the header (RFC 5322 3.6 requires exactly one; receivers such "
                "as Gmail refuse the message)");
  }
  size_t added_lines = 0;
  if (bulk != nullptr) {
    BulkHeaders h = *bulk;
    if (keep_template_feedback_id) h.feedback_id.clear();
    if (!AddHeaderFields(BulkHeaderFields(h), header_lines, limits, text, added_lines, error)) {
      return false;
    }
  }
  if (text.size() > limits.max_message_size) {
    return fail(0, 0,
                absl::StrCat("message of ", text.size(),
                             " bytes (after CRLF normalisation) exceeds the message size limit (",
                             limits.max_message_size, " bytes)"));
  }
  merge::TemplateError e;
  if (!merge::Compile(text, out.compiled, e)) {
    if (e.line > header_lines && e.line <= header_lines + added_lines) {
      error = BatchError{std::string(kManifestName), 0, 0, e.reason};
      return false;
    }
    return fail(e.line > header_lines ? e.line - added_lines : e.line, e.column, e.reason);
  }
  if (added_lines > 0) TemplatePositions(header_lines, added_lines, out.compiled);
  if (!out.compiled.has_placeholders()) {
    // Not a merge: the message itself, escapes resolved, shared by all.
    text = out.compiled.literals;
  }
  out.eight_bit = HasNonAscii(text);
  return true;
}

}  // namespace sluice::pickup
