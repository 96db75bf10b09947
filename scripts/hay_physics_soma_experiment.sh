#!/usr/bin/env bash
# Experiment hay_physics_soma (README, the detailed cell, item 15): keep the Hay soma and axon stub exact (NEURON,
# our mechanisms) and learn only what the dendrites feed it, as a conductance g to a driving voltage E_d(t) held
# per ms. First how much of the cell's firing such a drive carries at all (the recorded drive replayed into the
# soma alone, for g from 0 = a current to 1 uS), then GRUs (item 8's: 64 units, 2 layers, 4 traces, dropout 0.15,
# 1,500 steps of 32 trials x 500 ms, seed 0) trained on the first 400 training trials to predict E_d from the
# synaptic input and the soma's previous ms (its spike, or its spike and voltage, or nothing), run closed loop
# with the exact soma on the 40 validation trials and scored next to item 8's plain GRU; then a constant offset of
# the drive calibrated on 40 training trials (like a surrogate's spike threshold), two seeds of the best. Every step resumes or
# skips what is done. Cost on a 2-core CPU (session 25): recording 39 + 4 min of NEURON on 2 workers (on top of
# the data of scripts/hay_400_data.sh, ~45 min if absent), replays 6 min, training 12-15 min per net (one core
# each, two side by side: ~40 min for the six, ~10 min for a seventh alone), the closed loops ~1 min, the offset
# calibration ~5 min: ~1 h 45 min with the data present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hay_400_data.sh  # N, PY, HAY, GEN, train, score; data/hay/train_400.h5 and val_40.h5
R=runs/hay_physics_soma
DOCS=docs/experiments/hay_physics_soma
S="$PY scripts/hay_physics_soma.py"
mkdir -p $R $DOCS
M="--morphology $HAY/cell1.asc"
[ -f $R/val_40.npz ] || $S record --data data/hay/val_40.h5 $M --out $R/val_40.npz
[ -f $R/train_400.npz ] || $S record --data data/hay/train_400.h5 $M --out $R/train_400.npz
# the recorded drive replayed into the soma alone: as recorded; with each spike's own bin held at the bin before
# (what a model that cannot foresee the spike in its bin can give); with smooth errors added (how exact must E_d be)
rep() {  # rep NAME ARGS...
  [ -f $DOCS/$1.json ] || $S replay --record $R/val_40.npz --data data/hay/val_40.h5 $M --workers 1 \
      --out $DOCS/$1.json "${@:2}" > /dev/null
}
rep replay_val40 --g-nS 0 10 20 40 80 120 200 400 1000
rep replay_hold_val40 --g-nS 0 20 40 80 200 --hold-spike-bin
rep replay_noise_val40 --g-nS 40 80 --hold-spike-bin --noise-mV 1 2 4 8 --noise-tau-ms 10
fit() {  # fit NAME ARGS...: a GRU on the training record unless done
  local name=$1; shift
  [ -f $R/$name/net.pt ] || $S train --record $R/train_400.npz --data data/hay/train_400.h5 --out $R/$name "$@" \
      > $R/$name.log 2>&1
}
# E_d at 40 and 80 nS, the soma's spike fed back, each spike's own bin out of the loss (--mask-spike-ms 1); then the
# controls: that bin in the loss, the soma's voltage fed back too, 200 nS, nothing fed back
fit g80_spike_m1 --g-nS 80 --feedback spike --mask-spike-ms 1 & fit g40_spike_m1 --g-nS 40 --feedback spike --mask-spike-ms 1 & wait
fit g80_spike --g-nS 80 --feedback spike & fit g80_voltage_m1 --g-nS 80 --feedback voltage --mask-spike-ms 1 & wait
fit g200_spike_m1 --g-nS 200 --feedback spike --mask-spike-ms 1 & fit g80_none_m1 --g-nS 80 --feedback none --mask-spike-ms 1 & wait
fit g80_none_m1_s1 --g-nS 80 --feedback none --mask-spike-ms 1 --seed 1  # the lead below, a second seed
train hay_history/gru  # item 8's plain GRU, the baseline (same data, recipe and seed)
[ -f $DOCS/loop_val40.json ] || $S loop --record $R/val_40.npz --data data/hay/val_40.h5 $M --workers 2 \
    --model $R/g80_spike_m1 $R/g40_spike_m1 $R/g80_spike $R/g80_voltage_m1 $R/g200_spike_m1 $R/g80_none_m1 \
    --baseline runs/hay_history/gru/model src/neurosurrogate/models/hay-l5pc --out $DOCS/loop_val40.json
