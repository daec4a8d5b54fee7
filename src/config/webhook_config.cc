// [[webhook]] entries: read from TOML and checked (see webhook_config.h and
// docs/WEBHOOKS.md). Every bound below has its reason beside it.
#include "webhook_config.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "sluice/base/strings.h"
#include "sluice/http/url.h"
#include "tables.h"

namespace sluice::config {
namespace {

using base::Av;

struct Bound {
  std::string_view key;
  uint64_t min, max;
  std::string_view why;
};

// Each webhook is a thread and a connection; more than a few receivers of
// the same stream is a job for a fan-out service behind one of them.
constexpr size_t kMaxWebhooks = 16;
// A name becomes a file name and a metrics label.
constexpr size_t kMaxNameLength = 64;
// An Authorization value is a token or credentials, never kilobytes.
constexpr size_t kMaxAuthorizationLength = 4096;

// The record types of docs/PROTOCOL.md (webhook/batch.h lists the same).
constexpr std::string_view kTypes[] = {"Reception", "Rejection",  "Delivery", "TransientFailure",
                                       "Bounce",    "Expiration", "Deletion"};

constexpr Bound kBounds[] = {
    // A receiver handles a batch as one request: 100,000 records (~40 MB)
    // is past what one request should carry; 1 sends records one by one.
    {"batch_max_records", 1, 100'000, "records per POST"},
    // At least one typical record; at most what a receiver's request size
    // limit and Sluice's memory per webhook should bear.
    {"batch_max_bytes", 1024, 64ull << 20, "bytes per POST body"},
    // 0: a batch goes as soon as the log has nothing more to read; a minute
    // bounds how late a quiet stream's records arrive.
    {"batch_max_wait_ms", 0, 60'000, "milliseconds a partial batch waits"},
    // One POST, connect to response; a receiver slower than 10 minutes is down.
    {"timeout_s", 1, 600, "seconds per POST"},
    // 10 ms: no tighter loop against a failing receiver; an hour: the longest
    // first delay anyone wants.
    {"backoff_min_ms", 10, 3'600'000, "first retry delay"},
    // The cap: at most an hour between tries, so a receiver that comes back
    // is noticed within the hour.
    {"backoff_max_ms", 10, 3'600'000, "longest retry delay"},
};

uint64_t Get(const WebhookConfig& w, std::string_view key) {
  if (key == "batch_max_records") return w.batch_max_records;
  if (key == "batch_max_bytes") return w.batch_max_bytes;
  if (key == "batch_max_wait_ms") return w.batch_max_wait_ms;
  if (key == "timeout_s") return w.timeout_s;
  if (key == "backoff_min_ms") return w.backoff_min_ms;
  return w.backoff_max_ms;
}

void Set(WebhookConfig& w, std::string_view key, uint64_t v) {
  if (key == "batch_max_records") w.batch_max_records = static_cast<uint32_t>(v);
  if (key == "batch_max_bytes") w.batch_max_bytes = v;
  if (key == "batch_max_wait_ms") w.batch_max_wait_ms = static_cast<uint32_t>(v);
  if (key == "timeout_s") w.timeout_s = static_cast<uint32_t>(v);
  if (key == "backoff_min_ms") w.backoff_min_ms = static_cast<uint32_t>(v);
  if (key == "backoff_max_ms") w.backoff_max_ms = static_cast<uint32_t>(v);
}

std::string KnownKeys() {
  std::string out = "name, url, types, authorization, tls_ca_file";
  for (const Bound& b : kBounds) absl::StrAppend(&out, ", ", Av(b.key));
  return out;
}

absl::Status CheckName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("must be 1 to ", kMaxNameLength, " characters"));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return absl::InvalidArgumentError("letters, digits, '_' and '-' only");
  }
  return absl::OkStatus();
}

absl::Status CheckAuthorization(std::string_view value) {
  if (value.size() > kMaxAuthorizationLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("longer than ", kMaxAuthorizationLength, " characters"));
  }
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("has a control character (a header value is one line)");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTypes(const std::vector<std::string>& types) {
  for (size_t i = 0; i < types.size(); ++i) {
    if (std::find(std::begin(kTypes), std::end(kTypes), types[i]) == std::end(kTypes)) {
      std::vector<std::string> names(std::begin(kTypes), std::end(kTypes));
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown record type '", types[i], "' (the types are ", absl::StrJoin(names, ", "), ")"));
    }
    if (std::find(types.begin(), types.begin() + static_cast<long>(i), types[i]) !=
        types.begin() + static_cast<long>(i)) {
      return absl::InvalidArgumentError(absl::StrCat("'", types[i], "' is listed twice"));
    }
  }
  return absl::OkStatus();
}

// One entry's checks, the key named in the error ("url: ...").
absl::Status CheckOne(const WebhookConfig& w) {
  auto fail = [&](std::string_view key, absl::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook.", Av(key), " (webhook '", w.name, "'): ", problem));
  };
  if (absl::Status s = CheckName(w.name); !s.ok()) return fail("name", s.message());
  auto url = http::ParseUrl(w.url);
  if (!url.ok()) return fail("url", url.status().message());
  if (!w.tls_ca_file.empty() && !url->tls) {
    return fail("tls_ca_file", "is for https:// URLs (this one is http://)");
  }
  if (w.tls_ca_file.size() > 4096 || w.tls_ca_file.find('\0') != std::string::npos) {
    return fail("tls_ca_file", "not a path");
  }
  if (absl::Status s = CheckTypes(w.types); !s.ok()) return fail("types", s.message());
  if (absl::Status s = CheckAuthorization(w.authorization); !s.ok()) {
    return fail("authorization", s.message());
  }
  for (const Bound& b : kBounds) {
    const uint64_t v = Get(w, b.key);
    if (v < b.min || v > b.max) {
      return fail(
          b.key, absl::StrCat(Av(b.why), ": must be between ", b.min, " and ", b.max, ", got ", v));
    }
  }
  if (w.backoff_min_ms > w.backoff_max_ms) {
    return fail("backoff_max_ms", absl::StrCat("must be at least backoff_min_ms (",
                                               w.backoff_min_ms, "), got ", w.backoff_max_ms));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckWebhooks(const Config& config) {
  if (config.webhooks.empty()) return absl::OkStatus();
  if (config.webhooks.size() > kMaxWebhooks) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook: at most ", kMaxWebhooks, " webhooks, got ", config.webhooks.size()));
  }
  if (config.log_file.empty()) {
    return absl::InvalidArgumentError(
        "webhook: webhooks read the accounting log, and log.file is \"\" (no log)");
  }
  for (size_t i = 0; i < config.webhooks.size(); ++i) {
    if (absl::Status s = CheckOne(config.webhooks[i]); !s.ok()) return s;
    for (size_t j = 0; j < i; ++j) {
      if (config.webhooks[j].name == config.webhooks[i].name) {
        return absl::InvalidArgumentError(
            absl::StrCat("webhook.name: '", config.webhooks[i].name, "' is used twice"));
      }
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status At(std::string_view source, const toml::node& node, std::string_view key,
                absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(Av(source), ":", node.source().begin.line,
                                                 ": webhook.", Av(key), ": ", problem));
}

absl::Status ReadString(std::string_view source, std::string_view key, const toml::node& node,
                        std::string& out) {
  const auto* s = node.as_string();
  if (s == nullptr) return At(source, node, key, "expected a string");
  out = s->get();
  return absl::OkStatus();
}

absl::Status ReadEntry(std::string_view source, const toml::table& t, WebhookConfig& w) {
  bool has_name = false, has_url = false;
  for (auto&& [k, node] : t) {
    const std::string_view key = k.str();
    absl::Status s;
    if (key == "name") {
      s = ReadString(source, key, node, w.name);
      has_name = true;
    } else if (key == "url") {
      s = ReadString(source, key, node, w.url);
      has_url = true;
      if (s.ok()) {
        if (auto url = http::ParseUrl(w.url); !url.ok()) {
          s = At(source, node, key, url.status().message());
        }
      }
    } else if (key == "authorization") {
      s = ReadString(source, key, node, w.authorization);
    } else if (key == "tls_ca_file") {
      s = ReadString(source, key, node, w.tls_ca_file);
    } else if (key == "types") {
      const toml::array* a = node.as_array();
      if (a == nullptr) return At(source, node, key, "expected an array of strings");
      w.types.clear();
      for (const toml::node& e : *a) {
        const auto* str = e.as_string();
        if (str == nullptr) return At(source, e, key, "expected an array of strings");
        w.types.push_back(str->get());
      }
      if (absl::Status c = CheckTypes(w.types); !c.ok()) s = At(source, node, key, c.message());
    } else if (auto b = std::find_if(std::begin(kBounds), std::end(kBounds),
                                     [&](const Bound& x) { return x.key == key; });
               b != std::end(kBounds)) {
      const auto* i = node.as_integer();
      if (i == nullptr) return At(source, node, key, "expected an integer");
      if (i->get() < static_cast<int64_t>(b->min) || i->get() > static_cast<int64_t>(b->max)) {
        return At(source, node, key,
                  absl::StrCat(Av(b->why), ": must be between ", b->min, " and ", b->max, ", got ",
                               i->get()));
      }
      Set(w, key, static_cast<uint64_t>(i->get()));
    } else {
      return At(source, node, key, absl::StrCat("unknown key in [[webhook]] (", KnownKeys(), ")"));
    }
    if (!s.ok()) return s;
  }
  if (!has_name) return At(source, t, "name", "missing (each [[webhook]] needs a name)");
  if (!has_url) return At(source, t, "url", "missing (where to POST: http://HOST:PORT/PATH)");
  if (absl::Status s = CheckOne(w); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Av(source), ":", t.source().begin.line, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadWebhooks(std::string_view source, const toml::node& node,
                          std::vector<WebhookConfig>& out) {
  const toml::array* array = node.as_array();
  if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
    return absl::InvalidArgumentError(
        absl::StrCat(Av(source), ":", node.source().begin.line,
                     ": webhook: expected an array of tables, written [[webhook]]"));
  }
  std::vector<WebhookConfig> hooks;
  for (const toml::node& element : *array) {
    WebhookConfig w;
    if (absl::Status s = ReadEntry(source, *element.as_table(), w); !s.ok()) return s;
    for (const WebhookConfig& seen : hooks) {
      if (seen.name == w.name) {
        return At(source, element, "name", absl::StrCat("'", w.name, "' is used twice"));
      }
    }
    hooks.push_back(std::move(w));
  }
  out = std::move(hooks);
  return absl::OkStatus();
}

absl::Status ReadWebhookTables(Walk& walk, const toml::array& entries) {
  return ReadWebhooks(base::Sv(walk.source()), entries, walk.config().webhooks);
}

}  // namespace sluice::config
