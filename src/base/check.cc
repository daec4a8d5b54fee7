#include "sluice/base/check.h"

#include <cstdio>
#include <cstdlib>

namespace sluice::base {

void CheckFailed(const char* file, int line, const char* expr) {
  std::fprintf(stderr, "sluice: check failed at %s:%d: %s\n", file, line, expr);
  std::fflush(stderr);
  std::abort();
}

}  // namespace sluice::base
