// [dkim]: default_domain and the [[dkim.signer]] list (which replaces the
// one before). Only names and shapes are checked here; dkim::KeyStore loads
// the key files.

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "checks.h"
#include "tables.h"

namespace sluice::config {
namespace {

constexpr absl::string_view kDkimKeys[] = {"default_domain", "signer"};
constexpr absl::string_view kDkimSignerKeys[] = {
    "domain",           "selector", "key_file", "signing_domain",
    "canonicalization", "headers",  "oversign", "expire"};
// 10,000 signing domains are normal; a million entries would be a
// configuration file of 100 MB, which is a mistake.
constexpr size_t kMaxDkimSigners = 1'000'000;
constexpr size_t kMaxDkimHeaders = 100;  // names in one h= list

absl::Status ReadExpire(Walk& walk, const Entry& e, DkimSigner& signer) {
  auto micros = walk.ReadDuration(e.dotted, e.node);
  if (!micros.ok()) return micros.status();
  if (*micros < kSecond || *micros > 365 * kDay) {
    return walk.Error(e.node, e.dotted, "must be between 1s and 365d");
  }
  signer.expire_s = *micros / kSecond;
  return absl::OkStatus();
}

// Which of the keys a signer must have were there.
struct Present {
  bool domain = false;
  bool selector = false;
  bool key_file = false;  // and not empty
};

// The keys of one [[dkim.signer]].
absl::Status ReadSignerKeys(Walk& walk, const toml::table& t, DkimSigner& signer, Present& has) {
  return walk.ForEach(t, "dkim.signer", [&](const Entry& e) {
    absl::Status status;
    if (e.name == "domain") {
      status = walk.ReadString(e.dotted, e.node, CheckDkimPattern, &signer.pattern);
      signer.pattern = NormalizeName(signer.pattern);
      has.domain = true;
    } else if (e.name == "selector") {
      status = walk.ReadString(e.dotted, e.node, CheckSelector, &signer.selector);
      signer.selector = absl::AsciiStrToLower(signer.selector);
      has.selector = true;
    } else if (e.name == "key_file") {
      status = walk.ReadString(e.dotted, e.node, CheckOptionalPath, &signer.key_file);
      has.key_file = status.ok() && !signer.key_file.empty();
    } else if (e.name == "signing_domain") {
      status = walk.ReadString(e.dotted, e.node, CheckOptionalName, &signer.signing_domain);
      signer.signing_domain = NormalizeName(signer.signing_domain);
    } else if (e.name == "canonicalization") {
      status = walk.ReadString(e.dotted, e.node, CheckCanonicalization, &signer.canonicalization);
    } else if (e.name == "headers" || e.name == "oversign") {
      auto list =
          walk.ReadStrings(e.dotted, e.node, "header names", kMaxDkimHeaders, CheckHeaderName);
      if (!list.ok()) return list.status();
      (e.name == "headers" ? signer.headers : signer.oversign) = *std::move(list);
    } else if (e.name == "expire") {
      status = ReadExpire(walk, e, signer);
    } else {
      status = walk.Unknown("[dkim.signer]", e, kDkimSignerKeys);
    }
    return status;
  });
}

absl::Status ReadDkimSigner(Walk& walk, const toml::table& t, DkimSigner& signer) {
  Present has;
  if (absl::Status s = ReadSignerKeys(walk, t, signer, has); !s.ok()) return s;
  auto missing = [&](absl::string_view what) {
    return walk.Error(t, "dkim.signer", absl::StrCat("missing key '", what, "'"));
  };
  if (!has.domain) return missing("domain");
  if (!has.selector) return missing("selector");
  if (!has.key_file) return missing("key_file");
  const bool from =
      std::any_of(signer.headers.begin(), signer.headers.end(),
                  [](const std::string& h) { return absl::EqualsIgnoreCase(h, "from"); });
  if (!from) {
    return walk.Error(t, "dkim.signer.headers",
                      "must include \"From\" (RFC 6376 5.4: the From: field is always signed)");
  }
  return absl::OkStatus();
}

absl::Status ReadSigners(Walk& walk, const Entry& e) {
  const toml::array* array = e.node.as_array();
  if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
    return walk.Error(e.node, e.dotted,
                      absl::StrCat("expected an array of tables, written [[dkim.signer]], got ",
                                   TypeName(e.node)));
  }
  if (array->size() > kMaxDkimSigners) {
    return walk.Error(e.node, e.dotted, absl::StrCat("at most ", kMaxDkimSigners, " signers"));
  }
  std::vector<DkimSigner> signers;
  for (const toml::node& element : *array) {
    DkimSigner signer;
    if (absl::Status s = ReadDkimSigner(walk, *element.as_table(), signer); !s.ok()) return s;
    signers.push_back(std::move(signer));
  }
  walk.config().dkim_signers = std::move(signers);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadDkimTable(Walk& walk, absl::string_view name, const toml::table& t) {
  Config& c = walk.config();
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (e.name == "default_domain") {
      absl::Status s = walk.ReadString(e.dotted, e.node, CheckOptionalName, &c.dkim_default_domain);
      c.dkim_default_domain = NormalizeName(c.dkim_default_domain);
      return s;
    }
    if (e.name == "signer") return ReadSigners(walk, e);
    return walk.Unknown(name, e, kDkimKeys);
  });
}

}  // namespace sluice::config
