#!/usr/bin/env bash
# Makes sure a WebGPU adapter exists for the tests. Without one, and as root on Debian/Ubuntu, installs the
# software Vulkan driver (lavapipe), preferring bookworm-backports' Mesa (~5x faster for our kernels).
set -u
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
probe() {
  NO_COLOR=1 deno eval 'const a = await navigator.gpu?.requestAdapter(); if (!a) Deno.exit(1); console.log(a.info.description || a.info.vendor);' 2>/dev/null
}
if desc=$(probe); then
  echo "WebGPU adapter: $desc"
  exit 0
fi
hint="No WebGPU adapter. Install a GPU driver, or the software one: sudo apt-get install -y mesa-vulkan-drivers libvulkan1"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "No WebGPU adapter found: installing lavapipe (mesa-vulkan-drivers) with apt-get..."
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
  if desc=$(probe); then
    echo "WebGPU adapter: $desc"
    exit 0
  fi
fi
echo "$hint" >&2
# Not fatal here: the GPU tests then fail with the same hint (they never skip).
exit 0
