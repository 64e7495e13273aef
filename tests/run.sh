#!/bin/sh
# Runs every test suite and prints one closing line: "N passed, N failed, N skipped".
# Arguments: the Check test programs. Also runs tests/*_test.sh and the Python tests.
# A suite passes with exit 0, is skipped with exit 77, fails otherwise.
# Environment: BUILD, OUT_LIB, PYTHON, SANITIZE (non-empty under make asan), CUDA.
set -u
passed=0 failed=0 skipped=0 failures=""

started=$(date +%s)
record() { # name rc; the suite's wall time in brackets (to keep CI within its budget)
  now=$(date +%s)
  took="[$((now - started)) s]"
  started=$now
  case "$2" in
    0) passed=$((passed + 1)); echo "PASS: $1 $took" ;;
    77) skipped=$((skipped + 1)); echo "SKIP: $1 $took" ;;
    *) failed=$((failed + 1)); failures="$failures $1"; echo "FAIL: $1 (exit $2) $took" ;;
  esac
}

export CK_FORK=${CK_FORK:-yes}
# Check's per-test timeouts guard against hangs, not slowness: its 4 s default failed
# loading the CUDA plugin (cuDNN is large), and suites' own 60-120 s limits failed
# gradient checks, on a machine loaded 5x. Every limit is multiplied by 4 (Check's
# CK_TIMEOUT_MULTIPLIER); the default becomes 30 s x 4.
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-30}
export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
export CSAL3D_TEST_CUDA_PLUGIN="$(pwd)/$OUT_LIB/libcsal3d-cuda.so"
for t in "$@"; do
  echo "== $t"
  "$t"
  record "$(basename "$t")" $?
done

for t in tests/*_test.sh; do
  [ -f "$t" ] || continue
  echo "== $t"
  sh "$t"
  record "$(basename "$t")" $?
done

if [ -n "${SANITIZE:-}" ]; then
  echo "SKIP: python tests (not run under sanitizers: the interpreter is not instrumented)"
  skipped=$((skipped + 1))
else
  echo "== python tests"
  CSAL3D_LIBRARY="$(pwd)/$OUT_LIB/libcsal3d.so.0" PYTHONPATH="$(pwd)/bindings/python" \
    "${PYTHON:-/usr/bin/python3}" -m unittest discover -s bindings/python/tests -t bindings/python
  record python $?
fi

[ -n "$failures" ] && echo "failed:$failures"
echo "csal3d tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
