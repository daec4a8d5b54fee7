// Always-on invariant checks. A failed check is a bug in Sluice, never
// something a peer or a file can cause: those are handled with absl::Status
// and SMTP replies. Checks stay on in release builds.
#pragma once

namespace sluice::base {
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr);
}  // namespace sluice::base

#define SLUICE_CHECK(expr)                                    \
  do {                                                        \
    if (__builtin_expect(!(expr), 0)) {                       \
      ::sluice::base::CheckFailed(__FILE__, __LINE__, #expr); \
    }                                                         \
  } while (0)
