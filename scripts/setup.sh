#!/usr/bin/env bash
# Installs everything builder needs on a Debian/Ubuntu machine. Idempotent: safe to re-run.
#   scripts/setup.sh               what `builder build` needs
#   scripts/setup.sh --test-tools  also the toolchains and VM parts the test suite exercises for real
set -euo pipefail
cd "$(dirname "$0")/.."

TEST_TOOLS=0
for arg in "$@"; do
  case "$arg" in
    --test-tools) TEST_TOOLS=1 ;;
    *) echo "usage: $0 [--test-tools]" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Host tools: the sandbox and the VM runner, Debian build roots, a C toolchain for the examples, git for sources.
APT_PACKAGES=(
  bubblewrap
  qemu-system-x86 e2fsprogs kmod
  mmdebstrap
  gcc make libc6-dev
  git ca-certificates curl xz-utils
)
if [ "$TEST_TOOLS" = 1 ]; then
  # Built-in pipelines run for real in the tests (cargo is too large; its tests check the generated
  # commands only): Go, R, PHP extensions (php-dev; libtool for phpize), Python wheels, Maven, jq for
  # xcover/ensure; zsh and fish for the completion tests. npm is not in the list: setup already needs it
  # (it installs Node 22 with it), and Debian's npm conflicts with NodeSource's nodejs.
  APT_PACKAGES+=(patch cmake ninja-build meson ruby python3-setuptools perl zsh fish
    golang-go r-base-core php-dev libtool python3-build python3-installer python3-wheel python3-venv python3-pip
    maven jq zip)
  # OCI registry pulls (a real registry fed by skopeo) and rootfs export checked with each format's tools.
  APT_PACKAGES+=(docker-registry skopeo erofs-utils cpio)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Package lists older than a day may name versions the archive no longer has; the guest kernel, the VM's
# initramfs packages and mmdebstrap all download by those lists.
if [ ${#missing[@]} -gt 0 ] || [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js >= 22.18 (type stripping runs the TypeScript sources directly). The registry's `node` package
# carries the binary; /usr/local/bin comes before /usr/bin on PATH.
need_node() {
  command -v node >/dev/null || return 0
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=18)?1:0)'
}
if need_node; then
  echo "setup: installing Node.js 22 into /usr/local"
  $SUDO npm install -g --prefix /usr/local --no-fund --no-audit node@22 >/dev/null
  hash -r
fi
echo "setup: node $(node --version)"

# Project dependencies, exactly as locked. None of them needs an install script.
npm ci --no-fund --no-audit >/dev/null

# A guest kernel for `--runner qemu`: Debian's cloud kernel, unpacked (not installed) where the runner looks.
./scripts/fetch-kernel.sh >/dev/null
echo "setup: done"
