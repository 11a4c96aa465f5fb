#!/usr/bin/env bash
# One GPU round for issues 9 and 10 (the `device` tool's machine; not CI). Carried: .whl
# (omegaconf, gymnasium, av) and .gpu/ (the 200-episode two_rooms exports of bench_loader.py,
# lerobot/ and mp4/, and pusht_tiny.pt, the Push-T size=tiny checkpoint). Writes logs to $OUT.
#   1. Push-T training throughput, tiny and full recipes, bf16-mixed (no env built);
#   2. seconds per batched replan on CUDA: LeWM protocol CEM 300 x 30 top 30 and grasp_tuned,
#      H 5, 50 episodes, for the full recipe's predictor (fresh) and the trained tiny checkpoint;
#   3. the loader against the GPU training step (issue 9), default and two_rooms full configs.
# `bash benchmarks/device_round_data_pusht.sh loader` runs part 3 alone.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg WANDB_MODE=disabled
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning, av; print('torch', torch.__version__, 'lightning', lightning.__version__, 'av', av.__version__, torch.cuda.get_device_name(0))"
nproc
filter() { grep -v -i -E "warn|^\s*$|rank_zero|LOCAL_RANK|GPU available|TPU available|HPU available|Trainer" ; }

if [ "${1:-all}" = all ]; then
echo "== 1. Push-T training throughput (synthetic batches of the recipe's shapes)"
for size in full tiny; do
  timeout 100 python3 benchmarks/bench_train_throughput.py env=pusht size=$size precisions=[bf16-mixed] warmup=5 steps=20 \
    action_dim=2 state_dim=7 2>&1 | filter | tee -a $OUT/train_throughput.log | grep -E "^\||size="
done

echo "== 2. planner seconds on CUDA, LeWM protocol shapes (H 5, 50 episodes)"
CEM='overrides=[planner.cem.samples=300,planner.cem.iterations=30,planner.cem.elites=30]'
timeout 100 python3 benchmarks/bench_plan_seconds.py recipe=pusht size=full planners=[cem,grasp_tuned] "$CEM" repeats=2 \
  2>&1 | filter | tee -a $OUT/plan_seconds.log | grep -E "^\||episodes"
timeout 100 python3 benchmarks/bench_plan_seconds.py checkpoint=.gpu/pusht_tiny.pt planners=[cem,grasp_tuned] "$CEM" repeats=2 \
  2>&1 | filter | tee -a $OUT/plan_seconds.log | grep -E "^\||episodes"

fi
echo "== 3. loader vs GPU training step (issue 9)"
timeout 110 python3 benchmarks/bench_loader.py data=.gpu/two_rooms out=.gpu/bench_loader sources=[lerobot,video_folder] \
  workers=[0,2,4,8] batches=60 2>&1 | filter | tee -a $OUT/loader_default.log | grep -E "^\||config"
timeout 130 python3 benchmarks/bench_loader.py data=.gpu/two_rooms out=.gpu/bench_loader sources=[lerobot,video_folder] \
  workers=[0,4,8] batches=12 size=full 2>&1 | filter | tee -a $OUT/loader_full.log | grep -E "^\||config"
ls $OUT
