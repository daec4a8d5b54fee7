#include "tools/sink/script.h"

#include <fnmatch.h>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::tools {
namespace {

bool ParseAction(std::string_view v, SinkRule& r) {
  if (v == "accept")
    r.action = SinkAction::kAccept;
  else if (v == "tempfail")
    r.action = SinkAction::kTempfail;
  else if (v == "permfail")
    r.action = SinkAction::kPermfail;
  else if (v == "421-connect")
    r.action = SinkAction::kConnect421;
  else if (v == "drop-data")
    r.action = SinkAction::kDropData;
  else if (v.substr(0, 6) == "delay=") {
    uint64_t ms = 0;
    if (!base::ParseUint64(v.substr(6), ms) || ms > 3600000) return false;
    r.action = SinkAction::kDelay;
    r.delay_ms = static_cast<uint32_t>(ms);
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::string_view SinkActionName(SinkAction a) {
  switch (a) {
    case SinkAction::kAccept:
      return "accept";
    case SinkAction::kTempfail:
      return "tempfail";
    case SinkAction::kPermfail:
      return "permfail";
    case SinkAction::kConnect421:
      return "421-connect";
    case SinkAction::kDropData:
      return "drop-data";
    case SinkAction::kDelay:
      return "delay";
  }
  return "?";
}

absl::StatusOr<std::vector<SinkRule>> ParseSinkScript(std::string_view text) {
  std::vector<SinkRule> rules;
  int lineno = 0;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++lineno;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    SinkRule r;
    r.line = lineno;
    bool have_match = false, have_action = false;
    while (!line.empty()) {
      size_t sp = line.find_first_of(" \t");
      std::string_view tok = line.substr(0, sp);
      line.remove_prefix(sp == std::string_view::npos ? line.size() : sp);
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      const size_t eq = tok.find('=');
      auto bad = [&](std::string_view why) {
        return absl::InvalidArgumentError(
            absl::StrCat("script line ", lineno, ": ", base::Av(why), ": '", base::Av(tok), "'"));
      };
      if (eq == std::string_view::npos) return bad("expected key=value");
      const std::string_view key = tok.substr(0, eq), value = tok.substr(eq + 1);
      if (key == "match") {
        if (value.empty()) return bad("empty glob");
        r.glob = std::string(value);
        have_match = true;
      } else if (key == "action") {
        if (have_action || !ParseAction(value, r)) return bad("unknown or repeated action");
        have_action = true;
      } else if (key == "delay") {
        if (have_action || !ParseAction(tok, r)) return bad("bad delay");
        have_action = true;
      } else if (key == "percent") {
        uint64_t p = 0;
        if (!base::ParseUint64(value, p) || p > 100) return bad("percent must be 0..100");
        r.percent = static_cast<uint32_t>(p);
      } else {
        return bad("unknown key");
      }
    }
    if (!have_action) {
      return absl::InvalidArgumentError(absl::StrCat("script line ", lineno, ": no action"));
    }
    if (!have_match && r.action != SinkAction::kConnect421) {
      return absl::InvalidArgumentError(absl::StrCat("script line ", lineno, ": no match=<glob>"));
    }
    rules.push_back(std::move(r));
  }
  return rules;
}

SinkDecision DecideRecipient(const std::vector<SinkRule>& rules, std::string_view recipient,
                             absl::FunctionRef<uint32_t()> roll) {
  if (base::StartsWithIgnoreCase(recipient, "tempfail@")) return {SinkAction::kTempfail, 0};
  if (base::StartsWithIgnoreCase(recipient, "permfail@")) return {SinkAction::kPermfail, 0};
  const std::string rcpt(recipient);
  for (const SinkRule& r : rules) {
    if (r.action == SinkAction::kConnect421) continue;
    if (fnmatch(r.glob.c_str(), rcpt.c_str(), FNM_CASEFOLD) != 0) continue;
    if (r.percent < 100 && roll() >= r.percent) continue;
    return {r.action, r.delay_ms};
  }
  return {SinkAction::kAccept, 0};
}

bool RefuseAtConnect(const std::vector<SinkRule>& rules, absl::FunctionRef<uint32_t()> roll) {
  for (const SinkRule& r : rules) {
    if (r.action != SinkAction::kConnect421) continue;
    if (r.percent >= 100 || roll() < r.percent) return true;
  }
  return false;
}

}  // namespace sluice::tools
