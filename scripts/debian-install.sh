#!/usr/bin/env bash
# Installs the named Debian packages that are not installed yet, and nothing
# else: `bash scripts/debian-install.sh prometheus prometheus-alertmanager`.
#
# The project's own set-up for the tools its tests drive (Prometheus,
# Alertmanager, Chromium): tests call it through test/support/debian.ts, and
# `npm run ops-tools` calls it for the local stack. Needs root (CI and the
# project machines run as root). The package lists are refreshed only when
# the install cannot find a package without it (a fresh machine has none).
# Recommended packages are left out, so no exporter or service comes along.
set -euo pipefail

missing=()
for package in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "debian-install: ${missing[*]} missing and this is not root; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Two tests may install at once (jest runs two workers): wait for the other's lock.
lock=(-o DPkg::Lock::Timeout=300)
install() {
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${lock[@]}" "${missing[@]}" >/dev/null
}
started=$(date +%s)
if ! install 2>/dev/null; then
  apt-get update -qq "${lock[@]}" >/dev/null
  install
fi
echo "debian-install: installed ${missing[*]} in $(($(date +%s) - started)) s" >&2
