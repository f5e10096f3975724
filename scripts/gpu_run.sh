#!/usr/bin/env bash
# Runs maieutic's GPU checks and benchmarks on a machine without network, from the kit that
# scripts/gpu_kit.sh packed into .gpu_kit/ (Deno, node_modules, the Vulkan loader). Results go to $OUT (default
# ./gpu-out): at most a few files per phase. One phase per call keeps each under ten minutes.
#
#   bash scripts/gpu_run.sh info     adapter, features, limits (info.json) + nvidia-smi
#   bash scripts/gpu_run.sh tests    the GPU tests (kernels, model, trainer, bench) on this adapter (tests.log)
#   bash scripts/gpu_run.sh bench    `maieutic bench --json` with its defaults (bench-default.json, .err)
#   bash scripts/gpu_run.sh seed     the seed shape: 26 layers, full vocab, 4 x 512, 3 steps (bench-seed.json, .err)
#   bash scripts/gpu_run.sh torch    transformers + PEFT, the same step (torch-step.json; scripts/torch_step.py)
#
# BENCHMARKS.md ("H100") says what to compare.
set -uo pipefail
cd "$(dirname "$0")/.."
phase=${1:-}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
kit=.gpu_kit
case "$phase" in
  info | tests | bench | seed | torch) ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    [ "$phase" = --help ] && exit 0
    exit 2
    ;;
esac

# ---- setup (idempotent) ----
bin=/tmp/maieutic-gpu-kit
mkdir -p "$bin"
if [ ! -x "$bin/deno" ]; then
  [ -f "$kit/deno.xz" ] || { echo "no $kit/deno.xz: run scripts/gpu_kit.sh on a connected machine and carry $kit" >&2; exit 2; }
  xz -dc "$kit/deno.xz" >"$bin/deno" && chmod +x "$bin/deno"
fi
export PATH="$bin:$PATH"
if [ ! -d node_modules/.deno ]; then tar xJf "$kit/node_modules.tar.xz"; fi
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  for f in "$kit"/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} NO_COLOR=1
export DENO_DIR=/tmp/maieutic-deno-dir
run=(deno run -A --node-modules-dir=manual --no-check main.ts)

case "$phase" in
  info)
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
    "${run[@]}" info --json >"$OUT/info.json" 2>"$OUT/info.err"
    cat "$OUT/info.json" "$OUT/info.err"
    ;;
  tests)
    # The tests that exercise kernels; each forces both matmul families and both reductions variants.
    deno test -A --node-modules-dir=manual --no-check tests/gpu tests/model tests/train tests/quant \
      tests/lora tests/bench tests/eval 2>&1 | tee "$OUT/tests.log" | grep -E '^(ok|FAILED)|FAILED|^error' | tail -n 40
    ;;
  bench)
    "${run[@]}" bench --json >"$OUT/bench-default.json" 2>"$OUT/bench-default.err"
    tail -n 30 "$OUT/bench-default.err"
    ;;
  seed)
    "${run[@]}" bench --json --layers 26 --vocab 256000 --batch 4 --seq 512 --steps 3 --decode-tokens 32 \
      --prompt-tokens 128 --ce-vocab 16384 >"$OUT/bench-seed.json" 2>"$OUT/bench-seed.err"
    tail -n 30 "$OUT/bench-seed.err"
    ;;
  torch)
    PYTHONUNBUFFERED=1 python3 scripts/torch_step.py --batch 4 --seq 512 --out "$OUT/torch-step.json" 2>&1 |
      tee "$OUT/torch-step.log"
    ;;
esac
