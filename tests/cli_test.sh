#!/bin/sh
# The csal3d command-line tool end to end on a tiny phantom dataset: help for every
# command, exit codes for bad usage / bad input, pretrain -> score (with maps) -> select
# (manifest CSV + JSON, nnU-Net folder), --json outputs, determinism of select and score,
# resume, and no partial output on failure; the promises of docs/robustness.md
# ("Commands and outputs"): exit codes and messages, outputs checked before work, SIGTERM
# during score, pretrain and the nnU-Net export, select's outputs all or none, info FILE.
# Runs the build's own binary (bin/, or build/asan/bin under make asan). About 2.5 min on
# 2 cores.
set -u
OUT_LIB=${OUT_LIB:-lib}
BIN="${OUT_LIB%lib}bin/csal3d"
PY=${PYTHON:-/usr/bin/python3}
# Tiny models run many short parallel regions: OpenMP's default spin-waiting crawls when
# the machine is oversubscribed; sleeping waits cost little otherwise (as tests/test_omp_env.h).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
[ -x "$BIN" ] || { echo "cli_test: $BIN not built"; exit 1; }
tmp=$(mktemp -d /tmp/csal3d_cli_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# Runs a command in the background, sends it SIGNAL once CONDITION (shell code) holds or
# after about 2 min, and sets rc to its exit status (stderr in $tmp/err).
signal_when() { # SIGNAL CONDITION COMMAND...
  sig=$1; cond=$2; shift 2
  "$@" >/dev/null 2>"$tmp/err" &
  pid=$!
  i=0
  while [ "$i" -lt 6000 ] && ! eval "$cond"; do
    sleep 0.02
    i=$((i + 1))
  done
  kill "-$sig" "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
}
# Whether the journal FILE.partial holds more than its header (about 650 bytes) and a case.
journal_grew() { [ "$( (wc -c < "$1.partial") 2>/dev/null || echo 0)" -gt 1200 ]; }
expect_rc() { # want, description, command...
  [ -n "${CLI_TEST_TIMES:-}" ] && echo "$(date +%s.%N | cut -c1-14) $2" >&2
  want=$1; what=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  got=$?
  [ "$got" -eq "$want" ] || { fail "$what: exit $got, want $want"; sed 's/^/  | /' "$tmp/err" | head -5; }
}

# --- help and usage errors (exit 0 / 2) ---
for c in pretrain score select evaluate report demo info merge; do
  expect_rc 0 "$c --help" "$BIN" "$c" --help
  grep -q "usage: csal3d $c" "$tmp/out" || fail "$c --help prints no usage"
done
expect_rc 0 "--help" "$BIN" --help
expect_rc 0 "--version" "$BIN" --version
expect_rc 2 "no command" "$BIN"
expect_rc 2 "unknown command" "$BIN" frobnicate
expect_rc 2 "unknown option" "$BIN" select x --budget 2 --frob
expect_rc 2 "pretrain without -o" "$BIN" pretrain "$tmp"
expect_rc 2 "bad crop" "$BIN" pretrain "$tmp" -o "$tmp/x" --crop 48
expect_rc 2 "bad budget" "$BIN" select "$tmp/none" --budget 0
expect_rc 2 "bad strategy" "$BIN" select "$tmp/none" --budget 2 --strategy best
grep -q "urds, unc-only" "$tmp/err" || fail "an unknown strategy's message lists the strategies"
expect_rc 3 "missing scores file" "$BIN" select "$tmp/none.safetensors" --budget 2
expect_rc 3 "missing dataset" "$BIN" pretrain "$tmp/nowhere" -o "$tmp/x.safetensors"
expect_rc 0 "info --json" "$BIN" info --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["engines"]["cpu"] is True' \
  "$tmp/out" || fail "info --json is not the expected JSON"
# One message for a bad option (not getopt's line and ours), naming it.
expect_rc 2 "unknown option, one message" "$BIN" select x --budget 2 --frob
[ "$(grep -vc "^Try " "$tmp/err")" -eq 1 ] && grep -q "unknown option '--frob'" "$tmp/err" ||
  fail "an unknown option gives one message naming it: $(cat "$tmp/err")"
expect_rc 2 "option without its value" "$BIN" select x --budget
grep -q -- "--budget needs a value" "$tmp/err" || fail "a missing value is named"
expect_rc 0 "--version --json" "$BIN" --version --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"], d' "$tmp/out" ||
  fail "--version --json prints JSON"
# Not a number vs out of range.
expect_rc 2 "--embed-dim out of range" "$BIN" pretrain "$tmp" -o "$tmp/x" --embed-dim 1200000
grep -q "1200000 is out of range" "$tmp/err" || fail "--embed-dim 1200000: not 'out of range'"
expect_rc 2 "--embed-dim not a number" "$BIN" pretrain "$tmp" -o "$tmp/x" --embed-dim 12x
grep -q "needs a whole number" "$tmp/err" || fail "--embed-dim 12x: not 'a whole number'"
expect_rc 2 "--seed out of range" "$BIN" select x --budget 2 --seed 99999999999999999999999
grep -q "out of range" "$tmp/err" || fail "--seed beyond 2^64: not 'out of range'"
printf 'hello\n' > "$tmp/hello.txt"
expect_rc 3 "info on a text file" "$BIN" info "$tmp/hello.txt"
expect_rc 3 "info on a missing file" "$BIN" info "$tmp/none.nii.gz"

# --- a tiny pipeline ---
ph="$tmp/ph"
"${OUT_LIB%lib}bin/csal3d-phantom" "$ph" --cases 8 --size 40 --slices 24 --quiet ||
  fail "phantom generation"
# One thread mostly (robust on a loaded machine); the first score runs with two, the
# second with one, and must give the same bytes.
common="--embed-dim 12 --spacing 12 --threads 1 --quiet"
# shellcheck disable=SC2086
expect_rc 0 "pretrain" "$BIN" pretrain "$ph" -o "$tmp/ssl.safetensors" --crop 64,32,32 \
  --batch 1 --iterations 2 --seed 3 $common --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["step"] == 2, d' "$tmp/out" ||
  fail "pretrain --json"
[ -f "$tmp/ssl.safetensors" ] || fail "no checkpoint"
# Resume one more step into another file; the first is untouched.
cp "$tmp/ssl.safetensors" "$tmp/ssl_copy.safetensors"
expect_rc 0 "resume" "$BIN" pretrain "$ph" --resume "$tmp/ssl.safetensors" -o "$tmp/ssl3.safetensors" \
  --iterations 3 --spacing 12 --threads 1 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["start_step"] == 2 and d["step"] == 3, d' \
  "$tmp/out" || fail "resume --json"
cmp -s "$tmp/ssl.safetensors" "$tmp/ssl_copy.safetensors" || fail "resume changed its input"
# Starting weights: our own checkpoint (all of it, from step 0, the width from the file),
# then the public-weight fixtures where present (the encoder; decoder and head new).
expect_rc 0 "pretrain --init (own checkpoint)" "$BIN" pretrain "$ph" --init "$tmp/ssl.safetensors" \
  -o "$tmp/init_own.safetensors" --crop 64,32,32 --batch 1 --iterations 1 --spacing 12 --threads 1 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); i=d["init"]; assert d["start_step"] == 0 and d["step"] == 1 and d["embed_dim"] == 12 and i["initialised"] == 0 and i["loaded"] > 100 and i["ignored"] == 2 * i["loaded"], d' \
  "$tmp/out" || fail "pretrain --init (own checkpoint) --json"
