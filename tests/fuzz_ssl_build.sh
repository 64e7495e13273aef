#!/bin/sh
# Builds build/fuzz_ssl_metadata (see tests/fuzz_ssl_metadata.c) with clang: the
# checkpoint-metadata readers (lib/model/ssl_api.c, lib/model/ssl_data.c, lib/model/params.c,
# lib/io/safetensors.c) are compiled with ASan + UBSan + libFuzzer coverage; the rest
# comes from the static library (run `make` first). Not part of make check.
set -eu
[ -f lib/libcsal3d.a ] || { echo "run make first (needs lib/libcsal3d.a)"; exit 1; }
CLANG=${CLANG:-clang}
FLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -DCSAL3D_BUILDING -fopenmp -Iinclude -Ilib -I/usr/include/nifti"
SRC="lib/model/ssl_api.c lib/model/ssl_data.c lib/model/params.c lib/io/safetensors.c"
LIBS="lib/libcsal3d.a $(pkg-config --libs zlib jansson lapacke openblas) -ldnnl -lnifti2 -lniftiio -lznz -lgomp -lm -ldl -lpthread"
mkdir -p build
# shellcheck disable=SC2086
$CLANG $FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wl,--allow-multiple-definition tests/fuzz_ssl_metadata.c $SRC $LIBS -o build/fuzz_ssl_metadata
echo "built build/fuzz_ssl_metadata"
