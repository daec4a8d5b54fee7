// Messages for sluice-blast. A few bodies are generated (or loaded from
// --sample-dir) once, with their X-Blast-Digest; each message only adds its
// own Message-ID and X-Blast-Id header lines in front, so making a message
// costs no body generation and no hashing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/blast/client_session.h"

namespace sluice::tools {

struct FactoryOptions {
  size_t size = 2048;      // approximate total message size
  std::string sample_dir;  // .eml files instead of generated bodies
  size_t recipients = 1;
  size_t domains = 1;
  std::vector<double> domain_weights;  // optional, one per domain
  uint64_t seed = 1;
  size_t pool = 16;  // generated bodies
  std::string sender = "blast@blast.sluice.test";
};

// Dot-stuffs a CRLF text (RFC 5321 4.5.2).
std::string DotStuff(std::string_view text);
// Bare LF -> CRLF, and a final CRLF if missing.
std::string NormalizeCrlf(std::string_view text);

class MessageFactory {
 public:
  static absl::StatusOr<std::unique_ptr<MessageFactory>> Create(const FactoryOptions& o);
  // Deterministic for (seed, id).
  void Make(uint64_t id, OutMessage& out) const;

 private:
  explicit MessageFactory(const FactoryOptions& o) : o_(o) {}
  static std::shared_ptr<SharedBody> Seal(std::string rest);

  FactoryOptions o_;
  std::vector<std::shared_ptr<const SharedBody>> bodies_;
  std::vector<double> cumulative_;  // domain weights, normalised
};

}  // namespace sluice::tools
