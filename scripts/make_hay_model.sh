#!/usr/bin/env bash
# Reproduce the shipped hay-l5pc surrogate: NEURON data -> training -> held-out evaluation (into the
# model card) -> copy into the package. Every step resumes or skips what is done. Needs the Hay 2011
# morphology and reference data (default ../shared/hay2011; HAY=/path/to/hay2011 to change).
# Cost on a 2-core CPU: the first 790 training trials ~70 min of NEURON on 2 workers (the full 2,000
# ~3 h; only the first 790 are used), 400 volley trials ~37 min, validation 200 trials ~18 min, training
# ~18-26 min, evaluation ~1 min.
set -euo pipefail
cd "$(dirname "$0")/.."
N=.venv/bin/neurosurrogate
HAY=${HAY:-../shared/hay2011}
GEN="--cell hay-l5pc --morphology $HAY/cell1.asc --duration-ms 2000 --protocol mixed \
  --option exc_rate_range_Hz=400,9000 --option p_quiet=0.03"
mkdir -p data/hay
# the training run is 2,000 trials (seed 1); the model uses its first 790 (trial i depends only on
# the seed and i). Generate at least those, then take them as their own dataset:
REUSE=""
[ -d data/hay/train_mixed.h5.parts ] && REUSE="--reuse data/hay/train_mixed.h5.parts"
$N simulate $GEN --trials 790 --seed 1 $REUSE --out data/hay/train_790.h5
# and the first 400 trials of a run with synchronous volleys in half of the trials (seed 3):
REUSE=""
[ -d data/hay/train_volleys.h5.parts ] && REUSE="--reuse data/hay/train_volleys.h5.parts"
$N simulate $GEN --option p_volleys=0.5 --trials 400 --seed 3 $REUSE --out data/hay/train_volleys_400.h5
$N simulate $GEN --trials 200 --seed 2 --out data/hay/val_mixed.h5
$N train --config configs/hay-l5pc.toml
# validation (scored whole: its trials start from the steady state) and the reference recordings
# (scored from 300 ms: they start at -80 mV without a pre-run), the default of evaluate's --skip-ms
$N evaluate --model runs/hay-l5pc/model --data data/hay/val_mixed.h5 \
    --data "$HAY/reference/synaptic_bombardment.npz" --long-run-s 0 --out-dir runs/hay-l5pc/eval --update-card
rm -rf src/neurosurrogate/models/hay-l5pc
cp -r runs/hay-l5pc/model src/neurosurrogate/models/hay-l5pc
rm -f src/neurosurrogate/models/hay-l5pc/*.png
echo "shipped model written to src/neurosurrogate/models/hay-l5pc"
