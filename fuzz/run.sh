#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each one for a while.
#
#   fuzz/run.sh [BUILD_DIR [SECONDS]]     defaults: build-fuzz 60
#
# The two parsers every byte from a stranger goes through first, the command
# parser and the DATA decoder, always run for at least PARSER_SECONDS
# (default 60), even when SECONDS is shorter to keep CI inside its budget.
#
# BUILD_DIR is relative to the source root unless absolute; it is configured
# with clang, ASan and UBSan if it does not exist yet. Each target starts from
# a copy of fuzz/corpus/<target>/ in a temp dir (the checked-in seeds are
# never modified). Crash reproducers are kept in fuzz/crashes/<target>/.
# Exits non-zero if any target finds a crash, leak, timeout or failed check.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-fuzz}
seconds=${2:-60}
parser_seconds=${PARSER_SECONDS:-60}
[[ $build = /* ]] || build="$root/$build"
targets=(command_fuzzer dot_decoder_fuzzer server_session_fuzzer message_file_fuzzer pickup_fuzzer client_session_fuzzer sasl_fuzzer csv_fuzzer template_fuzzer json_string_fuzzer dkim_header_fuzzer http_request_fuzzer json_value_fuzzer http_response_fuzzer)

# Every target fuzz/meson.build defines runs: a new one missing here fails.
for t in $(grep -o "'[a-z_]*_fuzzer'" "$root/fuzz/meson.build" | tr -d "'"); do
  [[ " ${targets[*]} " == *" $t "* ]] || { echo "fuzz/run.sh: $t (fuzz/meson.build) is not in targets" >&2; exit 2; }
done

# Other builds may share this machine: serialise compiles, two jobs at most.
lock() { if command -v flock >/dev/null; then flock /tmp/sluice-build.lock "$@"; else "$@"; fi; }

if [[ ! -f $build/build.ninja ]]; then
  CC=clang CXX=clang++ lock meson setup "$build" "$root" -Dfuzzing=true -Dtests=false \
    -Dbenchmarks=false -Db_sanitize=address,undefined -Db_lundef=false
fi
lock meson compile -C "$build" -j 2 "${targets[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=()
for t in "${targets[@]}"; do
  run_for=$seconds
  if [[ $t = command_fuzzer || $t = dot_decoder_fuzzer ]] && ((parser_seconds > run_for)); then
    run_for=$parser_seconds
  fi
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp "$root/fuzz/corpus/$t/"* "$work/$t/corpus/" 2>/dev/null || true
  echo "== $t: ${run_for}s"
  if "$build/fuzz/$t" -max_total_time="$run_for" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/$t/artifacts/" "$work/$t/corpus" >"$work/$t.log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$work/$t.log" || true
    grep -E '^#[0-9]+ +DONE' "$work/$t.log" | tail -1 || true
  else
    failed+=("$t")
    tail -60 "$work/$t.log"
    if compgen -G "$work/$t/artifacts/*" >/dev/null; then
      mkdir -p "$root/fuzz/crashes/$t"
      cp "$work/$t/artifacts/"* "$root/fuzz/crashes/$t/"
      echo "reproducer(s) saved in fuzz/crashes/$t/:"
      ls "$work/$t/artifacts/"
    fi
  fi
done

if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all ${#targets[@]} targets ran (${seconds}s each, parsers ${parser_seconds}s) without a crash"
