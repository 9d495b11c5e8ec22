#!/usr/bin/env bash
# Two-process data-parallel training on one CPU machine: `torchrun` + `supcon train` (gloo backend).
#
# What it shows: the launch line for multi-process training. torchrun starts 2 copies of
# `supcon train`; each takes its share of every batch (--batch-size is per process, so the global
# batch is 2 x 32 = 64), and the SupCon loss is computed over the views gathered from both
# processes, so every image meets the negatives of the whole global batch. On CPU the processes
# talk over gloo; on GPUs the same line uses NCCL (one process per GPU). Only rank 0 writes the run
# folder and prints the results. Tiny settings (scikit-learn's digits, 1 epoch): about a minute.
#
# Run:   bash examples/torchrun_two_processes.sh runs/torchrun-demo
# Needs: `torchrun` on PATH (it comes with PyTorch; set TORCHRUN=... to use another launcher).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_DIR   (run folder to create)" >&2
    exit 2
fi
out="$1"

# One thread per process: two processes on two cores, no oversubscription.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# --standalone: a single-machine rendezvous on a free local port (no MASTER_ADDR/PORT to pick).
"${TORCHRUN:-torchrun}" --standalone --nproc_per_node=2 -m supcon.cli train \
    --method supcon --data digits --out "$out" \
    --epochs 1 --batch-size 32 --no-progress \
    data.num_workers=0 linear.epochs=2 optim.warmup_epochs=0.5 \
    "model.encoder_options={widths: [16, 32], blocks: [1, 1], strides: [2, 2]}"

grep -m1 "global batch" "$out/train.log" || true   # how the batch was shared out
echo "run folder: $out"
