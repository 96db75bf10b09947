"""Open-loop NEURON check of the hay-l5pc circuit: does each surrogate cell answer its circuit input
as the detailed cell would?

For each setting of ``examples/l5pc_circuit.toml`` (default: Rett-like 0.75 x drive at 5 %, control
1.0 x at 7.5 %, and 1.1 x at 7.5 % near the instability transition), one instance is simulated with
the surrogate engine, recording every cell's input features (external background and volley plus the
recurrent input from the surrogate network's own spikes, Tsodyks-Markram-scaled). Those inputs are
turned back into event tables (one event per synapse and 1 ms bin at the weight-weighted onset time,
exact for single events, which is what the surrogate saw) and every cell is simulated with the real
cell in NEURON (``simulate_hay``, from the steady state, dt 0.025 ms) on 2 worker processes. Compared
per setting: each cell's spikes (NEURON = truth, surrogate = prediction: precision/recall at +-2 and
+-10 ms, median |shift|), the circuit measures computed from the NEURON spikes vs from the surrogate's
(instability, immediate response, rates), and a raster of both.

This is *open loop*: NEURON cells receive the surrogate network's spikes, not those of a NEURON
network, so it tests the cells in the circuit's input regime (synchronous proximal volleys, recurrent
bursts, background), not the closed-loop dynamics.

``--closed-loop`` runs the other check: the same realised circuits (connectivity, contacts, delays,
Tsodyks-Markram synapses, background, volley) as NEURON networks of 150 detailed cells each
(``biophys.circuit.simulate_circuits_parallel``, every cell from its steady state; ~6 min of CPU per
250 ms instance, the settings spread over the workers), against the surrogate network run closed loop
on them: the circuit measures of both, each cell's spikes matched as above (closed loop, a spike
missed early changes the network's later input, so per-cell scores are lower bounds), and rasters.
Writes ``closed_loop.json``, ``rasters_closed_loop.png`` and ``closed_loop_spikes.npz`` (with each realised
circuit's fingerprint, :meth:`Circuit.fingerprint`). The NEURON networks do not depend on the surrogate, so
``--reuse-neuron closed_loop_spikes.npz`` checks another model (``--config`` naming it) against the NEURON spikes of
an earlier run in about a minute: each setting's circuit must have the same fingerprint there (same config apart
from the model, seed and morphology), otherwise it stops and says which.

    .venv/bin/python benchmarks/l5pc_circuit_crosscheck.py [--seed 1] [--workers 2] [--closed-loop]
        [--settings 0.75:0.05,1.0:0.075,1.1:0.075] [--out docs/experiments/l5pc_circuit_crosscheck]
        [--reuse-neuron docs/experiments/l5pc_circuit_crosscheck/closed_loop_spikes.npz]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.generate import hay_traces, map_chunks

REPO = Path(__file__).resolve().parent.parent


def neuron_spikes(cell_dict: dict, tables: list, duration_ms: float, workers: int) -> list[np.ndarray]:
    """Spike times (ms) of our NEURON cell on every table, on ``workers`` spawned processes."""
    return [tr.spike_times_ms for tr in map_chunks(hay_traces, tables, workers, cell_dict, duration_ms)]


def reused_neuron_runs(path: Path, fingerprints: list[str], durations: list[int]) -> tuple[list, float]:
    """The NEURON spikes of an earlier closed-loop run for circuits with these fingerprints (and its wall time).

    Raises:
        ValueError: the file is not a closed-loop spikes file with fingerprints, or lacks one of the circuits.
    """
    from neurosurrogate.network.circuit import CircuitRun

    if not path.is_file():
        raise ValueError(f"--reuse-neuron {path}: no such file")
    with np.load(path) as z:
        saved = {str(z[k]): int(k.split("_")[1]) for k in z.files if k.startswith("fingerprint_")}
        if not saved:
            raise ValueError(f"--reuse-neuron {path}: no circuit fingerprints in it (written before they were "
                             "saved, or by the open-loop check); run the closed loop once without --reuse-neuron")
        runs = []
        for fp, T in zip(fingerprints, durations):
            if fp not in saved:
                raise ValueError(f"--reuse-neuron {path}: no NEURON run of circuit {fp} (this config, seed and "
                                 f"settings realise other circuits than that run; it has {sorted(saved)})")
            j = saved[fp]
            runs.append(CircuitRun(z[f"neuron_{j}_cell"], z[f"neuron_{j}_t_ms"], np.zeros((0, T)), T, 0.0, "neuron"))
        wall = float(z["neuron_wall_s"]) if "neuron_wall_s" in z.files else float("nan")
    return runs, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "examples" / "l5pc_circuit.toml"))
    ap.add_argument("--morphology", default=os.environ.get("NEUROSURROGATE_HAY_MORPHOLOGY",
                                                           str(REPO.parent / "shared" / "hay2011" / "cell1.asc")))
    ap.add_argument("--settings", default="0.75:0.05,1.0:0.075,1.1:0.075",
                    help="comma-separated DRIVE:P pairs (network.exc_scale : projections.recurrent.p)")
    ap.add_argument("--seed", type=int, default=1, help="circuit instance (realise seed)")
    ap.add_argument("--workers", type=int, default=2, help="NEURON processes")
    ap.add_argument("--out", default="out/l5pc_circuit_crosscheck", help="folder for crosscheck.json and rasters.png")
    ap.add_argument("--closed-loop", action="store_true",
                    help="simulate the circuits as NEURON networks of detailed cells instead (see above)")
    ap.add_argument("--reuse-neuron", type=Path, metavar="SPIKES_NPZ",
                    help="closed loop: take the NEURON networks' spikes from an earlier run's closed_loop_spikes.npz "
                         "(matched by circuit fingerprint) instead of simulating them")
    args = ap.parse_args()
    if args.reuse_neuron and not args.closed_loop:
        sys.exit("--reuse-neuron needs --closed-loop (open loop, NEURON's input depends on the surrogate)")
    if not Path(args.morphology).exists():
        sys.exit(f"--morphology {args.morphology} does not exist")
    os.environ["NEUROSURROGATE_HAY_MORPHOLOGY"] = args.morphology  # also places a model's sites if its card lacks them
    try:
        settings = [tuple(float(v) for v in s.split(":")) for s in args.settings.split(",")]
        assert all(len(s) == 2 for s in settings)
    except (ValueError, AssertionError):
        sys.exit(f"--settings {args.settings!r}: expected DRIVE:P pairs, e.g. 1.0:0.075,0.75:0.05")

    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.circuit import simulate_circuits_parallel
    from neurosurrogate.data.io import atomic_path, provenance
    from neurosurrogate.evaluate.metrics import pooled_spike_fidelity
    from neurosurrogate.network.build import realise
    from neurosurrogate.network.circuit import CircuitRun
    from neurosurrogate.network.config import load_network_config
    from neurosurrogate.network.engine import simulate
    from neurosurrogate.network.measures import circuit_measures
    from neurosurrogate.plotting import plot_raster_overlay
    from neurosurrogate.surrogate.model import SurrogateModel

    cfg0 = load_network_config(args.config)
    cell = get_cell("hay-l5pc", morphology=args.morphology)
    cell_dict = cell.to_dict()
    pop = cfg0.populations[0]
    model = SurrogateModel.load(pop.model)
    stim_ms, win_ms = cfg0.measures.stimulus_ms, cfg0.measures.response_window_ms
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, runs = [], []

    def compare(drive, p, n, T, nrn, sur, wall):
        """One setting's row (NEURON = truth, surrogate = prediction); prints it."""
        st = [nrn.spike_t_ms[nrn.spike_cell == i] for i in range(n)]
        sp = [sur.spike_t_ms[sur.spike_cell == i] for i in range(n)]
        pr = pooled_spike_fidelity(st, sp, (2.0, 10.0))  # each cell's spikes matched one to one
        row = {"drive": drive, "p": p, "seed": args.seed, "n_cells": n, "duration_ms": T,
               "spikes_neuron": int(nrn.spike_t_ms.size), "spikes_surrogate": int(sur.spike_t_ms.size),
               **{k: round(pr[k], 4) for k in ("precision_2ms", "recall_2ms", "precision_10ms", "recall_10ms")},
               "median_abs_shift_ms": pr["median_abs_shift_ms"],
               "measures_neuron": circuit_measures(nrn, n, stim_ms, win_ms),
               "measures_surrogate": circuit_measures(sur, n, stim_ms, win_ms),
               "neuron_wall_s": wall, "neuron_workers": args.workers}
        rows.append(row)
        runs.append((drive, p, nrn, sur))
        mn, ms = row["measures_neuron"], row["measures_surrogate"]
        print(f"drive {drive} x, p {p}: spikes NEURON {row['spikes_neuron']} / surrogate {row['spikes_surrogate']}; "
              f"P/R +-2 ms {pr['precision_2ms']:.2f}/{pr['recall_2ms']:.2f}, +-10 ms {pr['precision_10ms']:.2f}/"
              f"{pr['recall_10ms']:.2f}; instability {mn['instability']:.3f} / {ms['instability']:.3f}, immediate "
              f"response {mn['immediate_response']:.3f} / {ms['immediate_response']:.3f} (NEURON / surrogate; "
              f"NEURON {wall:.0f} s)", flush=True)

    closed = []
    for drive, p in settings:
        cf = cfg0.with_values({"network.exc_scale": drive, "projections.recurrent.p": p})
        c = realise(cf, seed=args.seed)
        n, T = c.n_cells, int(c.duration_ms)
        c = dataclasses.replace(c, record_v=np.arange(n))
        sur = simulate(c, device="cpu", record_inputs=not args.closed_loop)
        if args.closed_loop:
            closed.append((drive, p, c, sur))
            continue
        tables = [model.encoding.events(x) for x in sur.inputs]  # what each surrogate cell saw
        t0 = time.perf_counter()
        spk = neuron_spikes(cell_dict, tables, float(T), args.workers)
        wall = time.perf_counter() - t0
        cells = np.concatenate([np.full(s.size, i) for i, s in enumerate(spk)]).astype(np.int64)
        times = np.concatenate(spk) if cells.size else np.zeros(0)
        o = np.lexsort((cells, times))
        compare(drive, p, n, T, CircuitRun(cells[o], times[o], np.zeros((0, T)), T, wall, "neuron"), sur, wall)
    if closed:
        print(f"closed loop: {len(closed)} NEURON circuits of {closed[0][2].n_cells} hay-l5pc cells on "
              f"{args.workers} processes ...", flush=True)
        fingerprints = [c.fingerprint() for _, _, c, _ in closed]
        if args.reuse_neuron:
            try:
                nrns, wall = reused_neuron_runs(args.reuse_neuron, fingerprints,
                                                [int(c.duration_ms) for _, _, c, _ in closed])
            except ValueError as exc:
                sys.exit(str(exc))
            print(f"  (NEURON spikes reused from {args.reuse_neuron})", flush=True)
        else:
            t0 = time.perf_counter()
            nrns = simulate_circuits_parallel([c for _, _, c, _ in closed], args.workers, cells={"hay-l5pc": cell})
            wall = time.perf_counter() - t0
        for (drive, p, c, sur), nrn in zip(closed, nrns):
            compare(drive, p, c.n_cells, int(c.duration_ms), nrn, sur, wall)
    name, note = (("closed_loop", "closed loop: NEURON networks of detailed cells vs the surrogate network, same "
                   "realised circuits") if closed else
                  ("crosscheck", "open loop: NEURON cells driven by the surrogate network's inputs"))
    if closed and args.reuse_neuron:
        note += f"; NEURON spikes reused from {args.reuse_neuron}"
    record = {"config": str(args.config), "model": pop.model, "settings": rows, "note": note,
              "date": time.strftime("%Y-%m-%d %H:%M"), "provenance": provenance()}
    with atomic_path(out / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=float))
    png = out / ("rasters_closed_loop.png" if closed else "rasters.png")
    plot_raster_overlay(png, [(f"drive {d} x, p {p}", nrn, sur) for d, p, nrn, sur in runs], stim_ms,
                        neuron_label="NEURON network" if closed else "NEURON (same input)")
    spikes = {f"{who}_{k}_{field}": getattr(run, f"spike_{field}") for k, (_, _, nrn, sur) in enumerate(runs)
              for who, run in (("neuron", nrn), ("surrogate", sur)) for field in ("cell", "t_ms")}
    if closed:
        spikes.update({f"fingerprint_{k}": np.array(fp) for k, fp in enumerate(fingerprints)},
                      neuron_wall_s=np.array(wall))
    with atomic_path(out / f"{name}_spikes.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, settings=np.array([[d, p] for d, p, _, _ in runs]), **spikes)
    print(f"wrote {out / (name + '.json')}, {png} and the spikes ({name}_spikes.npz: setting k's neuron_k_cell, "
          f"neuron_k_t_ms, surrogate_k_...)")


if __name__ == "__main__":
    from neurosurrogate.biophys.generate import run_interruptible

    run_interruptible(main)  # `kill PID` ends the NEURON workers too, as Ctrl-C does
