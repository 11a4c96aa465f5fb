#!/usr/bin/env bash
# One GPU round for issue 10 (the `device` tool's machine; not CI): which encoder objective puts
# the Push-T block's pose, its angle included, in the pooled latent? Carried: .whl/ (omegaconf,
# gymnasium, av: train.py imports them) and .gpu/pusht_tiny.tar.xz (data/pusht_tiny, 1,000
# episodes at 64 px; a 96 px copy does not fit the 64 MiB carry beside av). Every arm trains an encoder on the same episodes with the
# same steps and batch, all arms at once on the one GPU (each is launch-bound), then
# benchmarks/probe_block_pose.py scores them on held-out episodes 900-999. Logs and encoder.pt
# files go to $OUT.
#   bash benchmarks/device_round_pusht_objectives.sh [steps] [batch]
set -u
STEPS=${1:-2000}
BATCH=${2:-64}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p .gpu/data
for set in pusht_tiny; do
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu/$set.tar.xz .gpu/data &
done
wait
ls .gpu/data

COMMON="env=pusht data.frameskip=5 stage=encoder encoder.max_steps=$STEPS data.batch_size=$BATCH data.num_workers=1
  trainer.val_check_interval=500 logger.wandb.mode=disabled"
LEWM="encoder.jepa=0 encoder.inverse_dynamics=0 encoder.vicreg_var=0 encoder.vicreg_cov=0 encoder.forward_dynamics=1
  encoder.sigreg=0.1 encoder.proj_hidden=1024"
RECIPE="encoder.pooled_decode=1.0 encoder.decode_centered=true"
declare -A ARMS=(
  [a_tiny_recipe]="$RECIPE"
  [b_lewm]="$LEWM"
  [c_recipe_fd]="$RECIPE encoder.forward_dynamics=1"
  [d_jepa_id_vicreg_fd]="encoder.forward_dynamics=1"
  [e_lewm_id]="$LEWM encoder.inverse_dynamics=1"
  [f_decode_pixels]="$RECIPE encoder.decode_target=pixels"
  [g_lewm_clip4]="$LEWM data.clip_len=4"
  [h_recipe_proj_fd_sigreg]="$RECIPE encoder.vicreg_var=0 encoder.vicreg_cov=0 encoder.forward_dynamics=1 encoder.sigreg=0.1
    encoder.proj_hidden=1024"
)
started=$(date +%s)
for arm in "${!ARMS[@]}"; do
  timeout 380 python3 train.py $COMMON data.dir=.gpu/data/pusht_tiny ${ARMS[$arm]} output_dir=$OUT/$arm > $OUT/$arm.log 2>&1 &
done
wait
echo "training: $(( $(date +%s) - started )) s for ${#ARMS[@]} arms side by side, $STEPS steps of $BATCH each"
for arm in $(printf '%s\n' "${!ARMS[@]}" | sort); do
  echo "$arm: ${ARMS[$arm]}"; grep -E "done in|Error|error" $OUT/$arm.log | tail -2
done
# An arm the timeout stopped is probed at its last checkpoint (every 100 steps; the table says which step).
pick() { [ -f $OUT/$1/encoder.pt ] && echo $OUT/$1/encoder.pt || ls $OUT/$1/encoder/checkpoints/last.ckpt 2>/dev/null; }
ENC=$(for arm in $(printf '%s\n' "${!ARMS[@]}" | sort); do pick $arm; done | paste -sd, -)
[ -n "$ENC" ] && timeout 180 python3 benchmarks/probe_block_pose.py "encoders=[$ENC]" data=.gpu/data/pusht_tiny 2>&1 | grep -v -i warn
find $OUT -name "*.ckpt" -delete
du -sh $OUT
