#!/bin/sh
# Checks the Debian packages that building and testing libcsal3d need. As root it
# installs the missing ones with apt-get; otherwise it prints the command and fails.
# OPTIONAL packages are installed as root too (CI runs as root), but their absence does
# not fail: abigail-tools (abidw, abidiff) for `make abi-check`, which skips without it;
# chromium for tests/report_test.sh (the report page rendered), which skips without it;
# python3-mpi4py for the Python communicator's test, which skips without it.
set -u
PACKAGES="build-essential pkg-config libdnnl-dev libniftiio-dev libnifti2-dev zlib1g-dev
check python3 python3-numpy libjansson-dev liblapacke-dev libopenblas-dev libpng-dev
libopenmpi-dev openmpi-bin"
OPTIONAL="abigail-tools chromium python3-mpi4py"

not_installed() {
  for p in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
    case "$status" in
      *"install ok installed"*) ;;
      *) printf ' %s' "$p" ;;
    esac
  done
}
# shellcheck disable=SC2086
missing=$(not_installed $PACKAGES)
# shellcheck disable=SC2086
optional=$(not_installed $OPTIONAL)
[ -z "$missing$optional" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  [ -n "$optional" ] &&
    echo "deps: optional Debian packages not installed:$optional (make abi-check skips without abigail-tools, tests/report_test.sh without chromium)"
  [ -z "$missing" ] && exit 0
  echo "deps: missing Debian packages:$missing"
  echo "deps: run as root:  apt-get update && apt-get install -y$missing$optional"
  exit 1
fi
echo "deps: missing Debian packages:$missing$optional"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || { echo "deps: apt-get update failed"; exit 1; }
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing || {
    echo "deps: apt-get install failed"; exit 1; }
fi
if [ -n "$optional" ]; then
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $optional ||
    echo "deps: could not install the optional$optional (make abi-check will skip)"
fi
exit 0
