#!/bin/sh
# The hippocampus table of docs/evaluation.md, in one command: the MSD hippocampus's first
# 208 cases (sorted file names) are the pool, the last 52 the validation cases; SSL
# pretraining on the pool, scoring of the pool, then U-Net runs on the cases that each
# strategy chooses: URDS, TypiClust and Random at 5, 10 and 20 cases, Unc-only, Div-only
# and ProbCover at 10, 3 selection seeds each, and the whole pool once (the ceiling).
# Every step continues where an interrupted run stopped: run the same command again.
#
#   sh scripts/evaluation_table.sh [WORKDIR]        (default build/hippo_table)
#
# Environment: CSAL3D_HIPPO (the dataset, default ../shared/data/msd_hippocampus),
# THREADS (default: every core), STEPS (pretraining steps, default 2000), ITERATIONS
# (U-Net iterations per run, default 1000), BIN (default bin/csal3d). Outputs in WORKDIR:
# pool.txt, val.txt, ssl.safetensors, scores.safetensors, results.csv and results.json
# (every run), table_main.csv, table_b10.csv, table_pool.csv.
set -eu
DATA=${CSAL3D_HIPPO:-../shared/data/msd_hippocampus}
WORK=${1:-build/hippo_table}
BIN=${BIN:-bin/csal3d}
THREADS=${THREADS:-0}
STEPS=${STEPS:-2000}
ITERATIONS=${ITERATIONS:-1000}
[ -x "$BIN" ] || { echo "evaluation_table: $BIN is not built (run make)"; exit 1; }
[ -d "$DATA/imagesTr" ] || { echo "evaluation_table: no $DATA/imagesTr (set CSAL3D_HIPPO)"; exit 1; }
mkdir -p "$WORK"
DATA=$(cd "$DATA" && pwd)

# The split: 'image,label' lines (a dataset list), absolute paths.
ls "$DATA/imagesTr" | grep '^hippocampus_.*\.nii\.gz$' | sort |
  awk -v d="$DATA" '{print d "/imagesTr/" $0 "," d "/labelsTr/" $0}' > "$WORK/all.txt"
head -n 208 "$WORK/all.txt" > "$WORK/pool.txt"
tail -n +209 "$WORK/all.txt" > "$WORK/val.txt"
[ "$(wc -l < "$WORK/val.txt")" -eq 52 ] || { echo "evaluation_table: expected 260 cases"; exit 1; }

# 1. SSL pretraining on the pool (embed_dim 24, 32x64x32 crops at 1.5 mm, batch 2); not
# needed once the pool is scored (a scores.safetensors put in WORKDIR is used as it is).
if [ -f "$WORK/scores.safetensors" ]; then
  echo "evaluation_table: $WORK/scores.safetensors exists: no pretraining, no scoring"
elif [ -f "$WORK/ssl.safetensors" ]; then
  "$BIN" pretrain "$WORK/pool.txt" --resume "$WORK/ssl.safetensors" --threads "$THREADS" \
    --checkpoint-every 100
else
  "$BIN" pretrain "$WORK/pool.txt" -o "$WORK/ssl.safetensors" --embed-dim 24 --crop 32,64,32 \
    --batch 2 --iterations "$STEPS" --seed 7 --spacing 1.5 --modality mri \
    --threads "$THREADS" --checkpoint-every 100
fi

# 2. The pool's uncertainty and features (as the model was trained: mri, 1.5 mm).
[ -f "$WORK/scores.safetensors" ] ||
  "$BIN" score "$WORK/ssl.safetensors" "$WORK/pool.txt" -o "$WORK/scores.safetensors" \
    --threads "$THREADS"

# 3. The U-Net runs, all into results.csv / results.json (native spacing, whole volumes
# padded to 48x64x48, batch 4): three grids with the same settings.
run() { # TABLE STRATEGIES BUDGETS SEEDS
  "$BIN" evaluate "$DATA" --scores "$WORK/scores.safetensors" --validation "$WORK/val.txt" \
    --strategies "$2" --budgets "$3" --seeds "$4" --iterations "$ITERATIONS" --batch 4 \
    --patch 48,64,48 --seed 0 --threads "$THREADS" --checkpoint "$WORK/run.ckpt" \
    -o "$WORK/results.csv" --results-json "$WORK/results.json" --table "$WORK/$1"
}
run table_main.csv urds,typiclust,random 5,10,20 0,1,2
run table_b10.csv unc-only,div-only,probcover 10 0,1,2
run table_pool.csv random 208 0
