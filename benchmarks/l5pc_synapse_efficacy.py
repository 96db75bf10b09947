"""Has the surrogate learned what each synapse does? One extra event per synapse, NEURON against the surrogate.

For every synapse of the default table, one event (the synapse's default weight) is added at ``t0 + 0.5`` ms
to a background input (a trial of a dataset, cut at ``t0 + window``; or none: the cell at rest), and the
change it makes in the soma voltage and at the two dendritic recording sites over the next ``--window-ms``
(default 50 ms) is measured in NEURON (our hay-l5pc cell, from its steady state) and in the surrogate (from
its rest), each against its own run without the extra event. Both are deterministic, so the difference is
the synapse's effect in that context, however small. Scored per site and synapse kind over the synapses
whose event changed no NEURON spike within the window: the integral of the change over the window (mV ms),
the regression slope of the surrogate's integral on NEURON's (through 0; 1 = right on average), the
correlation across synapses, and the median relative error of a synapse's integral.

Why: a perturbed real cell with each synapse's weight off by 5 % (SD) still reaches spike F1 ~0.9 against
the unperturbed one, with 15 % ~0.8 (``l5pc_spike_reliability.py``); a surrogate whose per-synapse
efficacies are off by tens of percent cannot be expected to do better.

    .venv/bin/python benchmarks/l5pc_synapse_efficacy.py --morphology ../shared/hay2011/cell1.asc \\
        [--model hay-l5pc] [--data data/hay/val_40.h5 --context 0:440 --context 6:480] [--context rest] \\
        [--window-ms 50] [--workers 2] [--out docs/experiments/l5pc_synapse_efficacy]

``--context TRIAL:T0`` (repeatable): background = trial TRIAL of ``--data`` before ``T0 + window`` ms, the
extra event at T0 + 0.5 ms (pick T0 in a stretch without spikes); ``rest``: no background, T0 = 100 ms.
Writes ``efficacy.json``, ``efficacy.md`` (table), ``efficacy.png`` (surrogate against NEURON, one
point per synapse, coloured by path distance from the soma) and ``efficacy.npz`` (per synapse and context:
the integrals ``{context}_{site}_neuron_mV_ms`` / ``_surrogate_mV_ms`` and ``{context}_spike_changed``).
Cost: one NEURON run of T0 + window ms per synapse and context (~1 s at rest, ~3-4 s at T0 = 440 ms, per
process).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_context(text: str) -> tuple[int, float]:
    """``rest`` -> (-1, 100.0); ``TRIAL:T0`` -> (TRIAL, T0)."""
    if text.strip() == "rest":
        return -1, 100.0
    try:
        a, b = text.split(":")
        trial, t0 = int(a), float(b)
    except ValueError:
        raise ValueError(f"--context: expected 'rest' or TRIAL:T0_MS (e.g. 0:440), got {text!r}") from None
    if trial < 0 or not (np.isfinite(t0) and t0 >= 1):
        raise ValueError(f"--context {text!r}: TRIAL must be >= 0 and T0 a time >= 1 ms")
    return trial, t0


def scores(dn: np.ndarray, ds: np.ndarray) -> dict:
    """(n_synapses, window) changes of NEURON and the surrogate -> the module doc's scores."""
    a, b = dn.sum(1), ds.sum(1)  # mV ms (1 ms samples)
    if len(a) < 2:
        return {"n": int(len(a))}
    ok = np.abs(a) > 1e-6
    return {
        "n": int(len(a)),
        "mean_integral_neuron_mV_ms": float(a.mean()), "mean_integral_surrogate_mV_ms": float(b.mean()),
        "slope": float(np.sum(a * b) / np.sum(a * a)),
        "r": float(np.corrcoef(a, b)[0, 1]),
        "median_rel_error": float(np.median(np.abs(b[ok] - a[ok]) / np.abs(a[ok]))) if ok.any() else float("nan"),
    }


def run_context(model, cell, data, trial: int, t0: float, window: int, workers: int, syns=None) -> tuple:
    """One context: (row of scores, {site: (NEURON, surrogate) integrals}, kinds, distances, spike changed)."""
    from neurosurrogate.biophys.generate import hay_traces, map_chunks
    from neurosurrogate.biophys.psp import with_event

    T = int(np.ceil(t0)) + window + 1
    bg = data.events[trial].window(0.0, float(T)) if trial >= 0 else None
    w = np.asarray(model.encoding.synapse_weights_nS, dtype=float)
    syns = np.arange(len(w)) if syns is None else np.asarray(syns, dtype=int)
    n = len(syns)
    t_ev = float(t0) + 0.5
    tables = [with_event(bg, None, t_ev, 0.0)] + [with_event(bg, int(i), t_ev, w[i]) for i in syns]
    truth = map_chunks(hay_traces, tables, workers, cell.to_dict(), float(T))
    pred = model.predict(tables, float(T))
    k0 = int(np.floor(t_ev))
    sl = slice(k0, k0 + window)

    def delta(traces, i, site):
        get = (lambda tr: tr.v_mV) if site < 0 else (lambda tr: tr.v_dend_mV[site])
        return get(traces[i + 1])[sl] - get(traces[0])[sl]

    def n_spikes(tr):
        st = np.asarray(tr.spike_times_ms)
        return int(np.sum((st >= k0) & (st < k0 + window)))

    changed = np.array([n_spikes(truth[i + 1]) != n_spikes(truth[0]) for i in range(n)])
    table_rows = model.card.get("synapses") or [{}] * len(w)
    kinds = np.array([table_rows[i].get("kind", "exc") for i in syns])
    dist = np.array([float(table_rows[i].get("dist_um", np.nan)) for i in syns])
    out = {"synapses": [int(i) for i in syns], "trial": trial, "t0_ms": float(t0), "window_ms": window, "spike_changed": int(changed.sum()),
           "background_spikes_in_window": n_spikes(truth[0]), "sites": {}}
    arrays = {}
    for site, name in [(-1, "soma")] + [(k, f"dend{k}") for k in range(truth[0].v_dend_mV.shape[0])]:
        dn = np.array([delta(truth, i, site) for i in range(n)])
        dsr = np.array([delta(pred, i, site) for i in range(n)])
        arrays[name] = (dn.sum(1), dsr.sum(1))
        out["sites"][name] = {kind: scores(dn[(kinds == kind) & ~changed], dsr[(kinds == kind) & ~changed])
                              for kind in ("exc", "inh")}
    return out, arrays, kinds, dist, changed


