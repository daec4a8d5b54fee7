// `sluice sendmail`: reads a message on standard input and drops it into the
// pickup directory (docs/PICKUP.md) with its envelope, like sendmail(8):
//
//   sendmail [-t] [-i | -oi] [-f SENDER | -r SENDER] [-F FULLNAME] [RECIPIENT...]
//
//   -t          recipients also from To:, Cc: and Bcc: (the pickup parser
//               takes them; Bcc: is removed), besides the arguments
//   -i, -oi     a line holding only "." does not end the message (without
//               it, as sendmail does, such a line ends the input)
//   -f, -r      the envelope sender (default: the user's login name at
//               server.hostname)
//   -F          the full name, for a From: header added when there is none
//   other -o*, -B, -N, -R, -V, -h, -v, -bm, -odb, -odi, -e*: accepted and ignored
//
// Exit codes are sendmail's (sysexits.h): 64 usage, 65 message not
// accepted, 67 bad recipient, 69 no pickup directory, 70 internal, 71
// reading stdin, 73 cannot create the file, 75 temporary, 78 configuration.
//
// Privilege: installed setgid to pickup.group (deploy/README.md), it may
// create files in the group's tmp/ and new/ (mode 1730) but list or read
// nothing there. It trusts its caller with nothing more: the envelope and
// message are checked by the same parser the daemon uses, the file name is
// its own, and files are mode 0444 so the daemon (another user) reads them.
#include "sendmail_command.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/config/config.h"
#include "sluice/pickup/config_limits.h"
#include "sluice/pickup/message_parser.h"
#include "sluice/pickup/pickup_directory.h"

