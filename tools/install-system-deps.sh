#!/usr/bin/env bash
# Installs the Debian packages the tests talk to for real (sshd, the adb client, ...), only when missing.
# Needs root (CI and the dev machines are root); otherwise prints what to install and carries on,
# and the tests that need a missing program skip with that reason.
set -euo pipefail

declare -A want=(
  [sshd]=openssh-server
  [ssh]=openssh-client
  [scp]=openssh-client
  [adb]=adb
  [ip]=iproute2  # network namespaces for the fleet tests' devices and bench/fleet.py
)
missing=()
for cmd in "${!want[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing+=("${want[$cmd]}")
  fi
done
# Fashion-MNIST for `compress --data fashion-mnist` (the CNN benchmark and its tests): a data package.
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: not root; please install: ${missing[*]}" >&2
  exit 0
fi
echo "install-system-deps: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
