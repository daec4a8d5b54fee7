// The sink's behaviour script: one rule per line,
//
//   match=<glob> action=<accept|tempfail|permfail|421-connect|drop-data|delay=MS> [percent=P]
//
// (`delay=MS` may also be written as its own key: `match=* delay=200`).
// Blank lines and lines starting with '#' are ignored. The glob (fnmatch(3),
// case-insensitive) is matched against each recipient address (no angle
// brackets) at RCPT time; the first rule whose glob matches and whose
// percent roll succeeds decides (percent defaults to 100). 421-connect rules
// are consulted at connect time instead, where there is no recipient: their
// glob is ignored (write `*`).
//
// Built-in conventions come first: a recipient whose address starts with
// "tempfail@" gets 451, "permfail@" gets 550; anything else no rule decides
// is accepted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace sluice::tools {

enum class SinkAction { kAccept, kTempfail, kPermfail, kConnect421, kDropData, kDelay };

struct SinkRule {
  std::string glob = "*";
  SinkAction action = SinkAction::kAccept;
  uint32_t delay_ms = 0;
  uint32_t percent = 100;
  int line = 0;
};

struct SinkDecision {
  SinkAction action = SinkAction::kAccept;
  uint32_t delay_ms = 0;
};

absl::StatusOr<std::vector<SinkRule>> ParseSinkScript(std::string_view text);

// `roll` returns a uniform number in [0, 100).
SinkDecision DecideRecipient(const std::vector<SinkRule>& rules, std::string_view recipient,
                             absl::FunctionRef<uint32_t()> roll);
bool RefuseAtConnect(const std::vector<SinkRule>& rules, absl::FunctionRef<uint32_t()> roll);

std::string_view SinkActionName(SinkAction a);

}  // namespace sluice::tools
