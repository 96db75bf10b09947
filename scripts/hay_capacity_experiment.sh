#!/usr/bin/env bash
# Experiment hay_capacity: is the surrogate's spike shortfall a lack of capacity, of fit, or of what it
# learned about each synapse? (1) The 400-trial baseline GRU of hay_history scored on 40 of its own
# training trials; (2) the same architecture trained on only those 40 trials without dropout, scored
# with its last weights on them and on validation (can it fit spikes at all?); (3) a GRU twice as wide
# on the 400 trials; (4) one extra event per synapse on top of validation trials and at rest, NEURON
# against the surrogates (benchmarks/l5pc_synapse_efficacy.py). Configs: configs/experiments/hay_capacity/.
# Every step resumes or skips what is done. Cost on a 2-core CPU: data as scripts/hay_history_experiment.sh
# (~55 min, skipped if present), training 15 min (overfit40) and ~35 min (wide128) side by side, the baseline
# 17 min if missing, scoring ~2 min per model, efficacy ~8 min per model and context on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hay_400_data.sh  # N, PY, HAY, GEN; data/hay/train_400.h5 and val_40.h5
mkdir -p runs/hay_capacity
# the first 40 training trials, taken from the 400 (no simulation)
[ -f data/hay/train_40.h5 ] || $N simulate $GEN --trials 40 --seed 1 --reuse data/hay/train_400.h5 --out data/hay/train_40.h5
[ -f runs/hay_history/gru/model/model.json ] || \
  $N train --config configs/experiments/hay_history/gru.toml --quiet > runs/hay_history_gru.log 2>&1 &
for m in overfit40 wide128; do
  $N train --config configs/experiments/hay_capacity/$m.toml --quiet > "runs/hay_capacity/$m.log" 2>&1 &
done
wait
$PY scripts/model_from_checkpoint.py runs/hay_capacity/overfit40 runs/hay_capacity/overfit40/last
for m in hay_history/gru/model hay_capacity/overfit40/last hay_capacity/wide128/model; do
  $N evaluate --model runs/$m --data data/hay/train_40.h5 --data data/hay/val_40.h5 --long-run-s 0 \
      --out-dir runs/$m/../eval_capacity_$(basename $m)
done
for m in hay_history/gru/model hay-l5pc; do
  model=$m; [ "$m" = hay-l5pc ] || model=runs/$m
  name=$(echo "$m" | tr '/' '_')
  $PY benchmarks/l5pc_synapse_efficacy.py --morphology "$HAY/cell1.asc" --model "$model" --data data/hay/val_40.h5 \
      --context rest --context 0:440 --out docs/experiments/hay_capacity/efficacy_$name
done
