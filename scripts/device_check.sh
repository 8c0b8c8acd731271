#!/usr/bin/env bash
# Issue 14's accelerator figures, one run of a few minutes on one GPU (the `device` tool):
#   run: bash scripts/device_check.sh      (timeout_s 420; results also under $OUT)
# Uses the machine's own python3 with JAX's CUDA build and this checkout on PYTHONPATH.
# 1. binning / adaptive / exact / KDE, host and device paths side by side on a synthetic
#    stored-activation cell (5 seeds x 300 logged epochs, N = 4096; per layer-epoch times
#    scale to the 50-seed cell): the KDE <= 0.5 ms per layer-epoch budget;
# 2. binning of a trained params-only paper cell (50 seeds, recomputed on the GPU) by
#    `ibrepro analyze`: the <= 3 s budget;
# 3. training throughput at 2000 seeds (seed-epochs per second).
set -uo pipefail
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/device_check}
mkdir -p "$out"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee "$out/devices.txt"
timeout 200 python3 scripts/bench_kernels.py --seeds 5 --epochs 300 --workers 4 --kde-seeds 0-3 --kde-every 10 \
    2>&1 | tee "$out/kernels.txt"
timeout 90 python3 scripts/bench_paper_cell.py --seeds 50 --stored-seeds 2 2>&1 | tee "$out/paper_cell.txt"
timeout 90 python3 scripts/bench_train.py --seeds 2000 --epochs 500 --ref-seeds 1 --ref-epochs 1 --params-only \
    2>&1 | tee "$out/train.txt"
