#!/bin/sh
# make install into a staging folder, then build and run a program against the
# installed copy using only `pkg-config --cflags --libs csal3d` (shared), and the
# same statically with `pkg-config --static`.
set -u
[ -n "${SANITIZE:-}" ] && { echo "install: skipped under sanitizers"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
prefix=/opt/csal3d-test
make --no-print-directory -s install PREFIX=$prefix DESTDIR="$tmp/stage" CUDA="${CUDA:-1}" \
  >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; echo "install: make install failed"; exit 1; }
root="$tmp/stage$prefix"
for f in include/csal3d/csal3d.h lib/libcsal3d.so.0.1.0 lib/libcsal3d.so.0 lib/libcsal3d.so \
         lib/libcsal3d.a lib/pkgconfig/csal3d.pc bin/csal3d; do
  [ -e "$root/$f" ] || { echo "install: $f missing"; exit 1; }
done
cat > "$tmp/hello.c" <<'C'
#include <csal3d/csal3d.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = CSAL3D_DEVICE_CPU;
  csal3d_context *ctx;
  if (csal3d_context_create(&o, &ctx) != CSAL3D_OK) return 1;
  csal3d_context_free(ctx);
  printf("%s\n", csal3d_version());
  return strcmp(csal3d_version(), "0.1.0") != 0;
}
C
export PKG_CONFIG_SYSROOT_DIR="$tmp/stage" PKG_CONFIG_PATH="$root/lib/pkgconfig"
flags=$(pkg-config --cflags --libs csal3d) || { echo "install: pkg-config failed"; exit 1; }
cc -o "$tmp/hello" "$tmp/hello.c" $flags || { echo "install: compile with '$flags' failed"; exit 1; }
LD_LIBRARY_PATH="$root/lib" "$tmp/hello" >/dev/null || { echo "install: shared program failed"; exit 1; }
ldd_out=$(LD_LIBRARY_PATH="$root/lib" ldd "$tmp/hello")
echo "$ldd_out" | grep -q "$root/lib/libcsal3d.so.0" || { echo "install: not linked to the installed copy"; echo "$ldd_out"; exit 1; }
sflags=$(pkg-config --static --cflags --libs csal3d)
cc -o "$tmp/hello_static" "$tmp/hello.c" -Wl,-Bstatic -lcsal3d -Wl,-Bdynamic $(echo "$sflags" | sed 's/-lcsal3d//') \
  || { echo "install: static link with '$sflags' failed"; exit 1; }
"$tmp/hello_static" >/dev/null || { echo "install: static program failed"; exit 1; }
# The installed csal3d tool finds the installed library through its rpath.
env -u LD_LIBRARY_PATH "$root/bin/csal3d" --version | grep -q "csal3d 0.1.0" || { echo "install: installed csal3d did not run"; exit 1; }
echo "install: shared and static programs built with pkg-config and ran"
