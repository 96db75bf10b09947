#!/usr/bin/env python
"""Is a surrogate's error in answering single events a property of the synapse, or of the context?

On paired trials (``simulate --option probe_rate_Hz=R`` beside its base run; ``train/pairs.py``) each
probe event p (synapse s_p, onset t_p) gets an amplitude a_p for the cell and for the model: the least-squares
coefficient of its regressor K_{s_p}(t - t_p) (the synapse's somatic PSP at rest, from
``scripts/hay_psp_kernels.py``'s NPZ) in the pair's difference of the soma voltage (clipped as trained),
over the compared samples of ``pairs.pair_mask``, all probes of a trial fitted together. Probes with less
than half of their kernel in compared samples, or with a spike of either trial from 5 ms before to the
kernel's end (``--kernel-ms``, 60) after them, are left out (there a spike moved by the probe dominates the difference).
Per excitatory synapse, the model's slope sum(a_model a_cell) / sum(a_cell^2) over its probes; then the
correlation of those slopes between the first and second half of the trials (split-half). A per-synapse
error (a wrong efficacy, which a per-synapse gain could fix) gives a high split-half r; an error that
depends on the context, ~0.

Usage::

    python scripts/hay_probe_consistency.py --model runs/hay_history/gru/model --base data/hay/train_400.h5 \\
        --probed data/hay_pairs/probe40_200.h5 --psp data/hay/psp_rest.npz --out consistency.json

Writes the JSON (atomically) and prints a Markdown table (one row per model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def probe_amplitudes(model_path: str, base, probed, kernels, kernel_ms: int = 60):
    """(n_probes, 4) rows (trial, synapse, a_cell, a_model), amplitudes in units of the rest PSP."""
    import numpy as np
    import torch

    from neurosurrogate.surrogate.model import SurrogateModel
    from neurosurrogate.train.loop import to_tensors
    from neurosurrogate.train.pairs import make_pairs

    m = SurrogateModel.load(model_path)
    m.net.eval()
    base = base.subset(np.arange(min(base.n_trials, probed.n_trials)))
    tr = to_tensors([base, probed], m.encoding, sparse="auto")
    pairs = make_pairs([base, probed], tr.x.shape[1])
    if pairs is None:
        raise ValueError(f"{probed.path} does not pair with {base.path}")
    with torch.no_grad():
        y = torch.cat([m.net(tr.x[b : b + 16])[0] for b in range(0, tr.x.shape[0], 16)])
    K = kernels[:, :kernel_ms]
    T, rows = tr.x.shape[1], []
    for k in range(len(pairs)):
        eb, ep = base.events[k], probed.events[k]
        old = set(zip(np.asarray(eb.t_ms).tolist(), np.asarray(eb.synapse).tolist()))
        probes = [(t, s) for t, s in zip(np.asarray(ep.t_ms).tolist(), np.asarray(ep.synapse).tolist())
                  if (t, s) not in old]
        mask = pairs.mask[k].numpy()
        X = np.zeros((T, len(probes)))
        for j, (t, s) in enumerate(probes):
            i0 = int(np.floor(t)) + 1
            seg = K[s][: max(0, min(kernel_ms, T - i0))]
            X[i0 : i0 + seg.size, j] = seg
        spikes = np.r_[base.spike_times_ms[k], probed.spike_times_ms[k]]
        quiet = np.array([not np.any((spikes > t - 5.0) & (spikes < t + kernel_ms)) for t, _ in probes], dtype=bool)
        keep = (np.abs(X[mask]).sum(0) > 0.5 * np.abs(X).sum(0) + 1e-12) & quiet.reshape(-1)
        if not keep.any():
            continue
        Xk = X[mask][:, keep]
        A = Xk.T @ Xk + 1e-6 * np.eye(int(keep.sum()))
        sc = m.encoding.v_scale_mV
        d_cell = (tr.z[pairs.probed[k], :, 0] - tr.z[pairs.base[k], :, 0]).numpy()[mask] * sc
        d_model = (y[pairs.probed[k], :, 0] - y[pairs.base[k], :, 0]).numpy()[mask] * sc
        a_cell, a_model = np.linalg.solve(A, Xk.T @ d_cell), np.linalg.solve(A, Xk.T @ d_model)
        for (t, s), a1, a2 in zip([p for p, kk in zip(probes, keep) if kk], a_cell, a_model):
            rows.append((k, s, a1, a2))
    return np.asarray(rows, dtype=float).reshape(-1, 4)


def consistency(rows, excitatory, min_probes: int = 5) -> dict:
    """Slopes and their split-half correlation over the excitatory synapses (module doc)."""
    import numpy as np

    rows = rows[np.isin(rows[:, 1].astype(int), np.flatnonzero(excitatory))]
    if len(rows) == 0:
        raise ValueError("no excitatory probe is far enough from every spike to be fitted (fewer spikes, "
                         "more trials or a shorter --kernel-ms)")

    def slopes(r):
        out = np.full(excitatory.size, np.nan)
        for s in np.flatnonzero(excitatory):
            x = r[r[:, 1] == s]
            if len(x) >= min_probes:
                out[s] = np.sum(x[:, 3] * x[:, 2]) / np.sum(x[:, 2] ** 2)
        return out

    half = np.median(np.unique(rows[:, 0]))
    s1, s2, s_all = slopes(rows[rows[:, 0] < half]), slopes(rows[rows[:, 0] >= half]), slopes(rows)
    ok = np.isfinite(s1) & np.isfinite(s2)
    return {"probes": int(len(rows)), "slope": float(np.sum(rows[:, 3] * rows[:, 2]) / np.sum(rows[:, 2] ** 2)),
            "r_probe": float(np.corrcoef(rows[:, 2], rows[:, 3])[0, 1]),
            "cell_amplitude_quartiles": np.percentile(rows[:, 2], [25, 50, 75]).round(3).tolist(),
            "synapse_slope_median": float(np.nanmedian(s_all)),
            "synapse_slope_iqr": np.nanpercentile(s_all, [25, 75]).round(3).tolist(),
            "synapses_compared": int(ok.sum()),
            "split_half_r": float(np.corrcoef(s1[ok], s2[ok])[0, 1]) if ok.sum() > 2 else float("nan")}


def main(argv=None) -> int:
    from neurosurrogate.train.pairs import PairError, pair_script_parser

    psp_help = "NPZ of scripts/hay_psp_kernels.py (kernels_mV, kind)"
    ap = pair_script_parser(__doc__, ("--psp", psp_help))
    ap.add_argument("--kernel-ms", type=int, default=60,
                    help="length of the PSP regressor, ms; probes with a spike within it are left out (default 60)")
    a = ap.parse_args(argv)
    if not 1 <= a.kernel_ms <= 10_000:
        ap.error(f"--kernel-ms must be a whole number of ms in 1..10000, got {a.kernel_ms}")
    import numpy as np

    from neurosurrogate.data.dataset import DatasetError, load_dataset
    from neurosurrogate.data.io import atomic_path

    try:
        psp = np.load(a.psp)
        kernels, excitatory = psp["kernels_mV"][:, 0, :], psp["kind"] == "exc"
        base, probed = load_dataset(a.base), load_dataset(a.probed)
        out = [{"model": p, **consistency(probe_amplitudes(p, base, probed, kernels, a.kernel_ms), excitatory)}
               for p in a.model]
    except (OSError, KeyError, ValueError, DatasetError, PairError) as exc:
        print(f"hay_probe_consistency: {exc}", file=sys.stderr)
        return 2
    with atomic_path(Path(a.out)) as tmp:
        Path(tmp).write_text(json.dumps(out, indent=1))
    print(f"Probes of {a.probed} (excitatory synapses; amplitudes in units of the rest PSP)\n")
    print("| model | probes | slope | r per probe | cell amplitude quartiles | per-synapse slope median (IQR) | "
          "split-half r of per-synapse slopes (synapses) |")
    print("|---|---|---|---|---|---|---|")
    for r in out:
        q, iqr = r["cell_amplitude_quartiles"], r["synapse_slope_iqr"]
        print(f"| {r['model']} | {r['probes']} | {r['slope']:.3f} | {r['r_probe']:.3f} | {q[0]:.2f} / {q[1]:.2f} / "
              f"{q[2]:.2f} | {r['synapse_slope_median']:.3f} ({iqr[0]:.3f}-{iqr[1]:.3f}) | "
              f"{r['split_half_r']:.3f} ({r['synapses_compared']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