expect_rc 2 "--init with --resume" "$BIN" pretrain "$ph" --init "$tmp/ssl.safetensors" \
  --resume "$tmp/ssl.safetensors" --quiet
expect_rc 2 "--init of another width" "$BIN" pretrain "$ph" --init "$tmp/ssl.safetensors" \
  -o "$tmp/init_wide.safetensors" --embed-dim 24 --crop 64,32,32 --iterations 1 --quiet
grep -q "the weights have embed_dim 12, the model 24; set --embed-dim to 12" "$tmp/err" ||
  fail "--init of another width: the message names both widths and --embed-dim"
[ -e "$tmp/init_wide.safetensors" ] && fail "a refused --init wrote a checkpoint"
ref=${CSAL3D_REFERENCE_DIR:-../shared/reference}
if [ -f "$ref/swinunetr_e12_tang_style.safetensors" ]; then
  expect_rc 0 "pretrain --init (public weights)" "$BIN" pretrain "$ph" \
    --init "$ref/swinunetr_e12_tang_style.safetensors" -o "$tmp/init_tang.safetensors" \
    --crop 64,32,32 --batch 1 --iterations 1 --spacing 12 --threads 1
  grep -q "starting weights: .*swinunetr_e12_tang_style.safetensors: loaded 118 tensors (the encoder); initialised 14 as for a new model (the rotation head, the decoder); ignored 8" \
    "$tmp/out" || { fail "pretrain --init prints no report"; sed 's/^/  | /' "$tmp/out" | head -3; }
  expect_rc 3 "score with an encoder alone" "$BIN" score "$ref/swinunetr_e12_monai.safetensors" \
    "$ph" -o "$tmp/enc.safetensors" --quiet
  grep -q "to start from its encoder, take it as starting weights (csal3d pretrain --init)" \
    "$tmp/err" || fail "an encoder alone as a checkpoint: no hint naming --init"
else
  echo "note: no public-weight fixtures in $ref: pretrain --init of them not tested"
fi

expect_rc 0 "score" "$BIN" score "$tmp/ssl.safetensors" "$ph" -o "$tmp/scores.safetensors" \
  --spacing 12 --window 64,32,32 --stride 64,32,32 --maps "$tmp/maps" --threads 2 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["cases"] == 8 and d["score_max"] > 0, d' \
  "$tmp/out" || fail "score --json (all scores 0?)"
[ "$(ls "$tmp/maps" | wc -l)" -eq 8 ] || fail "8 uncertainty maps expected"
ls -a "$tmp" | grep -q "tmp\." && fail "a temporary folder was left behind"
# Same checkpoint, same seed: the same bytes.
expect_rc 3 "score: maps exist" "$BIN" score "$tmp/ssl.safetensors" "$ph" -o "$tmp/scores2.safetensors" \
  --window 64,32,32 --stride 64,32,32 --maps "$tmp/maps" --threads 1 --quiet
grep -q -- "add --overwrite" "$tmp/err" || fail "existing maps: no hint naming --overwrite"
[ -e "$tmp/scores2.safetensors.partial" ] && fail "a refused run left a journal"
# Without data options the checkpoint's are used (it records --spacing 12).
expect_rc 0 "score again" "$BIN" score "$tmp/ssl.safetensors" "$ph" -o "$tmp/scores2.safetensors" \
  --window 64,32,32 --stride 64,32,32 --maps "$tmp/maps" --threads 1 --quiet --overwrite
cmp -s "$tmp/scores.safetensors" "$tmp/scores2.safetensors" ||
  fail "scoring twice (2 threads, then 1; data options given, then the checkpoint's) gave different files"
# A refused run leaves the maps of an earlier run as they were (issue 13: a failing second
# run deleted all of them), also where a map's name is taken by a folder.
cp "$tmp/maps/phantom_000_uncertainty.nii.gz" "$tmp/map0_copy.nii.gz"
expect_rc 3 "score --maps --overwrite into a missing folder" "$BIN" score "$tmp/ssl.safetensors" \
  "$ph" -o "$tmp/no/such/x.safetensors" --maps "$tmp/maps" --overwrite --window 64,32,32 --quiet
[ "$(ls "$tmp/maps" | wc -l)" -eq 8 ] &&
  cmp -s "$tmp/map0_copy.nii.gz" "$tmp/maps/phantom_000_uncertainty.nii.gz" ||
  fail "a refused run changed the maps of the earlier one"
