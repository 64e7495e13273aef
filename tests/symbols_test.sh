#!/bin/sh
# The shared library exports the csal3d_ namespace and nothing else.
set -u
lib="${OUT_LIB:-lib}/libcsal3d.so.0"
[ -f "$lib" ] || { echo "symbols: $lib not built"; exit 1; }
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
[ -n "$syms" ] || { echo "symbols: nm found no exported symbols in $lib"; exit 1; }
leaks=$(echo "$syms" | grep -v '^csal3d_' | grep -v '^CSAL3D_0$')
if [ -n "$leaks" ]; then
  echo "symbols: exported outside the csal3d_ namespace:"; echo "$leaks"; exit 1
fi
# Every exported function is declared in a public header.
for s in $syms; do
  [ "$s" = CSAL3D_0 ] && continue
  grep -q "\b$s\b" include/csal3d/*.h || { echo "symbols: $s is exported but in no header"; exit 1; }
done
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = libcsal3d.so.0 ] || { echo "symbols: SONAME is '$soname'"; exit 1; }
echo "symbols: $(echo "$syms" | grep -c '^csal3d_') exported, all csal3d_*, SONAME $soname"
# The core library never links CUDA (the CUDA engine is a dlopen'ed plugin).
needed=$(objdump -p "$lib" | awk '/NEEDED/ {print $2}')
if echo "$needed" | grep -qiE 'cuda|cublas|cudnn'; then
  echo "symbols: the core library links CUDA:"; echo "$needed"; exit 1
fi
echo "symbols: NEEDED $(echo $needed | tr '\n' ' ')"

# The CUDA plugin, when built: versioned like the library, under the SONAME the core
# dlopens (C3_CUDA_PLUGIN_FILE), exporting its entry point and nothing else (no C++
# template instantiations).
plugin_dir="${OUT_LIB:-lib}"
plugin="$plugin_dir/libcsal3d-cuda.so"
if [ ! -e "$plugin" ] && ! ls "$plugin".* >/dev/null 2>&1; then
  echo "symbols: no CUDA plugin built (no nvcc or CUDA=0): its checks skipped"
  exit 0
fi
opened=$(sed -n 's/^#define C3_CUDA_PLUGIN_FILE "\(.*\)"/\1/p' lib/engine/cuda/plugin.h)
entry=$(sed -n 's/^#define C3_CUDA_PLUGIN_SYMBOL "\(.*\)"/\1/p' lib/engine/cuda/plugin.h)
for f in "$plugin" "$plugin_dir/$opened"; do
  [ -f "$f" ] || { echo "symbols: $f missing (the plugin and its links: ls $plugin_dir)"; exit 1; }
done
psoname=$(objdump -p "$plugin" | awk '/SONAME/ {print $2}')
[ "$psoname" = "$opened" ] || {
  echo "symbols: the plugin's SONAME is '$psoname', the core dlopens '$opened'"; exit 1; }
real=$(readlink -f "$plugin")
case "$real" in
  */libcsal3d-cuda.so.[0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "symbols: the plugin is $real, not a versioned file libcsal3d-cuda.so.X.Y.Z"; exit 1 ;;
esac
psyms=$(nm -D --defined-only "$plugin" | awk '{print $3}' | sed 's/@.*//' | sort -u)
pleaks=$(echo "$psyms" | grep -v "^$entry\$" | grep -v '^CSAL3D_CUDA_[0-9]*$')
if [ -n "$pleaks" ]; then
  echo "symbols: the CUDA plugin exports more than $entry:"; echo "$pleaks" | head -20; exit 1
fi
echo "$psyms" | grep -q "^$entry\$" || { echo "symbols: the CUDA plugin does not export $entry"; exit 1; }
echo "symbols: CUDA plugin $(basename "$real"), SONAME $psoname, exports only $entry"
