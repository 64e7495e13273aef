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

# Third-party headers that belong to one stage: "pattern folder..." (a prefix match on
# the name inside <>).
third_party() {
  case "$1" in
    oneapi/dnnl*) echo "engine/cpu" ;;
    cuda*|cudnn*|cublas*|nccl*) echo "engine/cuda" ;;
    nifti*|znzlib*) echo "io" ;;
    *) echo "*" ;;
  esac
}

# Prints a FAIL line for every include under ROOT/lib and ROOT/examples that breaks
# the rules (the table: docs/layout.md).
check_tree() {
  root=$1
  find "$root/lib" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) |
    sort | while IFS= read -r f; do
    rel=${f#"$root"/lib/}
    dir=$(dirname "$rel")
    ok=$(allowed "$dir")
    if [ "$ok" = "?" ]; then
      echo "FAIL: lib/$rel: lib/$dir is not in tests/layers_test.sh's table (add it at its floor)"
      continue
    fi
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]' "$f" | while IFS= read -r line; do
      n=${line%%:*}
      inc=$(echo "$line" | sed 's/^[0-9]*:[[:space:]]*#[[:space:]]*include[[:space:]]*//')
      case "$inc" in
        \"*)
          name=$(echo "$inc" | sed 's/^"\([^"]*\)".*/\1/')
          top=${name%%/*}
          [ "$top" = "csal3d" ] && continue
          if [ "$top" = "$name" ]; then
            echo "FAIL: lib/$rel:$n: include \"$name\" without its folder"
            continue
          fi
          case " $ok " in
            *" $top "*) ;;
            *) echo "FAIL: lib/$rel:$n: lib/$dir includes \"$name\": $top is not below $dir (allowed: $ok)" ;;
          esac ;;
        \<*)
          name=$(echo "$inc" | sed 's/^<\([^>]*\)>.*/\1/')
          where=$(third_party "$name")
          [ "$where" = "*" ] && continue
          case " $where " in
            *" $dir "*) ;;
            *) echo "FAIL: lib/$rel:$n: <$name> belongs to lib/$where only, not lib/$dir" ;;
          esac ;;
      esac
    done
  done
  # The tool and the examples: the public csal3d/ headers and their own files only.
  find "$root/examples" -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null | sort |
    while IFS= read -r f; do
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r line; do
      n=${line%%:*}
      name=$(echo "$line" | sed 's/.*include[[:space:]]*"\([^"]*\)".*/\1/')
      case "$name" in
        csal3d/*) ;;
        */*) echo "FAIL: ${f#"$root"/}:$n: includes \"$name\"; the tool may use only the public csal3d/ headers" ;;
      esac
    done
  done
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
if [ "$fails" -ne 0 ]; then
  echo "layers_test: $fails include(s) break the layering (docs/layout.md)"
  exit 1
fi
echo "layers_test: every include of lib/ and examples/ follows docs/layout.md"
exit 0
