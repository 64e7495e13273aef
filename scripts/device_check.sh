#!/bin/bash
# The CUDA engine's device check: one command on a machine with an NVIDIA GPU.
#
#   bash scripts/device_check.sh            (from the repository root)
#
# 1. Finds the CUDA libraries (cuDNN may live in /usr/local/cuda or in a Python
#    package's nvidia/*/lib folder) and puts them on LD_LIBRARY_PATH.
# 2. Gets the programs:
#    - prebuilt: .devcarry/ (made by `scripts/device_check.sh --pack` on a build
#      machine with the same CUDA): the plugin, test_engine_cuda, test_engine,
#      bench_engine_cuda and the shared libraries they need that a bare CUDA machine
#      lacks (oneDNN, OpenCL loader, subunit, libgomp);
#    - else, with the Debian -dev packages present: make -j16;
#    - else only the plugin (nvcc), to show that it builds; no tests can run.
# 3. Runs tests/test_engine_cuda (CUDA vs CPU engine op by op, fp32/tf32/bf16),
#    tests/test_engine (every engine vs float64 + finite differences), the benchmark,
#    the model's MONAI parity test and its benchmark on the CUDA engine (copies of
#    tests/test_model_parity.c and tests/bench_model.c opening the CUDA device), and
#    compute-sanitizer memcheck on the small cases; logs go to $OUT (or
#    /tmp/c3_device_check). The last lines printed are the tables.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${1:-}" = "--pack" ]; then
  # On the build machine: build and collect what the device run needs. The plugin's
  # objects are rebuilt from scratch (a stale object compiled against an older
  # cuda_internal.h once shifted the engine state's fields under the others).
  rm -f build/lib/engine/cuda/*.o lib/libcsal3d-cuda.so*
  make -j2 lib/libcsal3d-cuda.so build/tests/test_engine_cuda build/tests/test_engine \
    build/tests/bench_engine_cuda || exit 1
  rm -rf .devcarry && mkdir -p .devcarry/bin .devcarry/lib
  cp lib/libcsal3d-cuda.so build/tests/test_engine_cuda build/tests/test_engine \
    build/tests/bench_engine_cuda .devcarry/bin/
  for l in libdnnl.so.2 libOpenCL.so.1 libsubunit.so.0 libgomp.so.1; do
    p=$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64/ {print $NF; exit}')
    [ -n "$p" ] && cp -L "$p" .devcarry/lib/
  done
  xz -T2 -6 .devcarry/lib/libdnnl.so.2 # 40 MB -> 7 MB; the device run unpacks it
  # the model's MONAI parity test, opening the CUDA engine instead of the CPU one
  if [ -f tests/test_model_parity.c ]; then
    mkdir -p build/device
    sed 's/c3_engine_open(CSAL3D_DEVICE_CPU, 0, &e)/c3_engine_open(CSAL3D_DEVICE_CUDA, 0, \&e)/' \
      tests/test_model_parity.c > build/device/test_model_parity_cuda.c
    grep -q 'CSAL3D_DEVICE_CUDA' build/device/test_model_parity_cuda.c &&
      cc -std=c11 -D_GNU_SOURCE -fopenmp -O2 -g -Iinclude -Ilib -Itests -I/usr/include/nifti \
        $(pkg-config --cflags check) -o .devcarry/bin/test_model_parity_cuda \
        build/device/test_model_parity_cuda.c lib/libcsal3d.a -fopenmp \
        $(pkg-config --libs zlib jansson lapacke openblas) -ldnnl -lnifti2 -lniftiio -lznz \
        -lgomp -lm -ldl -lpthread $(pkg-config --libs check)
    # the model benchmark on the CUDA engine (same program, other device)
    if [ -f tests/bench_model.c ]; then
      sed -e 's/c3_engine_open(CSAL3D_DEVICE_CPU, 0, &e)/c3_engine_open(CSAL3D_DEVICE_CUDA, 0, \&e)/' \
          -e 's/CPU engine, %d threads/CUDA engine (%d host threads)/' \
        tests/bench_model.c > build/device/bench_model_cuda.c
      grep -q 'CSAL3D_DEVICE_CUDA' build/device/bench_model_cuda.c &&
        cc -std=c11 -D_GNU_SOURCE -fopenmp -O2 -g -Iinclude -Ilib -Itests -I/usr/include/nifti \
          -o .devcarry/bin/bench_model_cuda build/device/bench_model_cuda.c lib/libcsal3d.a \
          -fopenmp $(pkg-config --libs zlib jansson lapacke openblas) -ldnnl -lnifti2 -lniftiio \
          -lznz -lgomp -lm -ldl -lpthread
    fi
    ref=${CSAL3D_REFERENCE_DIR:-../shared/reference}
    mkdir -p .devcarry/reference
    for f in ssl_tiny_cube ssl_tiny_noncubic; do
      [ -f "$ref/$f.safetensors" ] && cp "$ref/$f.safetensors" .devcarry/reference/
    done
    for l in $(ldd .devcarry/bin/test_model_parity_cuda | awk '/=>/ {print $1}'); do
      case $l in libjansson*|liblapacke*|libopenblas*|libnifti*|libznz*|libgfortran*|liblapack.so*|libblas*)
        cp -L "$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64/ {print $NF; exit}')" .devcarry/lib/ ;;
      esac
    done
  fi
  grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
  du -sh .devcarry
  exit 0
fi

OUT=${OUT:-/tmp/c3_device_check}
mkdir -p "$OUT"
T0=$(date +%s)
log() { echo "[$(($(date +%s) - T0))s] $*"; }

log "device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
log "nvcc: $(nvcc --version 2>/dev/null | tail -1)"

# ---- CUDA libraries --------------------------------------------------------------------
libdirs=""
find_lib() {
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
           /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib \
           /usr/local/lib/python3*/dist-packages/nvidia/*/lib /usr/lib/python3/dist-packages/nvidia/*/lib; do
    [ -e "$d/$1" ] && { echo "$d"; return 0; }
  done
  p=$(timeout 30 find / -xdev -name "$1" -not -path '/proc/*' 2>/dev/null | head -1)
  [ -n "$p" ] && { dirname "$p"; return 0; }
  return 1
}
for l in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
  if d=$(find_lib "$l"); then
    case ":$libdirs:" in *":$d:"*) ;; *) libdirs="$libdirs:$d" ;; esac
    log "$l in $d"
  else
    log "MISSING $l"
  fi
