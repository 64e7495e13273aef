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
