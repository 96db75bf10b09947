# Sourced by scripts/hay_history_experiment.sh and scripts/hay_capacity_experiment.sh (run from the repository
# root): the tools, the Hay 2011 files (HAY=/path/to/hay2011 to change), the training protocol of the shipped
# hay-l5pc model, and the data both experiments use. Trial i of a run depends only on the seed and i: the first
# 400 trials of the shipped model's training run (seed 1), and the first 40 of its validation run (seed 2);
# either is skipped if present (~55 min of NEURON on 2 workers otherwise).
N=.venv/bin/neurosurrogate
PY=.venv/bin/python
HAY=${HAY:-../shared/hay2011}
GEN="--cell hay-l5pc --morphology $HAY/cell1.asc --duration-ms 2000 --protocol mixed \
  --option exc_rate_range_Hz=400,9000 --option p_quiet=0.03"
mkdir -p data/hay
[ -f data/hay/train_400.h5 ] || $N simulate $GEN --trials 400 --seed 1 --out data/hay/train_400.h5
[ -f data/hay/val_40.h5 ] || $N simulate $GEN --trials 40 --seed 2 --out data/hay/val_40.h5
