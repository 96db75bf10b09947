"""Speed of the detailed L5 pyramidal cell (hay-l5pc): NEURON vs. its surrogate, side by side.

For N = 1, 50, 500, 5000 cells, each under its own random input (the training protocol:
``mixed`` with 400-9000 Hz of total excitation, ``trial_events`` seeds [seed, i]), the wall
time of ``--sim-ms`` (default 100 ms) of activity:

  * NEURON (dt 0.025 ms, 642 compartments, event-driven alpha synapses): one cell per NEURON
    run, as the dataset generator runs it, starting from the steady state. N = 1 is measured in
    one process; N = 50 is split over two spawned worker processes (25 cells each, the two cores
    of this machine; wall = the slower worker's summed run times). Building the cell and its
    steady state (once per process) is excluded and reported separately. Larger N are
    **extrapolated** linearly from N = 50 (labelled so in the table, JSON and plot).
  * The surrogate: N cells as one batch, streaming one step per ms as the network engine does
    (``neurosurrogate.surrogate.stepper.make_stepper``: the compiled fused step of
    ``neurosurrogate.surrogate.fast`` with preallocated buffers where a C compiler exists, and
    again with PyTorch's operations: rows "PyTorch step"), input features
    precomputed (not timed), best of ``--repeats``; split
    over ``--procs`` spawned processes with ``--threads`` torch threads each (default 2 x 1:
    one thread per process is usually fastest here). ``--model`` takes a trained model folder;
    without it an **untrained** model of the architecture in ``configs/hay-l5pc.toml`` is timed
    ("untrained weights, same architecture: speed only" in every output).

  * The surrogate over the whole 100 ms input in one call per process (independent cells whose
    input is known in advance, as ``predict`` runs them): extra rows "whole sequence".
  * With a CUDA device: the same steps of N cells as one batch on the GPU (one process, inputs on
    the device before timing, synchronised; N from ``--gpu-cells``, NEURON extrapolated beyond its
    measured N as above), twice: PyTorch's operations launched one by one per step, and the step
    replayed from a CUDA graph (``neurosurrogate.surrogate.graph.GraphStepper``, what the network
    engine uses on a GPU); printed and plotted as extra rows.

``--neuron-dt-ms S`` runs NEURON with a fixed step of S ms instead of the cell's 0.025 ms (S must divide
1 ms): a coarser step is faster and less exact (``l5pc_spike_reliability.py --conditions dt_ms:S`` measures
what it costs in spikes), so the ratio against NEURON at the coarsest step whose spikes are no worse than the
surrogate's is the fair one for a user who would accept the surrogate's fidelity. The step is in the record,
the table header and the plot's labels.

Prints cell-ms simulated per wall second and the ratio; writes a JSON record and a PNG of wall
time vs N. ``--reuse-neuron FILE`` takes the NEURON rows from an earlier record (same --sim-ms,
--seed) instead of simulating again, e.g. to time a newly trained model.

    .venv/bin/python benchmarks/l5pc_speed.py [--model runs/hay-l5pc/model] [--sim-ms 100]
        [--cells 1,50,500,5000] [--morphology ../shared/hay2011/cell1.asc] [--reuse-neuron out/bench/l5pc_speed.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.generate import spawn_pool

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = ("mixed", {"exc_rate_range_Hz": (400.0, 9000.0), "p_quiet": 0.0})
UNTRAINED = "untrained weights, same architecture: speed only"


def _tables(cell_dict: dict, indices, sim_ms: float, seed: int):
    from neurosurrogate.biophys.cells import cell_from_dict
    from neurosurrogate.biophys.generate import trial_events

    cell = cell_from_dict(cell_dict)
    return [trial_events(cell, PROTOCOL[0], PROTOCOL[1], sim_ms, seed, i) for i in indices]


def _neuron_worker(cell_dict: dict, indices: list[int], sim_ms: float, seed: int) -> dict:
    """In a fresh process: build the cell (timed apart), then simulate each cell in turn."""
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    from neurosurrogate.biophys.cells import cell_from_dict
    from neurosurrogate.biophys.hay import hay_model, simulate_hay
    from neurosurrogate.inputs import EventTable

    spec = cell_from_dict(cell_dict)
    tables = _tables(cell_dict, indices, sim_ms, seed)
    t = time.perf_counter()
    hay_model(spec)
    simulate_hay(spec, EventTable.empty(), 5.0)  # steady state (computed once per process) and warm-up
    build = time.perf_counter() - t
    wall, cpu, spikes, events = [], [], [], []
    for ev in tables:
        t, c = time.perf_counter(), time.process_time()
        tr = simulate_hay(spec, ev, sim_ms)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        spikes.append(len(tr.spike_times_ms))
        events.append(len(ev))
    return {"build_s": build, "wall_s": wall, "cpu_s": cpu, "spikes": spikes, "events": events}


def neuron_run(cell_dict: dict, n: int, sim_ms: float, seed: int, workers: int) -> dict:
    """Simulate cells 0..n-1 split over ``workers`` spawned processes; wall = slowest worker's sum."""
    chunks = [c.tolist() for c in np.array_split(np.arange(n), min(workers, n))]
    with spawn_pool(len(chunks)) as pool:
        res = list(pool.map(_neuron_worker, [cell_dict] * len(chunks), chunks, [sim_ms] * len(chunks),
                            [seed] * len(chunks)))
    wall = max(sum(r["wall_s"]) for r in res)
    return {"n_cells": n, "wall_s": wall, "cpu_s": sum(sum(r["cpu_s"]) for r in res), "processes": len(chunks),
            "build_s": [r["build_s"] for r in res], "spikes": sum(sum(r["spikes"]) for r in res),
            "events": sum(sum(r["events"]) for r in res), "measured": True}


