// admin.state: see sluice/delivery/admin_state.h. Format, one entry a line:
//   sluice-admin-state 1
//   suspend DOMAIN SINCE_US UNTIL_US REASON...     (UNTIL_US 0: until resumed)
//   hold-id QUEUE_ID
//   hold-domain DOMAIN
//   crc32c XXXXXXXX                                (of every byte before it)
#include "sluice/delivery/admin_state.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"
#include "sluice/spool/durable_file.h"

namespace sluice::delivery {
namespace {

constexpr std::string_view kHeader = "sluice-admin-state 1\n";

std::string Hex(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

bool ValidDomain(std::string_view d) {
  if (d.empty() || d.size() > 255) return false;
  for (char c : d) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

std::string CleanReason(std::string_view reason) {
  std::string out(reason.substr(0, kMaxReasonSize));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < ' ' || c == 0x7f) c = ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string EncodeAdminState(const AdminState& state) {
  std::string out(kHeader);
  for (const Suspension& s : state.suspensions) {
    absl::StrAppend(&out, "suspend ", s.domain, " ", s.since_us, " ", s.until_us, " ",
                    CleanReason(s.reason), "\n");
  }
  for (base::QueueId id : state.held_ids) absl::StrAppend(&out, "hold-id ", id.ToString(), "\n");
  for (const std::string& d : state.held_domains) absl::StrAppend(&out, "hold-domain ", d, "\n");
  absl::StrAppend(&out, "crc32c ", Hex(base::Crc32c(0, out.data(), out.size())), "\n");
  return out;
}

absl::StatusOr<AdminState> ParseAdminState(std::string_view text, uint64_t now_us) {
  if (text.substr(0, kHeader.size()) != kHeader) {
    return absl::DataLossError("admin.state: not a sluice-admin-state 1 file");
  }
  const size_t seal = text.rfind("crc32c ");
  if (seal == std::string_view::npos || (seal > 0 && text[seal - 1] != '\n') ||
      text.substr(seal) != absl::StrCat("crc32c ", Hex(base::Crc32c(0, text.data(), seal)), "\n")) {
    return absl::DataLossError("admin.state: the crc32c seal does not match (torn or edited)");
  }
  AdminState state;
  size_t entries = 0;
  std::string_view rest = text.substr(kHeader.size(), seal - kHeader.size());
  while (!rest.empty()) {
    const std::string_view line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), line.size() + 1));
    if (line.empty()) continue;
    if (++entries > kMaxAdminEntries) return absl::DataLossError("admin.state: too many entries");
    // Up to five fields: the fifth (a suspension's reason) keeps its spaces.
    std::vector<std::string_view> f;
    std::string_view left = line;
    while (f.size() < 4 && left.find(' ') != std::string_view::npos) {
      f.push_back(left.substr(0, left.find(' ')));
      left.remove_prefix(f.back().size() + 1);
    }
    f.push_back(left);
    const auto bad = [&] {
      return absl::DataLossError(absl::StrCat("admin.state: bad line: ", base::Av(line)));
    };
    if (f[0] == "suspend" && f.size() >= 4) {
      Suspension s;
      s.domain = std::string(f[1]);
      if (!ValidDomain(s.domain) || !base::ParseUint64(f[2], s.since_us) ||
          !base::ParseUint64(f[3], s.until_us)) {
        return bad();
      }
      if (f.size() == 5) s.reason = CleanReason(f[4]);
      if (s.until_us != 0 && s.until_us <= now_us) continue;  // over
      state.suspensions.push_back(std::move(s));
    } else if (f[0] == "hold-id" && f.size() == 2) {
      auto id = base::QueueId::Parse(f[1]);
      if (!id) return bad();
      state.held_ids.push_back(*id);
    } else if (f[0] == "hold-domain" && f.size() == 2 && ValidDomain(f[1])) {
      state.held_domains.emplace_back(f[1]);
    } else {
      return bad();
    }
  }
  return state;
}

AdminStore::AdminStore(std::string spool_dir) : dir_(std::move(spool_dir)) {}

absl::Status AdminStore::Load(uint64_t now_us) {
  absl::StatusOr<std::optional<std::string>> bytes = spool::ReadReplacedFile(dir_, kAdminStateName);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) return absl::OkStatus();
  auto parsed = ParseAdminState(**bytes, now_us);
  if (!parsed.ok()) return absl::DataLossError(absl::StrCat(dir_, "/", parsed.status().message()));
  std::lock_guard<std::mutex> lock(mu_);
  state_ = *std::move(parsed);
  return absl::OkStatus();
}

AdminState AdminStore::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

absl::Status AdminStore::Update(absl::FunctionRef<void(AdminState&)> change, uint64_t now_us) {
  std::lock_guard<std::mutex> lock(mu_);
  change(state_);
  auto& s = state_.suspensions;
  s.erase(
      std::remove_if(s.begin(), s.end(),
                     [&](const Suspension& x) { return x.until_us != 0 && x.until_us <= now_us; }),
      s.end());
  // Written under the lock: two shards changing the state at once write in
  // turn, and the file always holds the newest whole state.
  return spool::ReplaceFileDurably(dir_, kAdminStateName, EncodeAdminState(state_));
}

}  // namespace sluice::delivery
