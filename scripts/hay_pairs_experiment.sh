#!/usr/bin/env bash
# Experiment hay_pairs: does a loss on paired trials (the same input with and without single "probe" events,
# the difference of the cell's responses as the target; train/pairs.py) give the surrogate the cell's
# per-event responses and better spikes? Trained on bombardment alone, surrogates answer one event with
# ~60 % of the cell's response (scripts/hay_pair_response.py; README hay item 12). The first 200 trials of
# hay_history's baseline data (seed 1) are re-simulated with probes at 40 Hz in total (--option
# probe_rate_Hz=40: trial i = trial i of train_400 plus the probes); p1 and p03 train with the difference
# loss at weight 1 and 0.3, p0 on the same data and batches without it (the control for the 200 extra trials); the baseline
# is configs/experiments/hay_history/gru.toml (trained here if absent). Scored on the first 40 validation
# trials (whole), the Hay 2011 reference recordings (from 300 ms), and the probe responses on those 40
# validation trials re-simulated with probes. Every step resumes or skips what is done. Cost on a 2-core
# CPU: data ~35 min of NEURON on 2 workers (+ ~8 min for the 40 validation pairs), training ~20-25 min per
# model (two side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hay_400_data.sh  # N, PY, HAY, GEN; data/hay/train_400.h5 and val_40.h5
mkdir -p data/hay_pairs runs/hay_pairs runs/hay_history
[ -f data/hay_pairs/probe40_200.h5 ] || $N simulate $GEN --option probe_rate_Hz=40 --trials 200 --seed 1 \
    --out data/hay_pairs/probe40_200.h5
[ -f data/hay_pairs/val_probe40_40.h5 ] || $N simulate $GEN --option probe_rate_Hz=40 --trials 40 --seed 2 \
    --out data/hay_pairs/val_probe40_40.h5
[ -f runs/hay_history/gru/model/model.json ] || $N train --config configs/experiments/hay_history/gru.toml --quiet \
    > runs/hay_history_gru.log 2>&1
for p in p0 p1 p03; do  # two side by side, then the third
  [ -f runs/hay_pairs/$p/model/model.json ] || $N train --config configs/experiments/hay_pairs/$p.toml --quiet \
      > runs/hay_pairs_$p.log 2>&1 &
  [ $p = p1 ] && wait
done
wait
for m in hay_history/gru hay_pairs/p0 hay_pairs/p1 hay_pairs/p03; do
  [ -f runs/$m/eval/report.md ] || $N evaluate --model runs/$m/model --data data/hay/val_40.h5 \
      --data "$HAY/reference/synaptic_bombardment.npz" --long-run-s 0 --out-dir runs/$m/eval
  out=docs/experiments/hay_pairs/${m#*/}
  mkdir -p "$out" && cp runs/$m/eval/report.md "$out/"
done
for d in train val; do
  if [ $d = train ]; then b=data/hay/train_400.h5; p=data/hay_pairs/probe40_200.h5
  else b=data/hay/val_40.h5; p=data/hay_pairs/val_probe40_40.h5; fi
  $PY scripts/hay_pair_response.py --model runs/hay_history/gru/model --model runs/hay_pairs/p0/model \
      --model runs/hay_pairs/p1/model --model runs/hay_pairs/p03/model --base $b --probed $p --out docs/experiments/hay_pairs/pair_response_$d.json \
      > docs/experiments/hay_pairs/pair_response_$d.md
done
