#!/usr/bin/env bash
# Reproduce the shipped point-hh surrogate from scratch: NEURON data -> training -> held-out
# evaluation (written into the model card) -> copy into the package. Resumable: each step
# skips or resumes what is already done. About 3 min of simulation + <= 28 min of training
# + 2 min of evaluation on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
N=.venv/bin/neurosurrogate
mkdir -p data
$N simulate --trials 1600 --duration-ms 2000 --seed 1 --protocol mixed --out data/train_mixed.h5
$N simulate --trials 600 --duration-ms 2000 --seed 2 --protocol paper --out data/train_paper.h5
$N simulate --trials 400 --duration-ms 2000 --seed 5 --protocol mixed --option exc_rate_range_Hz=400,3000 \
    --option p_quiet=0 --out data/train_strong.h5
$N simulate --trials 100 --duration-ms 2000 --seed 3 --protocol mixed --out data/val_mixed.h5
$N simulate --trials 50 --duration-ms 2000 --seed 4 --protocol paper --out data/val_paper.h5
$N train --config configs/point-hh.toml
$N evaluate --model runs/point-hh/model --regimes --trials 40 --long-run-s 25 \
    --out-dir runs/point-hh/eval --update-card
rm -rf src/neurosurrogate/models/point-hh
mkdir -p src/neurosurrogate/models
cp -r runs/point-hh/model src/neurosurrogate/models/point-hh
python3 - <<'PY'
import json, pathlib
p = pathlib.Path("src/neurosurrogate/models/point-hh/model.json")
meta = json.loads(p.read_text())
card = meta["card"]
# keep the card portable: paths relative to the repository
for d in card.get("data", []) + card.get("val_data", []):
    d["path"] = str(pathlib.Path(d["path"]).resolve().relative_to(pathlib.Path.cwd().resolve())) if pathlib.Path(d["path"]).is_absolute() else d["path"]
p.write_text(json.dumps(meta, indent=1))
PY
echo "shipped model written to src/neurosurrogate/models/point-hh"
