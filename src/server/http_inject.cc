// The injection API's document checks; see sluice/server/http_inject.h.
#include "sluice/server/http_inject.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "absl/strings/str_cat.h"
#include "sluice/admin/json_value.h"
#include "sluice/base/strings.h"
#include "sluice/pickup/config_limits.h"
#include "sluice/pickup/message_parser.h"

namespace sluice::server {
namespace {

using admin::JsonValue;

constexpr std::string_view kTemplateName = "template";
constexpr std::string_view kRecipientsName = "recipients";

// No control characters (tab allowed): nothing can add a line or a column.
bool Clean(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

bool StringField(const JsonValue& doc, std::string_view key, bool required, std::string& out,
                 std::string& error) {
  const JsonValue* v = doc.Get(key);
  if (v == nullptr) {
    if (required) error = absl::StrCat(base::Av(key), ": missing");
    return !required;
  }
  if (v->type != JsonValue::Type::kString) {
    error = absl::StrCat(base::Av(key), ": not a string");
    return false;
  }
  out = v->text;
  return true;
}

std::string TomlQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string CsvQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// "line N: reason" (or "... line N, column C: reason") -> N, or 0.
size_t LineOf(std::string_view text) {
  const size_t at = text.find("line ");
  if (at == std::string_view::npos) return 0;
  return static_cast<size_t>(
      std::strtoul(std::string(text.substr(at + 5, 12)).c_str(), nullptr, 10));
}

std::string AfterColon(std::string_view text) {
  const size_t at = text.find(": ");
  return std::string(at == std::string_view::npos ? text : text.substr(at + 2));
}

// The manifest a batch would carry; its line numbers name the fields.
constexpr std::string_view kManifestFields[] = {"",           "envelope_sender", "template",
                                                "recipients", "campaign",        "tenant"};

bool CheckManifest(const std::string& sender, const std::string& campaign,
                   const std::string& tenant, const pickup::BatchLimits& limits,
                   pickup::Manifest& manifest, std::string& error) {
  for (auto [name, value] :
       {std::pair<std::string_view, const std::string*>{"envelope_sender", &sender},
        {"campaign", &campaign},
        {"tenant", &tenant}}) {
    if (!Clean(*value)) {
      error = absl::StrCat(base::Av(name), ": control characters");
      return false;
    }
  }
  std::string toml =
      absl::StrCat("sender = ", TomlQuote(sender), "\ntemplate = \"", base::Av(kTemplateName),
                   "\"\nrecipients = \"", base::Av(kRecipientsName), "\"\n");
  absl::StrAppend(
      &toml, campaign.empty() ? "#\n" : absl::StrCat("campaign = ", TomlQuote(campaign), "\n"));
  if (!tenant.empty()) absl::StrAppend(&toml, "tenant = ", TomlQuote(tenant), "\n");
  pickup::BatchError e;
  if (pickup::ParseManifest(toml, limits, manifest, e)) return true;
  const std::string_view field =
      e.line > 0 && e.line < std::size(kManifestFields) ? kManifestFields[e.line] : "document";
  error = absl::StrCat(base::Av(field), ": ", e.reason);
  return false;
}

bool Recipients(const JsonValue& doc, size_t max, std::vector<const JsonValue*>& out,
                std::string& error) {
  const JsonValue* list = doc.Get("recipients");
  if (list == nullptr || list->type != JsonValue::Type::kArray) {
    error = list == nullptr ? "recipients: missing" : "recipients: not a list";
    return false;
  }
  if (list->items.empty() || list->items.size() > max) {
    error = absl::StrCat("recipients: 1 to ", max, " recipients, not ", list->items.size());
    return false;
  }
  for (size_t i = 0; i < list->items.size(); ++i) {
    const JsonValue& r = list->items[i];
    const JsonValue* email = r.Get("email");
    const std::string at = absl::StrCat("recipients[", i, "]");
    if (r.type != JsonValue::Type::kObject) {
      error = absl::StrCat(at, ": not an object");
      return false;
    }
    if (email == nullptr || email->type != JsonValue::Type::kString) {
      error = absl::StrCat(at, ".email: ", email == nullptr ? "missing" : "not a string");
      return false;
    }
    if (email->text.empty() || !Clean(email->text) ||
        email->text.find_first_of("<> \t") != std::string::npos) {
      error = absl::StrCat(at, ".email: not an address");
      return false;
    }
    out.push_back(&r);
  }
  return true;
}

bool BuildContent(const JsonValue& doc, const std::string& content,
                  const pickup::Manifest& manifest, const config::Config& config, Injection& out,
                  std::string& error) {
  pickup::Limits limits = pickup::MessageLimitsFor(config);
  std::vector<const JsonValue*> rcpts;
  if (!Recipients(doc, std::min(kMaxInjectRecipients, limits.max_recipients), rcpts, error))
    return false;
  std::string file = absl::StrCat(base::Av(pickup::kEnvelopeFrom), ": <", manifest.sender, ">\r\n");
  for (size_t i = 0; i < rcpts.size(); ++i) {
    if (rcpts[i]->Has("fields")) {
      error = absl::StrCat("recipients[", i, "].fields: only with a template");
      return false;
    }
    absl::StrAppend(&file, base::Av(pickup::kEnvelopeTo), ": <", rcpts[i]->Str("email"), ">\r\n");
  }
  const size_t prefix_lines = 1 + rcpts.size();
  limits.max_message_size += file.size();
  file += content;
  pickup::Result parsed = pickup::ParseMessage(file, limits);
  file.clear();
  if (!parsed.ok) {
    const size_t line = parsed.error.line;
    if (line == 1) {
      error = absl::StrCat("envelope_sender: ", parsed.error.reason);
    } else if (line >= 2 && line <= prefix_lines) {
      error = absl::StrCat("recipients[", line - 2, "].email: ", parsed.error.reason);
    } else if (line > prefix_lines) {
      error = absl::StrCat("content: line ", line - prefix_lines, ": ", parsed.error.reason);
    } else {
      error = absl::StrCat("content: ", parsed.error.reason);
    }
    return false;
  }
  pickup::Message& m = parsed.message;
  out.env.sender = m.sender;
  out.env.eight_bit = m.eight_bit;
  out.env.smtputf8 = m.smtputf8;
  out.env.campaign = manifest.campaign;
  out.env.tenant = manifest.tenant;
  for (const std::string& r : m.recipients) out.env.recipients.push_back(spool::Recipient{r});
  out.recipients = std::move(m.recipients);
  out.body = std::move(m.body);
  out.has_date = m.has_date;
  out.has_message_id = m.has_message_id;
  return true;
}

// The recipients as the CSV a batch would carry: email, then every field
// any recipient names (a missing one is empty).
bool RecipientsCsv(const std::vector<const JsonValue*>& rcpts,
                   const std::vector<std::string>& template_fields, std::string& csv,
                   std::string& error) {
  std::map<std::string, size_t> columns;
  for (const std::string& f : template_fields) {
    if (f != "email") columns.emplace(f, 0);  // given by no recipient: empty for all
  }
  for (size_t i = 0; i < rcpts.size(); ++i) {
    const JsonValue* fields = rcpts[i]->Get("fields");
    if (fields == nullptr) continue;
    const std::string at = absl::StrCat("recipients[", i, "].fields");
    if (fields->type != JsonValue::Type::kObject) {
      error = absl::StrCat(at, ": not an object");
      return false;
    }
    for (const auto& [name, value] : fields->members) {
      if (name.empty() || !Clean(name) || name == "email") {
        error = absl::StrCat(at, ": bad field name '", name.substr(0, 64), "'");
        return false;
      }
      if ((value.type != JsonValue::Type::kString && value.type != JsonValue::Type::kNumber) ||
          !Clean(value.text)) {
        error = absl::StrCat(at, ".", name.substr(0, 64), ": not a string of one line");
        return false;
      }
      columns.emplace(name, 0);
    }
  }
  size_t n = 0;
  csv = "email";
  for (auto& [name, index] : columns) {
    index = n++;
    absl::StrAppend(&csv, ",", CsvQuote(name));
  }
  csv += "\r\n";
  std::vector<std::string_view> row(columns.size());
  for (const JsonValue* r : rcpts) {
    std::fill(row.begin(), row.end(), std::string_view());
    if (const JsonValue* fields = r->Get("fields"); fields != nullptr) {
      for (const auto& [name, value] : fields->members) row[columns[name]] = value.text;
    }
    absl::StrAppend(&csv, CsvQuote(r->Get("email")->text));
    for (std::string_view v : row) absl::StrAppend(&csv, ",", CsvQuote(v));
    csv += "\r\n";
  }
  return true;
}

bool BuildTemplate(const JsonValue& doc, const std::string& text, const pickup::Manifest& manifest,
                   const pickup::BatchLimits& limits, Injection& out, std::string& error) {
  std::vector<const JsonValue*> rcpts;
  if (!Recipients(doc, std::min(kMaxInjectRecipients, limits.max_recipients), rcpts, error))
    return false;
  out.tmpl = std::make_unique<pickup::PreparedTemplate>();
  pickup::BatchError e;
  if (!pickup::PrepareTemplate(kTemplateName, text, limits, *out.tmpl, e, &manifest)) {
    error = e.ToString();
    return false;
  }
  std::string csv;
  if (!RecipientsCsv(rcpts, out.tmpl->compiled.fields, csv, error)) return false;
  out.builder = std::make_unique<pickup::BatchBuilder>(*out.tmpl, std::string(kTemplateName),
                                                       std::string(kRecipientsName), limits);
  pickup::BatchBuilder& b = *out.builder;
  if (!b.Feed(csv) || !b.Finish() || b.skipped() > 0) {
    // A skipped row is an error here: the client is told, not a report file.
    const std::string what =
        b.skipped() > 0 && !b.notes().empty() ? b.notes().front() : b.error().ToString();
    const size_t line = LineOf(what);
    error = line >= 2 ? absl::StrCat("recipients[", line - 2, "]: ", AfterColon(what))
                      : absl::StrCat("recipients: ", what);
    return false;
  }
  out.batch = true;
  out.has_date = out.tmpl->has_date;
  out.per_recipient_id = !out.tmpl->has_message_id && out.tmpl->compiled.has_placeholders();
  out.has_message_id = out.tmpl->has_message_id || out.per_recipient_id;
  out.env.sender = manifest.sender;
  out.env.eight_bit = out.tmpl->eight_bit || b.eight_bit();
  out.env.smtputf8 = manifest.smtputf8 || b.smtputf8();
  out.env.campaign = manifest.campaign;
  out.env.tenant = manifest.tenant;
  if (out.tmpl->compiled.has_placeholders()) out.env.merge_fields = out.tmpl->compiled.fields;
  out.env.packed_count = b.accepted();
  out.env.packed_recipients = b.TakePacked();
  out.body = std::move(out.tmpl->stored);
  return true;
}

}  // namespace

size_t Injection::recipient_count() const {
  return batch ? builder->accepted() : recipients.size();
}

std::vector<std::string_view> Injection::Addresses() const {
  if (batch) return builder->Addresses();
  return std::vector<std::string_view>(recipients.begin(), recipients.end());
}

bool BuildInjection(std::string_view json, const config::Config& config, Injection& out,
                    std::string& error) {
  auto doc = admin::ParseUntrustedJson(json, kMaxInjectValues);
  if (!doc.ok()) {
    error = absl::StrCat("not a JSON document: ", doc.status().message());
    return false;
  }
  if (doc->type != JsonValue::Type::kObject) {
    error = "the document is not a JSON object";
    return false;
  }
  for (const auto& [key, value] : doc->members) {
    if (key != "envelope_sender" && key != "content" && key != "template" && key != "recipients" &&
        key != "campaign" && key != "tenant") {
      error = absl::StrCat(key.substr(0, 64), ": unknown field");
      return false;
    }
  }
  std::string sender, content, text, campaign, tenant;
  if (!StringField(*doc, "envelope_sender", true, sender, error) ||
      !StringField(*doc, "content", false, content, error) ||
      !StringField(*doc, "template", false, text, error) ||
      !StringField(*doc, "campaign", false, campaign, error) ||
      !StringField(*doc, "tenant", false, tenant, error)) {
    return false;
  }
  if (doc->Has("content") == doc->Has("template")) {
    error = "content, template: give exactly one";
    return false;
  }
  const pickup::BatchLimits limits = pickup::BatchLimitsFor(config);
  pickup::Manifest manifest;
  if (!CheckManifest(sender, campaign, tenant, limits, manifest, error)) return false;
  out.env.protocol = "http";
  const bool ok = doc->Has("content") ? BuildContent(*doc, content, manifest, config, out, error)
                                      : BuildTemplate(*doc, text, manifest, limits, out, error);
  if (!ok) return false;
  if (out.per_recipient_id) out.env.message_id_host = config.hostname;
  out.sender = out.env.sender;
  out.campaign = out.env.campaign;
  out.tenant = out.env.tenant;
  return true;
}

}  // namespace sluice::server
