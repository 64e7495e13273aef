#!/bin/sh
# make install, twice with different prefixes: into a staging folder (DESTDIR) for
# /opt/csal3d-test, then into a real temporary prefix. Each install's csal3d.pc names its
# own prefix; a program builds and runs against the installed copy using only
# `pkg-config --cflags --libs csal3d` (shared) and `pkg-config --static`; the Python
# package is installed and imports the installed library; the CUDA plugin (when built) is
# installed under its SONAME and found by the installed core; make uninstall removes all.
set -u
[ -n "${SANITIZE:-}" ] && { echo "install: skipped under sanitizers"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
PYTHON=${PYTHON:-/usr/bin/python3}
fail() { echo "install: $*"; exit 1; }

install_to() { # PREFIX [DESTDIR]
  make --no-print-directory -s install PREFIX="$1" DESTDIR="${2:-}" CUDA="${CUDA:-1}" \
    PYTHON="$PYTHON" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "make install PREFIX=$1 failed"; }
}
pc_var() { # PCDIR VARIABLE
  PKG_CONFIG_PATH="$1" PKG_CONFIG_SYSROOT_DIR= pkg-config --variable="$2" csal3d
}
python_pkg() { # ROOT: the folder that holds the installed csal3d package, or nothing
  d=$(find "$1" -path '*/csal3d/__init__.py' 2>/dev/null | head -1)
  [ -n "$d" ] && dirname "$(dirname "$d")"
}

# ---- 1: staged for /opt/csal3d-test ----------------------------------------------------
prefix=/opt/csal3d-test
install_to $prefix "$tmp/stage"
root="$tmp/stage$prefix"
for f in include/csal3d/csal3d.h lib/libcsal3d.so.0.1.0 lib/libcsal3d.so.0 lib/libcsal3d.so \
         lib/libcsal3d.a lib/pkgconfig/csal3d.pc bin/csal3d; do
  [ -e "$root/$f" ] || fail "$f missing"
done
[ "$(pc_var "$root/lib/pkgconfig" prefix)" = $prefix ] || fail "csal3d.pc: prefix is not $prefix"
cat > "$tmp/hello.c" <<'C'
#include <csal3d/csal3d.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = argc > 1 ? CSAL3D_DEVICE_CUDA : CSAL3D_DEVICE_CPU;
  csal3d_context *ctx;
  if (csal3d_context_create(&o, &ctx) != CSAL3D_OK) {
    printf("%s\n", csal3d_last_error());
    return 2;
  }
  csal3d_context_free(ctx);
  printf("%s\n", csal3d_version());
  return strcmp(csal3d_version(), "0.1.0") != 0;
}
C
export PKG_CONFIG_SYSROOT_DIR="$tmp/stage" PKG_CONFIG_PATH="$root/lib/pkgconfig"
flags=$(pkg-config --cflags --libs csal3d) || fail "pkg-config failed"
cc -o "$tmp/hello" "$tmp/hello.c" $flags || fail "compile with '$flags' failed"
LD_LIBRARY_PATH="$root/lib" "$tmp/hello" >/dev/null || fail "shared program failed"
ldd_out=$(LD_LIBRARY_PATH="$root/lib" ldd "$tmp/hello")
echo "$ldd_out" | grep -q "$root/lib/libcsal3d.so.0" || { echo "$ldd_out"; fail "not linked to the installed copy"; }
sflags=$(pkg-config --static --cflags --libs csal3d)
cc -o "$tmp/hello_static" "$tmp/hello.c" -Wl,-Bstatic -lcsal3d -Wl,-Bdynamic $(echo "$sflags" | sed 's/-lcsal3d//') \
  || fail "static link with '$sflags' failed"
"$tmp/hello_static" >/dev/null || fail "static program failed"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH
# The installed csal3d tool finds the installed library through its rpath.
env -u LD_LIBRARY_PATH "$root/bin/csal3d" --version | grep -q "csal3d 0.1.0" || fail "installed csal3d did not run"

