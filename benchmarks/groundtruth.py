"""Ground-truth generation throughput: simulated seconds per wall second.

Runs the same dataset (point-hh, paper protocol) with one worker and with all
cores, side by side, and prints the parallel speed-up. Also times a single
cell alone (no batching) to show what batching cells in one NEURON run buys.
Writes a JSON record to --out (default out/bench/groundtruth.json).

    .venv/bin/python benchmarks/groundtruth.py [--trials 256] [--duration-ms 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=256)
    ap.add_argument("--duration-ms", type=float, default=2000.0)
    ap.add_argument("--out", default="out/bench/groundtruth.json")
    args = ap.parse_args()

    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.generate import generate_dataset
    from neurosurrogate.data.io import provenance

    cell = get_cell("point-hh")
    cores = os.cpu_count() or 1
    sim_s = args.trials * args.duration_ms / 1000
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, workers, batch in (("single cell per NEURON run, 1 core", 1, 1),
                                      ("1 core", 1, 32), (f"{cores} cores", cores, 32)):
            n = max(4, args.trials // 8) if batch == 1 else args.trials
            t = time.perf_counter()
            generate_dataset(Path(tmp) / f"{workers}-{batch}.h5", cell, n, args.duration_ms, seed=0,
                             workers=workers, batch_size=batch, progress=False)
            wall = time.perf_counter() - t
            rate = n * args.duration_ms / 1000 / wall
            res[label] = {"trials": n, "wall_s": wall, "sim_s_per_wall_s": rate,
                          "cpu_ms_per_cell_per_sim_s": 1000 * workers / rate}
            print(f"{label:38s} {n:4d} trials  {wall:7.2f} s wall  {rate:7.1f} simulated s / wall s  "
                  f"({1000 * workers / rate:6.1f} ms CPU per cell per simulated s)")
    speedup = res[f"{cores} cores"]["sim_s_per_wall_s"] / res["1 core"]["sim_s_per_wall_s"]
    batching = res["1 core"]["sim_s_per_wall_s"] / res["single cell per NEURON run, 1 core"]["sim_s_per_wall_s"]
    print(f"parallel speed-up ({cores} cores vs 1): {speedup:.2f}x; batching cells in one NEURON run: {batching:.1f}x")
    print(f"({sim_s:.0f} simulated s per configuration; process start-up included)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": res, "parallel_speedup": speedup, "batching_speedup": batching,
                               "provenance": provenance()}, indent=1))


if __name__ == "__main__":
    main()
