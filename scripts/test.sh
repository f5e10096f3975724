#!/usr/bin/env bash
# `deno task test`: sets up WebGPU when it can (scripts/setup_webgpu.sh), then runs every test and ends with
# a line "N passed, N failed". Extra arguments go to `deno test` (e.g. a path or --filter).
set -uo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export NO_COLOR=1
bash scripts/setup_webgpu.sh
log=$(mktemp)
deno test -A "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
rm -f "$log"
echo "${passed:-0} passed, ${failed:-0} failed"
if [ -z "$summary" ]; then
  echo "no test summary found (deno test exit $rc)" >&2
  exit 1
fi
# Deno + wgpu + lavapipe sometimes abort in teardown (glibc "double free" at exit, SIGABRT = 134) after
# every test has run and the summary is printed. Judge the run by its summary then, and say so.
if [ "$rc" = 134 ] && [ "${failed:-1}" = 0 ] && grep -q '^ok' <<<"$summary"; then
  echo "note: deno exited with SIGABRT during GPU teardown after all tests passed; counted as a pass" >&2
  exit 0
fi
exit "$rc"
