#!/usr/bin/env bash
# Install the Debian packages listed in .ci/system-packages.txt that are missing (idempotent: does
# nothing when all are present). Never fails the build: a missing server makes its tests skip visibly.
set -uo pipefail
cd "$(dirname "$0")/.."
want=$(sed -e 's/#.*//' .ci/system-packages.txt | xargs)
missing=()
for p in $want; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then echo "install-system: no apt-get; tests needing ${missing[*]} will skip"; exit 0; fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
echo "== installing system packages for the tests: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/mlscale-apt.log 2>&1 \
  || { echo "install-system: apt-get failed (see /tmp/mlscale-apt.log); tests needing ${missing[*]} will skip"; tail -5 /tmp/mlscale-apt.log; }
exit 0
