// The header lines Sluice puts above every message it accepts, whatever the
// entry point (SMTP or the pickup directory): a Received: trace line (RFC
// 5321 4.4) naming the queue id, and Date: / Message-ID: when the message
// lacks them (RFC 5322 3.6). They are stored in the envelope and prepended
// when the message is read out, so the body on disk stays as received.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::server {

struct TraceFacts {
  std::string_view from;  // "helo (ip)" part for SMTP; empty for local pickup
  std::string_view with;  // "ESMTP", "SMTP", "local (pickup)"
  std::string_view hostname;
  std::string_view queue_id;
  const std::vector<std::string>* recipients = nullptr;  // "for <r>" when exactly one
  uint64_t arrival_micros = 0;
  bool has_date = false;
  bool has_message_id = false;
};

std::string TraceHeaders(const TraceFacts& facts);

// Client-supplied text (HELO) made safe for a header: printable ASCII only.
std::string PrintableHeaderText(std::string_view text);

}  // namespace sluice::server
