// pickup::ParseMessage on arbitrary bytes (a dropped file is untrusted), with
// small limits so line-length, size and recipient checks are reached. An
// accepted message must satisfy what the spool relies on: CRLF line ends
// only, no NUL, at least one recipient, the envelope lines gone, and it must
// parse again (as a -t message with the same recipients' envelope re-added).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sluice/pickup/message_parser.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  pickup::Limits limits;
  limits.max_message_size = 64 * 1024;
  limits.max_line_length = 200;
  limits.max_recipients = 20;
  pickup::Result r = pickup::ParseMessage(in, limits);
  if (!r.ok) {
    FUZZ_CHECK(!r.error.reason.empty());
    return 0;
  }
  const pickup::Message& m = r.message;
  FUZZ_CHECK(!m.recipients.empty() && m.recipients.size() <= limits.max_recipients);
  FUZZ_CHECK(m.body.size() <= limits.max_message_size);
  FUZZ_CHECK(m.body.size() >= 2 && m.body.substr(m.body.size() - 2) == "\r\n");
  for (size_t i = 0; i < m.body.size(); ++i) {
    const char c = m.body[i];
    FUZZ_CHECK(c != '\0');
    if (c == '\r') FUZZ_CHECK(i + 1 < m.body.size() && m.body[i + 1] == '\n');
    if (c == '\n') FUZZ_CHECK(i > 0 && m.body[i - 1] == '\r');
  }
  // Re-parsing the stored message with the envelope given again must work
  // and give the same envelope.
  std::string again = "X-Sluice-Envelope-From: <" + m.sender + ">\r\n";
  for (const std::string& rcpt : m.recipients) again += "X-Sluice-Envelope-To: <" + rcpt + ">\r\n";
  again += m.body;
  limits.max_message_size = again.size() + 1;
  limits.max_line_length = 1 << 20;
  pickup::Result r2 = pickup::ParseMessage(again, limits);
  FUZZ_CHECK(r2.ok);
  FUZZ_CHECK(r2.message.sender == m.sender);
  FUZZ_CHECK(r2.message.recipients == m.recipients);
  return 0;
}
