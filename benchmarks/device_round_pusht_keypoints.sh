#!/usr/bin/env bash
# One GPU round for issue 10 (the `device` tool's machine; not CI). Two questions about the Push-T
# keypoint encoder (the tiny preset's), whose block points collapse onto the T's centroid on CPU:
#   1. what does one training step of `size=full` (keypoints at 96 px, transformer 6 x 384,
#      history 3) cost under bf16-mixed, now that the full preset uses the keypoint encoder;
#   2. does 96 px, or 4x the clips per step, pull the block's points apart so that the latent
#      carries the angle?
# Carried (ignored paths): .whl/ (omegaconf, gymnasium, farama-notifications: train.py imports
# them), .gpu/av.tar.xz (PyAV's wheel contents, xz-packed so that the 96 px data fits the 64 MiB
# carry), .gpu/pusht_tiny.tar.xz (data/pusht_tiny: 1,000 episodes at 64 px) and
# .gpu/pusht_96.tar.xz (data/pusht_96: `python -m jepa_plan.collect env=pusht env.resolution=96
# episodes=1000 steps=100 out=data/pusht_96`).
# Every arm trains the tiny recipe's encoder stage; the arms differ only in resolution, batch,
# steps and seed, and all run at once on the one GPU (each is launch-bound). Each stops at its
# steps or after MIN minutes (trainer.max_minutes) and writes encoder.pt either way. The encoders
# come back in $OUT/encoders.tar (<arm>.pt), the logs and metric CSVs in $OUT/logs.tar.gz; probe
# them where they land:
#   python benchmarks/probe_block_pose.py encoders=[...] points=true            (64 px arms)
#   python benchmarks/probe_block_pose.py encoders=[...] data=data/pusht_96 points=true
# ARMSET=precision (with THROUGHPUT=0) runs the second round's arms instead (below).
# Usage (PY, WHEELS=0, DATA64, DATA96 and small steps let it run on a CPU box as a smoke test):
#   bash benchmarks/device_round_pusht_keypoints.sh [MIN] [short steps] [long steps]
set -u
MIN=${1:-5.5}
SHORT=${2:-4000}
LONG=${3:-4000}
PY=${PY:-python3}
OUT=${OUT:?set OUT}
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg WANDB_MODE=disabled
started=$(date +%s)
untar() { $PY -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$@"; }
if [ "${WHEELS:-1}" = 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  untar .gpu/av.tar.xz /tmp/site || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
DATA64=${DATA64:-.gpu/data/pusht_tiny}
DATA96=${DATA96:-.gpu/data/pusht_96}
mkdir -p .gpu/data
[ -d "$DATA64" ] || untar .gpu/pusht_tiny.tar.xz .gpu/data &
ARMSET=${ARMSET:-scale}
[ -d "$DATA96" ] || [ $ARMSET != scale ] || untar .gpu/pusht_96.tar.xz .gpu/data &
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
$PY -c "import torch, lightning, av, omegaconf; print('torch', torch.__version__, 'lightning', lightning.__version__, 'av', av.__version__)" || exit 1

echo "== 1. training step cost, bf16-mixed, synthetic batches of each preset's shapes (alone on the GPU)"
if [ "${THROUGHPUT:-1}" = 1 ]; then
  for size in full tiny; do
    timeout 120 $PY benchmarks/bench_train_throughput.py env=pusht size=$size precisions=[${PRECISION:-bf16-mixed}] \
      warmup=5 steps=20 action_dim=2 state_dim=7 2>&1 | tee -a $OUT/throughput.log | grep -E "^\||size="
  done
fi
wait  # the data
echo "setup and throughput: $(( $(date +%s) - started )) s"

echo "== 2. encoder arms side by side, each at most $MIN min"
COMMON="env=pusht data.frameskip=5 stage=encoder encoder.name=keypoints encoder.dim=32 encoder.jepa=0
  encoder.keypoint_decode=30 encoder.vicreg_var=0 encoder.vicreg_cov=0 data.num_workers=2
  trainer.val_check_interval=1000 trainer.progress_bar=false trainer.max_minutes=$MIN logger.wandb.mode=disabled"
AT64="env.resolution=64 data.dir=$DATA64"
AT96="env.resolution=96 data.dir=$DATA96"
declare -A ARMS
B32="data.batch_size=32 encoder.max_steps=$SHORT"
B128="data.batch_size=128 encoder.max_steps=$LONG"
F32="trainer.precision=32-true"
if [ $ARMSET = scale ]; then ARMS=(
  [g64_b32]="$AT64 $B32"
  [g64_b32_s1]="$AT64 $B32 seed=1"
  [g96_b32]="$AT96 $B32"
  [g96_b32_s1]="$AT96 $B32 seed=1"
  [g64_b128]="$AT64 $B128"
  [g96_b128]="$AT96 $B128"
)
# ARMSET=precision: the scale round's 64 px arms read the angle far better than the same recipe on
# CPU (float32). Is it bf16-mixed, or the seed? 32-true here keeps cuDNN's TF32 convolutions.
else ARMS=(
  [p32_b32_s0]="$AT64 $B32 $F32"
  [p32_b32_s1]="$AT64 $B32 $F32 seed=1"
  [p32_b32_s2]="$AT64 $B32 $F32 seed=2"
  [p32_b32_s3]="$AT64 $B32 $F32 seed=3"
  [g64_b32_s2]="$AT64 $B32 seed=2"
  [g64_b32_s3]="$AT64 $B32 seed=3"
  [g64_b128_s1]="$AT64 $B128 seed=1"
  [p32_b128_s0]="$AT64 $B128 $F32"
); fi
RUNS=/tmp/arms
rm -rf $RUNS && mkdir -p $RUNS/pt
arms_started=$(date +%s)
for arm in "${!ARMS[@]}"; do
  $PY train.py $COMMON ${ARMS[$arm]} output_dir=$RUNS/$arm > $RUNS/$arm.log 2>&1 &
done
wait
echo "arms: $(( $(date +%s) - arms_started )) s for ${#ARMS[@]} arms side by side"
for arm in $(printf '%s\n' "${!ARMS[@]}" | sort); do
  echo "$arm: ${ARMS[$arm]}"
  grep -E "stopped by|done in|Error" $RUNS/$arm.log | tail -2
  [ -f $RUNS/$arm/encoder.pt ] && cp $RUNS/$arm/encoder.pt $RUNS/pt/$arm.pt
  [ -f $RUNS/$arm/encoder_metrics.json ] && $PY -c "import json, sys; m = json.load(open(sys.argv[1])); print('  ', {k: round(v, 4) for k, v in m.items() if v})" $RUNS/$arm/encoder_metrics.json
done
tar -cf $OUT/encoders.tar -C $RUNS/pt .
tar -czf $OUT/logs.tar.gz -C $RUNS --exclude='*.ckpt' --exclude='*.pt' --exclude=wandb --exclude=pt .
echo "total: $(( $(date +%s) - started )) s"
ls -la $OUT
