#!/bin/bash
# The GPU paths, run on a CUDA machine in one go (a few minutes on one H200):
#   1. the tests that take a "cuda" case where CUDA is present: every stage-1 configuration
#      (precision fp32/bf16/fp16 x micro-batches x data.augment_on_device x queue x method) for two
#      steps, and device-side augmentation against the loader's images; then text on a tiny BERT
#      (every method at every precision, with micro-batches and the queue where it takes them);
#   2. the main job (`make run`'s command) on the GPU with fp16 and device-side augmentation;
#   3. benchmarks/train_speed.py's GPU grid (CIFAR-stem ResNet-18/50, batch 512, bf16, channels-last),
#      with the loader augmenting, then with the GPU augmenting, then compiled.
# Usage, from the repository root:  bash benchmarks/gpu_check.sh [fashion-mnist dir] [cifar-10 dir]
# Without a CIFAR-10 folder, files of the real binary format and size are written with random
# pixels (speed does not depend on what the images show). Logs and tables go to $OUT (default
# gpu-check/). Each step has its own time limit, so one that hangs does not take the others.
set -u
FMNIST=${1:-/usr/share/datasets/fashion-mnist}
CIFAR=${2:-}
OUT=${OUT:-gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
step() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"
nproc; uptime

step "1. tests with a cuda case"
timeout 120 $PY -m pytest -q -p no:cacheprovider -n 8 -k cuda \
    tests/engine/test_configuration_matrix.py tests/data/test_device_augment.py >"$OUT/pytest.log" 2>&1
echo "pytest exit $?"; tail -n 25 "$OUT/pytest.log"
# text on the GPU (device auto): every method at every precision, micro-batches and the queue
timeout 120 $PY -m pytest -q -p no:cacheprovider -n 4 tests/test_text_end_to_end.py -k every_method \
    >"$OUT/pytest-text.log" 2>&1
echo "pytest (text) exit $?"; tail -n 5 "$OUT/pytest-text.log"

step "2. the main job on the GPU, fp16, device-side augmentation"
RUN=$(mktemp -d)/fashion-mnist-supcon
timeout 180 $PY -m supcon.cli train --config fashion-mnist --method supcon --data fashion-mnist \
    --data-dir "$FMNIST" --device cuda --workers 4 --no-progress --out "$RUN" \
    train.precision=fp16 data.augment_on_device=true >"$OUT/main-job.log" 2>&1
echo "train exit $?"; tail -n 6 "$OUT/main-job.log"
cp "$RUN/results.json" "$OUT/main-job-results.json" 2>/dev/null

step "3. training step speed"
if [ -z "$CIFAR" ]; then
    CIFAR=$(mktemp -d)
    $PY - "$CIFAR" <<'EOF'
import sys
from pathlib import Path

import numpy as np

folder = Path(sys.argv[1]) / "cifar-10-batches-bin"
folder.mkdir(parents=True)
rng = np.random.default_rng(0)
for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
    records = rng.integers(0, 256, (10000, 1 + 3 * 32 * 32), dtype=np.uint8)
    records[:, 0] = np.arange(10000) % 10
    (folder / name).write_bytes(records.tobytes())
(folder / "batches.meta.txt").write_text("\n".join(f"class{k}" for k in range(10)) + "\n")
EOF
fi
GRID="--device cuda --encoders resnet18,resnet50 --batches 512 --precision bf16 --channels-last 1 --data cifar10 --data-dir $CIFAR --steps 20"
timeout 150 $PY benchmarks/train_speed.py $GRID --compile 0 --workers 4,8 >"$OUT/speed-loader.md" 2>&1
echo "exit $?"; cat "$OUT/speed-loader.md"
timeout 100 $PY benchmarks/train_speed.py $GRID --compile 0 --workers 4 --augment-on-device >"$OUT/speed-on-device.md" 2>&1
echo "exit $?"; cat "$OUT/speed-on-device.md"
timeout 120 $PY benchmarks/train_speed.py $GRID --encoders resnet18 --compile 1 --no-e2e >"$OUT/speed-compiled.md" 2>&1
echo "exit $?"; cat "$OUT/speed-compiled.md"
step "done"
