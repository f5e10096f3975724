#!/usr/bin/env bash
# `deno task test`: sets up WebGPU when it can (scripts/setup_webgpu.sh), then runs every test and ends with
# a line "N passed, N failed". Extra arguments go to `deno test` (e.g. a path or --filter). MAIEUTIC_F16=0
# runs everything on the f32 kernels (what an adapter without shader-f16 gets).
set -uo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export NO_COLOR=1
bash scripts/setup_webgpu.sh
log=$(mktemp)
# A whole-run deadline on top of the per-wait GPU watchdog (src/gpu/watchdog.ts), which cannot fire while a
# driver blocks the thread (a shader compile on a pathological adapter): CI then fails instead of hanging.
limit="${MAIEUTIC_TEST_TIMEOUT_S:-2700}"
timeout -k 30 "$limit" deno test -A "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "deno test did not finish within ${limit} s (MAIEUTIC_TEST_TIMEOUT_S) and was stopped" >&2
fi
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
