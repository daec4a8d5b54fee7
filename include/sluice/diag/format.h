// One diagnostic event as one line of text: levels, fields and the
// formatter. Pure: no clock, no threads, no I/O (the sink in diag.h passes
// the time in), so every byte of the output is unit-tested.
//
// The line is logfmt (`name=value` pairs separated by spaces):
//
//   [<N>|ts=2026-12-07T18:00:00.123456Z ]level=warning key=tls.handshake_failed shard=2
//       msg="TLS handshake failed" peer=192.0.2.7 reason="..." [suppressed=N]
//
// With stderr connected to journald the line starts with the sd-daemon(3)
// priority prefix (`<4>`), which journald strips into PRIORITY= (it adds
// its own timestamp); otherwise it starts with `ts=` in UTC. `msg` comes
// before the detail fields because journalctl cuts long lines at the
// terminal's width and the sentence is what a reader needs first.
//
// Trust: values are anything (a peer's user name, a file name): a value
// that is not plain printable ASCII is quoted, and quotes, backslashes,
// control bytes and bytes >= 0x80 are escaped (`\"`, `\\`, `\n`, `\r`,
// `\t`, `\xHH`), so one event is always exactly one line. Limit: a value is
// cut at kMaxValueBytes (the cut is marked), so a line stays bounded.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace sluice::diag {

// The sd-daemon(3) / syslog(3) priorities Sluice uses.
enum class Level : uint8_t {
  kError = 3,    // something failed and was not retried (an operator should look)
  kWarning = 4,  // something failed and will be retried, or a peer misbehaved
  kNotice = 5,   // normal but significant: started, ready, stopping, reloaded
  kInfo = 6,     // routine events worth a line
  kDebug = 7,    // detail for a developer
};

std::string_view LevelName(Level level);
// "error"/"err", "warning"/"warn", "notice", "info", "debug", or the digits
// 3..7; anything else is nullopt.
std::optional<Level> ParseLevel(std::string_view text);

// A value longer than this (raw bytes) is cut and marked `...(+N bytes)`:
// enough for a path, a reason or a TLS error, small enough that a hostile
// user name cannot make a line that fills the shard's buffer.
inline constexpr size_t kMaxValueBytes = 512;

// One `name=value` pair. Names are literals written in the code (a name
// byte outside [a-z0-9_.] is written as '_'); values are any bytes.
// Integers are rendered into the field itself, so a Field copies safely.
class Field {
 public:
  Field(std::string_view name, std::string_view value) : name_(name), text_(value) {}
  Field(std::string_view name, const char* value)
      : name_(name), text_(value == nullptr ? "" : value) {}
  Field(std::string_view name, const std::string& value) : name_(name), text_(value) {}
#ifndef ABSL_USES_STD_STRING_VIEW
  Field(std::string_view name, absl::string_view value)
      : name_(name), text_(value.data(), value.size()) {}
#endif
  template <typename Int>
  requires(std::integral<Int> && !std::same_as<Int, bool> && !std::same_as<Int, char>)
      Field(std::string_view name, Int value)
      : name_(name) {
    SetNumber(static_cast<int64_t>(value), std::is_signed_v<Int>, static_cast<uint64_t>(value));
  }
  Field(std::string_view name, bool value) : name_(name), text_(value ? "true" : "false") {}

  std::string_view name() const { return name_; }
  std::string_view value() const {
    return digits_size_ > 0 ? std::string_view(digits_, digits_size_) : text_;
  }

 private:
  void SetNumber(int64_t signed_value, bool is_signed, uint64_t unsigned_value);

  std::string_view name_;
  std::string_view text_;
  char digits_[24] = {};
  uint8_t digits_size_ = 0;
};

// Everything one line says. `shard` < 0: not written (the main thread).
struct Event {
  Level level = Level::kInfo;
  std::string_view key;
  int shard = -1;
  std::string_view msg;
  std::span<const Field> fields;
  uint64_t suppressed = 0;  // lines of this key the rate limit dropped before this one
};

enum class Prefix : uint8_t {
  kTimestamp,  // `ts=...Z ` (a terminal, a file, a pipe)
  kJournald,   // `<N>` (stderr is a journald stream)
};

// Appends the event's line, '\n' included, to `out`. `wall_micros` is
// used only with Prefix::kTimestamp.
void AppendLine(const Event& event, Prefix prefix, uint64_t wall_micros, std::string& out);

// Appends `value` as a logfmt value: bare when it is non-empty printable
// ASCII without `"`, `=`, `\`; quoted and escaped otherwise; cut at
// kMaxValueBytes.
void AppendValue(std::string_view value, std::string& out);

}  // namespace sluice::diag