mkdir "$tmp/maps3" && cp "$tmp/maps"/* "$tmp/maps3/" && rm "$tmp/maps3/phantom_003_uncertainty.nii.gz" &&
  mkdir "$tmp/maps3/phantom_003_uncertainty.nii.gz"
expect_rc 3 "score --maps where a map's name is a folder" "$BIN" score "$tmp/ssl.safetensors" \
  "$ph" -o "$tmp/x.safetensors" --maps "$tmp/maps3" --overwrite --window 64,32,32 --quiet
grep -q "is a folder" "$tmp/err" && [ "$(ls "$tmp/maps3" | wc -l)" -eq 8 ] &&
  [ -d "$tmp/maps3/phantom_003_uncertainty.nii.gz" ] ||
  fail "a map's name taken by a folder: $(cat "$tmp/err")"
# Outputs are checked before any work: a wrong path fails before the first case is
# scored or the first step trained (no progress line, no "scoring"/"pretraining" line).
expect_rc 3 "score into a missing folder" "$BIN" score "$tmp/ssl.safetensors" "$ph" \
  -o "$tmp/no/such/dir/s.safetensors" --window 64,32,32 --threads 1
grep -q "does not exist" "$tmp/err" || fail "a missing output folder is named"
grep -Eq "scoring [0-9]+ cases" "$tmp/err" "$tmp/out" &&
  fail "score with a wrong output path started scoring before failing"
expect_rc 3 "pretrain into a missing folder" "$BIN" pretrain "$ph" -o "$tmp/no/such/ck.safetensors" \
  --crop 64,32,32 --iterations 50 --threads 1
grep -q "pretraining on" "$tmp/err" "$tmp/out" &&
  fail "pretrain with a wrong output path started training before failing"
expect_rc 2 "score over its checkpoint" "$BIN" score "$tmp/ssl.safetensors" "$ph" \
  -o "$tmp/ssl.safetensors" --overwrite --quiet
cmp -s "$tmp/ssl.safetensors" "$tmp/ssl_copy.safetensors" || fail "score replaced its checkpoint"
ls "$ph"/imagesTr/*.nii.gz > "$tmp/list.txt" && cp "$tmp/list.txt" "$tmp/list_copy.txt"
expect_rc 2 "pretrain over its list file" "$BIN" pretrain "$tmp/list.txt" -o "$tmp/list.txt" \
  --overwrite --modality ct --crop 64,32,32 --iterations 1 --quiet
cmp -s "$tmp/list.txt" "$tmp/list_copy.txt" || fail "pretrain replaced its list file"
expect_rc 3 "resume into an existing file" "$BIN" pretrain "$ph" --resume "$tmp/ssl.safetensors" \
  -o "$tmp/ssl3.safetensors" --iterations 3 --quiet
# SIGKILL in the middle of scoring, then the same command: the same bytes.
signal_when KILL 'journal_grew "$tmp/killed.safetensors"' "$BIN" score "$tmp/ssl.safetensors" \
  "$ph" -o "$tmp/killed.safetensors" --window 64,32,32 --stride 64,32,32 --threads 1 --quiet
[ -e "$tmp/killed.safetensors.partial" ] || fail "no journal while scoring"
expect_rc 0 "score after SIGKILL" "$BIN" score "$tmp/ssl.safetensors" "$ph" \
  -o "$tmp/killed.safetensors" --window 64,32,32 --stride 64,32,32 --threads 1 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["reused"] >= 1, d' "$tmp/out" ||
  fail "the run after SIGKILL did not continue from the journal"
expect_rc 0 "score without maps" "$BIN" score "$tmp/ssl.safetensors" "$ph" -o "$tmp/nomaps.safetensors" \
  --window 64,32,32 --stride 64,32,32 --threads 1 --quiet
cmp -s "$tmp/nomaps.safetensors" "$tmp/killed.safetensors" ||
  fail "scoring killed and run again gave another file"
# SIGKILL while maps are written: the run again continues and leaves every map in place
# and nothing staged (issue 13: maps.tmp.* stayed behind).
signal_when KILL 'journal_grew "$tmp/killedm.safetensors"' "$BIN" score "$tmp/ssl.safetensors" \
  "$ph" -o "$tmp/killedm.safetensors" --maps "$tmp/kmaps" --window 64,32,32 --stride 64,32,32 \
  --threads 1 --quiet
expect_rc 0 "score --maps after SIGKILL" "$BIN" score "$tmp/ssl.safetensors" "$ph" \
  -o "$tmp/killedm.safetensors" --maps "$tmp/kmaps" --window 64,32,32 --stride 64,32,32 \
  --threads 1 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["reused"] >= 1, d' "$tmp/out" ||
  fail "score --maps after SIGKILL did not continue from the journal"
[ "$(ls "$tmp/kmaps" | wc -l)" -eq 8 ] || fail "score --maps after SIGKILL: not 8 maps"
ls -a "$tmp" | grep -Eq "kmaps.*partial|kmaps.*tmp|killedm.*partial" &&
  fail "score --maps after SIGKILL left staged files: $(ls -a "$tmp")"
cmp -s "$tmp/kmaps/phantom_000_uncertainty.nii.gz" "$tmp/maps/phantom_000_uncertainty.nii.gz" ||
  fail "a map written after SIGKILL differs from the uninterrupted run's"
# Sharded scoring (job arrays): the shards merged are the single run's file, bit for bit.
for i in 1 2; do
  expect_rc 0 "score --shard $i/2" "$BIN" score "$tmp/ssl.safetensors" "$ph" \
    -o "$tmp/shard$i.safetensors" --window 64,32,32 --stride 64,32,32 --threads 1 --quiet --shard $i/2
done
expect_rc 2 "score --shard 3/2" "$BIN" score "$tmp/ssl.safetensors" "$ph" -o "$tmp/x" --shard 3/2
expect_rc 2 "merge a shard missing" "$BIN" merge "$tmp/shard1.safetensors" -o "$tmp/merged.safetensors"
grep -q "shard 2/2 is missing" "$tmp/err" || fail "merge: the missing shard not named"
expect_rc 2 "merge a shard twice" "$BIN" merge "$tmp/shard1.safetensors" \
  "$tmp/shard1.safetensors" -o "$tmp/merged.safetensors"
expect_rc 0 "merge" "$BIN" merge "$tmp/shard2.safetensors" "$tmp/shard1.safetensors" \
  -o "$tmp/merged.safetensors" --json
cmp -s "$tmp/nomaps.safetensors" "$tmp/merged.safetensors" ||
  fail "score --shard 1/2, 2/2 and merge gave another file than one run"
[ -e "$tmp/killed.safetensors.partial" ] && fail "the journal was left after success"
# SIGTERM is Ctrl-C: score exits 130 keeping its journal (no scores file); pretrain saves
# a checkpoint that resumes.
signal_when TERM 'journal_grew "$tmp/termed.safetensors"' "$BIN" score "$tmp/ssl.safetensors" \
  "$ph" -o "$tmp/termed.safetensors" --window 64,32,32 --stride 64,32,32 --threads 1 --quiet
[ "$rc" -eq 130 ] || fail "score after SIGTERM: exit $rc, want 130"
[ -e "$tmp/termed.safetensors.partial" ] && [ ! -e "$tmp/termed.safetensors" ] ||
  fail "score after SIGTERM: the journal and no scores file"
rm -f "$tmp/termed.safetensors.partial"
# shellcheck disable=SC2086
signal_when TERM '[ -e "$tmp/termed_ck.safetensors" ]' "$BIN" pretrain "$ph" \
  -o "$tmp/termed_ck.safetensors" --crop 64,32,32 --batch 1 --iterations 50 --checkpoint-every 1 \
  --seed 3 $common
[ "$rc" -eq 130 ] || fail "pretrain after SIGTERM: exit $rc, want 130"
grep -q "continue with: csal3d pretrain" "$tmp/err" || fail "pretrain after SIGTERM says how to continue"
expect_rc 0 "info on the checkpoint saved at SIGTERM" "$BIN" info "$tmp/termed_ck.safetensors" --json
step=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$tmp/out")
expect_rc 0 "pretrain resumed after SIGTERM" "$BIN" pretrain "$ph" --resume "$tmp/termed_ck.safetensors" \
  --iterations $((step + 1)) --threads 1 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["start_step"] == int(sys.argv[2]) >= 1 and d["step"] == d["start_step"] + 1, d' \
  "$tmp/out" "$step" || fail "the checkpoint saved at SIGTERM does not resume"
ls -a "$tmp" | grep -q "termed_ck.safetensors.tmp" && fail "pretrain left a temporary file"

# A failing score (a case that cannot load) writes nothing.
mkdir "$tmp/bad" && cp "$ph"/imagesTr/phantom_000.nii.gz "$tmp/bad/a.nii.gz" &&
  printf 'not a nifti' > "$tmp/bad/b.nii.gz"
expect_rc 2 "a dataset without modality" "$BIN" pretrain "$tmp/bad" -o "$tmp/x.safetensors"
expect_rc 3 "score a bad file" "$BIN" score "$tmp/ssl.safetensors" "$tmp/bad" -o "$tmp/bad.safetensors" \
  --modality ct --spacing 12 --window 64,32,32 --maps "$tmp/badmaps" --quiet --threads 1
grep -q "b.nii.gz" "$tmp/err" || fail "the error names the bad file"
[ -e "$tmp/bad.safetensors" ] && fail "a failed score left a scores file"
[ -e "$tmp/badmaps" ] && fail "a failed score left maps"
[ -e "$tmp/bad.safetensors.partial" ] || fail "a failed score keeps the cases it scored"
expect_rc 0 "score a bad file, skipping it" "$BIN" score "$tmp/ssl.safetensors" "$tmp/bad" \
  -o "$tmp/bad.safetensors" --modality ct --spacing 12 --window 64,32,32 --maps "$tmp/badmaps" \
  --threads 1 --skip-failed --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert (d["cases"], d["reused"], d["skipped"]) == (1, 1, 1), d' \
  "$tmp/out" || fail "--skip-failed after a failed run"
[ "$(ls "$tmp/badmaps")" = "a_uncertainty.nii.gz" ] || fail "the maps of a run with a skipped case"
ls -a "$tmp" | grep -q "partial" && fail "a journal or staging folder was left"

# Channels and NaN: a channel count that does not fit is bad input (exit 3), and the
# messages name the tool's options (--channel all, --allow-nonfinite), not the library's.
nifti() { # FILE CHANNELS [nan]: a 40x40x24 float32 NIfTI-1 image, 4-D when CHANNELS > 1
  "$PY" - "$@" <<'PY'
import struct, sys
out, c, nan = sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3
x, y, z = 40, 40, 24
h = bytearray(352)
struct.pack_into("<i", h, 0, 348)
struct.pack_into("<8h", h, 40, 4 if c > 1 else 3, x, y, z, c, 1, 1, 1)
struct.pack_into("<hh", h, 70, 16, 32)                 # float32
struct.pack_into("<8f", h, 76, 1, 4, 4, 4, 1, 1, 1, 1)  # 4 mm voxels
struct.pack_into("<f", h, 108, 352)
struct.pack_into("<h", h, 254, 1)                       # sform
for r in range(3):
    struct.pack_into("<4f", h, 280 + 16 * r, *[4.0 if k == r else 0.0 for k in range(4)])
h[344:348] = b"n+1\0"
v = [float((i * 7919) % 2000 - 1000) for i in range(x * y * z * c)]
if nan:
    v[len(v) // 2] = float("nan")
with open(out, "wb") as f:
    f.write(bytes(h) + struct.pack("<%df" % len(v), *v))
PY
}
mkdir "$tmp/four" "$tmp/nan" && nifti "$tmp/four/a.nii" 2 && nifti "$tmp/four/b.nii" 2 &&
  nifti "$tmp/nan/n.nii" 1 nan || fail "writing NIfTI test images"
d4="--modality ct --spacing 12 --window 64,32,32 --quiet --threads 1"
# shellcheck disable=SC2086
expect_rc 3 "score 4-D images without --channel" "$BIN" score "$tmp/ssl.safetensors" "$tmp/four" \
  -o "$tmp/x.safetensors" $d4
grep -q -- "--channel all" "$tmp/err" || fail "4-D without --channel: no hint naming --channel all"
# shellcheck disable=SC2086
expect_rc 3 "score 2 channels with a 1-channel model" "$BIN" score "$tmp/ssl.safetensors" \
  "$tmp/four" -o "$tmp/x.safetensors" --channel all $d4
grep -q -- "--channel" "$tmp/err" || fail "channel mismatch: no hint naming --channel"
# shellcheck disable=SC2086
expect_rc 0 "score one volume of 4-D images" "$BIN" score "$tmp/ssl.safetensors" "$tmp/four" \
  -o "$tmp/four.safetensors" --channel 1 $d4
expect_rc 3 "pretrain 4-D images without --channel" "$BIN" pretrain "$tmp/four" \
  -o "$tmp/x.safetensors" --modality ct --spacing 12 --crop 64,32,32 --iterations 1 --quiet
[ -e "$tmp/x.safetensors" ] && fail "a failed run left a file"
# shellcheck disable=SC2086
expect_rc 3 "score an image with NaN" "$BIN" score "$tmp/ssl.safetensors" "$tmp/nan" \
  -o "$tmp/x.safetensors" $d4
grep -q -- "--allow-nonfinite" "$tmp/err" || fail "NaN: no hint naming --allow-nonfinite"
# shellcheck disable=SC2086
expect_rc 0 "score with --allow-nonfinite" "$BIN" score "$tmp/ssl.safetensors" "$tmp/nan" \
  -o "$tmp/nan.safetensors" --allow-nonfinite $d4

expect_rc 0 "select" "$BIN" select "$tmp/scores.safetensors" --budget 3 -o "$tmp/sel" \
  --nnunet "$tmp/raw/Dataset900_Phantom"
grep -q "rank  case" "$tmp/out" || fail "select prints a table"
[ "$(wc -l < "$tmp/sel/selection.csv")" -eq 4 ] || fail "selection.csv has a header and 3 rows"
"$PY" - "$tmp/sel/selection.json" "$tmp/raw/Dataset900_Phantom" <<'EOF' || fail "manifest / nnU-Net folder"
import json, os, sys
m = json.load(open(sys.argv[1]))
cases = [e["case"] for e in m["selection"]]
assert m["strategy"] == "urds" and m["budget"] == 3 and len(set(cases)) == 3, m
assert all(os.path.exists(e["path"]) for e in m["selection"])
assert set(m["clusters"]) == {"phantom_%03d" % i for i in range(8)}
d = sys.argv[2]
assert sorted(os.listdir(d + "/imagesTr")) == sorted(c + "_0000.nii.gz" for c in cases)
assert sorted(os.listdir(d + "/labelsTr")) == sorted(c + ".nii.gz" for c in cases)
j = json.load(open(d + "/dataset.json"))
assert j["numTraining"] == 3 and j["labels"]["lesion"] == 4 and j["channel_names"] == {"0": "CT"}
EOF
cp "$tmp/sel/selection.csv" "$tmp/first.csv"
for s in urds unc-only div-only random typiclust probcover alps calr coreset usl; do
  expect_rc 0 "select $s" "$BIN" select "$tmp/scores.safetensors" --budget 3 --strategy "$s" \
    --seed 5 -o "$tmp/s1" --json --overwrite
  cp "$tmp/out" "$tmp/s1.json"
  expect_rc 0 "select $s again" "$BIN" select "$tmp/scores.safetensors" --budget 3 --strategy "$s" \
    --seed 5 -o "$tmp/s2" --quiet --overwrite
  cmp -s "$tmp/s1/selection.csv" "$tmp/s2/selection.csv" || fail "select $s twice differs"
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); c=[e["case"] for e in d["selection"]]; assert len(set(c)) == 3, d' \
    "$tmp/s1.json" || fail "select $s --json"
done
# The nnU-Net folder exists: refused before any work without --overwrite (no manifest).
expect_rc 3 "nnunet folder exists" "$BIN" select "$tmp/scores.safetensors" --budget 2 -o "$tmp/sel2" \
  --nnunet "$tmp/raw/Dataset900_Phantom"
grep -q -- "--overwrite" "$tmp/err" || fail "an existing nnU-Net folder: no hint naming --overwrite"
[ "$(ls "$tmp/raw/Dataset900_Phantom/imagesTr" | wc -l)" -eq 3 ] || fail "the existing folder changed"
[ -e "$tmp/sel2/selection.csv" ] && fail "a refused select wrote a manifest"
# Outputs never replace or hold an input, even with --overwrite.
expect_rc 2 "select --csv over the scores file" "$BIN" select "$tmp/scores.safetensors" --budget 2 \
  --csv "$tmp/scores.safetensors" --manifest "$tmp/m.json" --overwrite
expect_rc 2 "select --nnunet over the dataset" "$BIN" select "$tmp/scores.safetensors" --budget 2 \
  -o "$tmp/sel4" --nnunet "$ph" --overwrite # (not named DatasetNNN_Name either: see below)
[ "$(ls "$ph/imagesTr" | wc -l)" -eq 8 ] || fail "select --nnunet DATASET --overwrite changed the dataset"
cmp -s "$tmp/scores.safetensors" "$tmp/scores2.safetensors" || fail "select replaced its scores file"
# A refused nnU-Net folder leaves the manifests of an earlier run as they were.
cp "$tmp/sel/selection.csv" "$tmp/sel_before.csv"
cp "$tmp/sel/selection.json" "$tmp/sel_before.json"
ln -s "$ph" "$tmp/Dataset901_Ph"
expect_rc 2 "select --nnunet (a link to) the dataset" "$BIN" select "$tmp/scores.safetensors" \
  --budget 2 --seed 9 -o "$tmp/sel" --nnunet "$tmp/Dataset901_Ph" --overwrite
cmp -s "$tmp/sel/selection.csv" "$tmp/sel_before.csv" &&
  cmp -s "$tmp/sel/selection.json" "$tmp/sel_before.json" ||
  fail "a refused --nnunet folder replaced the manifests"
# nnU-Net needs DatasetNNN_Name: refused before any work, with the form in the message.
expect_rc 2 "select --nnunet without DatasetNNN_Name" "$BIN" select "$tmp/scores.safetensors" \
  --budget 2 -o "$tmp/sel5" --nnunet "$tmp/nnx"
grep -q "Dataset501_Hippocampus" "$tmp/err" || fail "the DatasetNNN_Name message shows the form"
[ -e "$tmp/sel5" ] || [ -e "$tmp/nnx" ] && fail "a refused select left a folder"
# The CSV's folder cannot hold a file: refused before any work, the JSON not written.
expect_rc 3 "select --csv into a file" "$BIN" select "$tmp/scores.safetensors" --budget 2 \
  --csv "$tmp/hello.txt/d.csv" --manifest "$tmp/b.json"
[ -e "$tmp/b.json" ] && fail "the JSON manifest was written though the CSV could not be"
# An output never replaces a device.
expect_rc 3 "select --csv /dev/null" "$BIN" select "$tmp/scores.safetensors" --budget 2 \
  --csv /dev/null --manifest "$tmp/b.json" --overwrite
[ -c /dev/null ] || fail "/dev/null is no longer a device"
# info describes each kind of file.
expect_rc 0 "info on a checkpoint" "$BIN" info "$tmp/ssl.safetensors" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["type"] == "checkpoint" and d["embed_dim"] == 12 and d["step"] == 2 and d["crop"] == [64, 32, 32] and "12" in d["data_options"], d' \
  "$tmp/out" || fail "info CHECKPOINT --json"
expect_rc 0 "info on a scores file" "$BIN" info "$tmp/scores.safetensors" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["type"] == "scores" and d["cases"] == 8 and d["labelled"] == 8 and d["with_maps"] == 8 and d["metadata"]["window"] == "64,32,32", d' \
  "$tmp/out" || fail "info SCORES --json"
expect_rc 0 "info on an image" "$BIN" info "$ph/imagesTr/phantom_000.nii.gz" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["type"] == "nifti" and d["datatype"] == "int16" and len(d["axis_codes"]) == 3 and d["channels"] == 1 and d["min"] < d["max"], d' \
  "$tmp/out" || fail "info NIFTI --json"
expect_rc 0 "info on a 4-D image" "$BIN" info "$tmp/four/a.nii"
grep -q "float32" "$tmp/out" && grep -q "40 x 40 x 24 x 2" "$tmp/out" && grep -q "RAS" "$tmp/out" ||
  fail "info on a 4-D float32 image: $(cat "$tmp/out")"
# Corrupt checkpoint metadata is bad input (exit 3), naming the key.
setmeta() { # SRC DST KEY=VALUE: a copy with one metadata value changed, without checksum
  "$PY" - "$@" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = h["__metadata__"]
m.pop("checksum", None)
k, v = sys.argv[3].split("=", 1)
m[k] = v
hb = json.dumps(h).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
}
for kv in depths=2,2,2,99 window_size=0 ssl.lr_option=nan optim.lr=nan in_channels=100 \
  embed_dim=1200000 num_heads=3,6,12,5 optim.beta1=2; do
  setmeta "$tmp/ssl.safetensors" "$tmp/corrupt.safetensors" "$kv"
  expect_rc 3 "checkpoint metadata $kv" "$BIN" score "$tmp/corrupt.safetensors" "$ph" \
    -o "$tmp/x.safetensors" --quiet
  k=${kv%%=*}
  grep -q "${k#*.}" "$tmp/err" || fail "checkpoint metadata $kv: the message does not name $k"
done
setmeta "$tmp/ssl.safetensors" "$tmp/corrupt.safetensors" embed_dim=1200000
expect_rc 3 "checkpoint embed_dim 1200000" "$BIN" info "$tmp/corrupt.safetensors"
grep -q "embed_dim = 1200000 is out of range" "$tmp/err" ||
  fail "embed_dim 1200000 in a checkpoint: not 'out of range'"

# Picks with and without labels, an id that looks like a formula, an uncompressed image
# named .nii.gz: every image exported (gzipped), the existing label, the others named.
mkdir "$tmp/mix" && gzip -dc "$ph/imagesTr/phantom_000.nii.gz" > "$tmp/mix/plain_000.nii.gz" &&
  cp "$ph/imagesTr/phantom_001.nii.gz" "$tmp/mix/=1+2.nii.gz" &&
  printf '%s,%s\n%s\n' "$tmp/mix/plain_000.nii.gz" "$ph/labelsTr/phantom_000.nii.gz" \
    "$tmp/mix/=1+2.nii.gz" > "$tmp/mix.txt" || fail "the mixed dataset"
expect_rc 0 "score a mixed dataset" "$BIN" score "$tmp/ssl.safetensors" "$tmp/mix.txt" \
  -o "$tmp/mix.safetensors" --window 64,32,32 --stride 64,32,32 --threads 1 --quiet
expect_rc 3 "select --labels require with an unlabelled pick" "$BIN" select \
  "$tmp/mix.safetensors" --budget 2 -o "$tmp/selmix" --nnunet "$tmp/raw/Dataset902_Mix" \
  --labels require
grep -q "'=1+2' has no label" "$tmp/err" || fail "--labels require names the unlabelled case"
[ -e "$tmp/raw/Dataset902_Mix" ] || [ -e "$tmp/selmix/selection.csv" ] &&
  fail "a refused --labels require wrote something"
expect_rc 0 "select mixed labels" "$BIN" select "$tmp/mix.safetensors" --budget 2 \
  -o "$tmp/selmix" --nnunet "$tmp/raw/Dataset902_Mix"
grep -q "1 of the 2 chosen cases have no label (=1+2)" "$tmp/err" ||
  fail "the unlabelled pick is not named: $(cat "$tmp/err")"
[ "$(ls "$tmp/raw/Dataset902_Mix/imagesTr" | wc -l)" -eq 2 ] &&
  [ "$(ls "$tmp/raw/Dataset902_Mix/labelsTr")" = "plain_000.nii.gz" ] ||
  fail "mixed labels: every image and the one label"
[ "$(od -An -tx1 -N2 "$tmp/raw/Dataset902_Mix/imagesTr/plain_000_0000.nii.gz" | tr -d ' ')" = 1f8b ] ||
  fail "an uncompressed .nii.gz was copied as it is, not gzipped"
"$PY" - "$tmp/raw/Dataset902_Mix/dataset.json" "$tmp/selmix/selection.json" <<'EOF2' ||
import json, sys
d = json.load(open(sys.argv[1]))
assert d["csal3d"]["cases_without_label"] == ["=1+2"], d
m = json.load(open(sys.argv[2]))
assert "=1+2" in [e["case"] for e in m["selection"]], m
EOF2
  fail "dataset.json names the unlabelled case, the JSON manifest keeps the id"
grep -q ",'=1+2," "$tmp/selmix/selection.csv" || fail "a formula-like id is live in the CSV"

# SIGTERM while the nnU-Net folder is being written: exit 130, the earlier manifests as
# they were, no temporary folder, no new folder.
mkdir "$tmp/big" && "$PY" - "$tmp/big" <<'EOF2' || fail "large test images"
import struct, sys
import numpy as np
n = 96
h = bytearray(352)
struct.pack_into("<i", h, 0, 348)
struct.pack_into("<8h", h, 40, 3, n, n, n, 1, 1, 1, 1)
struct.pack_into("<hh", h, 70, 16, 32)
struct.pack_into("<8f", h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
struct.pack_into("<f", h, 108, 352)
h[344:348] = b"n+1\0"
rng = np.random.default_rng(0)
for i in range(3):  # random data: gzip takes its time
    v = rng.integers(-1000, 1000, n ** 3).astype("<f4")
    open("%s/big_%d.nii" % (sys.argv[1], i), "wb").write(bytes(h) + v.tobytes())
EOF2
expect_rc 0 "score large images" "$BIN" score "$tmp/ssl.safetensors" "$tmp/big" \
  -o "$tmp/big.safetensors" --modality ct --window 64,32,32 --stride 64,32,32 --threads 1 --quiet
mkdir -p "$tmp/selbig" && printf 'old csv\n' > "$tmp/selbig/selection.csv"
signal_when TERM 'ls -d "$tmp"/raw/.Dataset903_Big.tmp.* >/dev/null 2>&1' "$BIN" select \
  "$tmp/big.safetensors" --budget 3 -o "$tmp/selbig" --overwrite \
  --nnunet "$tmp/raw/Dataset903_Big" --quiet
[ "$rc" -eq 130 ] || fail "select after SIGTERM during the export: exit $rc, want 130"
grep -q "interrupted" "$tmp/err" || fail "select after SIGTERM does not say it was interrupted"
ls -a "$tmp/raw" | grep -q "tmp\\." && fail "SIGTERM left the export's temporary folder"
[ -e "$tmp/raw/Dataset903_Big" ] && fail "SIGTERM left an nnU-Net folder"
[ "$(cat "$tmp/selbig/selection.csv")" = "old csv" ] || fail "SIGTERM replaced the manifest"
[ -e "$tmp/selbig/selection.json" ] && fail "SIGTERM wrote a JSON manifest"

# Issue 12 leftovers. A spacing that would resample to an enormous grid fails at once,
# naming --spacing; the resampled grid counts in --max-memory.
expect_rc 2 "score --spacing 0.001,12,12" "$BIN" score "$tmp/ssl.safetensors" "$ph" \
  -o "$tmp/x.safetensors" --spacing 0.001,12,12 --window 64,32,32 --threads 1 --quiet
grep -q "would give 414631 voxels (at most 32767); choose a coarser spacing (--spacing)" "$tmp/err" ||
  fail "--spacing 0.001,12,12: $(cat "$tmp/err")"
expect_rc 3 "score --max-memory below the resampled grid" "$BIN" score "$tmp/ssl.safetensors" \
  "$ph" -o "$tmp/x.safetensors" --spacing 0.02,12,12 --max-memory 8M --window 64,32,32 --quiet
grep -q "more than the limit of 8.0 MiB.*set --max-memory" "$tmp/err" ||
  fail "--max-memory: $(cat "$tmp/err")"
expect_rc 2 "--max-memory not a size" "$BIN" score "$tmp/ssl.safetensors" "$ph" -o "$tmp/x" \
  --max-memory 8X
# --assume-spacing for files whose pixdim is 0 (score and info).
mkdir "$tmp/pix" && cp tests/data/hostile/nifti/pixdim3_zero_qform.nii "$tmp/pix/a.nii"
expect_rc 3 "score a file with pixdim 0" "$BIN" score "$tmp/ssl.safetensors" "$tmp/pix" \
  -o "$tmp/pix.safetensors" --modality ct --spacing 12 --window 64,32,32 --threads 1 --quiet
grep -q "set --assume-spacing" "$tmp/err" || fail "pixdim 0: no hint naming --assume-spacing"
expect_rc 0 "score with --assume-spacing" "$BIN" score "$tmp/ssl.safetensors" "$tmp/pix" \
  -o "$tmp/pix.safetensors" --modality ct --spacing 12 --window 64,32,32 --threads 1 --quiet \
  --assume-spacing 4
expect_rc 0 "info --assume-spacing" "$BIN" info "$tmp/pix/a.nii" --assume-spacing 2,3,4 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["pixdim"][2] == 4, d' \
  "$tmp/out" || fail "info --assume-spacing"
# --channel-suffix: X_0000 and X_0001 of a plain folder are two cases, or one of two
# channels when asked (which a 1-channel model refuses, naming the case; test_dataset has
# the rules).
mkdir "$tmp/suffix" && cp "$ph/imagesTr/phantom_000.nii.gz" "$tmp/suffix/x_0000.nii.gz" &&
  cp "$ph/imagesTr/phantom_000.nii.gz" "$tmp/suffix/x_0001.nii.gz"
expect_rc 3 "score --channel-suffix always" "$BIN" score "$tmp/ssl.safetensors" "$tmp/suffix" \
  -o "$tmp/x.safetensors" --modality ct --channel-suffix always --window 64,32,32 --quiet
grep -q "case 'x' has 2 channel" "$tmp/err" || fail "--channel-suffix always: $(cat "$tmp/err")"
# --typiclust-variant original: one cluster of 8 gives a pick; 3 clusters of fewer than 6
# cases have none, which is said (exit 3), not a crash.
expect_rc 0 "select --typiclust-variant original" "$BIN" select "$tmp/scores.safetensors" \
  --budget 1 --strategy typiclust --typiclust-variant original -o "$tmp/tco" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["typiclust_variant"] == "original" and len(d["selection"]) == 1, d' \
  "$tmp/out" || fail "select --typiclust-variant original --json"
expect_rc 3 "select --typiclust-variant original, small clusters" "$BIN" select \
  "$tmp/scores.safetensors" --budget 3 --strategy typiclust --typiclust-variant original \
  -o "$tmp/tco" --overwrite --quiet
grep -q "5" "$tmp/err" || fail "the original TypiClust without a usable cluster: $(cat "$tmp/err")"
# A file without orientation codes: one warning naming it. A 320-character id, whole in
# select's table, JSON and CSV; too long for a map's or nnU-Net's file name (refused
# before any work). Ids with '/' become nnU-Net names with '_'; the manifest keeps them.
cp "$ph/imagesTr/phantom_004.nii.gz" "$tmp/bare.nii.gz" && gzip -df "$tmp/bare.nii.gz" &&
  printf '\000\000\000\000' | dd of="$tmp/bare.nii" bs=1 seek=252 conv=notrunc 2>/dev/null
long=$(printf 'L%.0s' $(seq 320))
{
  echo "id,image,label"
  echo "$long,$ph/imagesTr/phantom_002.nii.gz,$ph/labelsTr/phantom_002.nii.gz"
  echo "subj01/flair,$ph/imagesTr/phantom_003.nii.gz,$ph/labelsTr/phantom_003.nii.gz"
  echo "subj02/flair,$tmp/bare.nii,"
} > "$tmp/ids.csv"
expect_rc 0 "score ids and an unoriented file" "$BIN" score "$tmp/ssl.safetensors" "$tmp/ids.csv" \
  -o "$tmp/ids.safetensors" --window 64,32,32 --stride 64,32,32 --threads 1 --quiet
[ "$(grep -c "has no orientation" "$tmp/err")" -eq 1 ] && grep -q "bare.nii (case 'subj02/flair')" "$tmp/err" ||
  fail "a file without orientation codes: one warning naming it: $(cat "$tmp/err")"
expect_rc 3 "score --maps with a 320-character id" "$BIN" score "$tmp/ssl.safetensors" \
  "$tmp/ids.csv" -o "$tmp/x.safetensors" --maps "$tmp/idmaps" --window 64,32,32 --quiet
grep -q "give it a shorter id" "$tmp/err" && [ ! -e "$tmp/idmaps" ] ||
  fail "a map name too long: $(cat "$tmp/err")"
expect_rc 0 "select with a 320-character id" "$BIN" select "$tmp/ids.safetensors" --budget 3 \
  -o "$tmp/selids"
grep -q "$long" "$tmp/out" || fail "select's table cut the long id"
grep -q ",$long," "$tmp/selids/selection.csv" || fail "selection.csv cut the long id"
expect_rc 0 "select --json with a 320-character id" "$BIN" select "$tmp/ids.safetensors" \
  --budget 3 -o "$tmp/selids" --overwrite --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "L" * 320 in [e["case"] for e in d["selection"]], d' \
  "$tmp/out" || fail "select --json cut the long id"
expect_rc 3 "select --nnunet with a 320-character id" "$BIN" select "$tmp/ids.safetensors" \
  --budget 3 -o "$tmp/selids2" --nnunet "$tmp/raw/Dataset904_Long"
grep -q "give it a shorter id" "$tmp/err" && [ ! -e "$tmp/raw/Dataset904_Long" ] ||
  fail "an nnU-Net name too long: $(cat "$tmp/err")"
grep -v "^$long," "$tmp/ids.csv" > "$tmp/ids2.csv"
expect_rc 0 "score ids with '/'" "$BIN" score "$tmp/ssl.safetensors" "$tmp/ids2.csv" \
  -o "$tmp/ids2.safetensors" --window 64,32,32 --stride 64,32,32 --threads 1 --quiet
expect_rc 0 "select --nnunet ids with '/'" "$BIN" select "$tmp/ids2.safetensors" --budget 2 \
  -o "$tmp/selids3" --nnunet "$tmp/raw/Dataset905_Subjects"
[ "$(ls "$tmp/raw/Dataset905_Subjects/imagesTr" | tr '\n' ' ')" = "subj01_flair_0000.nii.gz subj02_flair_0000.nii.gz " ] &&
  [ "$(ls "$tmp/raw/Dataset905_Subjects/labelsTr")" = "subj01_flair.nii.gz" ] &&
  grep -q ",subj01/flair," "$tmp/selids3/selection.csv" ||
  fail "nnU-Net names of ids with '/': $(ls -R "$tmp/raw/Dataset905_Subjects")"

# A damaged scores file: exit 3, no manifest.
cp "$tmp/scores.safetensors" "$tmp/damaged.safetensors"
printf '\001' | dd of="$tmp/damaged.safetensors" bs=1 seek=$(($(wc -c < "$tmp/damaged.safetensors") - 3)) \
  conv=notrunc 2>/dev/null
expect_rc 3 "damaged scores" "$BIN" select "$tmp/damaged.safetensors" --budget 2 -o "$tmp/sel3"
grep -q "checksum" "$tmp/err" || fail "a damaged scores file is reported as a checksum failure"
[ -e "$tmp/sel3/selection.csv" ] && fail "a failed select left a manifest"

# --- evaluate: a U-Net trained on the chosen cases, Dice on the others (tiny and short) ---
evo="--widths 4,8,16 --patch 16,32,32 --batch 2 --iterations 2 --threads 1"
# shellcheck disable=SC2086
expect_rc 0 "evaluate --train (select's manifest)" "$BIN" evaluate "$ph" \
  --train "$tmp/sel/selection.csv" -o "$tmp/ev.csv" $evo --json
"$PY" - "$tmp/out" "$tmp/ev.csv" <<'PY' || fail "evaluate --json and its results CSV"
import csv, json, sys
d = json.load(open(sys.argv[1]))
assert (d["command"], d["mode"], d["train_cases"], d["validation_cases"], d["labels"]) == \
    ("evaluate", "train", 3, 5, 4), d
rows = list(csv.DictReader(open(sys.argv[2])))
assert len(rows) == 6 and rows[-1]["case"] == "mean", rows
assert all(r["strategy"] == "given" and r["budget"] == "3" for r in rows), rows
assert abs(float(rows[-1]["mean_dice"]) - d["mean_dice"]) < 1e-5, (rows[-1], d)
PY
# shellcheck disable=SC2086
expect_rc 3 "evaluate: the results exist" "$BIN" evaluate "$ph" --train "$tmp/sel/selection.csv" \
  -o "$tmp/ev.csv" $evo
grep -q -- "add --overwrite" "$tmp/err" || fail "evaluate: existing results without a hint naming --overwrite"
grep -q "training on" "$tmp/out" && fail "evaluate with existing results started training"
expect_rc 2 "evaluate without --train or --scores" "$BIN" evaluate "$ph" -o "$tmp/x.csv"
expect_rc 2 "evaluate --train with --budgets" "$BIN" evaluate "$ph" --train "$tmp/sel/selection.csv" \
  --budgets 2 -o "$tmp/x.csv"
expect_rc 2 "evaluate --widths of one stage" "$BIN" evaluate "$ph" --train x --widths 8 -o "$tmp/x.csv"
# shellcheck disable=SC2086
expect_rc 2 "evaluate --patch not a multiple" "$BIN" evaluate "$ph" \
  --train "$tmp/sel/selection.csv" -o "$tmp/x.csv" $evo --patch 18,32,32
grep -q -- "set --patch to multiples of 4" "$tmp/err" || fail "a bad patch: the message names --patch"
printf 'phantom_001\nnone_such\n' > "$tmp/badlist.txt"
expect_rc 3 "evaluate: a case not in the dataset" "$BIN" evaluate "$ph" --train "$tmp/badlist.txt" \
  -o "$tmp/x.csv"
grep -q 'case "none_such" is not in the dataset' "$tmp/err" || fail "an unknown case is named"
# shellcheck disable=SC2086
expect_rc 3 "evaluate into a missing folder" "$BIN" evaluate "$ph" --train "$tmp/sel/selection.csv" \
  -o "$tmp/no/such/ev.csv" $evo
grep -q "training on" "$tmp/out" && fail "evaluate with a wrong output path started training"
[ -e "$tmp/x.csv" ] && fail "a refused evaluate wrote results"
# The CUDA engine has no U-Net ops yet: said plainly (or no device here: exit 4).
# shellcheck disable=SC2086
"$BIN" evaluate "$ph" --train "$tmp/sel/selection.csv" -o "$tmp/x.csv" $evo --device cuda \
  >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" -eq 4 ] || { [ "$rc" -eq 3 ] && grep -q "not supported on the cuda engine yet" "$tmp/err"; } ||
  fail "evaluate --device cuda: exit $rc: $(cat "$tmp/err")"
# SIGTERM: exit 130, the training state kept in --checkpoint.
# shellcheck disable=SC2086
signal_when TERM '[ -e "$tmp/ev.ckpt" ]' "$BIN" evaluate "$ph" --train "$tmp/sel/selection.csv" \
  -o "$tmp/evt.csv" $evo --iterations 500 --checkpoint "$tmp/ev.ckpt" --checkpoint-every 1
[ "$rc" -eq 130 ] || { fail "evaluate after SIGTERM: exit $rc, want 130"; cat "$tmp/err"; }
grep -q "run the same command again to continue" "$tmp/err" || fail "evaluate after SIGTERM says how to continue"
[ -e "$tmp/ev.ckpt" ] && [ ! -e "$tmp/evt.csv" ] || fail "evaluate after SIGTERM: the checkpoint and no results"
# The comparison: the scores' 8 cases are the pool, the 2 other cases of a 10-case
# phantom dataset the validation cases.
ph10="$tmp/ph10"
"${OUT_LIB%lib}bin/csal3d-phantom" "$ph10" --cases 10 --size 40 --slices 24 --quiet ||
  fail "phantom generation (10 cases)"
# shellcheck disable=SC2086
expect_rc 0 "evaluate --scores" "$BIN" evaluate "$ph10" --scores "$tmp/scores.safetensors" \
  --strategies urds,random --budgets 2 --seeds 0,1 -o "$tmp/cmp.csv" --table "$tmp/table.csv" $evo
grep -Eq "^random +[0-9.]+ \+- [0-9.]+" "$tmp/out" || fail "evaluate --scores prints the table"
"$PY" - "$tmp/cmp.csv" "$tmp/cmp.json" "$tmp/table.csv" <<'PY' || fail "the comparison's files"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
means = [r for r in rows if r["case"] == "mean"]
assert [(r["strategy"], r["seed"]) for r in means] == \
    [("urds", "0"), ("urds", "1"), ("random", "0"), ("random", "1")], means
assert {r["case"] for r in rows} == {"phantom_008", "phantom_009", "mean"}, rows
runs = json.load(open(sys.argv[2]))["runs"]
assert len(runs) == 4 and all(len(r["train_cases"]) == 2 for r in runs), runs
table = list(csv.DictReader(open(sys.argv[3])))
assert [(t["strategy"], t["budget"], t["runs"]) for t in table] == \
    [("urds", "2", "2"), ("random", "2", "2")], table
PY
# SIGTERM once the first run is in the results: exit 130; the same command continues
# with the other runs and gives the uninterrupted comparison's table.
cmp2="$ph10 --scores $tmp/scores.safetensors --strategies urds,random --budgets 2 --seeds 0,1"
# shellcheck disable=SC2086
signal_when TERM '[ -e "$tmp/cmp2.json" ]' "$BIN" evaluate $cmp2 -o "$tmp/cmp2.csv" \
  --table "$tmp/table2.csv" $evo
[ "$rc" -eq 130 ] || fail "evaluate --scores after SIGTERM: exit $rc, want 130"
grep -q "run the same command again to continue" "$tmp/err" ||
  fail "evaluate --scores after SIGTERM says how to continue"
# shellcheck disable=SC2086
expect_rc 0 "evaluate --scores continued" "$BIN" evaluate $cmp2 -o "$tmp/cmp2.csv" \
  --table "$tmp/table2.csv" $evo --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["runs"] == 4 and 1 <= d["reused"] < 4, d' \
  "$tmp/out" || fail "evaluate --scores after SIGTERM did not continue from the results"
cmp -s "$tmp/table.csv" "$tmp/table2.csv" || fail "a continued comparison gave another table"
# shellcheck disable=SC2086
expect_rc 2 "evaluate --scores with other settings" "$BIN" evaluate $cmp2 -o "$tmp/cmp2.csv" \
  $evo --iterations 3
grep -q -- "--iterations is 2 there and 3 now" "$tmp/err" || fail "other settings: the difference is named"

# The demo prints the command lines of its steps: run again, they give the same files.
demo="$tmp/demo"
expect_rc 0 "demo" "$BIN" demo --dir "$demo" --cases 2 --budget 1 --iterations 1 --crop 64,32,32 \
  --spacing 20 --threads 1
mkdir "$tmp/demo_first" && cp "$demo/ssl.safetensors" "$demo/scores.safetensors" \
  "$demo/selection.csv" "$tmp/demo_first/" || fail "the demo's outputs"
sed -n 's/^\$ csal3d //p' "$tmp/out" > "$tmp/steps"
[ "$(wc -l < "$tmp/steps")" -eq 5 ] || fail "the demo prints 5 command lines"
[ -s "$demo/report.html" ] || fail "the demo wrote no report"
while read -r step; do
  eval "expect_rc 0 \"demo step: \$step\" \"\$BIN\" $step --quiet"
done < "$tmp/steps"
for f in ssl.safetensors scores.safetensors selection.csv; do
  cmp -s "$tmp/demo_first/$f" "$demo/$f" || fail "the demo's printed commands give another $f"
done
expect_rc 0 "demo --json" "$BIN" demo --dir "$demo" --cases 2 --budget 1 --iterations 1 \
  --crop 64,32,32 --spacing 20 --threads 1 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["command"] == "select", d' \
  "$tmp/out" || fail "demo --json prints one JSON object"

[ "$fails" -eq 0 ] || { echo "cli_test: $fails failure(s)"; exit 1; }
echo "cli_test: all passed"
