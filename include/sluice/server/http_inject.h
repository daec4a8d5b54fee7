// POST /api/inject/v1 (docs/HTTP.md, "Injection"): a JSON document becomes
// one spool record, exactly as a pickup file or batch would.
//
//   {"envelope_sender": "a@b", "content": "<RFC 5322 message>",
//    "recipients": [{"email": "x@y"}], "campaign": "...", "tenant": "..."}
//   {"envelope_sender": "a@b", "template": "<message with {{field}}>",
//    "recipients": [{"email": "x@y", "fields": {"name": "X"}}, ...]}
//
// A content request is checked by the pickup message parser (the envelope
// given as X-Sluice-Envelope-* lines in front of it); a template request by
// the batch code (pickup/batch.h): its manifest written from the document's
// fields, its recipients as CSV. So the checks, limits and the record (one
// batch record for any number of templated recipients, with campaign,
// tenant and Feedback-ID) are the pickup path's.
//
// What it trusts: nothing in the document. Strings with control characters
// are refused before they reach the manifest or the CSV, so no value can
// add a line or a column. Every error names the field: "recipients[3].email:
// ...". Bounded by the request size (http.max_inject_bytes) and
// kMaxInjectRecipients.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/config/config.h"
#include "sluice/pickup/batch.h"
#include "sluice/spool/message_file.h"

namespace sluice::server {

inline constexpr std::string_view kInjectPath = "/api/inject/v1";
// Recipients of one request (the target: 100,000 templated
// recipients durable in under 0.5 s); pickup.max_batch_recipients and, for a
// content request, server.max_recipients apply too.
inline constexpr size_t kMaxInjectRecipients = 100'000;

// Values in one document (admin::ParseJson's bound, about 130 bytes each in
// memory): 100,000 recipients with a dozen fields each.
inline constexpr size_t kMaxInjectValues = 2'000'000;

// A checked request, ready for SpoolWriter::Commit.
struct Injection {
  bool batch = false;
  spool::Envelope env;  // all but arrival_micros and added_headers
  std::string body;     // what the spool stores
  bool has_date = false;
  bool has_message_id = false;
  bool per_recipient_id = false;         // delivery adds a Message-ID per recipient
  std::string sender, campaign, tenant;  // copies for the log (env is moved)
  std::vector<std::string> recipients;   // a content request's
  // A template request's (the builder refers to the template).
  std::unique_ptr<pickup::PreparedTemplate> tmpl;
  std::unique_ptr<pickup::BatchBuilder> builder;
  size_t recipient_count() const;
  std::vector<std::string_view> Addresses() const;
};

// Parses and checks `json`. False with `error` ("field: reason") for a 400.
bool BuildInjection(std::string_view json, const config::Config& config, Injection& out,
                    std::string& error);

}  // namespace sluice::server
