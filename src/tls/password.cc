#include "sluice/tls/password.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/pwdbased.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sluice/base/base64.h"
#include "sluice/base/strings.h"

namespace sluice::tls {
namespace {

constexpr std::string_view kScheme = "$pbkdf2-sha256$";
constexpr size_t kFileMax = 16 << 20;  // a password file larger than this is not one

absl::Status Errno(std::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(base::Av(what), ": ", std::strerror(errno)));
}

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = getrandom(out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Errno("getrandom");
    got += static_cast<size_t>(r);
  }
  return out;
}

std::string Derive(std::string_view password, std::string_view salt, uint32_t iterations) {
  std::string key(kKeyBytes, '\0');
  const int r =
      wc_PBKDF2(reinterpret_cast<byte*>(key.data()), reinterpret_cast<const byte*>(password.data()),
                static_cast<int>(password.size()), reinterpret_cast<const byte*>(salt.data()),
                static_cast<int>(salt.size()), static_cast<int>(iterations),
                static_cast<int>(kKeyBytes), WC_SHA256);
  if (r != 0) key.clear();  // never equal to a stored key
  return key;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("open ", path));
  std::string text;
  char buf[16384];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno(absl::StrCat("read ", path));
      close(fd);
      return s;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kFileMax) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": larger than ", kFileMax, " bytes"));
    }
  }
  close(fd);
  return text;
}

}  // namespace

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = static_cast<unsigned char>(
        diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
}

absl::StatusOr<std::string> HashPassword(std::string_view password, uint32_t iterations) {
  if (iterations < kMinIterations || iterations > kMaxIterations) {
    return absl::InvalidArgumentError(
        absl::StrCat("iterations must be between ", kMinIterations, " and ", kMaxIterations));
  }
  auto salt = RandomBytes(kSaltBytes);
  if (!salt.ok()) return salt.status();
  const std::string key = Derive(password, *salt, iterations);
  if (key.empty()) return absl::InternalError("wc_PBKDF2 failed");
  return absl::StrCat(base::Av(kScheme), iterations, "$", base::Base64Encode(*salt), "$",
                      base::Base64Encode(key));
}

absl::StatusOr<PasswordHash> ParseHash(std::string_view text) {
  if (text.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError("not a $pbkdf2-sha256$ hash");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(base::Av(text.substr(kScheme.size())), '$');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError("expected $pbkdf2-sha256$ITERATIONS$SALT$HASH");
  }
  PasswordHash h;
  uint64_t iterations = 0;
  if (!base::ParseUint64(base::Sv(parts[0]), iterations) || iterations < kMinIterations ||
      iterations > kMaxIterations) {
    return absl::InvalidArgumentError(absl::StrCat("iterations must be a number between ",
                                                   kMinIterations, " and ", kMaxIterations));
  }
  h.iterations = static_cast<uint32_t>(iterations);
  auto salt = base::Base64Decode(base::Sv(parts[1]));
  if (!salt || salt->size() < 8 || salt->size() > 64) {
    return absl::InvalidArgumentError("the salt must be base64 of 8 to 64 bytes");
  }
  auto key = base::Base64Decode(base::Sv(parts[2]));
  if (!key || key->size() != kKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the hash must be base64 of ", kKeyBytes, " bytes"));
  }
  h.salt = std::move(*salt);
  h.key = std::move(*key);
  return h;
}

bool CheckPassword(const PasswordHash& hash, std::string_view password) {
  return ConstantTimeEqual(Derive(password, hash.salt, hash.iterations), hash.key);
}

absl::Status CheckUserName(std::string_view user) {
  if (user.empty()) return absl::InvalidArgumentError("the user name is empty");
  if (user.size() > 255) return absl::InvalidArgumentError("the user name is over 255 bytes");
  for (char c : user) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ':' || u <= 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          "the user name may not contain ':', spaces or control characters");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PasswordFile> PasswordFile::Parse(std::string_view text, std::string_view source) {
  PasswordFile f;
  size_t line_no = 0;
  for (absl::string_view raw : absl::StrSplit(base::Av(text), '\n')) {
    ++line_no;
    std::string_view line = base::Sv(raw);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const size_t colon = line.find(':');
    auto where = [&] { return absl::StrCat(base::Av(source), ":", line_no, ": "); };
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "expected user:hash"));
    }
    const std::string_view user = line.substr(0, colon);
    if (absl::Status s = CheckUserName(user); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where(), s.message()));
    }
    auto hash = ParseHash(line.substr(colon + 1));
    if (!hash.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "user ", base::Av(user), ": ", hash.status().message()));
    }
    if (!f.users_.emplace(std::string(user), *std::move(hash)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "user ", base::Av(user), " is listed twice"));
    }
  }
  return f;
}

