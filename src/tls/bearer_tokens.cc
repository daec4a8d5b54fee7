// Bearer tokens for the HTTP admin API; see sluice/tls/bearer_tokens.h.
#include "sluice/tls/bearer_tokens.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sluice/base/strings.h"
#include "sluice/tls/password.h"

namespace sluice::tls {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string Hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out += kHex[u >> 4];
    out += kHex[u & 15];
  }
  return out;
}

// 64 hex digits (either case) -> 32 raw bytes.
std::optional<std::string> Unhex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  std::string out(32, '\0');
  for (size_t i = 0; i < 64; ++i) {
    const char c = base::AsciiLower(hex[i]);
    const char* at = std::strchr(kHex, c);
    if (c == '\0' || at == nullptr) return std::nullopt;
    out[i / 2] = static_cast<char>((out[i / 2] << 4) | (at - kHex));
  }
  return out;
}

std::string Digest(std::string_view token) {
  std::string digest(32, '\0');
  wc_Sha256Hash(reinterpret_cast<const byte*>(token.data()), static_cast<word32>(token.size()),
                reinterpret_cast<byte*>(digest.data()));
  return digest;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("open ", path, ": ", std::strerror(errno)));
  }
  std::string text;
  char buf[16384];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || text.size() + static_cast<size_t>(n) > kTokensFileMax) {
      const std::string why =
          n < 0 ? std::strerror(errno) : absl::StrCat("larger than ", kTokensFileMax, " bytes");
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
    }
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

}  // namespace

absl::StatusOr<std::string> NewBearerToken() {
  std::string raw(kTokenBytes, '\0');
  size_t got = 0;
  while (got < raw.size()) {
    const ssize_t r = getrandom(raw.data() + got, raw.size() - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    got += static_cast<size_t>(r);
  }
  return Hex(raw);
}

std::string TokenDigestHex(std::string_view token) { return Hex(Digest(token)); }

absl::StatusOr<BearerTokens> BearerTokens::Parse(std::string_view text, std::string_view source) {
  BearerTokens out;
  size_t line_no = 0;
  for (absl::string_view raw : absl::StrSplit(base::Av(text), '\n')) {
    ++line_no;
    std::string_view line = base::Sv(raw);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    auto where = [&] { return absl::StrCat(base::Av(source), ":", line_no, ": "); };
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "expected name:sha256hex"));
    }
    const std::string_view name = line.substr(0, colon);
    if (name.empty() || name.size() > 64) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "a name of 1 to 64 bytes"));
    }
    if (absl::Status s = CheckUserName(name); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where(), s.message()));
    }
    auto digest = Unhex(line.substr(colon + 1));
    if (!digest) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "token ", base::Av(name),
          ": expected the 64 hex digits of the token's SHA-256 (sluice http-token prints them)"));
    }
    for (const auto& [seen, unused] : out.entries_) {
      if (seen == name) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(), "token ", base::Av(name), " is listed twice"));
      }
    }
    if (out.entries_.size() == kMaxTokens) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "more than ", kMaxTokens, " tokens"));
    }
    out.entries_.emplace_back(std::string(name), *std::move(digest));
  }
  return out;
}

absl::StatusOr<BearerTokens> BearerTokens::Load(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

std::optional<std::string> BearerTokens::Check(std::string_view token) const {
  const std::string digest = Digest(token);
  const std::pair<std::string, std::string>* found = nullptr;
  for (const auto& entry : entries_) {
    // Every entry is compared: no early exit.
    if (ConstantTimeEqual(entry.second, digest) && found == nullptr) found = &entry;
  }
  if (found == nullptr) return std::nullopt;
  return found->first;
}

absl::StatusOr<std::unique_ptr<BearerTokenStore>> BearerTokenStore::Create(std::string path) {
  std::unique_ptr<BearerTokenStore> store(new BearerTokenStore(std::move(path)));
  if (store->configured()) {
    if (absl::Status s = store->Reload(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("http.tokens_file: ", s.message()));
    }
  } else {
    store->tokens_ = std::make_shared<const BearerTokens>();
  }
  return store;
}

absl::Status BearerTokenStore::Reload() {
  if (!configured()) return absl::OkStatus();
  auto loaded = BearerTokens::Load(path_);
  if (!loaded.ok()) return loaded.status();
  auto fresh = std::make_shared<const BearerTokens>(*std::move(loaded));
  std::lock_guard<std::mutex> lock(mu_);
  tokens_ = std::move(fresh);
  return absl::OkStatus();
}

std::shared_ptr<const BearerTokens> BearerTokenStore::tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_;
}

}  // namespace sluice::tls
