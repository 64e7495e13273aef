#!/bin/sh
# make abi-check: the library against its baseline abi/libcsal3d.abi, then that the check
# fails when it should: a function removed from the real library's dump, and a small
# library compiled in variants (what abi/libcsal3d.abignore allows passes, the rest fails).
set -u
[ -n "${SANITIZE:-}" ] && { echo "abi: skipped under sanitizers (the normal build checks it)"; exit 77; }
for t in abidw abidiff; do
  command -v $t >/dev/null 2>&1 || { echo "abi: skipped: $t not found (Debian package abigail-tools)"; exit 77; }
done
root=$(pwd)
check="$root/scripts/abi_check.sh"
lib="${OUT_LIB:-lib}/libcsal3d.so.0"
tmp=$(mktemp -d) || exit 1
trap '[ -n "${ABI_TEST_KEEP:-}" ] || rm -rf "$tmp"' EXIT

# The library as built, against the baseline in the repository.
sh "$check" abi/libcsal3d.abi "$lib" include/csal3d > "$tmp/real.log" 2>&1
rc=$?
cat "$tmp/real.log"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "abi: $lib is not compatible with abi/libcsal3d.abi (exit $rc)"; exit 1; }

# The same library without csal3d_version: the check must fail, as incompatible. With a
# member appended to csal3d_sampler_options (struct_size first) and csal3d_selection
# (read with the caller's record size) it must pass.
sh "$check" --dump "$tmp/now.abi" "$lib" include/csal3d >/dev/null || { echo "abi: abidw failed"; exit 1; }
"${PYTHON:-/usr/bin/python3}" - "$tmp/now.abi" "$tmp/removed.abi" "$tmp/grown.abi" <<'PY' || { echo "abi: editing the dump failed"; exit 1; }
import sys
import xml.etree.ElementTree as ET
tree = ET.parse(sys.argv[1])
gone = 0
for parent in tree.getroot().iter():
    for child in list(parent):
        if child.tag in ("elf-symbol", "function-decl") and child.get("name") == "csal3d_version":
            parent.remove(child)
            gone += 1
assert gone >= 2, gone
tree.write(sys.argv[2], encoding="unicode")
tree = ET.parse(sys.argv[1])
grown = set()
for c in tree.getroot().iter("class-decl"):
    if c.get("name") in ("csal3d_sampler_options", "csal3d_selection") and c.get("size-in-bits"):
        size = int(c.get("size-in-bits"))
        m = ET.SubElement(c, "data-member", {"access": "public", "layout-offset-in-bits": str(size)})
        ET.SubElement(m, "var-decl", {"name": "appended", "type-id": c.find("data-member/var-decl").get("type-id"),
                                      "visibility": "default"})
        c.set("size-in-bits", str(size + 64))
        grown.add(c.get("name"))
assert len(grown) == 2, grown
tree.write(sys.argv[3], encoding="unicode")
PY
sh "$check" abi/libcsal3d.abi "$tmp/removed.abi" include/csal3d > "$tmp/removed.log" 2>&1
rc=$?
if [ $rc -ne 1 ] || ! grep -q "incompatible" "$tmp/removed.log" || ! grep -q "csal3d_version" "$tmp/removed.log"; then
  cat "$tmp/removed.log"; echo "abi: removing csal3d_version was not reported as incompatible (exit $rc)"; exit 1
fi
sh "$check" abi/libcsal3d.abi "$tmp/grown.abi" include/csal3d > "$tmp/grown.log" 2>&1
rc=$?
if [ $rc -ne 0 ] || [ "$(grep -c 'grew from .* appended: appended' "$tmp/grown.log")" -ne 2 ]; then
  cat "$tmp/grown.log"; echo "abi: members appended to csal3d_sampler_options and csal3d_selection were refused (exit $rc)"; exit 1
fi

