#!/usr/bin/env bash
# One GPU round (the `device` tool's machine; not CI): GRASP iteration cost on CUDA, training
# throughput per precision, and planner seconds on CUDA for a trained checkpoint. Carried: .whl
# (omegaconf, gymnasium) and ckpt/world_model.pt (a size=tiny two_rooms model). Writes to $OUT.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0))"

echo "== GRASP iteration vs predictor forward+backward (fresh default-size model and the trained one)"
timeout 100 python3 benchmarks/bench_grasp_iteration.py devices=[cuda] threads=4 output_dir=$OUT/grasp_iteration 2>&1 | grep -v Warning | tail -30
timeout 60 python3 benchmarks/bench_grasp_iteration.py checkpoint=ckpt/world_model.pt devices=[cuda] threads=4 compile=false output_dir=$OUT/grasp_iteration_ckpt 2>&1 | grep -v Warning | tail -22

echo "== training throughput, two_rooms tiny and full recipes"
timeout 60 python3 benchmarks/bench_train_throughput.py env=two_rooms size=tiny precisions=[32-true,bf16-mixed] steps=40 2>&1 | grep -E "^\||size="
timeout 100 python3 benchmarks/bench_train_throughput.py env=two_rooms size=full precisions=[32-true,bf16-mixed] steps=40 2>&1 | grep -E "^\||size="

echo "== planners on CUDA: trained two_rooms model, 50 door goals, H=30, open loop"
timeout 160 python3 benchmarks/bench_planners.py checkpoint=ckpt/world_model.pt goals=door horizons=[30] modes=[open_loop] \
  episodes=50 devices=[cuda] output_dir=$OUT/planners_cuda 2>&1 | grep -v Warning | tail -40
ls $OUT