# The Python package, staged: it imports from there, with the staged library named by
# CSAL3D_LIBRARY (its link beside the package points where the library will be).
site=$(python_pkg "$tmp/stage")
[ -n "$site" ] || fail "no Python package csal3d under $tmp/stage (make install PYTHON=$PYTHON)"
case "$site" in "$root"/lib/python3*) ;; *) fail "the Python package went to $site, not under $root/lib/python3*" ;; esac
[ "$(readlink "$site/csal3d/libcsal3d.so.0")" = "$prefix/lib/libcsal3d.so.0" ] ||
  fail "$site/csal3d/libcsal3d.so.0 does not point to $prefix/lib/libcsal3d.so.0"
out=$(cd "$tmp" && CSAL3D_LIBRARY="$root/lib/libcsal3d.so.0" PYTHONPATH="$site" "$PYTHON" -c \
  'import csal3d; print(csal3d.__file__); print(csal3d.version())') || fail "import csal3d from $site failed"
echo "$out" | grep -qx "$site/csal3d/__init__.py" || { echo "$out"; fail "csal3d was not imported from $site"; }
echo "$out" | grep -qx "0.1.0" || { echo "$out"; fail "csal3d.version() from the installed package"; }

# The CUDA plugin, when built: installed under its SONAME, which the installed core
# opens beside itself (no GPU here: the plugin itself answers that there is no device).
cuda=""
if [ "${CUDA:-1}" != 0 ] && [ -e "${OUT_LIB:-lib}/libcsal3d-cuda.so" ]; then
  cuda=", the CUDA plugin"
  for f in libcsal3d-cuda.so.0.1.0 libcsal3d-cuda.so.0 libcsal3d-cuda.so; do
    [ -e "$root/lib/$f" ] || fail "lib/$f missing"
  done
  msg=$(env -u CSAL3D_CUDA_PLUGIN LD_LIBRARY_PATH="$root/lib" "$tmp/hello" cuda)
  case "$msg" in
    *"libcsal3d-cuda.so.0: cannot open"*|*"could not be loaded (libcsal3d-cuda"*)
      fail "the installed core did not find the installed plugin: $msg" ;;
  esac
fi

# ---- 2: a second prefix, installed for real ---------------------------------------------
prefix2="$tmp/prefix2"
install_to "$prefix2"
[ "$(pc_var "$prefix2/lib/pkgconfig" prefix)" = "$prefix2" ] ||
  fail "the second install's csal3d.pc has prefix '$(pc_var "$prefix2/lib/pkgconfig" prefix)', not $prefix2"
[ "$(pc_var "$prefix2/lib/pkgconfig" libdir)" = "$prefix2/lib" ] || fail "the second csal3d.pc: libdir"
[ "$(pc_var "$prefix2/lib/pkgconfig" includedir)" = "$prefix2/include" ] || fail "the second csal3d.pc: includedir"
[ "$(pc_var "$root/lib/pkgconfig" prefix)" = $prefix ] || fail "the first install's csal3d.pc changed"
# Only PYTHONPATH: the package finds the installed library through the link beside it.
site2=$(python_pkg "$prefix2")
[ -n "$site2" ] || fail "no Python package csal3d under $prefix2"
loaded=$(cd "$tmp" && env -u CSAL3D_LIBRARY -u LD_LIBRARY_PATH PYTHONPATH="$site2" "$PYTHON" -c \
  'import os, csal3d, csal3d._native as n; print(os.path.realpath(n.lib._name))') ||
  fail "import csal3d with PYTHONPATH=$site2 failed"
[ "$loaded" = "$prefix2/lib/libcsal3d.so.0.1.0" ] || fail "the installed package loaded $loaded"

make --no-print-directory -s uninstall PREFIX="$prefix2" PYTHON="$PYTHON" >"$tmp/uninstall.log" 2>&1 ||
  { cat "$tmp/uninstall.log"; fail "make uninstall failed"; }
left=$(find "$prefix2" ! -type d)
[ -z "$left" ] || { echo "$left"; fail "make uninstall left files"; }
echo "install: two prefixes, each with its csal3d.pc; shared and static programs built with pkg-config and ran; the Python package$cuda installed and found; uninstall removed it all"