# a drive offset calibrated like a surrogate's spike threshold, on 40 training trials (the GRUs saw them: the plain
# GRU's threshold was calibrated on the validation trials); then the validation trials at each model's best offset
[ -f $DOCS/calibrate_train40.json ] || $S loop --record $R/train_400.npz --data data/hay/train_400.h5 --trials 40 $M \
    --workers 2 --model $R/g80_none_m1 $R/g80_none_m1_s1 $R/g80_spike_m1 --offset-mV -14 -11 -8 -5 -3 -1.5 0 1.5 \
    --baseline runs/hay_history/gru/model --out $DOCS/calibrate_train40.json
for m in g80_none_m1 g80_none_m1_s1 g80_spike_m1; do
  o=$($PY -c "import json; r = [x for x in json.load(open('$DOCS/calibrate_train40.json'))['rows'] if x['model'].endswith('/$m')]
print(max(r, key=lambda x: x['F1_10ms'])['offset_mV'])")
  [ -f $DOCS/loop_calibrated_$m.json ] || $S loop --record $R/val_40.npz --data data/hay/val_40.h5 $M --workers 2 \
      --model $R/$m --offset-mV $o --out $DOCS/loop_calibrated_$m.json
done
# item 16: can the drive be split into an input part and the soma's own feedback? First the tree's answer to the
# soma measured directly (whole cell without synapses, soma clamped to the free run's voltage; 28 training trials,
# ~10 min) and closed-loop oracles with the exact input part; then a fixed spike kernel (fitted on 100 training
# records) fed the soma's own spikes, its oracle on the validation trials, and GRUs that learn the drive less the
# kernel of the cell's spikes from the input alone (40 nS; each spike's bin in or out of the loss), calibrated
# like the models above (~45 min with the record present)
[ -f $R/tree_train28/tree.json ] || $S tree --data data/hay/train_400.h5 $M --trials 28 --out-dir $R/tree_train28
cp $R/tree_train28/tree.json $DOCS/tree_train28.json
[ -f $R/spike_kernel_g40.json ] || $S spike-kernel --record $R/train_400.npz --data data/hay/train_400.h5 --g-nS 40 \
    --lags 60 --trials 100 --out $R/spike_kernel_g40.json
cp $R/spike_kernel_g40.json $DOCS/spike_kernel_g40.json
rep replay_kernel_val40 --spike-kernel $R/spike_kernel_g40.json --noise-mV 0 1.5 3 5.5 --workers 2
K="--g-nS 40 --feedback none --spike-kernel $R/spike_kernel_g40.json"
fit g40_kernel_m0 $K & fit g40_kernel_m1 $K --mask-spike-ms 1 & wait
[ -f $DOCS/calibrate_kernel_train40.json ] || $S loop --record $R/train_400.npz --data data/hay/train_400.h5 --trials 40 \
    $M --workers 2 --model $R/g40_kernel_m0 $R/g40_kernel_m1 --offset-mV -12 -8 -5 -3 0 3 6 \
    --out $DOCS/calibrate_kernel_train40.json
for m in g40_kernel_m0 g40_kernel_m1; do
  o=$($PY -c "import json; r = [x for x in json.load(open('$DOCS/calibrate_kernel_train40.json'))['rows'] if x['model'].endswith('/$m')]
print(max(r, key=lambda x: x['F1_10ms'])['offset_mV'])")
  [ -f $DOCS/loop_calibrated_$m.json ] || $S loop --record $R/val_40.npz --data data/hay/val_40.h5 $M --workers 2 \
      --model $R/$m --offset-mV $o --out $DOCS/loop_calibrated_$m.json
done
$S report $DOCS/replay_val40.json $DOCS/replay_hold_val40.json $DOCS/replay_noise_val40.json $DOCS/loop_val40.json \
    $DOCS/calibrate_train40.json $DOCS/loop_calibrated_g80_none_m1.json $DOCS/loop_calibrated_g80_none_m1_s1.json \
    $DOCS/loop_calibrated_g80_spike_m1.json $DOCS/tree_train28.json $DOCS/replay_kernel_val40.json \
    $DOCS/calibrate_kernel_train40.json $DOCS/loop_calibrated_g40_kernel_m0.json $DOCS/loop_calibrated_g40_kernel_m1.json \
    > $DOCS/summary.md