def _time_surrogate(model_dir: str, cell_dict: dict, indices: list[int], sim_ms: float, seed: int, repeats: int,
                    mode: str = "step", device: str = "cpu", start=None) -> tuple[float, str]:
    """Encode the inputs (not timed, moved to ``device``), then the best of ``repeats`` wall times of
    the streaming steps (``mode`` 'step', as a network runs) or of one pass over the whole input
    sequence ('sequence', as ``predict`` runs independent cells whose input is known in advance),
    or the streaming steps replayed from a CUDA graph ('graph', CUDA only; captured untimed).
    One untimed step comes first (kernel loading, weight layout); on CUDA a first pass warms up
    the kernels and the clock is read after synchronising.
    Returns the wall time (s) and which implementation stepped ('fused C kernel' or 'PyTorch')."""
    import torch

    from neurosurrogate.surrogate.model import SurrogateModel

    dev = torch.device(device)
    model = SurrogateModel.load(model_dir)
    tables = _tables(cell_dict, indices, sim_ms, seed)
    x = torch.from_numpy(np.stack([model.encoding.features(ev, sim_ms) for ev in tables])).to(dev)
    if mode in ("step", "graph"):  # (T, N, n_in): each step's input contiguous, as the engine's (one copy held)
        x = x.transpose(0, 1).contiguous()
    from neurosurrogate.surrogate.stepper import make_stepper

    n = len(indices)
    net = model.net.to(dev).eval()
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    stepper = None
    with torch.no_grad():  # untimed: loads the fused kernel, copies the weights into its layout, captures a graph
        if mode == "sequence":
            net(x[:, :1], net.init_state(n, dev))
        else:  # what the network engine steps a population with
            stepper = make_stepper(net, n, dev, cuda_graph=mode == "graph")
            stepper.step(x[0])
    if start is not None:  # let every process start timing together
        start.wait()
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats + int(cuda)):
            if stepper is not None:
                stepper.reset()
            else:
                state = net.init_state(n, dev)
            sync()
            t = time.perf_counter()
            if stepper is not None:
                for x_k in x:
                    stepper.step(x_k)
            else:
                net(x, state)
            sync()
            best = min(best, time.perf_counter() - t)
    if stepper is not None:
        impl = {"GraphStepper": "CUDA graph", "FusedStepper": "fused C kernel"}.get(type(stepper).__name__, "PyTorch")
    else:  # the fused kernel serves forward over the sequence too once it is loaded
        impl = "fused C kernel" if getattr(net, "_fused", None) is not None else "PyTorch"
    return best, impl


