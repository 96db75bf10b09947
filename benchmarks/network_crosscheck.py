"""Cross-check: the same circuits simulated with point-hh surrogates and with NEURON.

For four settings of the example circuit (stable, control, near the
transition, unstable) and ``--seeds`` instances each, every instance is realised once
(same connections, delays, STP parameters, background events and stimulus)
and simulated twice:

* surrogate engine (:mod:`neurosurrogate.network.engine`, all instances batched);
* NEURON (:mod:`neurosurrogate.biophys.circuit`: point-hh somata, AlphaSynEv for
  external events, AlphaSynTM (alpha synapse with Tsodyks-Markram) per NetCon,
  NetCon delays; dt 0.025 ms; instances split over ``--workers`` processes).

Compared: the paper's two measures (instability, immediate response), the
baseline rate, the response latency, the population rate, the PSTH after the
stimulus and the per-cell rate distributions (two-sample Kolmogorov-Smirnov).
Writes ``OUT/network_crosscheck.{md,json,png}``.

    .venv/bin/python benchmarks/network_crosscheck.py [--seeds 10] [--out docs/experiments]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {
    "stable (0.75 x drive, p 5 %)": {"network.exc_scale": 0.75, "projections.recurrent.p": 0.05},
    "control (1.0 x, p 7.5 %)": {"network.exc_scale": 1.0, "projections.recurrent.p": 0.075},
    "near transition (1.0 x, p 10 %)": {"network.exc_scale": 1.0, "projections.recurrent.p": 0.10},
    "unstable (1.25 x, p 10 %)": {"network.exc_scale": 1.25, "projections.recurrent.p": 0.10},
}
KEYS = ("instability", "immediate_response", "baseline_rate_Hz", "response_latency_ms", "mean_rate_Hz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "examples" / "paper_circuit.toml"))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(REPO / "docs" / "experiments"))
    args = ap.parse_args()

    import torch
    from scipy import stats

    from neurosurrogate import plotting
    from neurosurrogate.biophys.circuit import simulate_circuits_parallel
    from neurosurrogate.network.build import realise
    from neurosurrogate.network.config import load_network_config
    from neurosurrogate.network.engine import simulate
    from neurosurrogate.network.measures import cell_rates_Hz, circuit_measures, population_rate_Hz, psth_Hz

    base = load_network_config(args.config)
    stim, win = base.measures.stimulus_ms, base.measures.response_window_ms
    n = base.n_cells
    results, figdata = {}, {}
    for label, values in SETTINGS.items():
        cfg = base.with_values(values)
        circuits = [realise(cfg, seed=10_000 + s) for s in range(args.seeds)]
        t0 = time.perf_counter()
        sur = simulate(circuits)
        t_sur = time.perf_counter() - t0
        t0 = time.perf_counter()
        neu = simulate_circuits_parallel(circuits, workers=args.workers)
        t_neu = time.perf_counter() - t0
        row = {"values": values, "seeds": args.seeds, "surrogate_wall_s": t_sur, "neuron_wall_s": t_neu,
               "threads": torch.get_num_threads(), "neuron_workers": args.workers}
        ms = {"surrogate": [circuit_measures(r, n, stim, win) for r in sur],
              "neuron": [circuit_measures(r, n, stim, win) for r in neu]}
        for k in KEYS:
            for sim in ms:
                x = np.asarray([m[k] for m in ms[sim]], dtype=float)
                row[f"{k}_{sim}_mean"] = float(np.nanmean(x))
                row[f"{k}_{sim}_sd"] = float(np.nanstd(x, ddof=1))
            d = np.asarray([a[k] - b[k] for a, b in zip(ms["surrogate"], ms["neuron"])], dtype=float)
            row[f"{k}_paired_diff_mean"] = float(np.nanmean(d))
        for k in ("instability", "immediate_response"):
            row[f"{k}_agree"] = bool(abs(row[f"{k}_surrogate_mean"] - row[f"{k}_neuron_mean"]) <= 0.1)
        rs = np.concatenate([cell_rates_Hz(r, n) for r in sur])
        rn = np.concatenate([cell_rates_Hz(r, n) for r in neu])
        ks = stats.ks_2samp(rs, rn)
        row["cell_rate_ks_stat"], row["cell_rate_ks_p"] = float(ks.statistic), float(ks.pvalue)
        row["cell_rate_median_Hz_surrogate"], row["cell_rate_median_Hz_neuron"] = float(np.median(rs)), float(np.median(rn))
        results[label] = row
        fd = {"raster": (sur[0], neu[0]), "cell_rates": (rs, rn)}
        t, a = population_rate_Hz(sur[0], n, 5.0)
        fd["pop_rate"] = (t, np.mean([population_rate_Hz(r, n, 5.0)[1] for r in sur], 0),
                          np.mean([population_rate_Hz(r, n, 5.0)[1] for r in neu], 0))
        lag, _ = psth_Hz(sur[0], n, stim, 10.0, 40.0, 1.0)
        fd["psth"] = (lag, np.mean([psth_Hz(r, n, stim, 10.0, 40.0, 1.0)[1] for r in sur], 0),
                      np.mean([psth_Hz(r, n, stim, 10.0, 40.0, 1.0)[1] for r in neu], 0))
        figdata[label] = fd
        print(f"{label}: instability S {row['instability_surrogate_mean']:.3f} N {row['instability_neuron_mean']:.3f} | "
              f"response S {row['immediate_response_surrogate_mean']:.3f} N {row['immediate_response_neuron_mean']:.3f} | "
              f"baseline Hz S {row['baseline_rate_Hz_surrogate_mean']:.2f} N {row['baseline_rate_Hz_neuron_mean']:.2f} | "
              f"KS {ks.statistic:.3f} | wall S {t_sur:.1f}s N {t_neu:.1f}s", flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "network_crosscheck.json").write_text(json.dumps(results, indent=1))
    plotting.plot_crosscheck(out / "network_crosscheck.png", figdata, n, stim)
    lines = ["| setting | instability: surrogate | NEURON | response: surrogate | NEURON | baseline Hz: S / N | "
             "latency ms: S / N | per-cell rate KS | within 0.1 |", "|---|---|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        f = lambda k, s: f"{r[f'{k}_{s}_mean']:.3f} ± {r[f'{k}_{s}_sd']:.3f}"  # noqa: E731
        lines.append(
            f"| {label} | {f('instability', 'surrogate')} | {f('instability', 'neuron')} | "
            f"{f('immediate_response', 'surrogate')} | {f('immediate_response', 'neuron')} | "
            f"{r['baseline_rate_Hz_surrogate_mean']:.2f} / {r['baseline_rate_Hz_neuron_mean']:.2f} | "
            f"{r['response_latency_ms_surrogate_mean']:.2f} / {r['response_latency_ms_neuron_mean']:.2f} | "
            f"{r['cell_rate_ks_stat']:.3f} (p {r['cell_rate_ks_p']:.2g}) | "
            f"{'yes' if r['instability_agree'] and r['immediate_response_agree'] else 'NO'} |")
    (out / "network_crosscheck.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