absl::StatusOr<PasswordFile> PasswordFile::Load(const std::string& path) {
  auto text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

const PasswordHash* PasswordFile::Find(std::string_view user) const {
  auto it = users_.find(base::Av(user));
  return it == users_.end() ? nullptr : &it->second;
}

absl::Status SetPassword(const std::string& path, std::string_view user, std::string_view password,
                         uint32_t iterations) {
  if (absl::Status s = CheckUserName(user); !s.ok()) return s;
  if (password.empty()) return absl::InvalidArgumentError("the password is empty");
  if (password.size() > 255) return absl::InvalidArgumentError("the password is over 255 bytes");
  std::string old;
  if (auto text = ReadSmallFile(path); text.ok()) {
    old = *std::move(text);
    // Refuse to rewrite a file we cannot parse: its other entries would be
    // silently carried over broken, or lost.
    if (auto parsed = PasswordFile::Parse(old, path); !parsed.ok()) return parsed.status();
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  auto hash = HashPassword(password, iterations);
  if (!hash.ok()) return hash.status();
  const std::string entry = absl::StrCat(base::Av(user), ":", *hash);
  std::string out;
  bool replaced = false;
  for (absl::string_view raw : absl::StrSplit(base::Av(old), '\n')) {
    std::string_view line = base::Sv(raw);
    if (line.empty()) continue;
    const std::string_view name = line.substr(0, line.find(':'));
    if (line.front() != '#' && name == user) {
      if (!replaced) absl::StrAppend(&out, entry, "\n");
      replaced = true;
      continue;
    }
    absl::StrAppend(&out, base::Av(line), "\n");
  }
  if (!replaced) absl::StrAppend(&out, entry, "\n");

  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno(absl::StrCat("create ", tmp));
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = write(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno(absl::StrCat("write ", tmp));
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    absl::Status s = Errno(absl::StrCat("fsync ", tmp));
    close(fd);
    unlink(tmp.c_str());
    return s;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = Errno(absl::StrCat("rename ", tmp, " to ", path));
    unlink(tmp.c_str());
    return s;
  }
  return absl::OkStatus();
}

Verifier::Verifier(PasswordFile file) : file_(std::move(file)) {
  dummy_.iterations = kDefaultIterations;
  dummy_.salt = std::string(kSaltBytes, 's');
  dummy_.key = std::string(kKeyBytes, 'k');
  auto secret = RandomBytes(32);
  // getrandom does not fail on Linux >= 3.17 once the pool is seeded; if it
  // did, the cache stays off (an empty secret disables it below).
  if (secret.ok()) secret_ = *std::move(secret);
}

std::string Verifier::CacheKey(std::string_view user, std::string_view password) const {
  Hmac hmac;
  std::string digest(WC_SHA256_DIGEST_SIZE, '\0');
  if (wc_HmacInit(&hmac, nullptr, INVALID_DEVID) != 0) return {};
  bool ok = wc_HmacSetKey(&hmac, WC_SHA256, reinterpret_cast<const byte*>(secret_.data()),
                          static_cast<word32>(secret_.size())) == 0;
  // user NUL password: unambiguous, user names cannot hold NUL.
  ok = ok && wc_HmacUpdate(&hmac, reinterpret_cast<const byte*>(user.data()),
                           static_cast<word32>(user.size())) == 0;
  ok = ok && wc_HmacUpdate(&hmac, reinterpret_cast<const byte*>(""), 1) == 0;
  ok = ok && wc_HmacUpdate(&hmac, reinterpret_cast<const byte*>(password.data()),
                           static_cast<word32>(password.size())) == 0;
  ok = ok && wc_HmacFinal(&hmac, reinterpret_cast<byte*>(digest.data())) == 0;
  wc_HmacFree(&hmac);
  return ok ? digest : std::string();
}

bool Verifier::CheckCached(std::string_view user, std::string_view password) const {
  if (secret_.empty() || file_.Find(user) == nullptr) return false;
  const std::string key = CacheKey(user, password);
  if (key.empty()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(base::Av(user));
  return it != cache_.end() && ConstantTimeEqual(it->second, key);
}

bool Verifier::Check(std::string_view user, std::string_view password) {
  if (CheckCached(user, password)) return true;
  const PasswordHash* hash = file_.Find(user);
  const std::string key = secret_.empty() ? std::string() : CacheKey(user, password);
  const bool ok = CheckPassword(hash != nullptr ? *hash : dummy_, password) && hash != nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  ++slow_checks_;
  // One entry per user in the file at most: the cache is bounded by it.
  if (ok && !key.empty()) cache_[std::string(user)] = key;
  return ok;
}

uint64_t Verifier::slow_checks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slow_checks_;
}

void AuthLimiter::Expire(uint64_t now_ms) {
  absl::erase_if(entries_, [&](const auto& kv) {
    const Entry& e = kv.second;
    return e.locked_until_ms <= now_ms && now_ms - e.first_ms >= lock_ms_;
  });
}

bool AuthLimiter::Locked(std::string_view ip, uint64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(base::Av(ip));
  if (it != entries_.end()) return it->second.locked_until_ms > now_ms;
  if (entries_.size() < kMaxTracked) return false;
  Expire(now_ms);
  return entries_.size() >= kMaxTracked;
}

bool AuthLimiter::Failed(std::string_view ip, uint64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= kMaxTracked && !entries_.contains(base::Av(ip))) {
    Expire(now_ms);
    if (entries_.size() >= kMaxTracked) return true;
  }
  Entry& e = entries_[std::string(ip)];
  if (e.failures == 0 || now_ms - e.first_ms >= lock_ms_) {
    // A new window: failures older than lock_s no longer count.
    e.failures = 0;
    e.first_ms = now_ms;
  }
  ++e.failures;
  if (e.failures >= max_failures_) {
    e.locked_until_ms = now_ms + lock_ms_;
    e.failures = 0;
    e.first_ms = now_ms;
    return true;
  }
  return false;
}

void AuthLimiter::Succeeded(std::string_view ip) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(base::Av(ip));
  if (it != entries_.end()) entries_.erase(it);
}

}  // namespace sluice::tls
