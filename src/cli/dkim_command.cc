// `sluice dkim keygen --domain D --selector S [--algorithm rsa|ed25519]
// [--bits N] [--out DIR]`: a new DKIM key, like opendkim-genkey. Writes
// DIR/S.private (PEM, PKCS#8, mode 0600, never over an existing file) and
// DIR/S.txt, and prints the DNS record to publish:
//   S._domainkey.D. IN TXT "v=DKIM1; k=rsa; p=MIIBIjAN..." "...rest"
// (a TXT record's strings are at most 255 bytes each, RFC 1035 3.3.14; the
// verifier joins them). The configuration is not read: the key is for
// [[dkim.signer]] key_file.
#include "dkim_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/dkim/key.h"

namespace sluice::cli {
namespace {

using base::Av;

constexpr char kKeygenUsage[] =
    "usage: sluice dkim keygen --domain D --selector S [--algorithm rsa|ed25519] [--bits N] "
    "[--out DIR]\n"
    "  writes DIR/S.private (0600) and DIR/S.txt, prints the DNS TXT record to publish\n"
    "  defaults: --algorithm rsa, --bits 2048, --out .\n";

int Fail(std::string_view why) {
  std::fprintf(stderr, "sluice: dkim keygen: %.*s\n%s", static_cast<int>(why.size()), why.data(),
               kKeygenUsage);
  return 2;
}

bool IsName(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
      return false;
    }
  }
  return s.find("..") == std::string_view::npos;
}

// Creates `path` with `text`, mode `mode`; an existing file is an error.
bool WriteNew(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    std::fprintf(stderr, "sluice: dkim keygen: %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  const bool ok =
      write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok) std::fprintf(stderr, "sluice: dkim keygen: %s: write failed\n", path.c_str());
  return ok;
}

// The record's value in quoted strings of at most 255 bytes.
std::string QuotedStrings(std::string_view value) {
  constexpr size_t kTxtStringMax = 255;
  std::string out;
  while (!value.empty()) {
    const std::string_view part = value.substr(0, kTxtStringMax);
    value.remove_prefix(part.size());
    absl::StrAppend(&out, out.empty() ? "" : " ", "\"", Av(part), "\"");
  }
  return out;
}

int Keygen(int argc, char** argv) {
  std::string domain, selector, algorithm = "rsa", out = ".";
  int bits = 2048;
  for (int i = 0; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) return Fail(absl::StrCat("'", Av(flag), "' needs a value"));
    const std::string value = argv[++i];
    if (flag == "--domain") {
      domain = absl::AsciiStrToLower(value);
    } else if (flag == "--selector") {
      selector = absl::AsciiStrToLower(value);
    } else if (flag == "--algorithm") {
      algorithm = value;
    } else if (flag == "--bits") {
      uint64_t n = 0;
      if (!base::ParseUint64(value, n) || n > 1u << 20) return Fail("--bits needs a number");
      bits = static_cast<int>(n);
    } else if (flag == "--out") {
      out = value;
    } else {
      return Fail(absl::StrCat("unknown option '", Av(flag), "'"));
    }
  }
  if (!IsName(domain)) return Fail("--domain needs a domain name");
  if (!IsName(selector)) return Fail("--selector needs a selector (letters, digits, '-', '.')");
  if (algorithm != "rsa" && algorithm != "ed25519") return Fail("--algorithm is rsa or ed25519");
  const dkim::Algorithm a =
      algorithm == "rsa" ? dkim::Algorithm::kRsaSha256 : dkim::Algorithm::kEd25519Sha256;
  auto key = dkim::PrivateKey::Generate(a, bits);
  if (!key.ok()) return Fail(base::Sv(key.status().message()));
  auto pem = (*key)->ToPem();
  auto p = (*key)->PublicKeyBase64();
  if (!pem.ok() || !p.ok()) return Fail("OpenSSL could not encode the key");
  const std::string value = absl::StrCat("v=DKIM1; k=", algorithm, "; p=", *p);
  const std::string record =
      absl::StrCat(selector, "._domainkey.", domain, ". IN TXT ", QuotedStrings(value), "\n");
  const std::string base = absl::StrCat(out, "/", selector);
  if (!WriteNew(base + ".private", *pem, 0600) || !WriteNew(base + ".txt", record, 0644)) return 1;
  std::fputs(record.c_str(), stdout);
  std::fprintf(
      stderr,
      "sluice: dkim keygen: %s.private (%s%s), %s.txt; [[dkim.signer]] key_file = \"%s.private\"\n",
      base.c_str(), algorithm.c_str(),
      a == dkim::Algorithm::kRsaSha256 ? absl::StrCat(" ", bits, " bits").c_str() : "",
      base.c_str(), base.c_str());
  return 0;
}

}  // namespace

int DkimCommand(int argc, char** argv) {
  if (argc >= 1 && std::string_view(argv[0]) == "keygen") return Keygen(argc - 1, argv + 1);
  std::fprintf(stderr, "sluice: dkim: the only subcommand is keygen\n%s", kKeygenUsage);
  return 2;
}

}  // namespace sluice::cli
