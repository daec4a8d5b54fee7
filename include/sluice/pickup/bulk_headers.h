// What inbox providers ask of bulk mail, added to a batch's template from
// its manifest (docs/PICKUP.md, "Unsubscribe and Feedback-ID";
// docs/BULK_SENDERS.md):
//
//   List-Unsubscribe: <https://...>, <mailto:...>        RFC 2369
//   List-Unsubscribe-Post: List-Unsubscribe=One-Click    RFC 8058
//   Feedback-ID: <campaign>:<tenant>:<sender id>         Gmail's feedback loop
//
// The URLs are templates: {{field}} takes the recipient's value of that
// column, percent-encoded ({{field|url}} in the stored template, so the
// delivery engine encodes when it renders each recipient; merge/template.h).
// The fields are written into the template's header section at ingestion,
// so every rendered copy carries them before anything (DKIM) signs it.
//
// Trust: the manifest text is untrusted. A URL's literal text is limited to
// RFC 3986 characters (no space, CR, LF, '<', '>', '"', ',' or braces), its
// scheme and host take no placeholder, and a value can add only unreserved
// characters and %XX: no value can end the URL, the field or the line.
// Pure: strings in, strings out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::pickup {

// The longest URL template accepted (the manifest's text). A List-Unsubscribe
// line must also fit the line length limit once rendered.
inline constexpr size_t kMaxUnsubscribeUrlLength = 900;

struct BulkHeaders {
  // The List-Unsubscribe URIs in template form ({{f}} rewritten {{f|url}});
  // "" when not given.
  std::string url;         // https://... or http://...
  std::string mailto;      // mailto:...
  bool one_click = false;  // add List-Unsubscribe-Post (url is https)
  // Feedback-ID's value ("campaign:tenant:sender"), "" for none.
  std::string feedback_id;
  // The manifest asked for Feedback-ID (not only pickup.feedback_id_sender):
  // a Feedback-ID in the template is then a conflict, not kept.
  bool feedback_id_from_manifest = false;

  bool unsubscribe() const { return !url.empty() || !mailto.empty(); }
  bool any() const { return unsubscribe() || !feedback_id.empty(); }
};

enum class UriKind { kHttp, kMailto };

// Checks a manifest URL template and rewrites it for the stored template.
// kHttp: "https://host/path?query" (or http://); placeholders only after
// the host. kMailto: "local@domain[?hfields]", "mailto:" optional;
// placeholders anywhere but the domain. On success `out` is the URI to put
// between '<' and '>' ("mailto:" included); `https` says the scheme was
// https. On failure `why` says what is wrong.
bool ParseUriTemplate(std::string_view text, UriKind kind, std::string& out, bool& https,
                      std::string& why);

// A part of Feedback-ID (campaign, tenant, sender id): 1 to 128 printable
// ASCII characters, no space and no ':' (the separator).
bool IsFeedbackIdPart(std::string_view s);

// The header fields to add, CRLF-terminated lines in template syntax (a
// literal "{{" is escaped). "" when h.any() is false.
std::string BulkHeaderFields(const BulkHeaders& h);

}  // namespace sluice::pickup
