#!/usr/bin/env bash
# Experiment hay_onsets (README, the detailed cell, item 14): which episode onsets (first spikes, no spike in the
# 20 ms before) do the surrogates miss, and what preceded them, against the real cell made to err as much (a fast
# somatic noise current of 0.05 nA; input times jittered by 1 ms); two loss changes aimed at what that shows (the
# spike term weighted 5x, sw5; the soma-voltage samples above -60 mV weighted 11x, nt10); and another architecture
# family, a temporal convolutional network over the input alone at about the GRU's cost per step (tcn_l8: 511 ms
# of input history; tcn_l6: 127 ms); and the same GRU on twice the data (gru800, gru800_s3000). Item 8's recipe
# and data (the first 400 training trials, 1,500 steps, seed 0; its baseline configs/experiments/hay_history/gru.toml
# is trained here if absent). Every step resumes or skips what is done. Cost on a 2-core CPU (session 24): data
# 40 + 3.5 min of NEURON on 2 workers if absent and 31 min for the 400 more trials, training 11 min per GRU on 400
# trials, 11 / 22 min on 800 (1,500 / 3,000 steps) and 5 min per TCN (one core each, two side by side), scoring
# ~1 min per model, the onset analysis 7 min (the two perturbed cells in NEURON on 2 workers): ~1 h 35 min with
# train_400 and val_40 present, ~2 h 20 min from no data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hay_400_data.sh  # N, PY, HAY, GEN, train, score; data/hay/train_400.h5 and val_40.h5
mkdir -p runs/hay_onsets runs/hay_history docs/experiments/hay_onsets
DOCS=docs/experiments/hay_onsets
train hay_onsets/sw5 & train hay_onsets/nt10 & wait
train hay_onsets/tcn_l8 & train hay_onsets/tcn_l6 & wait
# twice the data (trials 400-799 of the same run, 31 min on 2 workers), the same recipe at 1,500 and 3,000 steps
[ -f data/hay/train_800.h5 ] || $N simulate $GEN --trials 800 --seed 1 --reuse data/hay/train_400.h5 --out data/hay/train_800.h5
train hay_onsets/gru800 & train hay_onsets/gru800_s3000 & wait
train hay_history/gru
for m in sw5 nt10 tcn_l8 tcn_l6 gru800 gru800_s3000; do score hay_onsets/$m; done
score hay_history/gru
$PY scripts/hay_onsets.py --model runs/hay_history/gru/model --model src/neurosurrogate/models/hay-l5pc \
    --model runs/hay_onsets/sw5/model --model runs/hay_onsets/nt10/model --model runs/hay_onsets/tcn_l8/model \
    --model runs/hay_onsets/gru800/model --model runs/hay_onsets/gru800_s3000/model \
    --cell-condition fast_current:0.05 --cell-condition jitter_ms:1 --morphology "$HAY/cell1.asc" \
    --data data/hay/val_40.h5 --out $DOCS/onsets_val.json --plot $DOCS/onsets_val.png > $DOCS/onsets_val.md
# the same on 40 of the baseline's own training trials (no generalisation in the way)
$PY scripts/hay_onsets.py --model runs/hay_history/gru/model --data data/hay/train_400.h5 --trials 40 \
    --out $DOCS/onsets_train40.json > $DOCS/onsets_train40.md
