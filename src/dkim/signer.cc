// Key table, key store and the per-shard signer (see signer.h).
#include "sluice/dkim/signer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "signature.h"
#include "sluice/base/base64.h"
#include "sluice/base/strings.h"
#include "sluice/dkim/header_fields.h"

namespace sluice::dkim {
namespace {

using base::Av;

// Body bytes canonicalized per hash update: big enough that the hash runs
// on long stretches, small enough to stay in L1/L2.
constexpr size_t kBodyPiece = 16 * 1024;

// "relaxed/simple" -> (relaxed, simple); one word is header/simple.
std::pair<Canon, Canon> ParseCanon(std::string_view text) {
  const size_t slash = text.find('/');
  auto one = [](std::string_view w) { return w == "simple" ? Canon::kSimple : Canon::kRelaxed; };
  if (slash == std::string_view::npos) return {one(text), Canon::kSimple};
  return {one(text.substr(0, slash)), one(text.substr(slash + 1))};
}

std::string BodyHash(Canon canon, std::string_view body, Sha256& sha, std::string& scratch) {
  BodyCanonicalizer c(canon);
  sha.Reset();
  while (!body.empty()) {
    const std::string_view piece = body.substr(0, kBodyPiece);
    body.remove_prefix(piece.size());
    scratch.clear();
    c.Feed(piece, scratch);
    sha.Update(scratch);
  }
  scratch.clear();
  c.Finish(scratch);
  sha.Update(scratch);
  const Digest d = sha.Final();
  return base::Base64Encode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

// One signature over `fields` (the message's header fields, with the
// signatures made before this one on top).
absl::StatusOr<std::string> SignOne(const SignerTable::Match& m,
                                    const std::vector<HeaderField>& fields,
                                    std::string_view body_hash, uint64_t now_s, Sha256& sha,
                                    std::string& scratch) {
  const SignerEntry& e = *m.entry;
  const std::vector<std::string> h = SelectHeaders(fields, e.headers, e.oversign);
  SignatureTags tags;
  tags.algorithm = AlgorithmName(e.key->algorithm());
  tags.header_canon = e.header_canon;
  tags.body_canon = e.body_canon;
  tags.domain = m.domain;
  tags.selector = e.selector;
  tags.timestamp = now_s;
  tags.expiration = e.expire_s != 0 ? now_s + e.expire_s : 0;
  tags.headers = &h;
  tags.body_hash = body_hash;
  const std::string unsigned_field = UnsignedField(tags);
  scratch.clear();
  for (const HeaderField* f : CoveredFields(fields, h)) {
    if (f != nullptr) CanonicalizeHeader(e.header_canon, f->raw, scratch);
  }
  CanonicalizeHeader(e.header_canon, unsigned_field, scratch);
  scratch.resize(scratch.size() - 2);  // the signature field is hashed without its CRLF
  sha.Reset();
  sha.Update(scratch);
  auto signature = e.key->Sign(sha.Final());
  if (!signature.ok()) return signature.status();
  return CompleteField(unsigned_field, base::Base64Encode(*signature));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const SignerTable>> SignerTable::Load(const config::Config& config) {
  auto table = std::make_shared<SignerTable>();
  absl::flat_hash_map<std::string, std::shared_ptr<const PrivateKey>> keys;  // by file
  for (const config::DkimSigner& s : config.dkim_signers) {
    SignerEntry e;
    e.pattern = s.pattern;
    e.selector = s.selector;
    e.signing_domain = s.signing_domain;
    std::tie(e.header_canon, e.body_canon) = ParseCanon(s.canonicalization);
    e.headers = s.headers;
    e.oversign = s.oversign;
    e.expire_s = s.expire_s;
    auto& key = keys[s.key_file];
    if (key == nullptr) {
      auto loaded = PrivateKey::Load(s.key_file);
      if (!loaded.ok()) {
        return absl::Status(loaded.status().code(),
                            absl::StrCat("dkim.signer (domain '", s.pattern, "', selector '",
                                         s.selector, "'): ", loaded.status().message()));
      }
      key = *std::move(loaded);
    }
    e.key = key;
    const size_t index = table->entries_.size();
    std::string_view p = s.pattern;
    if (p.substr(0, 2) == "*.") {
      table->below_[std::string(p.substr(2))].push_back(index);
    } else {
      table->exact_[std::string(p)].push_back(index);
    }
    table->entries_.push_back(std::move(e));
  }
  table->default_domain_ = config.dkim_default_domain;
  table->key_count_ = keys.size();
  return std::shared_ptr<const SignerTable>(std::move(table));
}

std::vector<SignerTable::Match> SignerTable::Matches(const std::vector<size_t>& indexes,
                                                     std::string_view domain) const {
  std::vector<Match> out;
  for (size_t i : indexes) {
    const SignerEntry& e = entries_[i];
    out.push_back(Match{&e, e.signing_domain.empty() ? std::string(domain) : e.signing_domain});
  }
  return out;
}

std::vector<SignerTable::Match> SignerTable::Find(std::string_view from_domain) const {
  auto lookup = [this](std::string_view domain) -> const std::vector<size_t>* {
    if (domain.empty()) return nullptr;
    if (auto it = exact_.find(Av(domain)); it != exact_.end()) return &it->second;
    // "*.example.com" covers the names below example.com: walk the parents.
    for (size_t dot = domain.find('.'); dot != std::string_view::npos;
         dot = domain.find('.', dot + 1)) {
      if (auto it = below_.find(Av(domain.substr(dot + 1))); it != below_.end()) return &it->second;
    }
    return nullptr;
  };
  if (const auto* found = lookup(from_domain)) return Matches(*found, from_domain);
  if (const auto* found = lookup(default_domain_)) return Matches(*found, default_domain_);
  return {};
}

absl::StatusOr<std::unique_ptr<KeyStore>> KeyStore::Create(const config::Config& config) {
  std::unique_ptr<KeyStore> store(new KeyStore(config));
  if (absl::Status s = store->Reload(); !s.ok()) return s;
  return store;
}

absl::Status KeyStore::Reload() {
  auto table = SignerTable::Load(config_);
  if (!table.ok()) return table.status();
  std::lock_guard<std::mutex> lock(mu_);
  table_ = *std::move(table);
  return absl::OkStatus();
}

std::shared_ptr<const SignerTable> KeyStore::table() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_;
}

absl::StatusOr<Signed> SignWith(const std::vector<SignerTable::Match>& matches,
                                std::string_view head, std::string_view body, uint64_t now_s,
                                Sha256& sha, std::string& scratch) {
  Signed out;
  out.time_s = now_s;
  if (matches.empty()) return out;
  const size_t body_start = HeaderBlockSize(body);
  const std::string block = absl::StrCat(Av(head), Av(body.substr(0, body_start)));
  const std::string_view payload = body.substr(body_start);
  // One body hash per body canonicalization in use.
  std::string hashes[2];
  for (const SignerTable::Match& m : matches) {
    std::string& bh = hashes[static_cast<int>(m.entry->body_canon)];
    if (bh.empty()) bh = BodyHash(m.entry->body_canon, payload, sha, scratch);
  }
  for (const SignerTable::Match& m : matches) {
    // The message this signature sees: the signatures made so far on top.
    const std::string message = absl::StrCat(out.fields, block);
    auto field = SignOne(m, ParseHeaderFields(message),
                         hashes[static_cast<int>(m.entry->body_canon)], now_s, sha, scratch);
    if (!field.ok()) return field.status();
    out.fields = absl::StrCat(*field, out.fields);
    if (const uint64_t x = m.entry->expire_s;
        x != 0 && (out.expires_s == 0 || now_s + x < out.expires_s)) {
      out.expires_s = now_s + x;
    }
    absl::StrAppend(&out.json, out.json.empty() ? "[" : ",", "{\"d\":\"", m.domain, "\",\"s\":\"",
                    m.entry->selector, "\"}");
  }
  out.json += "]";
  return out;
}

absl::StatusOr<Signed> Signer::Sign(std::string_view head, std::string_view body, uint64_t now_s) {
  const std::shared_ptr<const SignerTable> table = store_.table();
  if (table == nullptr || table->empty()) return Signed{};
  // Only the header block is needed to find the author.
  const size_t body_start = HeaderBlockSize(body);
  const std::string block = absl::StrCat(Av(head), Av(body.substr(0, body_start)));
  const std::optional<std::string> author = AuthorDomain(ParseHeaderFields(block));
  const std::vector<SignerTable::Match> matches = table->Find(author ? *author : "");
  auto result = SignWith(matches, head, body, now_s, sha_, scratch_);
  if (result.ok() && !result->fields.empty()) ++signed_;
  return result;
}

}  // namespace sluice::dkim
