#!/usr/bin/env bash
# Experiment hay_history: does a spike-history kernel (gru_history) fix the plain GRU's too-short
# intervals after its own spikes? Three surrogates on the same 400 training trials, same steps and
# seed (configs/experiments/hay_history/*.toml): the plain GRU, gru_history trained with the recorded
# spikes driving the kernel, and gru_history trained free-running. Scored on the first 40 validation
# trials (scored whole) and on the Hay 2011 reference recordings (from 300 ms): evaluate's metrics,
# and the spike scores by interval to the train's previous spike (by_gap) and by order (by_order).
# Every step resumes or skips what is done. Cost on a 2-core CPU: data ~55 min (400 + 40 trials of
# NEURON on 2 workers), training ~15-25 min per model (two at a time), scoring ~2 min per model.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hay_400_data.sh  # N, PY, HAY, GEN; data/hay/train_400.h5 and val_40.h5
MODELS=${MODELS:-"gru history_true history_own"}
mkdir -p runs/hay_history
# one torch thread per run, two runs at a time (2 cores)
running=0
for m in $MODELS; do
  $N train --config configs/experiments/hay_history/$m.toml --quiet > "runs/hay_history_$m.log" 2>&1 &
  running=$((running + 1))
  if [ $running -ge 2 ]; then wait -n; running=$((running - 1)); fi
done
wait
for m in $MODELS; do
  out=docs/experiments/hay_history/$m
  $N evaluate --model runs/hay_history/$m/model --data data/hay/val_40.h5 --data "$HAY/reference/synaptic_bombardment.npz" \
      --long-run-s 0 --out-dir runs/hay_history/$m/eval
  mkdir -p "$out/eval" && cp runs/hay_history/$m/eval/report.md "$out/eval/"
  $PY benchmarks/l5pc_spike_reliability.py --morphology "$HAY/cell1.asc" --data data/hay/val_40.h5 --skip-ms 0 \
      --conditions "" --model runs/hay_history/$m/model --out "$out/val"
  $PY benchmarks/l5pc_spike_reliability.py --morphology "$HAY/cell1.asc" --conditions "" \
      --model runs/hay_history/$m/model --out "$out/ref"
done
$PY benchmarks/hay_history_kernels.py runs/hay_history/history_true/model runs/hay_history/history_own/model \
    --out docs/experiments/hay_history/kernels.png
