"""How well a surrogate predicts, or holds in its state, the cell's state variables.

Free-running from the model's rest on a dataset made with ``--set record_states=true``; per state
variable (``state_names`` of the data): Pearson r over all samples of all trials (each trial's own
time course and the differences between trials) and the mean within-trial r (time course only;
trials where the variable is flat are left out), printed as a Markdown table and written as JSON.

The predictions are the model's own ``state_*`` outputs (trained with ``targets = [..., "states"]``),
or, with ``--probe TRAIN.h5``, a linear read-out of the top GRU layer's state (the layer the output
head reads) fitted by ridge regression on the trials of TRAIN (a states dataset) and scored on
``--data``: whether a model holds the variables without being asked to (``gru`` models only).

    python scripts/hay_state_fidelity.py --model runs/hay_states/w1/model \
        --data data/hay_states/val_40s.h5 --out runs/hay_states/w1/state_fidelity.json
    python scripts/hay_state_fidelity.py --model runs/hay_history/gru/model --probe \
        data/hay_states/train_400s.h5 --data data/hay_states/val_40s.h5 --out probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def top_layer(model, d, batch: int = 20) -> np.ndarray:
    """(n_trials, T, H) output of the top GRU layer, free-running from the model's rest, float64."""
    import torch

    net = model.net.eval()
    out = []
    with torch.no_grad():
        for b in range(0, d.n_trials, batch):
            x = torch.from_numpy(np.stack([model.encoding.features(ev, d.duration_ms) for ev in d.events[b:b + batch]]))
            h, _ = net.top_layer(x, net.init_state(x.shape[0]))
            out.append(h.numpy().astype(float))
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model folder trained with the 'states' target")
    ap.add_argument("--data", required=True, help="hay-l5pc dataset made with --set record_states=true")
    ap.add_argument("--out", required=True, help="JSON file for the scores")
    ap.add_argument("--probe", metavar="TRAIN.h5", help="score a linear read-out of the top GRU layer, fitted on "
                    "the trials of this states dataset, instead of the model's state outputs")
    ap.add_argument("--probe-trials", type=int, default=100, help="trials of --probe used for the fit (default 100)")
    ap.add_argument("--ridge", type=float, default=1e-3, help="ridge penalty of the probe, relative to the mean "
                    "feature variance (default 1e-3)")
    args = ap.parse_args(argv)
    if args.probe_trials < 1:
        ap.error(f"--probe-trials must be >= 1, got {args.probe_trials}")
    if not args.ridge >= 0:
        ap.error(f"--ridge must be >= 0, got {args.ridge}")

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
    if args.probe:
        from neurosurrogate.surrogate.architectures.gru import GRUSurrogate

        if not isinstance(model.net, GRUSurrogate):
            ap.error(f"--probe: reads the state of gru models; {args.model} is {model.arch!r}")
        try:
            tr = load_dataset(args.probe)
        except DatasetError as exc:
            ap.error(f"--probe: {exc}")
        if tr.states is None or tr.extra.get("state_names") != names:
            ap.error(f"--probe: {args.probe} must hold the same state variables as --data")
        tr = tr.subset(np.arange(min(args.probe_trials, tr.n_trials)))
        feats = top_layer(model, tr)  # (B, T, H)
        X = np.concatenate([feats.reshape(-1, feats.shape[-1]), np.ones((feats.shape[0] * feats.shape[1], 1))], 1)
        Y = tr.states.transpose(0, 2, 1).reshape(-1, len(names)).astype(float)
        G = X.T @ X
        lam = args.ridge * np.trace(G[:-1, :-1]) / (G.shape[0] - 1)
        W = np.linalg.solve(G + lam * np.diag(np.r_[np.ones(G.shape[0] - 1), 0.0]), X.T @ Y)
        fv = top_layer(model, d)
        est = np.concatenate([fv, np.ones(fv.shape[:2] + (1,))], 2) @ W  # (B, T, n_states)
        get = lambda k: est[..., k]  # noqa: E731
    else:
        outputs = [state_output_name(n) for n in names]
        lacking = [o for o in outputs if o not in model.encoding.extra_names]
        if lacking:
            ap.error(f"--model: {args.model} has no output(s) {lacking[:3]}... (train it with targets including "
                     "'states', or read its state with --probe)")
        preds = model.predict(d.events, d.duration_ms, device="cpu")
        get = lambda k: np.stack([p.meta["extras"][outputs[k]] for p in preds])  # noqa: E731
    rows = []
    for k, name in enumerate(names):
        truth = d.states[:, k].astype(float)
        pred = get(k)
        r_all = float(np.corrcoef(truth.ravel(), pred.ravel())[0, 1])
        within = [np.corrcoef(t, p)[0, 1] for t, p in zip(truth, pred) if t.std() > 1e-3 * truth.std() and p.std() > 0]
        rows.append({"state": name, "r_all": r_all, "r_within": float(np.mean(within)) if within else float("nan"),
                     "sd_truth": float(truth.std()), "sd_pred": float(pred.std())})
    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text(json.dumps({"model": str(args.model), "data": str(args.data), "n_trials": d.n_trials,
                                   "probe": args.probe, "probe_trials": args.probe_trials if args.probe else None,
                                   "states": rows}, indent=1))
    print("| state | r (all samples) | r within trials | SD truth / pred |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['state']} | {r['r_all']:.3f} | {r['r_within']:.3f} | {r['sd_truth']:.3g} / {r['sd_pred']:.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
