// ParseCommand on the input as one line, then every argument parser on the
// argument. Each parse gets its own exact-size heap copy so ASan sees any
// read past the end.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "sluice/smtp/address.h"
#include "sluice/smtp/command.h"

using namespace sluice::smtp;

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

static bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool has_lf = size > 0 && data[size - 1] == '\n';
  const size_t n = has_lf ? size : size + 2;  // make it a line
  std::unique_ptr<char[]> buf(new char[n]);
  std::copy(data, data + size, buf.get());
  if (!has_lf) buf[size] = '\r', buf[size + 1] = '\n';
  const std::string_view line(buf.get(), n);
  const Command cmd = ParseCommand(line);
  FUZZ_CHECK(Inside(cmd.argument, line));

  std::unique_ptr<char[]> arg_buf(new char[cmd.argument.size()]);
  std::copy(cmd.argument.begin(), cmd.argument.end(), arg_buf.get());
  const std::string_view arg(arg_buf.get(), cmd.argument.size());
  MailParameters params;
  const ParamResult pr = ParseMailParameters(arg, params);
  FUZZ_CHECK(Inside(pr.name, arg));
  FUZZ_CHECK(Inside(ParseRcptParameters(arg).name, arg));
  for (PathKind kind : {PathKind::kReversePath, PathKind::kForwardPath}) {
    auto strict = ParsePath(arg, kind, /*utf8=*/false);
    auto wide = ParsePath(arg, kind, /*utf8=*/true);
    FUZZ_CHECK(!strict.ok() || wide.ok());  // SMTPUTF8 only widens the syntax
    if (!wide.ok()) continue;
    FUZZ_CHECK(Inside(wide->rest, arg));
    FUZZ_CHECK(wide->mailbox.local_part.size() <= 64 && wide->mailbox.domain.size() <= 255);
    (void)wide->mailbox.ToString();
    MailParameters rest_params;
    (void)ParseMailParameters(wide->rest, rest_params);
  }
  uint64_t bdat_size = 0;
  bool last = false, size_ok = false;
  const bool bdat_ok = ParseBdatArgument(arg, bdat_size, last, size_ok);
  FUZZ_CHECK(!bdat_ok || size_ok);
  return 0;
}