def _surrogate_worker(model_dir: str, cell_dict: dict, indices: list[int], sim_ms: float, seed: int,
                      threads: int, repeats: int, start=None, mode: str = "step") -> dict:
    """In a fresh process with ``threads`` torch threads: :func:`_time_surrogate` on the CPU. Mode
    'step-torch' is 'step' with the fused kernel switched off (PyTorch's operations)."""
    if mode == "step-torch":
        os.environ["NEUROSURROGATE_FAST_STEP"] = "0"
    import torch

    torch.set_num_threads(threads)
    wall, impl = _time_surrogate(model_dir, cell_dict, indices, sim_ms, seed, repeats, mode.split("-")[0], "cpu",
                                 start)
    return {"wall_s": wall, "n": len(indices), "implementation": impl}


def surrogate_cuda_run(model_dir: str, cell_dict: dict, n: int, sim_ms: float, seed: int, repeats: int,
                       mode: str = "step") -> dict:
    """The streaming steps of N cells as one batch on the CUDA device, in this process: ``mode``
    'step' (PyTorch's operations launched per step) or 'graph' (one CUDA graph replay per step)."""
    import torch

    wall, impl = _time_surrogate(model_dir, cell_dict, list(range(n)), sim_ms, seed, repeats, mode, "cuda")
    return {"n_cells": n, "wall_s": wall, "device": torch.cuda.get_device_name(0), "mode": mode,
            "implementation": impl, "measured": True}


def surrogate_run(model_dir: str, cell_dict: dict, n: int, sim_ms: float, seed: int, procs: int, threads: int,
                  repeats: int, mode: str = "step") -> dict:
    chunks = [c.tolist() for c in np.array_split(np.arange(n), min(procs, n))]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as mgr:
        start = mgr.Barrier(len(chunks))
        with spawn_pool(len(chunks)) as pool:
            res = list(pool.map(_surrogate_worker, [model_dir] * len(chunks), [cell_dict] * len(chunks), chunks,
                                [sim_ms] * len(chunks), [seed] * len(chunks), [threads] * len(chunks),
                                [repeats] * len(chunks), [start] * len(chunks), [mode] * len(chunks)))
    return {"n_cells": n, "wall_s": max(r["wall_s"] for r in res), "processes": len(chunks),
            "threads_per_process": threads, "mode": mode, "implementation": res[0]["implementation"],
            "measured": True}


