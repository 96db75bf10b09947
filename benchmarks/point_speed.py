"""Point-neuron speed: NEURON vs. the surrogate, side by side in one script.

For N = 1, 50, 5000 independent point-hh cells under the same random input
(paper protocol, activity 0.5), measures cell-milliseconds simulated per wall
second for
  * NEURON: N cells in one NEURON run, event-driven alpha synapses, dt 0.025 ms
    (one core, as NEURON runs here; inputs queued through NetCons);
  * the surrogate: N cells as one batch, streaming one step per ms as the network
    engine does (``neurosurrogate.surrogate.stepper.make_stepper``: the fused C
    kernel where it applies), torch on all cores; also whole-sequence
    ``forward`` (GRU kernels over time) for reference;
and prints the ratio, the surrogate's FLOPs per cell-step, the FLOP rate it
achieves and the matrix-multiply rate torch reaches on this CPU. With
--sizes it also reports the accuracy/speed trade-off across model sizes
(needs trained models, see --models).

    .venv/bin/python benchmarks/point_speed.py [--model point-hh] [--sim-ms 1000] [--cells 1,50,5000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def neuron_rate(cell, tables, sim_ms) -> float:
    from neurosurrogate.biophys.simulate import resting_potential, simulate_batch

    resting_potential(cell)
    simulate_batch(cell, tables[:1], 10)  # build once
    t = time.perf_counter()
    simulate_batch(cell, tables, sim_ms)
    wall = time.perf_counter() - t
    return len(tables) * sim_ms / wall, wall


@torch.no_grad()
def surrogate_rate(model, tables, sim_ms, mode="step") -> tuple[float, float]:
    x = torch.from_numpy(np.stack([model.encoding.features(ev, sim_ms) for ev in tables]))
    net = model.net.cpu().eval()
    if mode == "step":  # as the network engine steps a population (the fused kernel's stepper where it applies)
        from neurosurrogate.surrogate.stepper import make_stepper

        x = x.transpose(0, 1).contiguous()  # (T, N, n_in): each step's input contiguous, as the engine's
        stepper = make_stepper(net, x.shape[1])
        stepper.step(x[0])  # untimed: loads the kernel, copies the weights into its layout
        stepper.reset()
    t = time.perf_counter()
    if mode == "step":
        for x_k in x:
            stepper.step(x_k)
    else:
        net(x)
    wall = time.perf_counter() - t
    return len(tables) * sim_ms / wall, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="point-hh")
    ap.add_argument("--models", default=None, help="comma-separated model folders for the size trade-off")
    ap.add_argument("--sim-ms", type=float, default=1000.0)
    ap.add_argument("--cells", default="1,50,5000")
    ap.add_argument("--out", default="out/bench/point_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.inputs import paper_protocol_events
    from neurosurrogate.surrogate.model import SurrogateModel

    cell = get_cell("point-hh")
    model = SurrogateModel.load(args.model)
    flops = model.net.flops_per_step()
    peak = matmul_gflops()
    print(f"surrogate {args.model}: {model.net.arch_name} {model.net.config}, {flops:,} FLOPs per cell-step; "
          f"torch matmul peak on this CPU {peak:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    rows = []
    syn = cell.synapses
    for n in [int(c) for c in args.cells.split(",")]:
        rng = np.random.default_rng(n)
        tables = [paper_protocol_events([s.kind for s in syn], [s.weight_nS for s in syn], args.sim_ms, rng,
                                        activity_scale=0.5, p_quiet=0.0) for _ in range(n)]
        rn, wn = neuron_rate(cell, tables, args.sim_ms)
        rs, ws = surrogate_rate(model, tables, args.sim_ms, "step")
        rf, wf = surrogate_rate(model, tables, args.sim_ms, "forward")
        achieved = rs * flops / 1e9
        row = {"cells": n, "neuron_cell_ms_per_s": rn, "surrogate_step_cell_ms_per_s": rs,
               "surrogate_forward_cell_ms_per_s": rf, "speedup_step": rs / rn, "speedup_forward": rf / rn,
               "neuron_cpu_ms_per_cell_per_sim_s": 1000 * wn / (n * args.sim_ms / 1000),
               "surrogate_cpu_ms_per_cell_per_sim_s": 1000 * ws * torch.get_num_threads() / (n * args.sim_ms / 1000),
               "surrogate_gflops_achieved": achieved}
        rows.append(row)
        print(f"{n:5d} cells: NEURON {rn:10.0f} cell-ms/s | surrogate step {rs:10.0f} cell-ms/s "
              f"({rs / rn:5.1f}x) | forward {rf:10.0f} ({rf / rn:5.1f}x) | achieved {achieved:.1f} GFLOP/s "
              f"= {100 * achieved / peak:.0f}% of matmul peak")
        print(f"{'':12s}CPU per cell per simulated s: NEURON {row['neuron_cpu_ms_per_cell_per_sim_s']:.2f} ms (1 core), "
              f"surrogate step {row['surrogate_cpu_ms_per_cell_per_sim_s']:.2f} ms ({torch.get_num_threads()} threads); "
              f"per-core ratio {row['neuron_cpu_ms_per_cell_per_sim_s'] / row['surrogate_cpu_ms_per_cell_per_sim_s']:.1f}x")
    tradeoff = []
    if args.models:
        for path in args.models.split(","):
            m = SurrogateModel.load(path)
            rng = np.random.default_rng(5000)
            tables = [paper_protocol_events([s.kind for s in syn], [s.weight_nS for s in syn], args.sim_ms, rng,
                                            activity_scale=0.5, p_quiet=0.0) for _ in range(5000)]
            rs, _ = surrogate_rate(m, tables, args.sim_ms, "step")
            ve = m.card.get("heldout_metrics", {}).get("paper", {}).get("variance_explained")
            tradeoff.append({"model": path, "flops_per_step": m.net.flops_per_step(), "cell_ms_per_s_5000": rs,
                             "variance_explained_paper": ve})
            print(f"{path}: {m.net.flops_per_step():,} FLOPs/step, {rs:.0f} cell-ms/s at 5000 cells, VE {ve}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "flops_per_step": flops, "matmul_gflops": peak, "rows": rows,
                               "tradeoff": tradeoff}, indent=1))


if __name__ == "__main__":
    main()
