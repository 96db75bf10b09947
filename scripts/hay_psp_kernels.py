"""Measure every default synapse's PSP kernel of the hay-l5pc cell in NEURON (soma, dend 400/700 um).

One event of the synapse's default weight at ``--t0-ms`` on the cell at rest (or on trial ``--trial`` of
``--data``), the change against the same run without it, ``--window-ms`` ms at 1 kHz; each kernel is also
fitted as a sum of exponentials (``--taus-ms``) for the ``gru_prior`` surrogate
(:mod:`neurosurrogate.biophys.psp`). Writes an NPZ (atomically) with ``kernels_mV`` (n, 3, window),
``coef_mV`` (n, 3, J), ``taus_ms``, ``kind``, ``dist_um``, ``weight_nS``, ``spike_changed`` and a JSON
``meta`` (arguments, fit error, provenance). Cost at rest: one NEURON run of t0 + window ms per synapse
(~1-2 s each, per process).

    .venv/bin/python scripts/hay_psp_kernels.py --morphology ../shared/hay2011/cell1.asc \\
        --out data/hay/psp_rest.npz [--window-ms 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--morphology", default="", help="Hay L5PC morphology (.asc/.swc); needed unless --refit")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--window-ms", type=int, default=200, help="response recorded after the event, ms (default 200)")
    ap.add_argument("--t0-ms", type=float, default=100.0, help="time of the event, ms (default 100)")
    ap.add_argument("--data", default="", help="dataset (.h5) holding a background trial (default: at rest)")
    ap.add_argument("--trial", type=int, default=-1, help="background trial of --data (default: none, at rest)")
    ap.add_argument("--taus-ms", default="", help="time constants of the exponential fit, ms, comma-separated "
                    "(default: neurosurrogate.biophys.psp.DEFAULT_TAUS_MS, 0.7-200 ms)")
    ap.add_argument("--refit", default="", help="an NPZ of this script: fit its kernels again (--taus-ms), no NEURON")
    ap.add_argument("--synapses", default="", help="comma-separated synapse indices (default: all; a model needs all)")
    ap.add_argument("--workers", type=int, default=2, help="NEURON processes (default 2)")
    args = ap.parse_args(argv)
    try:
        from neurosurrogate.biophys.psp import DEFAULT_TAUS_MS, fit_exponential_kernels
        from neurosurrogate.inputs import parse_synapses

        try:
            taus = [float(x) for x in args.taus_ms.split(",")] if args.taus_ms.strip() else list(DEFAULT_TAUS_MS)
        except ValueError:
            raise ValueError(f"--taus-ms: expected comma-separated times in ms, got {args.taus_ms!r}") from None
        syns = parse_synapses(args.synapses)  # their range: measure_psp_kernels, against the cell's table
        if not args.out.endswith(".npz"):
            raise ValueError(f"--out must name an .npz file, got {args.out!r}")
        if (args.trial >= 0) != bool(args.data):
            raise ValueError("--data and --trial go together (a background trial), or neither (at rest)")
        fit_exponential_kernels(np.zeros((1, 2)), taus)  # checks the time constants before NEURON runs
        if args.refit:
            res = _read_kernels(args.refit)
        elif not args.morphology:
            raise ValueError("--morphology is needed to measure kernels (or --refit an NPZ of this script)")
        else:
            res = _measure(args, syns)
    except (ValueError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _write(args, res, taus)


NAMES = ("kernels_mV", "synapses", "kind", "dist_um", "weight_nS", "spike_changed", "baseline_mV")


def _read_kernels(path: str) -> dict:
    """The measured arrays of an NPZ of this script, and its measurement's arguments (``measured``)."""
    with np.load(path, allow_pickle=False) as f:
        missing = [n for n in NAMES + ("meta",) if n not in f.files]
        if missing:
            raise ValueError(f"--refit {path}: not an NPZ of this script (no {', '.join(missing)})")
        res = {n: f[n] for n in NAMES}
        res["measured"] = json.loads(str(f["meta"]))["args"]
    return res


def _measure(args, syns) -> dict:
    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.psp import measure_psp_kernels

    background = None
    if args.data:
        from neurosurrogate.data.dataset import load_dataset

        data = load_dataset(args.data)
        if args.trial >= data.n_trials:
            raise ValueError(f"--trial {args.trial}: {args.data} has {data.n_trials} trials")
        background = data.events[args.trial]
    cell = get_cell("hay-l5pc", morphology=args.morphology)
    res = measure_psp_kernels(cell, args.window_ms, args.t0_ms, args.workers, background, syns)
    res["measured"] = {k: v for k, v in vars(args).items() if k not in ("out", "refit", "taus_ms")}
    return res


def _write(args, res: dict, taus: list) -> int:
    from neurosurrogate.biophys.psp import fit_exponential_kernels

    coef, fitted = fit_exponential_kernels(res["kernels_mV"], taus)
    k = res["kernels_mV"]
    rel = float(np.sqrt(np.sum((fitted - k) ** 2) / np.sum(k**2)))
    from neurosurrogate.data.io import atomic_path, provenance

    meta = {"args": {**res.pop("measured"), "taus_ms": [float(t) for t in taus], "refit": args.refit},
            "fit_relative_rms_error": rel, "sites": ["soma", "dend0", "dend1"],
            "n_spike_changed": int(res["spike_changed"].sum()), "provenance": provenance()}
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, coef_mV=coef.astype(np.float32), taus_ms=np.asarray(taus), meta=json.dumps(meta),
                     **{k2: res[k2] for k2 in NAMES})
    integ = k.sum(-1)
    for s, name in enumerate(meta["sites"]):
        for kind in ("exc", "inh"):
            m = res["kind"] == kind
            peak = np.abs(k[m, s]).max(-1).mean()
            print(f"{name} {kind}: mean integral {integ[m, s].mean():.2f} mV ms, mean peak {peak:.3f} mV")
    print(f"fit relative RMS error {rel:.4f}; {meta['n_spike_changed']} kernels changed a spike; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