done
export LD_LIBRARY_PATH="${libdirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---- programs ---------------------------------------------------------------------------
mode=""
if [ -x .devcarry/bin/test_engine_cuda ]; then
  mode=prebuilt
  mkdir -p /tmp/c3_devlib
  for z in .devcarry/lib/*.xz; do [ -f "$z" ] && xz -d -c "$z" > "/tmp/c3_devlib/$(basename "$z" .xz)"; done
  BIN=$ROOT/.devcarry/bin
  PLUGIN=$BIN/libcsal3d-cuda.so
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$ROOT/.devcarry/lib:/tmp/c3_devlib"
  if ldd "$BIN/test_engine_cuda" "$PLUGIN" | grep -q 'not found'; then
    ldd "$BIN/test_engine_cuda" "$PLUGIN" | grep 'not found'
    log "prebuilt programs miss libraries: building here instead"
    mode=""
  fi
fi
if [ -z "$mode" ]; then
  if dpkg -s libdnnl-dev check libnifti2-dev >/dev/null 2>&1; then
    mode=built
    log "building with make -j16"
    make -j16 all build/tests/bench_engine_cuda > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
    BIN=$ROOT/build/tests
    PLUGIN=$ROOT/lib/libcsal3d-cuda.so
  else
    log "no oneDNN / Check / nifti -dev packages and no prebuilt programs: building the plugin only"
    make -j16 lib/libcsal3d-cuda.so > "$OUT/build.log" 2>&1; rc=$?
    tail -5 "$OUT/build.log"
    log "plugin build exit $rc; the tests need the CPU engine (oneDNN): run --pack on a build machine"
    exit $rc
  fi
fi
export CSAL3D_CUDA_PLUGIN=$PLUGIN
log "mode $mode; plugin $PLUGIN"

# ---- runs ----------------------------------------------------------------------------------
log "test_engine_cuda (CUDA vs CPU engine, every op, fp32/tf32/bf16)"
timeout ${C3_T_CUDA:-200} "$BIN/test_engine_cuda" > "$OUT/test_engine_cuda.log" 2>&1
rc_cuda=$?
log "test_engine_cuda exit $rc_cuda"
log "test_engine (every engine vs float64 reference and finite differences)"
C3_TEST_ENGINE_VERBOSE=0 timeout ${C3_T_ENGINE:-100} "$BIN/test_engine" > "$OUT/test_engine.log" 2>&1
rc_eng=$?
log "test_engine exit $rc_eng"
log "bench_engine_cuda"
C3_BENCH_REPS=${C3_BENCH_REPS:-10} timeout ${C3_T_BENCH:-100} "$BIN/bench_engine_cuda" > "$OUT/bench.log" 2>&1
rc_bench=$?
log "bench exit $rc_bench"
rc_par=skipped
if [ -x "$BIN/test_model_parity_cuda" ] && [ -d .devcarry/reference ]; then
  log "MONAI parity of the model on the CUDA engine"
  CSAL3D_PARITY_DEVICE=cuda CSAL3D_REFERENCE_DIR=$ROOT/.devcarry/reference timeout ${C3_T_PARITY:-90} \
    "$BIN/test_model_parity_cuda" > "$OUT/parity.log" 2>&1
  rc_par=$?
  log "parity exit $rc_par"
fi
rc_model=skipped
if [ -x "$BIN/bench_model_cuda" ]; then
  for prec in fp32 tf32; do
    log "model benchmark on the CUDA engine ($prec)"
    CSAL3D_CUDA_PRECISION=$prec CSAL3D_BENCH_SIDES=64,128 CSAL3D_BENCH_REPS=3 \
      timeout ${C3_T_MODEL:-60} "$BIN/bench_model_cuda" > "$OUT/bench_model_$prec.log" 2>&1
    rc_model=$?
    log "model benchmark exit $rc_model"
  done
fi
log "bench_engine_cuda baseline: fp32 with the GEMM convolutions and fused attention off"
C3_BENCH_PREC=fp32 CSAL3D_CUDA_CONV_GEMM=0 CSAL3D_CUDA_ATTN=ref C3_BENCH_REPS=${C3_BENCH_REPS:-10} \
  timeout ${C3_T_BENCH:-100} "$BIN/bench_engine_cuda" > "$OUT/bench_baseline.log" 2>&1
rc_san=skipped
if command -v compute-sanitizer >/dev/null && [ "${C3_SANITIZE:-1}" = 1 ]; then
  log "compute-sanitizer memcheck, small cases"
  C3_TEST_CUDA_SMALL=1 timeout ${C3_T_SAN:-60} compute-sanitizer --tool memcheck --print-limit 20 \
    "$BIN/test_engine_cuda" > "$OUT/memcheck.log" 2>&1
  rc_san=$?
  log "memcheck exit $rc_san"
fi

# ---- report ---------------------------------------------------------------------------------
echo
echo "==== test_engine: failures and summary"
grep -E 'FAIL|Checks:|SKIP' "$OUT/test_engine.log" | head -30
echo "==== model parity on CUDA"
grep -E 'engine:|PASS|FAIL|SKIP|max relative' "$OUT/parity.log" 2>/dev/null | head -12
echo "==== memcheck"
grep -E 'ERROR SUMMARY|Invalid|FAIL|Checks:' "$OUT/memcheck.log" 2>/dev/null | head -12
echo "==== test_engine_cuda: failures"
grep -E 'FAIL|Checks:|SKIP|scratch' "$OUT/test_engine_cuda.log" | head -40
echo "==== test_engine_cuda: largest error per op"
sed -n '/^op  *cases/,$p' "$OUT/test_engine_cuda.log"
echo "==== model benchmark (CUDA engine)"
for prec in fp32 tf32; do
  [ -f "$OUT/bench_model_$prec.log" ] && { echo "-- $prec"; cat "$OUT/bench_model_$prec.log"; }
done
echo "==== bench baseline (fp32, reference paths): conv k=stride and attention rows"
grep -E '^(conv3d  .*(k2 s2|k1 s1)|attention)' "$OUT/bench_baseline.log"
echo "==== bench"
cat "$OUT/bench.log" | tail -80
echo
log "exit codes: test_engine_cuda $rc_cuda, test_engine $rc_eng, bench $rc_bench, parity $rc_par, model bench $rc_model, memcheck $rc_san"
[ "$rc_cuda" = 0 ] && [ "$rc_eng" = 0 ] && [ "$rc_bench" = 0 ]
