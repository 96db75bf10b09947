# Sourced by the hay experiment scripts (scripts/hay_*_experiment.sh, run from the repository
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

# train EXP/NAME: train configs/experiments/EXP/NAME.toml into runs/EXP/NAME unless done (resumes; one core, so two
# can run side by side: `train a & train b & wait`). score EXP/NAME: evaluate runs/EXP/NAME/model on the validation
# trials and the reference recordings unless done, and copy the report to $DOCS/NAME (DOCS: the experiment's folder).
train() {
  [ -f runs/$1/model/model.json ] || $N train --config configs/experiments/$1.toml --quiet > runs/${1/\//_}.log 2>&1
}
score() {
  [ -f runs/$1/eval/report.md ] || $N evaluate --model runs/$1/model --data data/hay/val_40.h5 \
      --data "$HAY/reference/synaptic_bombardment.npz" --long-run-s 0 --out-dir runs/$1/eval
  mkdir -p "$DOCS/${1#*/}" && cp runs/$1/eval/report.md "$DOCS/${1#*/}/"
}
