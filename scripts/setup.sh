#!/usr/bin/env bash
# Installs everything builder and its tests need on a Debian/Ubuntu machine. Idempotent: safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Host tools: the sandbox, a C toolchain for the examples, git for sources.
APT_PACKAGES=(
  bubblewrap
  gcc make libc6-dev
  git ca-certificates curl xz-utils
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
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
echo "setup: done"
