#!/usr/bin/env bash
# Install the Debian packages Hushlab needs at run time, if any are missing.
# As root it runs apt-get; otherwise it prints the exact command to run and continues.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "hushlab set-up: installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "hushlab set-up: not root and no sudo; please run:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  echo "continuing: features that need them (audio devices, corpus voices, screenshots) will say so." >&2
fi
