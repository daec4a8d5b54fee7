// malloc_trim over every arena; see sluice/server/memory_trim.h.
#include "sluice/server/memory_trim.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sluice::server {

bool TrimFreeMemory() {
#if defined(__GLIBC__)
  // pad 0: keep nothing spare at the top of the main heap. Since glibc 2.8
  // this also releases whole free pages inside every arena, not only at
  // the tops.
  return malloc_trim(0) != 0;
#else
  return false;
#endif
}

}  // namespace sluice::server
