#!/bin/sh
# Builds the NIfTI loader's libFuzzer target (tests/fuzz_nifti.c) with clang into
# build/fuzz_nifti: ASan + UBSan + libFuzzer, the loader's sources compiled in.
# Not part of make check; see tests/fuzz_nifti.c for how to run it.
set -eu
mkdir -p build
${CLANG:-clang} -g -O1 -std=c11 -D_GNU_SOURCE -DCSAL3D_BUILDING \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Iinclude -Ilib -I/usr/include/nifti \
  tests/fuzz_nifti.c lib/io/nifti.c lib/io/fileutil.c lib/volume/volume_io.c lib/volume/volume.c lib/volume/preprocess.c \
  lib/volume/views.c lib/volume/windows.c lib/core/alloc.c lib/core/error.c \
  lib/core/options.c lib/core/rng.c \
  -llapacke -lopenblas -lnifti2 -lznz -lz -lm -lpthread -o build/fuzz_nifti
echo "built build/fuzz_nifti"
