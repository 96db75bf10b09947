#!/usr/bin/env bash
# Experiment hay_prior: does a physics prior on the input (gru_prior: every synapse's PSP at the soma and the
# two dendritic sites, measured in NEURON at rest) make the surrogate learn the synapses' efficacies, and its
# spikes, better than the plain GRU from the same data? The baseline is hay_history's plain GRU (same 400
# training trials, steps, seed and sizes: configs/experiments/hay_history/gru.toml; trained here if absent).
# Scored on the first 40 validation trials (whole) and the Hay 2011 reference recordings (from 300 ms), and
# with one extra event per synapse against NEURON (l5pc_synapse_efficacy.py: at rest, and on validation
# trial 0 at 440 ms). Every step resumes or skips what is done. Cost on a 2-core CPU: kernels ~10 min of
# NEURON on 1 worker, training ~15-25 min per model, efficacy ~15 min per model.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hay_400_data.sh  # N, PY, HAY, GEN; data/hay/train_400.h5 and val_40.h5
[ -f data/hay/psp_rest.npz ] || $PY scripts/hay_psp_kernels.py --morphology "$HAY/cell1.asc" --out data/hay/psp_rest.npz
mkdir -p runs/hay_prior runs/hay_history
[ -f runs/hay_history/gru/model/model.json ] || $N train --config configs/experiments/hay_history/gru.toml --quiet \
    > runs/hay_history_gru.log 2>&1 &
$N train --config configs/experiments/hay_prior/prior.toml --quiet > runs/hay_prior_prior.log 2>&1 &
wait
for m in hay_history/gru hay_prior/prior; do
  out=docs/experiments/hay_prior/${m#*/}
  $N evaluate --model runs/$m/model --data data/hay/val_40.h5 --data "$HAY/reference/synaptic_bombardment.npz" \
      --long-run-s 0 --out-dir runs/$m/eval
  mkdir -p "$out" && cp runs/$m/eval/report.md "$out/"
  $PY benchmarks/l5pc_synapse_efficacy.py --morphology "$HAY/cell1.asc" --model runs/$m/model \
      --data data/hay/val_40.h5 --context rest --context 0:440 --out "$out/efficacy"
done