namespace sluice::cli {
namespace {

// sysexits.h, by name (the header's macros are not used: it is BSD-only on
// some systems).
constexpr int kExUsage = 64, kExDataErr = 65, kExNoUser = 67, kExUnavailable = 69, kExOsErr = 71,
              kExCantCreate = 73, kExTempFail = 75, kExConfig = 78;

struct SendmailOptions {
  bool from_headers = false;  // -t
  bool ignore_dots = false;   // -i / -oi
  std::string sender;
  bool sender_given = false;
  std::string full_name;
  std::vector<std::string> recipients;
};

int Fail(int code, const std::string& what) {
  std::fprintf(stderr, "sendmail: %s\n", what.c_str());
  return code;
}

// Returns 0, or an exit code after printing why.
int ParseSendmailArgs(int argc, char** argv, SendmailOptions& o) {
  int i = 1;
  // The value of "-fX" or of "-f X".
  auto value = [&](std::string_view arg, std::string& out) -> bool {
    if (arg.size() > 2) {
      out = std::string(arg.substr(2));
      return true;
    }
    if (i + 1 >= argc) return false;
    out = argv[++i];
    return true;
  };
  for (; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') break;
    std::string ignored;
    if (arg == "-t") {
      o.from_headers = true;
    } else if (arg == "-i" || arg == "-oi") {
      o.ignore_dots = true;
    } else if (arg[1] == 'f' || arg[1] == 'r') {
      if (!value(arg, o.sender)) return Fail(kExUsage, "-f needs a sender address");
      o.sender_given = true;
    } else if (arg[1] == 'F') {
      if (!value(arg, o.full_name)) return Fail(kExUsage, "-F needs a name");
    } else if (arg[1] == 'B' || arg[1] == 'N' || arg[1] == 'R' || arg[1] == 'V' || arg[1] == 'h' ||
               arg[1] == 'C' || arg[1] == 'L') {
      if (!value(arg, ignored))
        return Fail(kExUsage, absl::StrCat(base::Av(arg), " needs a value"));
    } else if (arg[1] == 'o' || arg[1] == 'e' || arg == "-v" || arg == "-bm" || arg == "-U" ||
               arg == "-n" || arg == "-G" || arg == "-m") {
      // Delivery mode, error mode, verbosity: nothing to do here.
    } else if (arg[1] == 'b') {
      return Fail(kExUsage, absl::StrCat("mode ", base::Av(arg),
                                         " is not supported (only -bm: deliver a message)"));
    } else {
      return Fail(kExUsage, absl::StrCat("unknown option ", base::Av(arg)));
    }
  }
  for (; i < argc; ++i) {
    // "a@x, b@y" as one argument is two recipients, as for sendmail.
    std::string_view rest = argv[i];
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view one = rest.substr(0, comma);
      while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
      while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
      if (!one.empty()) o.recipients.emplace_back(one);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  if (o.recipients.empty() && !o.from_headers) {
    return Fail(kExUsage, "no recipients given (name them, or use -t)");
  }
  return 0;
}

// An address line value: "<a@b>" ("" is <>).
std::string Angle(std::string_view a) {
  if (!a.empty() && a.front() == '<') return std::string(a);
  return absl::StrCat("<", base::Av(a), ">");
}

// Reads stdin up to `max` bytes (more: returns false with `too_big`). Without
// -i a line of "." alone ends the message, as in sendmail.
bool ReadMessage(const SendmailOptions& o, size_t max, std::string& out, bool& too_big) {
  char line[64 * 1024];
  bool at_line_start = true;
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
    const std::string_view l = line;
    if (!o.ignore_dots && at_line_start && (l == ".\n" || l == ".\r\n" || l == ".")) break;
    at_line_start = !l.empty() && l.back() == '\n';
    out.append(l);
    if (out.size() > max) {
      too_big = true;
      return true;
    }
  }
  return !std::ferror(stdin);
}

bool HasHeaderField(std::string_view message, std::string_view name) {
  size_t at = 0;
  while (at < message.size()) {
    size_t end = message.find('\n', at);
    if (end == std::string_view::npos) end = message.size();
    std::string_view line = message.substr(at, end - at);
    if (line.empty() || line == "\r") return false;  // end of the header
    if (line.size() > name.size() && line[name.size()] == ':' &&
        strncasecmp(line.data(), name.data(), name.size()) == 0) {
      return true;
    }
    at = end + 1;
  }
  return false;
}

int ExitForWriteError(const absl::Status& s) {
  if (absl::IsNotFound(s)) return kExUnavailable;
  if (absl::IsPermissionDenied(s)) return kExCantCreate;
  if (absl::IsResourceExhausted(s) || absl::IsUnavailable(s)) return kExTempFail;
  return kExCantCreate;
}

}  // namespace

int SendmailMain(int argc, char** argv, const std::string& config_file) {
  SendmailOptions o;
  if (int rc = ParseSendmailArgs(argc, argv, o); rc != 0) return rc;
  config::Config c;
  if (!config_file.empty()) {
    if (absl::Status s = config::ApplyTomlFile(config_file, c); !s.ok()) {
      return Fail(kExConfig, std::string(s.message()));
    }
  }
  if (absl::Status s = c.Finalize(); !s.ok()) return Fail(kExConfig, std::string(s.message()));
  if (c.pickup_dir.empty()) {
    return Fail(kExUnavailable,
                absl::StrCat("no pickup directory: set pickup.dir in ",
                             config_file.empty() ? "/etc/sluice/sluice.toml" : config_file));
  }
  if (!o.sender_given) {
    const passwd* pw = getpwuid(getuid());
    o.sender = absl::StrCat(pw != nullptr ? pw->pw_name : "nobody", "@", c.hostname);
  }
  std::string envelope = absl::StrCat(base::Av(pickup::kEnvelopeFrom), ": ", Angle(o.sender), "\n");
  for (const std::string& r : o.recipients) {
    absl::StrAppend(&envelope, base::Av(pickup::kEnvelopeTo), ": ", Angle(r), "\n");
  }
  std::string message;
  bool too_big = false;
  if (!ReadMessage(o, c.max_message_size, message, too_big)) {
    return Fail(kExOsErr, "cannot read the message from standard input");
  }
  if (too_big) {
    return Fail(kExDataErr, absl::StrCat("message larger than ", c.max_message_size, " bytes"));
  }
  std::string added;
  if (!HasHeaderField(message, "From")) {
    added = o.full_name.empty() ? absl::StrCat("From: ", Angle(o.sender), "\n")
                                : absl::StrCat("From: ", o.full_name, " ", Angle(o.sender), "\n");
  }
  // -t: the pickup parser takes the header's recipients when the envelope
  // names none; with arguments too, both (Postfix's behaviour): the
  // header's are read first, then all go into the envelope.
  if (o.from_headers && !o.recipients.empty()) {
    const std::string probe =
        absl::StrCat(base::Av(pickup::kEnvelopeFrom), ": ", Angle(o.sender), "\n", added, message);
    pickup::Result header = pickup::ParseMessage(probe, pickup::MessageLimitsFor(c));
    if (header.ok) {
      for (const std::string& r : header.message.recipients) {
        absl::StrAppend(&envelope, base::Av(pickup::kEnvelopeTo), ": ", Angle(r), "\n");
      }
    }
  }
  const std::string bytes = absl::StrCat(envelope, added, message);
  pickup::Result parsed = pickup::ParseMessage(bytes, pickup::MessageLimitsFor(c));
  if (!parsed.ok) {
    const std::string why = parsed.error.reason;
    const bool address =
        why.find("address") != std::string::npos || why.find("recipient") != std::string::npos;
    return Fail(address ? kExNoUser : kExDataErr,
                absl::StrCat("message not accepted: ", parsed.error.ToString()));
  }
  auto name = pickup::Inject(c.pickup_dir, bytes);
  if (!name.ok())
    return Fail(ExitForWriteError(name.status()), std::string(name.status().message()));
  return 0;
}

}  // namespace sluice::cli
