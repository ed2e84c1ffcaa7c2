#!/bin/sh
# Downloads Debian's cloud kernel (the current linux-image-6.1.0-*-cloud-amd64) and unpacks it into DIR
# without installing it: DIR/boot/vmlinuz-<version> and DIR/lib/modules/<version>/. The QEMU runner and its
# tests use it through QEMU_KERNEL_IMAGE / QEMU_KERNEL_MODULES (printed at the end).
#
#   scripts/fetch-kernel.sh [DIR]        (default: /var/tmp/builder-kernel)
#
# Idempotent: a second run with the same package version does nothing. Needs apt-get, apt-cache and
# dpkg-deb (always present on Debian); runs depmod (package kmod) when available so modules.dep exists.
set -eu

dir=${1:-/var/tmp/builder-kernel}

# The metapackage names the current ABI, e.g. linux-image-6.1.0-28-cloud-amd64.
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-cloud-amd64\)$/\1/p' | sort -V | tail -n 1)
if [ -z "$pkg" ]; then
  pkg=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null | grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' |
    sort -V | tail -n 1)
fi
if [ -z "$pkg" ]; then
  echo "fetch-kernel: no linux-image-6.1.0-*-cloud-amd64 package known to apt (run apt-get update?)" >&2
  exit 1
fi
version=${pkg#linux-image-}
pkgver=$(apt-cache show --no-all-versions "$pkg" | sed -n 's/^Version: //p' | head -n 1)
stamp="$dir/.fetched-$pkg-$pkgver"

if [ ! -f "$stamp" ]; then
  mkdir -p "$dir"
  work=$(mktemp -d "$dir/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT INT TERM
  (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$pkgver" >&2)
  deb=$(find "$work" -maxdepth 1 -name '*.deb' | head -n 1)
  mkdir "$work/tree"
  dpkg-deb -x "$deb" "$work/tree"
  if command -v depmod >/dev/null 2>&1 || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ]; then
    PATH="$PATH:/usr/sbin:/sbin" depmod -b "$work/tree" "$version"
  fi
  # Move the unpacked files into place; a partly fetched tree never carries the stamp.
  mkdir -p "$dir/boot" "$dir/lib/modules"
  rm -rf "$dir/lib/modules/$version"
  mv "$work/tree/lib/modules/$version" "$dir/lib/modules/$version"
  for f in "$work"/tree/boot/*; do
    mv -f "$f" "$dir/boot/"
  done
  rm -f "$dir"/.fetched-*
  touch "$stamp"
fi

echo "QEMU_KERNEL_IMAGE=$dir/boot/vmlinuz-$version"
echo "QEMU_KERNEL_MODULES=$dir/lib/modules/$version"