def untrained_model(cell, folder: Path) -> Path:
    """An untrained model of the configs/hay-l5pc.toml architecture for ``cell`` (speed only)."""
    import torch

    from neurosurrogate.data.io import read_toml
    from neurosurrogate.surrogate.model import Encoding, ExtraOutput, SurrogateModel

    cfg = read_toml(REPO / "configs" / "hay-l5pc.toml", "config")
    # output scales are placeholders (rounded from the training data): they do not affect speed
    enc = Encoding(tuple(s.weight_nS for s in cell.synapses), -77.25, cell_name="hay-l5pc", extras=(
        ExtraOutput("v_dend0_mV", 20.0, -74.2, "mV"), ExtraOutput("v_dend1_mV", 20.0, -71.25, "mV"),
        ExtraOutput("ica", 0.0076, 0.0, "mA/cm2")))
    torch.manual_seed(0)
    model = SurrogateModel.create(cfg.get("arch", "gru"), enc, **cfg.get("arch_params", {}))
    model.card = {"note": UNTRAINED}
    return model.save(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="trained hay-l5pc model folder (default: untrained, speed only)")
    ap.add_argument("--morphology", default=os.environ.get("NEUROSURROGATE_HAY_MORPHOLOGY",
                                                           str(REPO.parent / "shared" / "hay2011" / "cell1.asc")))
    ap.add_argument("--sim-ms", type=float, default=100.0, help="simulated activity per cell, ms")
    ap.add_argument("--cells", default="1,50,500,5000")
    ap.add_argument("--gpu-cells", default="1,50,500,5000,50000", help="N timed on a CUDA device (if any)")
    ap.add_argument("--neuron-cells", default="1,50", help="N measured with NEURON (the rest extrapolated)")
    ap.add_argument("--neuron-dt-ms", type=float, default=None,
                    help="NEURON's fixed step, ms (default: the cell's, 0.025); must divide 1 ms")
    ap.add_argument("--neuron-workers", type=int, default=2, help="processes for NEURON N > 1")
    ap.add_argument("--procs", type=int, default=2, help="surrogate processes (N > 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per surrogate process")
    ap.add_argument("--repeats", type=int, default=3, help="surrogate repeats (best taken)")
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--reuse-neuron", default=None, help="JSON record of an earlier run: reuse its NEURON rows")
    ap.add_argument("--out", default="out/bench/l5pc_speed.json")
    args = ap.parse_args()

    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.data.io import provenance
    from neurosurrogate.plotting import plot_speed_vs_n
    from neurosurrogate.surrogate.model import SurrogateModel

    load_before = os.getloadavg()  # other processes on the cores distort both simulators' timings
    try:
        cells = sorted({int(c) for c in args.cells.split(",")})
        gpu_cells = sorted({int(c) for c in args.gpu_cells.split(",")})
    except ValueError:
        sys.exit(f"--cells {args.cells!r} / --gpu-cells {args.gpu_cells!r}: expected comma-separated integers")
    if min(cells + gpu_cells) < 1:
        sys.exit("--cells / --gpu-cells: cell counts must be >= 1")
    measured_n = sorted({int(c) for c in args.neuron_cells.split(",")})
    if not Path(args.morphology).exists():
        sys.exit(f"--morphology {args.morphology} does not exist")
    try:
        cell = get_cell("hay-l5pc", morphology=args.morphology,
                        **({} if args.neuron_dt_ms is None else {"dt_ms": args.neuron_dt_ms}))
    except ValueError as exc:
        sys.exit(f"--neuron-dt-ms {args.neuron_dt_ms}: {exc}")
    neuron_name = f"NEURON (dt {cell.dt_ms:g} ms)"
    cell_dict = cell.to_dict()
    tmp = tempfile.TemporaryDirectory()
    if args.model:
        model_dir, label = str(args.model), f"surrogate {Path(args.model).name}"
        SurrogateModel.load(model_dir)  # fail early on a bad folder
    else:
        model_dir, label = str(untrained_model(cell, Path(tmp.name) / "untrained")), f"surrogate ({UNTRAINED})"
    model = SurrogateModel.load(model_dir)
    arch = {"arch": model.net.arch_name, "arch_params": model.net.config,
            "parameters": int(sum(p.numel() for p in model.net.parameters())),
            "flops_per_step": int(model.net.flops_per_step())}

    # --- NEURON -----------------------------------------------------------------------------
    if args.reuse_neuron:
        old = json.loads(Path(args.reuse_neuron).read_text())
        old_dt = old.get("neuron_dt_ms", 0.025)  # records before the option: the cell's step
        if old["sim_ms"] != args.sim_ms or old["seed"] != args.seed or abs(old_dt - cell.dt_ms) > 1e-12:
            sys.exit(f"--reuse-neuron {args.reuse_neuron}: recorded for sim_ms {old['sim_ms']}, seed {old['seed']}, "
                     f"NEURON dt {old_dt:g} ms (this run: {args.sim_ms:g}, {args.seed}, {cell.dt_ms:g})")
        neuron = {r["n_cells"]: r for r in old["neuron"] if r["measured"]}
        print(f"NEURON rows reused from {args.reuse_neuron} (measured {old.get('date')})")
    else:
        neuron = {}
        for n in measured_n:
            t = time.perf_counter()
            neuron[n] = neuron_run(cell_dict, n, args.sim_ms, args.seed, 1 if n == 1 else args.neuron_workers)
            print(f"{neuron_name} N={n}: {neuron[n]['wall_s']:.2f} s simulation wall over {neuron[n]['processes']} "
                  f"process(es) ({time.perf_counter() - t:.1f} s incl. start-up and cell building)", flush=True)
    import torch

    has_cuda = torch.cuda.is_available()
    base_n = max(neuron)
    for n in sorted(set(cells) | (set(gpu_cells) if has_cuda else set())):
        if n not in neuron:
            ref = neuron[base_n]
            neuron[n] = {"n_cells": n, "wall_s": ref["wall_s"] * n / base_n, "processes": ref["processes"],
                         "measured": False, "extrapolated_from": base_n}

    # --- surrogate ----------------------------------------------------------------------------
    sur = {}
    for n in cells:
        sur[n] = surrogate_run(model_dir, cell_dict, n, args.sim_ms, args.seed, 1 if n == 1 else args.procs,
                               args.threads, args.repeats)
        print(f"surrogate N={n}: {sur[n]['wall_s']:.4f} s", flush=True)

    pt = {}  # the same streaming steps with PyTorch's operations (what runs without a C compiler)
    for n in cells:
        pt[n] = surrogate_run(model_dir, cell_dict, n, args.sim_ms, args.seed, 1 if n == 1 else args.procs,
                              args.threads, args.repeats, mode="step-torch")
        print(f"surrogate N={n}, PyTorch step: {pt[n]['wall_s']:.4f} s", flush=True)

    seq = {}  # independent cells with known input: one pass over the sequence (how `predict` runs)
    for n in cells:
        seq[n] = surrogate_run(model_dir, cell_dict, n, args.sim_ms, args.seed, 1 if n == 1 else args.procs,
                               args.threads, args.repeats, mode="sequence")
        print(f"surrogate N={n}, whole sequence: {seq[n]['wall_s']:.4f} s", flush=True)

    gpu, gpu_graph = {}, {}
    if has_cuda:  # the GPU columns (one batch per N on one device)
        for n in gpu_cells:
            gpu[n] = surrogate_cuda_run(model_dir, cell_dict, n, args.sim_ms, args.seed, args.repeats)
            print(f"surrogate on {gpu[n]['device']} N={n}, PyTorch step: {gpu[n]['wall_s']:.4f} s", flush=True)
            gpu_graph[n] = surrogate_cuda_run(model_dir, cell_dict, n, args.sim_ms, args.seed, args.repeats, "graph")
            print(f"surrogate on {gpu[n]['device']} N={n}, CUDA graph step: {gpu_graph[n]['wall_s']:.4f} s", flush=True)

    # --- table, record, plot ----------------------------------------------------------------------
    rate = lambda r: r["n_cells"] * args.sim_ms / r["wall_s"]  # noqa: E731  cell-ms per wall s
    print(f"\n{args.sim_ms:g} ms of activity per cell; {label}; {arch['arch']} {arch['arch_params']}, "
          f"{arch['flops_per_step']:,} FLOPs per cell-step; streaming rows: {sur[cells[0]]['implementation']}")
    print(f"NEURON's step: {cell.dt_ms:g} ms")
    print("| cells | NEURON wall s | NEURON cell-ms/s | surrogate wall s | surrogate cell-ms/s | ratio (wall) |")
    print("|---|---|---|---|---|---|")
    groups = [("", sur), (", PyTorch step", pt), (", whole sequence", seq)]
    groups += [(f" on {gpu[n]['device']}, PyTorch step", {n: gpu[n]}) for n in gpu]
    groups += [(f" on {gpu_graph[n]['device']}, CUDA graph", {n: gpu_graph[n]}) for n in gpu_graph]
    for suffix, runs in groups:  # one table row per (group, N)
        for n, q in runs.items():
            a = neuron[n]
            tag = "" if a["measured"] else " (extrapolated)"
            print(f"| {n:,}{suffix} | {a['wall_s']:.3f}{tag} | {rate(a):,.0f} | {q['wall_s']:.4f} | "
                  f"{rate(q):,.0f} | {a['wall_s'] / q['wall_s']:,.0f}x |")
    record = {"sim_ms": args.sim_ms, "seed": args.seed, "neuron_dt_ms": cell.dt_ms, "protocol": [PROTOCOL[0], PROTOCOL[1]],
              "date": time.strftime("%Y-%m-%d %H:%M"), "model": args.model or UNTRAINED, "label": label, **arch,
              "neuron": [neuron[n] for n in sorted(neuron)], "surrogate": [sur[n] for n in cells],
              "ratio_wall": {str(n): neuron[n]["wall_s"] / sur[n]["wall_s"] for n in cells},
              "surrogate_step_pytorch": [pt[n] for n in cells],
              "ratio_wall_step_pytorch": {str(n): neuron[n]["wall_s"] / pt[n]["wall_s"] for n in cells},
              "surrogate_sequence": [seq[n] for n in cells],
              "ratio_wall_sequence": {str(n): neuron[n]["wall_s"] / seq[n]["wall_s"] for n in cells},
              "surrogate_cuda": [gpu[n] for n in gpu_cells if n in gpu],
              "ratio_wall_cuda": {str(n): neuron[n]["wall_s"] / gpu[n]["wall_s"] for n in gpu},
              "surrogate_cuda_graph": [gpu_graph[n] for n in gpu_cells if n in gpu_graph],
              "ratio_wall_cuda_graph": {str(n): neuron[n]["wall_s"] / gpu_graph[n]["wall_s"] for n in gpu_graph},
              "cpu_count": os.cpu_count(), "load_average_1_5_15_before": list(load_before),
              "provenance": provenance()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=float))
    keys = ("n_cells", "wall_s", "measured")
    rows = [{"simulator": f"{neuron_name}, {args.neuron_workers} processes for N > 1", **{k: neuron[n][k] for k in keys}}
            for n in sorted(neuron)]
    rows += [{"simulator": f"{label}, streaming ({sur[cells[0]]['implementation']})", **{k: sur[n][k] for k in keys}}
             for n in cells]
    rows += [{"simulator": f"{label}, streaming (PyTorch step)", **{k: pt[n][k] for k in keys}} for n in cells]
    rows += [{"simulator": f"{label}, whole sequence (predict)", **{k: seq[n][k] for k in keys}} for n in cells]
    rows += [{"simulator": f"{label} on {gpu[n]['device']} (PyTorch step)", **{k: gpu[n][k] for k in keys}}
             for n in gpu]
    rows += [{"simulator": f"{label} on {gpu_graph[n]['device']} (CUDA graph)", **{k: gpu_graph[n][k] for k in keys}}
             for n in gpu_graph]
    png = plot_speed_vs_n(out.with_suffix(".png"), rows, title=f"hay-l5pc, {args.sim_ms:g} ms of activity per cell")
    print(f"wrote {out} and {png}")
    tmp.cleanup()


if __name__ == "__main__":
    from neurosurrogate.biophys.generate import run_interruptible

    run_interruptible(main)  # `kill PID` ends the NEURON workers too, as Ctrl-C does
