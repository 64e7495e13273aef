#!/bin/sh
# The ABI check of libcsal3d against its baseline (abi/README.md), with abigail-tools.
#
#   sh scripts/abi_check.sh BASELINE NEW HEADERS          (make abi-check)
#   sh scripts/abi_check.sh --dump BASELINE LIB HEADERS   (make abi-dump)
#
# NEW is the built library (or an abidw dump of one); HEADERS the folder of its public
# headers, so that only the types they declare count. Exit status: 0 compatible, 1 an ABI
# change that is not an allowed addition, 2 a tool or usage error, 77 skipped (no
# abidw/abidiff, no python, or a library built without debug information).
#
# Allowed: added functions and variables (abi/libcsal3d.abignore), added enumerators
# (libabigail counts them harmless), changes inside opaque handles (`typedef struct X X;`
# in the headers: their definition is private), and members appended to the structs
# that grow at the end (first member struct_size, or in GROWS_AT_END below) past their
# old size. That last rule is applied here and not with abidiff's
# `has_data_member_inserted_at = end`, which (libabigail 2.2) also hides any other change
# to a struct that grew: a member whose type changed, members swapped (tests/abi_test.sh).
set -u
here=$(dirname "$0")
PYTHON=${PYTHON:-/usr/bin/python3}
SUPPRESSIONS=${ABI_SUPPRESSIONS:-$here/../abi/libcsal3d.abignore}
# Records read back with a caller-given record size (sizeof as the caller compiled it)
# that have no struct_size member.
GROWS_AT_END=${ABI_GROWS_AT_END:-csal3d_selection csal3d_comparison_cell}

dump=0
if [ "${1:-}" = "--dump" ]; then dump=1; shift; fi
[ $# -eq 3 ] || { echo "usage: abi_check.sh [--dump] BASELINE LIB HEADERS" >&2; exit 2; }
baseline=$1 new=$2 headers=$3

skip() { echo "abi-check: SKIPPED: $*"; exit 77; }
for t in abidw abidiff; do
  command -v $t >/dev/null 2>&1 || skip "$t not found (Debian package abigail-tools)"
done
[ -d "$headers" ] || { echo "abi-check: no header folder $headers" >&2; exit 2; }
[ -f "$new" ] || { echo "abi-check: $new not found (build it first)" >&2; exit 2; }

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT

# One set of abidw options for the baseline and the library checked against it: only
# the exported interface and the types it reaches; paths as the build wrote them
# (relative: lib/..., include/csal3d/...), none of the machine's.
abi_dump() { # LIB OUT
  abidw --headers-dir "$headers" --drop-private-types --exported-interfaces-only \
    --no-corpus-path --no-comp-dir-path --no-elf-needed --out-file "$2" "$1"
}

case "$new" in
  *.abi) cp "$new" "$tmp/new.abi" ;;
  *)
    readelf -S --wide "$new" 2>/dev/null | grep -q '\.debug_info' ||
      skip "$new has no debug information (build with -g, the default CFLAGS)"
    abi_dump "$new" "$tmp/new.abi" || { echo "abi-check: abidw $new failed" >&2; exit 2; }
    ;;
esac

if [ $dump -eq 1 ]; then
  mkdir -p "$(dirname "$baseline")" && cp "$tmp/new.abi" "$baseline" || exit 2
  echo "abi-dump: wrote $baseline ($(grep -c '<elf-symbol ' "$baseline") symbols)"
  exit 0
fi
[ -f "$baseline" ] || { echo "abi-check: no baseline $baseline (make abi-dump)" >&2; exit 2; }
command -v "$PYTHON" >/dev/null 2>&1 || skip "$PYTHON not found"

# The structs that grow at the end, cut back to their size in the baseline: what was
# appended past the old end is allowed; everything before it must match.
"$PYTHON" - "$baseline" "$tmp/new.abi" "$tmp/cut.abi" "$GROWS_AT_END" <<'PY' || exit 2
import sys
import xml.etree.ElementTree as ET

base_path, new_path, out_path, listed = sys.argv[1:5]
listed = set(listed.split())


def definitions(root):
    found = {}
    for c in root.iter("class-decl"):
        if c.get("is-declaration-only") != "yes" and c.get("size-in-bits"):
            found.setdefault(c.get("name"), []).append(c)
    return found


def grows_at_end(c):
    member = c.find("data-member/var-decl")
    return c.get("name") in listed or (member is not None and member.get("name") == "struct_size")


base = definitions(ET.parse(base_path).getroot())
tree = ET.parse(new_path)
for name, decls in definitions(tree.getroot()).items():
    if name not in base or not grows_at_end(base[name][0]):
        continue
    old = int(base[name][0].get("size-in-bits"))
    for c in decls:
        if int(c.get("size-in-bits")) <= old:
            continue
        appended = [m for m in c.findall("data-member")
                    if int(m.get("layout-offset-in-bits", "0")) >= old]
        for m in appended:
            c.remove(m)
        if c is decls[0]:
            names = ", ".join(m.find("var-decl").get("name") for m in appended)
            print(f"abi-check: {name} grew from {old // 8} to {int(c.get('size-in-bits')) // 8} "
                  f"bytes, appended: {names or '(padding)'}")
        c.set("size-in-bits", str(old))
tree.write(out_path, encoding="unicode")
PY

# The suppressions: the file's, and the opaque handles of the headers.
cp "$SUPPRESSIONS" "$tmp/suppr" || exit 2
opaque=$(sed -n 's/^typedef struct \(csal3d_[A-Za-z0-9_]*\) \1;.*/\1/p' "$headers"/*.h | sort -u | paste -sd'|' -)
if [ -n "$opaque" ]; then
  printf '\n[suppress_type]\n  type_kind = struct\n  name_regexp = ^(%s)$\n' "$opaque" >> "$tmp/suppr"
fi

abidiff --suppressions "$tmp/suppr" --hd1 "$headers" --hd2 "$headers" \
  "$baseline" "$tmp/cut.abi" > "$tmp/report" 2>&1
rc=$?
# abidiff's exit status is a bit set: 1 error, 2 usage error, 4 ABI change, 8 incompatible
# change. Bit 8 alone is not enough: libabigail 2.2 sets it for removed functions and
# variables only, and a struct whose members moved or changed type sets just bit 4. What
# is allowed is suppressed above, so any change left fails.
if [ $((rc & 3)) -ne 0 ]; then
  cat "$tmp/report"; echo "abi-check: abidiff failed (exit $rc)"; exit 2
elif [ $((rc & 8)) -ne 0 ]; then
  cat "$tmp/report"; echo "abi-check: FAILED: incompatible ABI change against $baseline (abidiff exit $rc)"; exit 1
elif [ $((rc & 4)) -ne 0 ]; then
  cat "$tmp/report"; echo "abi-check: FAILED: ABI change that is not an allowed addition against $baseline (abidiff exit $rc)"; exit 1
fi
grep -E 'changes summary' "$tmp/report" | sed 's/^/abi-check: /'
echo "abi-check: $new is compatible with $baseline"
