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
#include "sluice/base/strings.h"
#include "sluice/smtp/address.h"
#include "sluice/spool/message_file.h"

namespace sluice::pickup {
namespace {

using base::Av;

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsWsp(s.back())) s.remove_suffix(1);
  return s;
}

bool HasNonAscii(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// Untrusted text shown in a note or a log line: printable ASCII, bounded.
std::string Shown(std::string_view s, size_t max = 80) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out.push_back(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f ? c : '?');
  }
  if (s.size() > max) out += "...";
  return out;
}

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

// Parses an address as a path ("<a@b>" or "a@b"); "" and "<>" only as a
// reverse path. Returns "" and sets `why` on failure.
bool ParseAddress(std::string_view text, smtp::PathKind kind, std::string& out, bool& utf8,
                  std::string& why) {
  std::string wrapped;
  std::string_view a = Trim(text);
  if (a.empty() || a.front() != '<') {
    wrapped = absl::StrCat("<", Av(a), ">");
    a = wrapped;
  }
  utf8 = HasNonAscii(a);
  auto parsed = smtp::ParsePath(a, kind, utf8);
  if (!parsed.ok()) {
    why = std::string(parsed.status().message());
    return false;
  }
  if (!Trim(parsed->rest).empty()) {
    why = "text after '>'";
    return false;
  }
  out = parsed->mailbox.ToString();
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
    if (k == "sender") {
      if (!out.sender.empty() && out.sender != "<>") {
        std::string why, parsed;
        if (!ParseAddress(out.sender, smtp::PathKind::kReversePath, parsed, out.smtputf8, why)) {
          return fail(line, absl::StrCat("sender: bad address '", Shown(out.sender), "': ", why));
        }
        out.sender = std::move(parsed);
      } else {
        out.sender.clear();
      }
    } else if (k == "template" || k == "recipients") {
      if (!IsBatchFileName(*target)) {
        return fail(line, absl::StrCat(Av(k), ": '", Shown(*target),
                                       "' is not a plain file name inside the batch directory"));
      }
    } else if (k == "feedback_id_sender") {
      if (!IsFeedbackIdPart(*target)) {
        return fail(line,
                    "feedback_id_sender: must be 1 to 128 printable ASCII characters without "
                    "spaces or ':'");
      }
    } else if (!IsId(*target, limits.max_id_length)) {
      return fail(line, absl::StrCat(Av(k), ": must be 1 to ", limits.max_id_length,
                                     " printable ASCII characters without spaces"));
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
  // Lines: CRLF or bare LF (normalised to CRLF), no NUL, no bare CR, bounded.
  std::string& text = out.stored;
  text.reserve(bytes.size() + bytes.size() / 32 + 2);
  bool in_header = true;
  bool any_field = false;
  size_t header_lines = 0;  // lines of the header section
  size_t pos = 0;
  size_t number = 1;
  const BulkHeaders* bulk = manifest != nullptr && manifest->bulk.any() ? &manifest->bulk : nullptr;
  bool keep_template_feedback_id = false;
  while (pos < bytes.size()) {
    size_t end = pos;
    while (end < bytes.size() && bytes[end] != '\n' && bytes[end] != '\r' && bytes[end] != '\0') {
      ++end;
    }
    const std::string_view line = bytes.substr(pos, end - pos);
    if (end < bytes.size() && bytes[end] == '\0') {
      return fail(number, 0, "NUL byte (binary data is not a message)");
    }
    size_t next;
    if (end == bytes.size()) {
      next = end;
    } else if (bytes[end] == '\n') {
      next = end + 1;
    } else if (end + 1 < bytes.size() && bytes[end + 1] == '\n') {
      next = end + 2;
    } else {
      return fail(number, 0, "bare CR (a CR not followed by LF)");
    }
    if (line.size() + 2 > limits.max_line_length) {
      return fail(number, 0,
                  absl::StrCat("line of ", line.size() + 2,
                               " bytes (with CRLF) exceeds the line length limit (",
                               limits.max_line_length, ")"));
    }
    if (in_header) {
      if (line.empty()) {
        if (!any_field) return fail(number, 0, "no header fields before the empty line");
        in_header = false;
      } else if (IsWsp(line.front())) {
        if (!any_field) return fail(number, 0, "continuation line before any header field");
      } else {
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
          return fail(number, 0,
                      "not a header field (no ':'); the header section must end with an empty "
                      "line");
        }
        const std::string_view name = line.substr(0, colon);
        if (!IsFieldName(name)) return fail(number, 0, "malformed header field name");
        if (std::string why = TemplateField(name, limits, bulk, out, keep_template_feedback_id);
            !why.empty()) {
          return fail(number, 0, std::move(why));
        }
        any_field = true;
      }
      if (in_header) ++header_lines;
    }
    absl::StrAppend(&text, Av(line), "\r\n");
    pos = next;
    ++number;
  }
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

// ---------------------------------------------------------------------------
// The recipients

struct BatchBuilder::ArenaHash {
  const BatchBuilder* b;
  size_t operator()(uint32_t i) const { return absl::Hash<absl::string_view>()(Av(b->Address(i))); }
};
struct BatchBuilder::ArenaEq {
  const BatchBuilder* b;
  bool operator()(uint32_t x, uint32_t y) const { return b->Address(x) == b->Address(y); }
};

BatchBuilder::BatchBuilder(const PreparedTemplate& t, std::string template_file, std::string file,
                           const BatchLimits& limits)
    : t_(t),
      template_file_(std::move(template_file)),
      file_(std::move(file)),
      limits_(limits),
      reader_(CsvLimits{limits.max_record_size, limits.max_columns},
              [this](const CsvRecord& r) { OnRecord(r); }),
      seen_(std::make_unique<absl::flat_hash_set<uint32_t, ArenaHash, ArenaEq>>(0, ArenaHash{this},
                                                                                ArenaEq{this})) {}

BatchBuilder::~BatchBuilder() = default;

std::string_view BatchBuilder::Address(uint32_t i) const {
  const uint32_t begin = i == 0 ? 0 : address_ends_[i - 1];
  return std::string_view(addresses_).substr(begin, address_ends_[i] - begin);
}

std::vector<std::string_view> BatchBuilder::Addresses() const {
  std::vector<std::string_view> out;
  out.reserve(address_ends_.size());
  for (uint32_t i = 0; i < address_ends_.size(); ++i) out.push_back(Address(i));
  return out;
}

bool BatchBuilder::Feed(std::string_view bytes) {
  if (rejected_) return false;
  reader_.Feed(bytes);
  return !rejected_;
}

bool BatchBuilder::Finish() {
  if (rejected_) return false;
  reader_.Finish();
  if (rejected_) return false;
  if (!have_header_) {
    Reject(0, 0, file_, "empty file: no header row");
    return false;
  }
  if (accepted_ == 0) {
    Reject(0, 0, "batch",
           absl::StrCat("no valid recipient in ", file_,
                        skipped_ > 0 ? absl::StrCat(" (", skipped_, " rows skipped)") : ""));
    return false;
  }
  return true;
}

void BatchBuilder::Reject(size_t line, size_t column, std::string file, std::string reason) {
  if (rejected_) return;
  rejected_ = true;
  error_ = BatchError{std::move(file), line, column, std::move(reason)};
}

void BatchBuilder::Skip(size_t line, std::string reason) {
  ++skipped_;
  if (notes_.size() < limits_.max_reported_lines) {
    notes_.push_back(absl::StrCat("line ", line, ": ", reason));
  }
}

void BatchBuilder::OnRecord(const CsvRecord& r) {
  if (rejected_) return;
  if (!have_header_) return Header(r);
  Row(r);
}

void BatchBuilder::Header(const CsvRecord& r) {
  have_header_ = true;
  if (!r.error.empty()) return Reject(r.line, 0, file_, absl::StrCat("header row: ", r.error));
  if (r.fields.size() == 1 && Trim(r.fields[0]).empty()) {
    return Reject(r.line, 0, file_, "the first line must be the header row (email,...)");
  }
  bool have_email = false;
  for (size_t i = 0; i < r.fields.size(); ++i) {
    const std::string_view name = Trim(r.fields[i]);
    if (name.empty())
      return Reject(r.line, 0, file_, absl::StrCat("header row: column ", i + 1, " has no name"));
    for (const std::string& seen : columns_) {
      if (seen == name) {
        return Reject(r.line, 0, file_,
                      absl::StrCat("header row: column '", Shown(name), "' appears twice"));
      }
    }
    if (base::EqualsIgnoreCase(name, "email")) {
      if (have_email) return Reject(r.line, 0, file_, "header row: more than one email column");
      have_email = true;
      email_column_ = i;
    }
    columns_.emplace_back(name);
  }
  if (!have_email) {
    return Reject(r.line, 0, file_,
                  absl::StrCat("header row has no 'email' column (columns: ",
                               Shown(absl::StrJoin(columns_, ", "), 200), ")"));
  }
  for (size_t f = 0; f < t_.compiled.fields.size(); ++f) {
    const std::string& field = t_.compiled.fields[f];
    size_t col = columns_.size();
    for (size_t i = 0; i < columns_.size(); ++i) {
      if (columns_[i] == field) col = i;
    }
    if (col == columns_.size()) {
      const merge::CompiledTemplate::Position& at = t_.compiled.first_use[f];
      if (at.line == 0) {  // only the manifest's [unsubscribe] URLs use it
        return Reject(
            0, 0, std::string(kManifestName),
            absl::StrCat("[unsubscribe] uses the field '", field, "' but ", file_,
                         " has only the columns ", Shown(absl::StrJoin(columns_, ", "), 200)));
      }
      return Reject(at.line, at.column, template_file_,
                    absl::StrCat("unknown field '", field, "' (", file_, " has the columns ",
                                 Shown(absl::StrJoin(columns_, ", "), 200), ")"));
    }
    field_columns_.push_back(col);
  }
  values_.resize(field_columns_.size());
}

void BatchBuilder::Row(const CsvRecord& r) {
  if (!r.error.empty()) return Skip(r.line, r.error);
  if (r.fields.size() == 1 && r.fields[0].empty()) return;  // a blank line
  if (r.fields.size() != columns_.size()) {
    return Skip(r.line, absl::StrCat(r.fields.size(), r.fields.size() == 1 ? " field" : " fields",
                                     ", the header row has ", columns_.size()));
  }
  const std::string_view email = Trim(r.fields[email_column_]);
  if (email.empty()) return Skip(r.line, "empty email");
  if (email.size() > limits_.max_address_length) {
    return Skip(r.line, absl::StrCat("address longer than ", limits_.max_address_length, " bytes"));
  }
  std::string address, why;
  bool utf8 = false;
  if (!ParseAddress(email, smtp::PathKind::kForwardPath, address, utf8, why)) {
    return Skip(r.line, absl::StrCat("bad address '", Shown(email), "': ", why));
  }
  for (size_t f = 0; f < field_columns_.size(); ++f) {
    const std::string_view v = r.fields[field_columns_[f]];
    const std::string& name = t_.compiled.fields[f];
    if (v.size() > limits_.max_value_length) {
      return Skip(r.line,
                  absl::StrCat("field '", name, "': value of ", v.size(),
                               " bytes exceeds the limit (", limits_.max_value_length, ")"));
    }
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
      return Skip(r.line, absl::StrCat("field '", name,
                                       "': a line break or NUL in a value (a value fills part of "
                                       "one line)"));
    }
    values_[f] = v;
  }
  if (t_.compiled.has_placeholders()) {
    const size_t longest = merge::LongestMergedLine(t_.compiled, values_);
    if (longest > limits_.max_line_length) {
      return Skip(r.line, absl::StrCat("the merged message would have a line of ", longest,
                                       " bytes, over the line length limit (",
                                       limits_.max_line_length, ")"));
    }
    const size_t size = merge::RenderedSize(t_.compiled, values_);
    if (size > limits_.max_message_size) {
      return Skip(r.line, absl::StrCat("the merged message would be ", size,
                                       " bytes, over the message size limit (",
                                       limits_.max_message_size, ")"));
    }
  }
  // The same address twice is one recipient: the first row wins.
  const uint32_t index = static_cast<uint32_t>(address_ends_.size());
  addresses_.append(address);
  address_ends_.push_back(static_cast<uint32_t>(addresses_.size()));
  if (!seen_->insert(index).second) {
    address_ends_.pop_back();
    addresses_.resize(index == 0 ? 0 : address_ends_.back());
    return Skip(r.line, absl::StrCat("duplicate recipient <", Shown(address), ">"));
  }
  if (accepted_ >= limits_.max_recipients) {
    return Reject(0, 0, file_,
                  absl::StrCat("more than ", limits_.max_recipients,
                               " recipients (the limit per batch): split it into several"));
  }
  spool::PackRecipient(packed_, address, values_);
  if (packed_.size() > limits_.max_packed_size) {
    return Reject(0, 0, file_,
                  absl::StrCat("the recipients and their values exceed ", limits_.max_packed_size,
                               " bytes: split the batch"));
  }
  ++accepted_;
  smtputf8_ |= utf8;
  if (!eight_bit_) {
    for (std::string_view v : values_) eight_bit_ |= HasNonAscii(v);
  }
}

}  // namespace sluice::pickup
