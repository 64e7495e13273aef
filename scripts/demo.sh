#!/bin/sh
# make demo: the end-to-end demonstration on synthetic data (after `make deps` and the
# build). Generates the phantom CT dataset, pretrains a small model briefly, scores every
# case, selects the cases to annotate and prints them with their anatomy types, so that
# one can see whether the selection covers the rare ones, and ends with the report page
# ($DIR/report.html: the choice beside a random one), printing its path. Everything goes to
# $CSAL3D_DEMO_DIR (default build/demo). Run it directly to pass options to `csal3d demo`,
# e.g. `sh scripts/demo.sh --iterations 200` (`sh scripts/demo.sh --help` lists them).
set -u
DIR=${CSAL3D_DEMO_DIR:-build/demo}
BIN=bin/csal3d
PY=${PYTHON:-/usr/bin/python3}
[ -x "$BIN" ] || { echo "demo: $BIN is not built (run make)"; exit 1; }
case " $* " in *" --help "*|*" -h "*) exec "$BIN" demo --help ;; esac
start=$(date +%s)
echo "libcsal3d $("$BIN" --version | awk '{print $2}'): cold-start active learning demo"
"$BIN" info | sed 's/^/  /'
# shellcheck disable=SC2086,SC2068
"$BIN" demo --dir "$DIR" "$@" || exit $?

# The phantom's dataset.json says what each case is: show the choice against the
# dataset's composition (a good cold-start choice covers the rare anatomy types).
if "$PY" -c 'import json' 2>/dev/null; then
  "$PY" - "$DIR/phantom/dataset.json" "$DIR/selection.json" <<'EOF'
import json, sys
from collections import Counter
meta = {c["case"]: c for c in json.load(open(sys.argv[1]))["phantom"]}
sel = json.load(open(sys.argv[2]))
picked = [meta[e["case"]] for e in sel["selection"]]
total = Counter(c["type"] for c in meta.values())
chosen = Counter(c["type"] for c in picked)
print("\nwhat was chosen (from the phantom's ground truth, unknown to the method):")
print(f"  {'anatomy type':<22} {'in dataset':>10} {'chosen':>7}")
for t, n in total.most_common():
    print(f"  {t:<22} {n:>10} {chosen.get(t, 0):>7}")
hard = sum(c["hard"] for c in picked)
print(f"  {len(chosen)} of {len(total)} anatomy types covered; {hard} of {len(picked)} chosen "
      f"cases are hard ({sum(c['hard'] for c in meta.values())} of {len(meta)} in the dataset)")
EOF
fi
echo
echo "make demo: finished in $(($(date +%s) - start)) s; outputs in $DIR/"
echo "report: $DIR/report.html (open it in a browser)"
