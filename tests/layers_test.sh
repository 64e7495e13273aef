#!/bin/sh
# The layering of lib/ (docs/layout.md): each folder may include only the folders of the
# floors below it, never one above; third-party headers only where their stage is; the
# tool and the bindings only the public headers. Fails, naming the file and the line,
# when an include breaks the rule, and when a folder of lib/ is not in the table below.
set -u
cd "$(dirname "$0")/.."

# folder: the lib/ folders its files may include ("csal3d/" public headers always).
allowed() {
  case "$1" in
    core) echo "core" ;;
    io) echo "core io" ;;
    volume) echo "core io volume" ;;
    engine|engine/cpu|engine/cuda) echo "core io volume engine" ;;
    model) echo "core io volume engine model" ;;
    uncertainty) echo "core io volume engine model uncertainty" ;;
    sampling) echo "core io sampling" ;;
    pipeline) echo "core io volume engine model uncertainty sampling pipeline" ;;
    *) echo "?" ;;
  esac
}

# Third-party headers that belong to one stage (checked in check_tree's awk): oneDNN
# in engine/cpu; CUDA, cuDNN, cuBLAS, NCCL in engine/cuda; nifticlib in io.

# Prints a FAIL line for every include under ROOT/lib and ROOT/examples that breaks
# the rules (the table: docs/layout.md).
check_tree() {
  root=$1
  table=""
  for d in $(find "$root/lib" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) |
             sed "s|^$root/lib/||; s|/[^/]*\$||" | sort -u); do
    table="$table$d=$(allowed "$d" | tr ' ' ,);"
  done
  find "$root/lib" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) |
    sort | xargs awk -v root="$root/lib/" -v table="$table" '
    BEGIN {
      n = split(table, rows, ";")
      for (i = 1; i <= n; i++) if (rows[i] != "") {
        split(rows[i], kv, "="); allow[kv[1]] = "," kv[2] ","
      }
    }
    FNR == 1 {
      rel = FILENAME; sub("^" root, "", rel)
      dir = rel; sub(/\/[^\/]*$/, "", dir)
      if (allow[dir] == ",?,") print "FAIL: lib/" rel ": lib/" dir " is not in tests/layers_test.sh'"'"'s table (add it at its floor)"
    }
    allow[dir] == ",?," { next }
    /^[ \t]*#[ \t]*include[ \t]*"/ {
      name = $0; sub(/^[^"]*"/, "", name); sub(/".*/, "", name)
      top = name; sub(/\/.*/, "", top)
      if (top == "csal3d") next
      if (top == name) { print "FAIL: lib/" rel ":" FNR ": include \"" name "\" without its folder"; next }
      if (index(allow[dir], "," top ",") == 0)
        print "FAIL: lib/" rel ":" FNR ": lib/" dir " includes \"" name "\": " top " is not below " dir " (allowed: " allow[dir] ")"
      next
    }
    /^[ \t]*#[ \t]*include[ \t]*</ {
      name = $0; sub(/^[^<]*</, "", name); sub(/>.*/, "", name)
      where = ""
      if (name ~ /^oneapi\/dnnl/) where = "engine/cpu"
      else if (name ~ /^(cuda|cudnn|cublas|nccl)/) where = "engine/cuda"
      else if (name ~ /^(nifti|znzlib)/) where = "io"
      if (where != "" && where != dir)
        print "FAIL: lib/" rel ":" FNR ": <" name "> belongs to lib/" where " only, not lib/" dir
    }'
  # The tool and the examples: the public csal3d/ headers and their own files only.
  find "$root/examples" -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null | sort |
    xargs -r awk -v root="$root/" '
    /^[ \t]*#[ \t]*include[ \t]*"/ {
      name = $0; sub(/^[^"]*"/, "", name); sub(/".*/, "", name)
      if (name ~ /\// && name !~ /^csal3d\//) {
        f = FILENAME; sub("^" root, "", f)
        print "FAIL: " f ":" FNR ": includes \"" name "\"; the tool may use only the public csal3d/ headers"
      }
    }'
}

