"""CLI commands of the circuit stage: network, sweep, sweep-report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def add_commands(sub, CLIError) -> None:
    from neurosurrogate.cli import _kv_list, _positive_int

    # ------------------------------------------------------------------ network
    q = sub.add_parser(
        "network", help="simulate one circuit (surrogates, or NEURON for the cross-check)",
        description="Realise a network config (seeded) and simulate it. Writes spike_cell, spike_t_ms (ms), "
        "record_v, v_mV (recorded cells x ms, mV), pop_rate_Hz (populations x ms, 1 ms bins) and the paper's "
        "measures to an NPZ; prints the measures. "
        "--simulator neuron builds the same circuit (same connections, delays, events) from the populations' "
        "biophysical cells in NEURON (point cells, or hay-l5pc with its morphology from "
        "$NEUROSURROGATE_HAY_MORPHOLOGY).")
    q.add_argument("--config", required=True, help="network TOML (e.g. examples/paper_circuit.toml)")
    q.add_argument("--seed", type=int, help="instance seed (default: network.seed of the config)")
    q.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a config field, e.g. --set network.exc_scale=0.8 (repeatable)")
    q.add_argument("--simulator", choices=("surrogate", "neuron"), default="surrogate",
                   help="surrogate (default) or neuron: the same realised circuit in NEURON")
    q.add_argument("--device", help="torch device for the surrogates (default: cuda if available)")
    q.add_argument("--threads", type=_positive_int, default=1,
                   help="torch CPU threads (default 1: per-millisecond steps of a circuit are small; extra "
                   "threads gain little and spin against other processes on a busy machine)")
    q.add_argument("--out", required=True, help="output .npz")
    q.add_argument("--plot", help="also write a raster + population-rate PNG here")

    def cmd_network(args):
        from neurosurrogate.data.io import atomic_path, provenance
        from neurosurrogate.network.build import realise
        from neurosurrogate.network.config import ConfigError, load_network_config
        from neurosurrogate.network.connectivity import ConnectivityError
        from neurosurrogate.network.measures import circuit_measures

        if not args.out.endswith(".npz"):
            raise CLIError(f"--out {args.out}: expected a .npz file name")
        try:
            cfg = load_network_config(args.config)
            if args.set:
                cfg = cfg.with_values(_kv_list(args.set, "--set"))
            circ = realise(cfg, seed=args.seed)
        except (ConfigError, ConnectivityError) as exc:
            raise CLIError(str(exc)) from None
        t0 = time.perf_counter()
        if args.simulator == "surrogate":
            import torch

            from neurosurrogate.network.engine import EngineError, simulate

            torch.set_num_threads(args.threads)
            try:
                run = simulate(circ, device=args.device)
            except EngineError as exc:
                raise CLIError(str(exc)) from None
        else:
            from neurosurrogate.biophys.circuit import simulate_circuits

            try:
                run = simulate_circuits([circ])[0]
            except ValueError as exc:
                raise CLIError(str(exc)) from None
        wall = time.perf_counter() - t0
        meas = circuit_measures(run, circ.n_cells, cfg.measures.stimulus_ms, cfg.measures.response_window_ms)
        from neurosurrogate.network.measures import population_rate_Hz

        off = circ.offsets
        pop_rate = np.stack([population_rate_Hz(run, np.arange(off[i], off[i + 1]), 1.0)[1]
                             for i in range(len(circ.populations))])
        with atomic_path(args.out) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, spike_cell=run.spike_cell, spike_t_ms=run.spike_t_ms, v_mV=run.v_mV,
                         record_v=circ.record_v, duration_ms=circ.duration_ms, pop_rate_Hz=pop_rate,
                         populations=np.asarray([p.name for p in circ.populations]),
                         measures=json.dumps(meas), config=json.dumps(cfg.raw, default=str),
                         seed=circ.meta["seed"], simulator=args.simulator, provenance=json.dumps(provenance()))
        print(f"{args.simulator}: {circ.n_cells} cells, {circ.n_synapses} synapses, {circ.duration_ms} ms in "
              f"{wall:.2f} s; {run.spike_t_ms.size} spikes")
        for k, v in meas.items():
            print(f"  {k:20s} {v:.4g}")
        if args.plot:
            from neurosurrogate import plotting

            plotting.plot_circuit(args.plot, {f"{args.simulator}, seed {circ.meta['seed']}": run}, circ.n_cells,
                                  cfg.measures.stimulus_ms)
        return 0

    q.set_defaults(func=cmd_network)

    # ------------------------------------------------------------------ sweep
    q = sub.add_parser(
        "sweep", help="run a parameter sweep of circuits (batched; resumable; Dask optional)",
        description="Run every setting x repeat of a sweep TOML (grid or random sample over any network "
        "config field). Instances are stacked into batches of --chunk-size circuits; each finished chunk is "
        "kept in OUT.parts/, so re-running the same command resumes. Writes a tidy table (one row per run: "
        "parameters, seed, measures) to OUT (.parquet), then heat maps and statistics (see sweep-report).")
    q.add_argument("--config", required=True, help="sweep TOML (e.g. examples/rett_map.toml)")
    q.add_argument("--out", required=True, help="results .parquet")
    q.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786), or local[:N] for a local "
                   "cluster of N worker processes; default: run in this process")
    q.add_argument("--chunk-size", dest="chunk_size", type=_positive_int, help="circuits per batch")
    q.add_argument("--device", help="torch device (default: cuda if available)")
    q.add_argument("--report-dir", dest="report_dir", help="report folder (default: OUT without suffix + _report)")
    q.add_argument("--no-report", action="store_true", help="write only the table")
    q.add_argument("--quiet", action="store_true", help="no progress bar")

    def cmd_sweep(args):
        from neurosurrogate.network.config import ConfigError
        from neurosurrogate.network.connectivity import ConnectivityError
        from neurosurrogate.sweep.config import load_sweep_config
        from neurosurrogate.sweep.runner import SweepError, run_sweep

        try:
            sw = load_sweep_config(args.config)
            t0 = time.perf_counter()
            df = run_sweep(sw, args.out, scheduler=args.scheduler, device=args.device, chunk_size=args.chunk_size,
                           progress=not args.quiet)
        except (ConfigError, ConnectivityError, SweepError) as exc:
            raise CLIError(str(exc)) from None
        except KeyboardInterrupt:
            print("\ninterrupted: run the same command again to resume (finished chunks are kept)")
            return 130
        if df is None:
            return 1
        wall = time.perf_counter() - t0
        cell_ms = float((df["n_cells"] * sw.network.duration_ms).sum())
        print(f"{len(df)} runs -> {args.out} in {wall:.1f} s this call "
              f"({cell_ms / max(wall, 1e-9):,.0f} cell-ms per s if nothing was resumed)")
        if not args.no_report:
            _report(df, sw, args.report_dir or str(Path(args.out).with_suffix("")) + "_report")
        return 0

    q.set_defaults(func=cmd_sweep)

    # ------------------------------------------------------------------ sweep-report
    q = sub.add_parser(
        "sweep-report", help="heat maps and statistics of finished sweep results",
        description="From a results table and its sweep TOML: heatmaps.png (mean of each measure over the "
        "[report] x and y parameters), settings.csv (mean, SD, n per setting) and stats.md (Welch t-tests "
        "between the [[report.compare]] settings).")
    q.add_argument("--results", required=True, help="results .parquet from `neurosurrogate sweep`")
    q.add_argument("--config", required=True, help="the sweep TOML that made it")
    q.add_argument("--out-dir", dest="out_dir", help="report folder (default: RESULTS without suffix + _report)")

    def cmd_report(args):
        import pandas as pd

        from neurosurrogate.network.config import ConfigError
        from neurosurrogate.sweep.config import load_sweep_config

        try:
            sw = load_sweep_config(args.config)
        except ConfigError as exc:
            raise CLIError(str(exc)) from None
        try:
            df = pd.read_parquet(args.results)
        except (OSError, ValueError) as exc:
            raise CLIError(f"--results {args.results}: cannot read a Parquet table ({exc})") from None
        _report(df, sw, args.out_dir or str(Path(args.results).with_suffix("")) + "_report")
        return 0

    def _report(df, sw, out_dir):
        from neurosurrogate.sweep.report import ReportError, write_report

        try:
            paths = write_report(df, out_dir, sw.report_x, sw.report_y, sw.compare, sw.params)
        except ReportError as exc:
            raise CLIError(str(exc)) from None
        for k, p in paths.items():
            print(f"  {k}: {p}")

    q.set_defaults(func=cmd_report)
