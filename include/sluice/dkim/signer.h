// DKIM signing of outbound messages (RFC 6376, RFC 8463).
//
//   KeyStore     the [dkim] configuration with its keys loaded, shared by
//                every shard; Reload() (SIGHUP) re-reads the key files and
//                swaps the table whole, so a message is signed with one
//                consistent set. A key file named by several signers is
//                loaded once and its key shared.
//   SignerTable  From: domain -> signers: an exact domain is one hash
//                lookup; "*.example.com" patterns are found by walking the
//                domain's parent names (a.b.example.com, b.example.com,
//                example.com), one lookup each; then [dkim] default_domain.
//                10,000 domains cost 10,000 map entries, not a scan.
//   Signer       one per shard (not thread-safe: it owns its hash state):
//                Sign() takes the complete message as it will be sent and
//                returns the DKIM-Signature fields to put in front of it.
//
// What is signed: the header fields named by the signer's `headers` that
// are present (plus over-signed names once more), and the body hash over
// the whole body (never l=). Several signers of one domain each add a
// signature; a later signature covers the earlier ones only when its
// `headers` list DKIM-Signature. A message without exactly one parsable
// From: address is signed only by the default domain's signers, if any.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "sluice/config/config.h"
#include "sluice/dkim/canon.h"
#include "sluice/dkim/key.h"

namespace sluice::dkim {

// One [[dkim.signer]], checked, with its key.
struct SignerEntry {
  std::string pattern;
  std::string selector;
  std::string signing_domain;  // empty: the From: domain
  Canon header_canon = Canon::kRelaxed;
  Canon body_canon = Canon::kRelaxed;
  std::vector<std::string> headers;
  std::vector<std::string> oversign;
  uint64_t expire_s = 0;
  std::shared_ptr<const PrivateKey> key;
};

class SignerTable {
 public:
  // Loads every signer's key; the first bad one is the error, naming its file.
  static absl::StatusOr<std::shared_ptr<const SignerTable>> Load(const config::Config& config);

  // The signers for mail from `from_domain` (lower case) and the d= each
  // uses. `from_domain` empty: no parsable From:, only the default domain's.
  struct Match {
    const SignerEntry* entry;
    std::string domain;  // d=
  };
  std::vector<Match> Find(std::string_view from_domain) const;

  size_t signer_count() const { return entries_.size(); }
  size_t key_count() const { return key_count_; }
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Match> Matches(const std::vector<size_t>& indexes, std::string_view domain) const;

  std::vector<SignerEntry> entries_;
  absl::flat_hash_map<std::string, std::vector<size_t>> exact_;
  absl::flat_hash_map<std::string, std::vector<size_t>> below_;  // "*.example.com" -> example.com
  std::string default_domain_;
  size_t key_count_ = 0;
};

class KeyStore {
 public:
  static absl::StatusOr<std::unique_ptr<KeyStore>> Create(const config::Config& config);
  // Re-reads every key file; on any error keeps the table it had.
  absl::Status Reload();
  std::shared_ptr<const SignerTable> table() const;

 private:
  explicit KeyStore(const config::Config& config) : config_(config) {}
  const config::Config config_;  // a copy: the signers and the default domain
  mutable std::mutex mu_;
  std::shared_ptr<const SignerTable> table_;
};

// The signatures for one message.
struct Signed {
  std::string fields;  // DKIM-Signature fields, each ending in CRLF; "" when unsigned
  std::string json;    // [{"d":"example.com","s":"sel"},...] for the accounting log; ""
  uint64_t time_s = 0;
  uint64_t expires_s = 0;  // the earliest x= among them; 0: none expires
};

class Signer {
 public:
  explicit Signer(const KeyStore& store) : store_(store) {}

  // `head` and `body` together are the message as it will be sent (the
  // relay's added header fields, then the stored or rendered message).
  // Errors only when a key fails to sign (a broken OpenSSL state); a
  // message with no signer gives an empty result.
  absl::StatusOr<Signed> Sign(std::string_view head, std::string_view body, uint64_t now_s);

  uint64_t messages_signed() const { return signed_; }

 private:
  const KeyStore& store_;
  Sha256 sha_;
  std::string scratch_;
  uint64_t signed_ = 0;
};

// One message signed with `matches` (what Signer::Sign does after the
// lookup); exposed for tests and benchmarks.
absl::StatusOr<Signed> SignWith(const std::vector<SignerTable::Match>& matches,
                                std::string_view head, std::string_view body, uint64_t now_s,
                                Sha256& sha, std::string& scratch);

}  // namespace sluice::dkim
