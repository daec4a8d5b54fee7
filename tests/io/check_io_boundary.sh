#!/bin/sh
# Fails when code outside src/io includes liburing or calls io_uring_*():
# every module goes through io::Loop (include/sluice/io/loop.h), so io/ is
# the only code that knows io_uring. Comment lines are not checked.
# Usage: check_io_boundary.sh SOURCE_ROOT
set -u
root=${1:?source root}
cd "$root" || exit 2
hits=$(grep -rnE --include='*.cc' --include='*.h' --include='*.cpp' --include='*.hpp' \
    -e '#[[:space:]]*include[[:space:]]*[<"]liburing' \
    -e '(^|[^A-Za-z0-9_])io_uring_[a-z_]+[[:space:]]*\(' \
    src include tests tools bench fuzz 2>/dev/null |
  grep -v '^src/io/' |
  grep -vE '^[^:]+:[0-9]+:[[:space:]]*//')
if [ -n "$hits" ]; then
  echo "io_uring used outside src/io (use io::Loop, include/sluice/io/loop.h):"
  echo "$hits"
  exit 1
fi
echo "ok: no liburing outside src/io"
