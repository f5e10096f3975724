#!/usr/bin/env bash
# `deno task compile [flags]`: builds the self-contained `maieutic` executable from main.ts. Extra flags go to
# `deno compile` (before main.ts, so they are not baked into the binary as program arguments), e.g.
# `deno task compile --target aarch64-apple-darwin`.
#
# What the program needs at run time is all static imports of main.ts's module graph: the WGSL kernels and
# the Plotly bundle as text, the fonts and the resvg wasm as bytes, the report worker and every subcommand
# module, plus the npm packages; so no --include is needed (tests/cli/compile_ready_test.ts runs info, train
# and report from that graph alone).
#
# deno compile wraps the program around `denort`, the Deno runtime without the tooling. Online, the first
# compile downloads denort-<target>.zip for this Deno version from dl.deno.land and caches it in DENO_DIR.
# Offline, set DENORT_BIN to a denort binary of the same Deno version (unzipped from
# https://dl.deno.land/release/v<version>/denort-<target>.zip on a connected machine), or put `denort` next to
# the `deno` executable.
#
# Never add --env-file here: it would bake .env (the Hub token) into the binary. The binary reads .env from
# its working directory at run time (src/cli/env.ts).
set -uo pipefail
cd "$(dirname "$0")/.."
version=$(deno --version 2>/dev/null | sed -n 's/^deno \([^ ]*\).*/\1/p')
target=$(deno --version 2>/dev/null | sed -n 's/.*(.*, \([^)]*\)).*/\1/p')
if [ -n "${DENORT_BIN:-}" ] && [ ! -f "$DENORT_BIN" ]; then
  echo "DENORT_BIN=$DENORT_BIN: no such file; point it at the denort binary of Deno $version" \
    "(from https://dl.deno.land/release/v$version/denort-$target.zip)" >&2
  exit 2
fi
rc=0
deno compile -A --output maieutic "$@" main.ts || rc=$?
if [ "$rc" -ne 0 ] && [ -z "${DENORT_BIN:-}" ]; then
  echo "deno compile failed (exit $rc). Without network it cannot fetch the denort runtime: download" \
    "https://dl.deno.land/release/v$version/denort-$target.zip elsewhere, unzip it, and run" \
    "DENORT_BIN=/path/to/denort deno task compile" >&2
fi
exit "$rc"
