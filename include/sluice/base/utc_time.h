// UTC timestamps as text, for accounting records and trace headers. Both
// are formatted once per second per thread: the date and time up to the
// second are cached (thread_local), so a record costs a few stores instead
// of gmtime_r and a printf (about 3,800 instructions each, measured).
//
// Trusts: nothing. Limits: a time gmtime_r cannot represent prints as the
// epoch. Month and day names are English whatever the locale.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::base {

// Appends 2026-12-08T01:02:03.456789Z (RFC 3339, microseconds, UTC).
void AppendIso8601Micros(std::string& out, uint64_t micros_since_epoch);

// "Tue, 08 Dec 2026 01:02:03 +0000" (RFC 5322 date-time, UTC).
std::string Rfc5322Date(uint64_t micros_since_epoch);

}  // namespace sluice::base
