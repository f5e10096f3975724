#!/usr/bin/env bash
# Packs what a GPU machine without network needs to run maieutic from this checkout into .gpu_kit/ (ignored by
# git): this Deno binary (xz), node_modules (xz; run there with --node-modules-dir=manual, no registry needed)
# and the Vulkan loader (libvulkan1 .deb, for images that ship the NVIDIA ICD but no loader). Then
# scripts/gpu_run.sh runs the checks and benchmarks there (BENCHMARKS.md, "H100").
#
# Run it on a connected Debian/Ubuntu machine where `deno task test` has run once (so node_modules is
# complete). The kit is ~60 MB, inside a 64 MiB transfer limit together with the ~5 MB tree.
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.gpu_kit
mkdir -p "$kit"
[ -d node_modules/.deno ] || { echo "node_modules is missing: run \`deno task test\` (or deno install) first" >&2; exit 2; }
deno_bin=$(command -v deno)
deno_bin=$(readlink -f "$deno_bin")
echo "deno: $deno_bin ($(deno --version | head -n 1))"
xz -T0 -9 -c "$deno_bin" >"$kit/deno.xz.tmp" && mv "$kit/deno.xz.tmp" "$kit/deno.xz"
# @types/node only serves the type checker; tests run with --no-check there.
tar cf - --exclude='node_modules/.deno/@types+node@*' --exclude='node_modules/@types' node_modules |
  xz -T0 -6 >"$kit/node_modules.tar.xz.tmp" && mv "$kit/node_modules.tar.xz.tmp" "$kit/node_modules.tar.xz"
rm -f "$kit"/*.deb
(cd "$kit" && apt-get download libvulkan1 >/dev/null 2>&1) ||
  echo "note: could not download libvulkan1 (apt); gpu_run.sh then relies on the machine's own loader" >&2
du -ch "$kit"/* | sed 's/^/  /'
echo "carry: [\"$kit\"]   command: bash scripts/gpu_run.sh <phase>   (phases: bash scripts/gpu_run.sh --help)"
