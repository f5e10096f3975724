#!/usr/bin/env bash
# Makes sure the tests get a WebGPU adapter they can use, judged by scripts/probe_webgpu.ts (the same device
# choice as every command: Vulkan/Metal/DX12 before GL; a software OpenGL adapter, a pathologically slow one,
# or one without shader-f16 counts as missing). When it is missing, and as root on Debian/Ubuntu, installs
# the software Vulkan driver (lavapipe), preferring bookworm-backports' Mesa (~5x faster for our kernels),
# probes again, and says which adapter and backend the tests will use.
set -u
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Prints the probe's last line; its exit status is the probe's.
probe() {
  local out rc
  out=$(NO_COLOR=1 timeout 120 deno run -A scripts/probe_webgpu.ts 2>/dev/null)
  rc=$?
  printf '%s\n' "$out" | tail -n 1
  return "$rc"
}
desc=$(probe) && rc=0 || rc=$?
if [ "$rc" = 0 ]; then
  echo "WebGPU adapter for the tests: $desc"
  exit 0
fi
echo "No usable WebGPU adapter (${desc:-no answer from the probe})."
hint="Install a GPU's Vulkan driver, or the software one: sudo apt-get install -y mesa-vulkan-drivers libvulkan1"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing lavapipe (mesa-vulkan-drivers libvulkan1) with apt-get..."
  . /etc/os-release 2>/dev/null || true
  if [ "${VERSION_CODENAME:-}" = bookworm ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/maieutic-backports.list
  fi
  apt-get update -qq >/dev/null 2>&1 || true
  if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1 ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1
  else
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1
  fi
  desc=$(probe) && rc=0 || rc=$?
  if [ "$rc" = 0 ]; then
    echo "WebGPU adapter for the tests: $desc"
    exit 0
  fi
  echo "Still no usable WebGPU adapter after installing lavapipe: ${desc:-no answer from the probe}" >&2
  if [ -n "${DENO_WEBGPU_BACKEND:-}${MAIEUTIC_BACKEND:-}" ]; then
    echo "(DENO_WEBGPU_BACKEND='${DENO_WEBGPU_BACKEND:-}' MAIEUTIC_BACKEND='${MAIEUTIC_BACKEND:-}' restrict the backends: unset them to let Vulkan be used)" >&2
  fi
else
  echo "$hint" >&2
fi
# Not fatal here: the GPU tests then fail fast with the same reason (they never skip).
exit 0
