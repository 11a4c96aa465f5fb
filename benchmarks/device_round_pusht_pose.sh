#!/usr/bin/env bash
# One GPU round for issue 10 (the `device` tool's machine; not CI): at lr 3e-4 and a longer budget,
# (1) does supervising the block's pose beside the recipe's objectives give a latent that carries
# the whole pose and the agent (the privileged ceiling for planning), and (2) does any
# self-supervised arm now bring the angle? Carried: .whl/ (omegaconf, gymnasium, av, farama:
# train.py imports them) and .gpu/pusht_tiny.tar.xz (data/pusht_tiny, 1,000 episodes at 64 px).
# Every arm trains an encoder on the same episodes, steps and batch, all at once on the one GPU
# (each is launch-bound). The encoders come back as $OUT/<arm>.pt (or the arm's last.ckpt if the
# timeout stopped it) and the logs and metric CSVs as $OUT/logs.tar.gz; probe them where they land:
#   python benchmarks/probe_block_pose.py encoders=[...]
# Usage (PY and WHEELS=0 let it run on a CPU box as a smoke test):
#   bash benchmarks/device_round_pusht_pose.sh [steps] [batch] [arm timeout s]
set -u
STEPS=${1:-3000}
BATCH=${2:-64}
LIMIT=${3:-420}
PY=${PY:-python3}
OUT=${OUT:?set OUT}
if [ "${WHEELS:-1}" = 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
DATA=${DATA:-.gpu/data/pusht_tiny}
if [ ! -d "$DATA" ]; then
  mkdir -p .gpu/data && $PY -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu/pusht_tiny.tar.xz .gpu/data
fi
ls "$DATA" | wc -l

COMMON="env=pusht data.frameskip=5 stage=encoder encoder.max_steps=$STEPS data.batch_size=$BATCH data.num_workers=1
  encoder.lr=3e-4 trainer.val_check_interval=1000 logger.wandb.mode=disabled"
RECIPE="encoder.pooled_decode=1.0 encoder.decode_centered=true"
POSE="encoder.state_supervision=1.0 encoder.state_dims=[2,3,4] encoder.state_angles=[4]"
ALONE="encoder.jepa=0 encoder.inverse_dynamics=0 encoder.vicreg_var=0 encoder.vicreg_cov=0"
declare -A ARMS=(
  [p_recipe_pose]="$RECIPE $POSE"
  [p_recipe_pose_s1]="$RECIPE $POSE seed=1"
  [p_pose_alone]="$POSE $ALONE"
  [s_recipe]="$RECIPE"
  [s_recipe_fd]="$RECIPE encoder.forward_dynamics=1"
  [s_recipe_pixmse]="$RECIPE encoder.decode_target=pixels encoder.decode_loss=mse"
  [s_recipe_contrastive]="$RECIPE encoder.contrastive=1.0"
)
RUNS=/tmp/arms
rm -rf $RUNS && mkdir -p $RUNS
started=$(date +%s)
for arm in "${!ARMS[@]}"; do
  timeout $LIMIT $PY train.py $COMMON data.dir=$DATA ${ARMS[$arm]} output_dir=$RUNS/$arm > $RUNS/$arm.log 2>&1 &
done
wait
echo "training: $(( $(date +%s) - started )) s for ${#ARMS[@]} arms side by side, $STEPS steps of $BATCH each"
for arm in $(printf '%s\n' "${!ARMS[@]}" | sort); do
  echo "$arm: ${ARMS[$arm]}"; grep -E "done in|Error|error" $RUNS/$arm.log | tail -2
  if [ -f $RUNS/$arm/encoder.pt ]; then cp $RUNS/$arm/encoder.pt $OUT/$arm.pt
  elif [ -f $RUNS/$arm/encoder/checkpoints/last.ckpt ]; then cp $RUNS/$arm/encoder/checkpoints/last.ckpt $OUT/$arm.ckpt
  fi
done
tar -czf $OUT/logs.tar.gz -C $RUNS --exclude='*.ckpt' --exclude='*.pt' --exclude=wandb .
ls -la $OUT
