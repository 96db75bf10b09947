#!/usr/bin/env bash
# Experiment hay_states: does supervising the GRU's state with the cell's own slower state variables (Ca2+
# concentrations and gates at the soma, the Ca hot zone and the 400 um trunk site, recorded by NEURON with
# --set record_states=true) make it place spikes better than the plain GRU from the same trials? The cell
# remembers its spikes in such variables (README, hay item 6); the surrogate must infer them from its input.
# The 400 training trials are those of hay_history's baseline (seed 1, first 400 of the shipped run),
# re-simulated with the states recorded (voltages and spikes bit-identical). Two auxiliary weights (0.2, 1.0)
# against the baseline (configs/experiments/hay_history/gru.toml, trained here if absent). Scored on the
# first 40 validation trials (whole) and the Hay 2011 reference recordings (from 300 ms), and on how well the
# state outputs follow the cell's (scripts/hay_state_fidelity.py on those 40 trials re-simulated with the
# states). Every step resumes or skips what is done. Cost on a 2-core CPU: data ~50 min of NEURON on 2
# workers (the 40 validation trials ~8 min on one), training ~12 min per model (two side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hay_400_data.sh  # N, PY, HAY, GEN; data/hay/train_400.h5 and val_40.h5
mkdir -p data/hay_states runs/hay_states runs/hay_history
[ -f data/hay_states/train_400s.h5 ] || $N simulate $GEN --set record_states=true --trials 400 --seed 1 \
    --out data/hay_states/train_400s.h5
[ -f data/hay_states/val_40s.h5 ] || $N simulate $GEN --set record_states=true --trials 40 --seed 2 \
    --out data/hay_states/val_40s.h5  # val_40 with the states: how well the models predict them
[ -f runs/hay_history/gru/model/model.json ] || $N train --config configs/experiments/hay_history/gru.toml --quiet \
    > runs/hay_history_gru.log 2>&1
for w in w02 w1; do
  $N train --config configs/experiments/hay_states/$w.toml --quiet > runs/hay_states_$w.log 2>&1 &
done
wait
for m in hay_history/gru hay_states/w02 hay_states/w1; do
  [ -f runs/$m/eval/report.md ] || $N evaluate --model runs/$m/model --data data/hay/val_40.h5 \
      --data "$HAY/reference/synaptic_bombardment.npz" --long-run-s 0 --out-dir runs/$m/eval
  out=docs/experiments/hay_states/${m#*/}
  mkdir -p "$out" && cp runs/$m/eval/report.md "$out/"
  [ $m = hay_history/gru ] || $PY scripts/hay_state_fidelity.py --model runs/$m/model \
      --data data/hay_states/val_40s.h5 --out "$out/state_fidelity.json" > "$out/state_fidelity.md"
done
# does a model hold the states without being asked? a linear read-out of its top GRU layer, fitted on 100 training
# trials, scored on the 40 validation trials
for m in hay_history/gru hay_states/w1; do
  $PY scripts/hay_state_fidelity.py --model runs/$m/model --probe data/hay_states/train_400s.h5 \
      --data data/hay_states/val_40s.h5 --out docs/experiments/hay_states/${m#*/}/probe.json \
      > docs/experiments/hay_states/${m#*/}/probe.md
done
