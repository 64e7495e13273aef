#!/bin/sh
# `csal3d report` end to end, checked as a person would: the tool on a small fixture
# (images, maps, scores, two manifests, evaluation results written by
# `test_report --fixture`), its exit codes and messages, a page that refers to nothing
# outside itself, and the page rendered by headless Chromium: the screenshot (decoded by
# libpng through `test_report --png-stats`) must show content, with the many colours of the
# slices and plots. Without chromium that last part prints SKIP (exit 77 when the rest
# passed). A few seconds.
set -u
OUT_LIB=${OUT_LIB:-lib}
BUILD=${BUILD:-build}
BIN="${OUT_LIB%lib}bin/csal3d"
T="$BUILD/tests/test_report"
[ -x "$BIN" ] || { echo "report_test: $BIN not built"; exit 1; }
[ -x "$T" ] || { echo "report_test: $T not built"; exit 1; }
tmp=$(mktemp -d /tmp/csal3d_report_sh_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_rc() { # want, description, command...
  want=$1; what=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  got=$?
  [ "$got" -eq "$want" ] || { fail "$what: exit $got, want $want"; sed 's/^/  | /' "$tmp/err" | head -5; }
}

"$T" --fixture "$tmp" >/dev/null || { echo "FAIL: the fixture"; exit 1; }
S="$tmp/scores.safetensors"

# --- usage and bad input ---
expect_rc 0 "report --help" "$BIN" report --help
grep -q "usage: csal3d report" "$tmp/out" || fail "report --help prints no usage"
expect_rc 2 "no scores" "$BIN" report
expect_rc 2 "bad --max-points" "$BIN" report "$S" --max-points 0
expect_rc 3 "missing manifest" "$BIN" report "$S" --selection "$tmp/none.json" -o "$tmp/p.html"
grep -q "the selection $tmp/none.json" "$tmp/err" || fail "missing manifest: not named"
printf 'strategy,budget\n' > "$tmp/bad.csv"
expect_rc 3 "bad evaluation" "$BIN" report "$S" --evaluation "$tmp/bad.csv" -o "$tmp/p.html"
grep -q "no column 'seed'" "$tmp/err" || fail "bad evaluation: says nothing of the column"
expect_rc 2 "the page is an input" "$BIN" report "$S" --selection "$tmp/urds.json" -o "$tmp/urds.json"
[ -e "$tmp/p.html" ] && fail "a failed report left a page"

# --- the page ---
expect_rc 0 "report" "$BIN" report "$S" --selection "$tmp/urds.json" \
  --selection "$tmp/random.json" --maps "$tmp/maps" --evaluation "$tmp/eval.csv" \
  --title "fixture" -o "$tmp/page.html"
grep -q "^report: $tmp/page.html" "$tmp/out" || fail "report: the path is not printed"
expect_rc 3 "an existing page" "$BIN" report "$S" -o "$tmp/page.html"
grep -q -- "--overwrite" "$tmp/err" || fail "an existing page: no hint of --overwrite"
expect_rc 0 "report --json --overwrite" "$BIN" report "$S" --selection "$tmp/urds.json" \
  --selection "$tmp/random.json" --evaluation "$tmp/eval.csv" --title "fixture" --json \
  --overwrite -o "$tmp/page.html"
grep -q '"command": "report", "report": ' "$tmp/out" || fail "--json: $(cat "$tmp/out")"
# nothing from elsewhere: no URL, script, stylesheet, font or frame; src only data:
for bad in 'http:' 'https:' '<script' '<link' '@import' 'url(' '<iframe' '"//'; do
  grep -qi -- "$bad" "$tmp/page.html" && fail "the page holds $bad"
done
srcs=$(grep -o ' src="[^"]\{0,12\}' "$tmp/page.html" | sort | uniq -c)
[ "$(printf '%s\n' "$srcs" | grep -vc 'src="data:image/p')" -eq 0 ] || fail "src= other than data: $srcs"
n_img=$(grep -o '<img ' "$tmp/page.html" | wc -l)
[ "$n_img" -ge 12 ] || fail "$n_img images (want 3 per chosen case)"
for s in 'id="space"' 'id="scores"' 'id="cases"' 'id="selections"' 'id="evaluation"' \
         'of the variance'; do
  grep -q "$s" "$tmp/page.html" || fail "the page lacks $s"
done

# --- rendered by Chromium ---
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
  [ "$fails" -eq 0 ] || { echo "report_test: $fails failures"; exit 1; }
  echo "SKIP: chromium is not installed (apt-get install chromium): the page was not rendered"
  exit 77
fi
HOME="$tmp" timeout 90 "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$tmp/chrome" --screenshot="$tmp/shot.png" --window-size=1200,1600 \
  "file://$tmp/page.html" >"$tmp/chrome.log" 2>&1
[ -s "$tmp/shot.png" ] || { fail "chromium wrote no screenshot"; tail -5 "$tmp/chrome.log"; }
if [ -s "$tmp/shot.png" ]; then
  set -- $("$T" --png-stats "$tmp/shot.png")
  if [ $# -ne 4 ]; then
    fail "the screenshot is not a PNG libpng decodes"
  else
    # a blank or broken page has a handful of colours; the plots, the grey slices and
    # the viridis overlay give hundreds
    [ "$1" -eq 1200 ] && [ "$2" -eq 1600 ] || fail "screenshot of $1 x $2"
    [ "$3" -ge 400 ] || fail "the screenshot has $3 colours: blank or images not decoded"
    awk -v p="$4" 'BEGIN { exit !(p >= 15) }' || fail "the screenshot is $4% non-white"
    echo "screenshot: $1 x $2, $3 colours, $4% non-white"
  fi
fi
[ "$fails" -eq 0 ] || { echo "report_test: $fails failures"; exit 1; }
echo "report_test: ok"
