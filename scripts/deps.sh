#!/bin/sh
# Checks the Debian packages that building and testing libcsal3d need. As root it
# installs the missing ones with apt-get; otherwise it prints the command and fails.
set -u
PACKAGES="build-essential pkg-config libdnnl-dev libniftiio-dev libnifti2-dev zlib1g-dev
check python3 python3-numpy libjansson-dev liblapacke-dev libopenblas-dev"

missing=""
for p in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done
[ -z "$missing" ] && exit 0

echo "deps: missing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: run as root:  apt-get update && apt-get install -y$missing"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || { echo "deps: apt-get update failed"; exit 1; }
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing || {
  echo "deps: apt-get install failed"; exit 1; }