def table(rows: list) -> str:
    lines = ["| context | site | kind | synapses | NEURON mean mV ms | surrogate mean mV ms | slope | r | median rel. error |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ctx = "rest" if row["trial"] < 0 else f"trial {row['trial']}, t0 {row['t0_ms']:g} ms"
        for site, by_kind in row["sites"].items():
            for kind, s in by_kind.items():
                if s["n"] < 2:
                    continue
                lines.append(f"| {ctx} | {site} | {kind} | {s['n']} | {s['mean_integral_neuron_mV_ms']:.2f} | "
                             f"{s['mean_integral_surrogate_mV_ms']:.2f} | {s['slope']:.2f} | {s['r']:.2f} | "
                             f"{s['median_rel_error']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--morphology", required=True, help="Hay L5PC morphology (.asc/.swc), e.g. ../shared/hay2011/cell1.asc")
    ap.add_argument("--model", default="hay-l5pc", help="surrogate (shipped name or model folder)")
    ap.add_argument("--data", default="", help="dataset (.h5) of the background trials of --context TRIAL:T0")
    ap.add_argument("--context", action="append", default=[],
                    help="TRIAL:T0_MS (background trial of --data, event at T0 + 0.5 ms) or 'rest'; repeatable "
                         "(default: rest)")
    ap.add_argument("--window-ms", type=int, default=50, help="window after the event, ms (default 50)")
    ap.add_argument("--synapses", default="", help="comma-separated synapse indices (default: all)")
    ap.add_argument("--workers", type=int, default=2, help="NEURON processes (default 2)")
    ap.add_argument("--out", default=str(REPO / "docs/experiments/l5pc_synapse_efficacy"), help="output folder")
    args = ap.parse_args(argv)
    try:
        contexts = [parse_context(c) for c in (args.context or ["rest"])]
        if args.window_ms < 2:
            raise ValueError(f"--window-ms must be a whole number >= 2, got {args.window_ms}")
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        if any(t >= 0 for t, _ in contexts) and not args.data:
            raise ValueError("--context TRIAL:T0 needs --data (the dataset holding the background trial)")
        from neurosurrogate.api import load_model
        from neurosurrogate.biophys.cells import get_cell
        from neurosurrogate.data.dataset import load_dataset
        from neurosurrogate.inputs import parse_synapses

        model = load_model(args.model)
        if "v_dend0_mV" not in model.encoding.extra_names:
            raise ValueError(f"--model {args.model}: not a hay-l5pc surrogate (no dendritic outputs)")
        data = load_dataset(args.data) if args.data else None
        for trial, t0 in contexts:
            if trial >= 0 and (trial >= data.n_trials or t0 + args.window_ms + 1 > data.duration_ms):
                raise ValueError(f"--context {trial}:{t0:g}: {args.data} has {data.n_trials} trials of "
                                 f"{data.duration_ms:g} ms")
        cell = get_cell("hay-l5pc", morphology=args.morphology)
        syns = parse_synapses(args.synapses, len(model.encoding.synapse_weights_nS))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, panels, per_synapse = [], [], {}
    for trial, t0 in contexts:
        row, arrays, kinds, dist, changed = run_context(model, cell, data, trial, t0, args.window_ms, args.workers, syns)
        rows.append(row)
        ctx = "rest" if trial < 0 else f"trial{trial}_t{t0:g}"
        per_synapse[f"{ctx}_spike_changed"] = changed
        for site, (a, b) in arrays.items():
            per_synapse[f"{ctx}_{site}_neuron_mV_ms"], per_synapse[f"{ctx}_{site}_surrogate_mV_ms"] = a, b
        title = "at rest" if trial < 0 else f"trial {trial} of {Path(args.data).name}, event at {t0 + 0.5:g} ms"
        panels.append((title, arrays["soma"], kinds, dist, changed))
        print(json.dumps(row), flush=True)
    record = {"model": str(args.model), "data": args.data, "rows": rows}
    from neurosurrogate.data.io import atomic_path

    with atomic_path(out / "efficacy.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    with atomic_path(out / "efficacy.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, synapses=np.asarray(rows[0]["synapses"]), kind=kinds, dist_um=dist, **per_synapse)
    with atomic_path(out / "efficacy.md") as tmp:
        tmp.write_text(table(rows))
    from neurosurrogate.plotting import plot_synapse_efficacy

    plot_synapse_efficacy(out / "efficacy.png", panels)
    print(table(rows))
    print(f"wrote {out}/efficacy.json, efficacy.md, efficacy.png, efficacy.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
