#include "sluice/server/trace_headers.h"

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/base/utc_time.h"

namespace sluice::server {

using base::Av;

std::string PrintableHeaderText(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 255)) out.push_back(c > 0x20 && c < 0x7f ? c : '?');
  return out;
}

std::string TraceHeaders(const TraceFacts& f) {
  const std::string date = base::Rfc5322Date(f.arrival_micros);
  std::string h = "Received: ";
  if (!f.from.empty()) absl::StrAppend(&h, "from ", Av(f.from), "\r\n\t");
  absl::StrAppend(&h, "by ", Av(f.hostname), " (Sluice) with ", Av(f.with), " id ", Av(f.queue_id));
  if (f.recipients != nullptr && f.recipients->size() == 1) {
    absl::StrAppend(&h, "\r\n\tfor <", (*f.recipients)[0], ">");
  }
  absl::StrAppend(&h, "; ", date, "\r\n");
  if (!f.has_date) absl::StrAppend(&h, "Date: ", date, "\r\n");
  if (!f.has_message_id) {
    absl::StrAppend(&h, "Message-ID: <", Av(f.queue_id), "@", Av(f.hostname), ">\r\n");
  }
  return h;
}

}  // namespace sluice::server