# A small library and its variants. Its private header lib/core/t.h has the base name
# of its public one, as lib/core/context.h has include/csal3d/context.h.
cat > "$tmp/t.h" <<'H'
#include <stddef.h>
#include <stdint.h>
typedef struct csal3d_t_options {
  size_t struct_size;
  int a; /*MID*/
  int64_t n;
  int k;
  /*END*/
} csal3d_t_options;
typedef struct csal3d_pt { int x; int y; /*PTEND*/ } csal3d_pt;
typedef struct csal3d_h csal3d_h;
typedef enum csal3d_kind { CSAL3D_K0, CSAL3D_K1 /*ENUM*/ } csal3d_kind;
int csal3d_t_run(const csal3d_t_options *o);
int csal3d_t_pt(const csal3d_pt *p);
int csal3d_t_kind(csal3d_kind k);
int csal3d_h_get(const csal3d_h *h);
int csal3d_t_gone(void);
int csal3d_t_added(void);
H
echo 'struct csal3d_h { int a; /*PRIV*/ int b; };' > "$tmp/p.h"
cat > "$tmp/t.c" <<'C'
#include "csal3d/t.h"
#include "core/t.h"
int csal3d_t_run(const csal3d_t_options *o) { return (int)o->struct_size; }
int csal3d_t_pt(const csal3d_pt *p) { return p->x; }
int csal3d_t_kind(csal3d_kind k) { return (int)k; }
int csal3d_h_get(const csal3d_h *h) { return h->b; }
#ifndef GONE
int csal3d_t_gone(void) { return 1; }
#endif
#ifdef ADDED
int csal3d_t_added(void) { return 2; }
#endif
C
build() { # name sed-for-t.h sed-for-p.h cflags
  d="$tmp/$1"
  mkdir -p "$d/include/csal3d" "$d/lib/core"
  sed "$2" "$tmp/t.h" > "$d/include/csal3d/t.h"
  sed "$3" "$tmp/p.h" > "$d/lib/core/t.h"
  cp "$tmp/t.c" "$d/"
  (cd "$d" && ${CC:-cc} -g -O0 -shared -fPIC -Iinclude -Ilib $4 -o libt.so t.c) ||
    { echo "abi: building variant $1 failed"; exit 1; }
}
build base "" "" ""
sh "$check" --dump "$tmp/base.abi" "$tmp/base/libt.so" "$tmp/base/include/csal3d" >/dev/null ||
  { echo "abi: abidw of the small library failed"; exit 1; }
cases=0
expect() { # name expected-exit what sed-for-t.h sed-for-p.h cflags
  build "$1" "$4" "$5" "$6"
  sh "$check" "$tmp/base.abi" "$tmp/$1/libt.so" "$tmp/$1/include/csal3d" > "$tmp/$1.log" 2>&1
  got=$?
  if [ $got -ne "$2" ]; then
    cat "$tmp/$1.log"; echo "abi: $3: abi-check exit $got, expected $2"; exit 1
  fi
  cases=$((cases + 1))
}
expect same 0 "the same library" "" "" ""
expect append 0 "a member appended to an options struct" 's|/\*END\*/|int64_t late;|' "" ""
expect added 0 "a function added" "" "" "-DADDED"
expect enum_add 0 "an enumerator added at the end" 's|/\*ENUM\*/|, CSAL3D_K2|' "" ""
expect opaque 0 "an opaque handle's private definition changed" "" 's|/\*PRIV\*/|double extra;|' ""
expect gone 1 "a function removed" "" "" "-DGONE"
expect middle 1 "a member inserted in the middle" 's|/\*MID\*/|int b;|' "" ""
expect append_retyped 1 "a member appended and an earlier one retyped" \
  's|int k;|long k;|; s|/\*END\*/|int64_t late;|' "" ""
expect append_swapped 1 "a member appended and two earlier ones swapped" \
  's|int a; /\*MID\*/|int K;|; s|^  int k;|  int a;|; s|int K;|int k;|; s|/\*END\*/|int64_t late;|' "" ""
expect tail_padding 1 "a member put into the old tail padding" 's|/\*END\*/|int late;|' "" ""
expect plain_struct 1 "a struct without struct_size grew" 's|/\*PTEND\*/|int z;|' "" ""
expect enum_renumbered 1 "an enumerator inserted before others" 's|CSAL3D_K0, CSAL3D_K1|CSAL3D_K0, CSAL3D_KX, CSAL3D_K1|' "" ""
grep -q "incompatible" "$tmp/gone.log" || { cat "$tmp/gone.log"; echo "abi: a removed function was not called incompatible"; exit 1; }
grep -q "csal3d_t_options grew from 32 to 40 bytes, appended: late" "$tmp/append.log" ||
  { cat "$tmp/append.log"; echo "abi: the appended member was not reported"; exit 1; }
echo "abi: $lib matches abi/libcsal3d.abi; abi-check refused a removed csal3d_version, took appended members, and judged $cases small-library variants as expected"
