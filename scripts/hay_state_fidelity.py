"""How well a surrogate trained with ``targets = [..., "states"]`` predicts the cell's state variables.

Free-running from the model's rest on a dataset made with ``--set record_states=true``; per state
variable (``state_names`` of the data): Pearson r over all samples of all trials (each trial's own
time course and the differences between trials) and the mean within-trial r (time course only;
trials where the variable is flat are left out), printed as a Markdown table and written as JSON.

    python scripts/hay_state_fidelity.py --model runs/hay_states/w1/model \
        --data data/hay_states/val_40s.h5 --out runs/hay_states/w1/state_fidelity.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model folder trained with the 'states' target")
    ap.add_argument("--data", required=True, help="hay-l5pc dataset made with --set record_states=true")
    ap.add_argument("--out", required=True, help="JSON file for the scores")
    args = ap.parse_args(argv)

    from neurosurrogate.data.dataset import DatasetError, load_dataset
    from neurosurrogate.data.io import atomic_path
    from neurosurrogate.surrogate.model import SurrogateModel
    from neurosurrogate.train.loop import state_output_name

    try:
        d = load_dataset(args.data)
    except DatasetError as exc:
        ap.error(f"--data: {exc}")
    if d.states is None:
        ap.error(f"--data: {args.data} holds no state variables (generate it with --set record_states=true)")
    try:
        model = SurrogateModel.load(args.model)
    except (OSError, ValueError) as exc:
        ap.error(f"--model: {exc}")
    names = d.extra["state_names"]
    outputs = [state_output_name(n) for n in names]
    lacking = [o for o in outputs if o not in model.encoding.extra_names]
    if lacking:
        ap.error(f"--model: {args.model} has no output(s) {lacking[:3]}... (train it with targets including 'states')")
    preds = model.predict(d.events, d.duration_ms, device="cpu")
    rows = []
    for k, (name, out) in enumerate(zip(names, outputs)):
        truth = d.states[:, k].astype(float)
        pred = np.stack([p.meta["extras"][out] for p in preds])
        r_all = float(np.corrcoef(truth.ravel(), pred.ravel())[0, 1])
        within = [np.corrcoef(t, p)[0, 1] for t, p in zip(truth, pred) if t.std() > 1e-3 * truth.std() and p.std() > 0]
        rows.append({"state": name, "r_all": r_all, "r_within": float(np.mean(within)) if within else float("nan"),
                     "sd_truth": float(truth.std()), "sd_pred": float(pred.std())})
    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text(json.dumps({"model": str(args.model), "data": str(args.data), "n_trials": d.n_trials,
                                   "states": rows}, indent=1))
    print("| state | r (all samples) | r within trials | SD truth / pred |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['state']} | {r['r_all']:.3f} | {r['r_within']:.3f} | {r['sd_truth']:.3g} / {r['sd_pred']:.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
