// `sluice inject`: drops a message from standard input into the pickup
// directory (pickup/pickup_directory.h), with its envelope from --from and
// --to (or -t: the daemon takes the recipients from the headers). The
// message is checked as the daemon will check it (pickup/message_parser.h),
// so the producer hears the reason now; the daemon checks again.
// `inject --batch` is inject_batch_command.cc.
//
// Limits: the message is read whole into memory, at most the configured
// max_message_size (plus one byte, to tell "too big").
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "sluice/base/strings.h"
#include "sluice/config/config.h"
#include "sluice/pickup/config_limits.h"
#include "sluice/pickup/message_parser.h"
#include "sluice/pickup/pickup_directory.h"
#include "usage.h"

namespace sluice::cli {
namespace {

// An address as an envelope line wants it: "<a@b>" ("" and "<>" are <>).
std::string Bracketed(std::string_view a) {
  if (!a.empty() && a.front() == '<') return std::string(a);
  return absl::StrCat("<", base::Av(a), ">");
}

}  // namespace

int RunInject(const Options& o) {
  config::Config c;
  if (!o.config_file.empty()) {
    if (absl::Status s = config::ApplyTomlFile(o.config_file, c); !s.ok()) {
      std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  for (const auto& [flag, value] : o.overrides) {
    uint64_t n = 0;
    if (flag == "--pickup") c.pickup_dir = value;
    if (flag == "--max-message-size" && base::ParseUint64(value, n)) c.max_message_size = n;
    if (flag == "--max-recipients" && base::ParseUint64(value, n)) c.max_recipients = n;
  }
  if (c.pickup_dir.empty()) return Usage("inject needs --pickup DIR (or pickup.dir in --config)");
  if (!o.batch.empty()) return RunInjectBatch(o, c);
  if (o.recipients_from_headers == !o.to.empty()) {
    return Usage("inject needs either --to ADDRESS (repeatable, with --from) or -t");
  }
  if (!o.to.empty() && !o.from_given) return Usage("inject --to needs --from ADDRESS (\"\" is <>)");
  std::string bytes;
  if (!o.to.empty()) {
    absl::StrAppend(&bytes, base::Av(pickup::kEnvelopeFrom), ": ", Bracketed(o.from), "\r\n");
    for (const std::string& t : o.to) {
      absl::StrAppend(&bytes, base::Av(pickup::kEnvelopeTo), ": ", Bracketed(t), "\r\n");
    }
  } else if (o.from_given) {
    absl::StrAppend(&bytes, base::Av(pickup::kEnvelopeFrom), ": ", Bracketed(o.from), "\r\n");
  }
  char buf[64 * 1024];
  while (true) {
    const size_t n = std::fread(buf, 1, sizeof buf, stdin);
    bytes.append(buf, n);
    if (n < sizeof buf) break;
    if (bytes.size() > c.max_message_size + 1) break;
  }
  if (std::ferror(stdin)) {
    std::fprintf(stderr, "sluice: inject: cannot read the message from standard input\n");
    return 1;
  }
  // The daemon checks again; checking here gives the producer the reason now.
  pickup::Result parsed = pickup::ParseMessage(bytes, pickup::MessageLimitsFor(c));
  if (!parsed.ok) {
    // Line numbers of the user's file: the envelope lines added above are
    // not in it.
    const size_t added = o.to.size() + (o.from_given ? 1 : 0);
    if (parsed.error.line > added) parsed.error.line -= added;
    std::fprintf(stderr, "sluice: inject: message not accepted: %s\n",
                 parsed.error.ToString().c_str());
    return 1;
  }
  auto name = pickup::Inject(c.pickup_dir, bytes);
  if (!name.ok()) {
    std::fprintf(stderr, "sluice: inject: %s\n", std::string(name.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n", name->c_str());
  return 0;
}

}  // namespace sluice::cli