# The check must be able to fail: a copy with one include going up, one third-party
# header in the wrong place and one folder missing from the table.
probe=$(mktemp -d /tmp/csal3d_layers_XXXXXX)
trap 'rm -rf "$probe"' EXIT
mkdir -p "$probe/lib/io" "$probe/lib/model" "$probe/lib/attic" "$probe/examples"
printf '#include "model/model.h"\n' > "$probe/lib/io/up.c"
printf '#include <oneapi/dnnl/dnnl.h>\n' > "$probe/lib/model/dnnl.c"
printf '#include "core/error.h"\n' > "$probe/lib/attic/old.c"
printf '#include "core/error.h"\n' > "$probe/examples/tool.c"
want=4
got=$(check_tree "$probe" | grep -c '^FAIL')
if [ "$got" -ne "$want" ]; then
  echo "FAIL: the check found $got of the $want planted violations:"
  check_tree "$probe"
  exit 1
fi

out=$(check_tree .)
fails=$(printf '%s' "$out" | grep -c '^FAIL')
[ -n "$out" ] && printf '%s\n' "$out"

# Calls, not only includes: every c3_/csal3d_ symbol an object of lib/ uses must be
# defined in its own folder or one it may include (a public function of a floor above,
# called through its public header, breaks the layering as much as an include does).
# Needs the build's objects ($BUILD, default build); skipped where there are none.
objdir=${BUILD:-build}/lib
if [ -d "$objdir" ] && command -v nm >/dev/null 2>&1; then
  # the objects of sources that still exist (not the stale ones of moved files)
  objs=$(find "$objdir" -name '*.o' -not -path '*/cuda/*' | sort | while IFS= read -r o; do
    rel=${o#"$objdir"/}
    [ -f "lib/${rel%.o}.c" ] && echo "$o"
  done)
  table=""
  for d in $(printf '%s\n' $objs | sed "s|^$objdir/||; s|/[^/]*\$||" | sort -u); do
    table="$table$d=$(allowed "$d" | tr ' ' ,)$([ "$d" = engine ] && echo ,engine/cpu);"
  done
  # nm -A prints "object: address type symbol" (no address for undefined ones)
  calls=$( { nm -A -g --defined-only $objs | awk '{print "D", $1, $NF}'
             nm -A -u $objs | awk '{print "U", $1, $NF}'; } |
    awk -v objdir="$objdir/" -v table="$table" '
    BEGIN {
      n = split(table, rows, ";")
      for (i = 1; i <= n; i++) if (rows[i] != "") {
        split(rows[i], kv, "="); allow[kv[1]] = "," kv[2] ","
      }
    }
    $3 !~ /^(c3_|csal3d_)/ { next }
    {
      o = $2; sub(/:$/, "", o); sub("^" objdir, "", o)
      d = o; sub(/\/[^\/]*$/, "", d)
      if ($1 == "D") def[$3] = d
      else { n_use++; use_sym[n_use] = $3; use_dir[n_use] = d; use_obj[n_use] = o }
    }
    END {
      for (i = 1; i <= n_use; i++) {
        s = use_sym[i]
        if (!(s in def)) continue
        w = def[s]; top = w; sub(/\/.*/, "", top); d = use_dir[i]
        if (w == d || index(allow[d], "," w ",") || index(allow[d], "," top ",")) continue
        src = use_obj[i]; sub(/\.o$/, ".c", src)
        print "FAIL: lib/" src " calls " s " of lib/" w ", which is not below lib/" d
      }
    }' | sort -u)
  if [ -n "$calls" ]; then
    printf '%s\n' "$calls"
    fails=$((fails + $(printf '%s\n' "$calls" | grep -c '^FAIL')))
  fi
else
  echo "layers_test: no objects in $objdir; the calls between floors were not checked"
fi
if [ "$fails" -ne 0 ]; then
  echo "layers_test: $fails include(s) or call(s) break the layering (docs/layout.md)"
  exit 1
fi
echo "layers_test: every include and call of lib/ and every include of examples/ follow docs/layout.md"
exit 0
