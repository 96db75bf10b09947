"""Circuit speed: surrogate engine vs NEURON for the paper's circuit and the whole Rett map.

1. One circuit (150 cells x 250 ms, examples/paper_circuit.toml): surrogate
   engine (best of 3 after a warm-up, one torch thread) and NEURON (the same
   realised circuit, point-hh cells, dt 0.025 ms, one process), side by side.
2. The map (examples/rett_map.toml, 2,500 circuits): the surrogate runs the
   whole sweep (chunks of ``chunk_size`` circuits, timed) with ``--scheduler``
   (default ``local:<workers>``: one single-threaded process per core, which
   beats torch's intra-op threads on these small per-step tensors); NEURON
   runs a sample of ``--neuron-sample`` circuits drawn evenly from the same
   runs, on all cores (``--workers`` processes), and its time for the full map
   is EXTRAPOLATED (labelled so): process start-up once, plus the sample's
   integration time scaled linearly to 2,500 circuits.

Prints and writes (``--out``/network_speed.{md,json}``) cells x ms simulated per
wall second and the ratios. With ``--map-out`` the map's results table is kept
(and its report written next to it).

    .venv/bin/python benchmarks/network_speed.py [--skip-map] [--neuron-sample 40]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", default=str(REPO / "examples" / "paper_circuit.toml"))
    ap.add_argument("--sweep", default=str(REPO / "examples" / "rett_map.toml"))
    ap.add_argument("--neuron-sample", dest="neuron_sample", type=int, default=40)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--scheduler", default=None, help="sweep scheduler (default local:WORKERS)")
    ap.add_argument("--skip-map", action="store_true", help="only the single circuit")
    ap.add_argument("--reuse-map", action="store_true",
                    help="take the surrogate's map time from an existing --map-out made by one sweep call")
    ap.add_argument("--map-out", default=str(REPO / "results" / "rett_map.parquet"))
    ap.add_argument("--out", default=str(REPO / "docs" / "experiments"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from neurosurrogate.biophys.circuit import simulate_circuits_parallel
    from neurosurrogate.network.build import realise
    from neurosurrogate.network.config import load_network_config
    from neurosurrogate.network.engine import simulate
    from neurosurrogate.sweep.config import load_sweep_config
    from neurosurrogate.sweep.runner import run_sweep

    torch.set_num_threads(1)
    res: dict = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_before": _load()}
    cfg = load_network_config(args.network)
    circ = realise(cfg)
    cell_ms = circ.n_cells * circ.duration_ms
    simulate(circ)  # warm-up (model load, allocator)
    t_s = min(_timed(lambda: simulate(circ)) for _ in range(3))
    t0 = time.perf_counter()
    neu = simulate_circuits_parallel([circ], workers=1)[0]
    t_n_total = time.perf_counter() - t0
    t_n = neu.wall_s
    res["one_circuit"] = {"cells": circ.n_cells, "ms": circ.duration_ms, "surrogate_s": t_s, "neuron_s": t_n,
                          "neuron_s_with_process_start": t_n_total, "surrogate_cell_ms_per_s": cell_ms / t_s,
                          "neuron_cell_ms_per_s": cell_ms / t_n, "ratio": t_n / t_s}
    print(f"one circuit ({circ.n_cells} cells x {circ.duration_ms} ms): surrogate {t_s * 1e3:.0f} ms "
          f"({cell_ms / t_s:,.0f} cell-ms/s) | NEURON {t_n * 1e3:.0f} ms ({cell_ms / t_n:,.0f} cell-ms/s; "
          f"{t_n_total:.2f} s with process start) | ratio {t_n / t_s:.1f}x", flush=True)

    if not args.skip_map:
        sw = load_sweep_config(args.sweep)
        runs = sw.runs()
        out = Path(args.map_out)
        parts = out.with_name(out.name + ".parts")
        scheduler = args.scheduler or f"local:{args.workers}"
        if args.reuse_map and out.exists():
            import pandas as pd

            meta = json.loads(out.with_suffix(".json").read_text())
            if meta["chunks_this_call"] != meta["chunks"]:
                raise SystemExit(f"{out} was not made in one call: its time is not the map's time")
            df, t_map, scheduler = pd.read_parquet(out), meta["wall_s_this_call"], meta["scheduler"]
            print(f"reusing {out}: made in {t_map:.1f} s by one call ({scheduler})")
        else:
            if parts.exists() or out.exists():
                raise SystemExit(f"{out} (or {parts}) exists: remove it so the map is timed from scratch")
            t0 = time.perf_counter()
            df = run_sweep(sw, out, scheduler=None if scheduler == "in-process" else scheduler, progress=True)
            t_map = time.perf_counter() - t0
        map_cell_ms = float((df["n_cells"] * sw.network.duration_ms).sum())
        pick = np.linspace(0, len(runs) - 1, args.neuron_sample).round().astype(int)
        sample = [realise(sw.network.with_values(dict(runs[i].values)), seed=runs[i].seed) for i in pick]
        t0 = time.perf_counter()
        neu_runs = simulate_circuits_parallel(sample, workers=args.workers)
        t_sample = time.perf_counter() - t0
        t_integrate = max(r.wall_s for r in neu_runs)  # the workers integrate in parallel
        t_neu_map = (t_sample - t_integrate) + t_integrate * len(runs) / len(sample)
        res["map"] = {"runs": len(runs), "cells_per_run": int(df["n_cells"].iloc[0]), "ms": sw.network.duration_ms,
                      "chunk_size": sw.chunk_size, "scheduler": scheduler, "surrogate_s": t_map, "surrogate_cell_ms_per_s": map_cell_ms / t_map,
                      "neuron_sample_runs": len(sample), "neuron_sample_s": t_sample,
                      "neuron_sample_integration_s": t_integrate, "neuron_workers": args.workers,
                      "neuron_s_extrapolated": t_neu_map, "neuron_cell_ms_per_s": map_cell_ms / t_neu_map,
                      "ratio": t_neu_map / t_map}
        print(f"map ({len(runs)} circuits): surrogate {t_map:.1f} s ({map_cell_ms / t_map:,.0f} cell-ms/s) | NEURON "
              f"{len(sample)} circuits in {t_sample:.1f} s on {args.workers} processes ({t_integrate:.1f} s integrating) "
              f"-> {t_neu_map:.0f} s for the map (EXTRAPOLATED) | ratio {t_neu_map / t_map:.1f}x", flush=True)
        from neurosurrogate.sweep.report import write_report

        write_report(df, out.with_name(out.stem + "_report"), sw.report_x, sw.report_y, sw.compare, sw.params,
                     "Rett map: point-hh surrogate circuits")
    res["load_after"] = _load()
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "network_speed.json").write_text(json.dumps(res, indent=1))
    lines = ["| work | surrogate | NEURON | ratio |", "|---|---|---|---|"]
    o = res["one_circuit"]
    lines.append(f"| one circuit, {o['cells']} cells x {o['ms']} ms | {o['surrogate_s'] * 1e3:.0f} ms "
                 f"({o['surrogate_cell_ms_per_s']:,.0f} cell-ms/s) | {o['neuron_s'] * 1e3:.0f} ms "
                 f"({o['neuron_cell_ms_per_s']:,.0f} cell-ms/s), measured | {o['ratio']:.1f}x |")
    if "map" in res:
        m = res["map"]
        lines.append(f"| Rett map, {m['runs']} circuits ({m['scheduler']}) | {m['surrogate_s']:.0f} s ({m['surrogate_cell_ms_per_s']:,.0f} "
                     f"cell-ms/s), measured | {m['neuron_s_extrapolated']:.0f} s ({m['neuron_cell_ms_per_s']:,.0f} "
                     f"cell-ms/s), extrapolated from {m['neuron_sample_runs']} runs on {m['neuron_workers']} processes "
                     f"| {m['ratio']:.1f}x |")
    lines.append(f"\nCPU: {res['cpu_count']} cores, torch threads {res['torch_threads']}; load average before "
                 f"{res['load_before']}, after {res['load_after']}.")
    (dest / "network_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
