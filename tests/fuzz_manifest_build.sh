#!/bin/sh
# Builds the libFuzzer targets of the pipeline's readers with clang into build/:
# build/fuzz_scores (the scores file), build/fuzz_dataset_names (label and channel
# names of a dataset.json), build/fuzz_score_journal (the resume journal of scoring) and
# build/fuzz_dataset_list (dataset list files and CSVs). The readers
# (lib/pipeline/scores.c, nnunet.c, journal.c, dataset.c, lib/io/fileutil.c,
# safetensors.c) are compiled with ASan + UBSan + libFuzzer coverage; the rest comes
# from the static library (run `make` first). Not part of make check; see the four
# tests/fuzz_*.c files for how to run them.
set -eu
[ -f lib/libcsal3d.a ] || { echo "run make first (needs lib/libcsal3d.a)"; exit 1; }
CLANG=${CLANG:-clang}
FLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -DCSAL3D_BUILDING -Iinclude -Ilib -I/usr/include/nifti"
SRC="lib/pipeline/scores.c lib/pipeline/nnunet.c lib/io/fileutil.c lib/io/safetensors.c lib/pipeline/manifest.c lib/pipeline/journal.c lib/pipeline/dataset.c"
LIBS="lib/libcsal3d.a $(pkg-config --libs zlib jansson lapacke openblas) -ldnnl -lnifti2 -lniftiio -lznz -lgomp -lm -ldl -lpthread"
for t in fuzz_scores fuzz_dataset_names fuzz_score_journal fuzz_dataset_list; do
  # shellcheck disable=SC2086
  $CLANG $FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    tests/$t.c $SRC $LIBS -o build/$t
  echo "built build/$t"
done
