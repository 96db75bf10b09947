"""NEURON speed of the detailed cell hay-l5pc: CPU seconds per simulated second.

One process, one core, fixed dt 0.025 ms (40 000 steps per simulated second),
642 compartments, the reference protocol (finitialize(-80), no pre-run). Three
configurations: no input (the 200 synapses exist but get no events), and two
bombardment trials of the reference (trial 10: 4844 events, trial 19: 19832
events in 2 s). Best of ``--repeats`` runs; process CPU time of the simulation
call (cell building excluded). Writes a JSON record to --out.

    .venv/bin/python benchmarks/hay_speed.py --shared ../shared/hay2011 [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared/hay2011", help="folder with cell1.asc and reference/")
    ap.add_argument("--duration-ms", type=float, default=2000.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="out/bench/hay_speed.json")
    args = ap.parse_args()

    from neurosurrogate.biophys.hay import HayCell, hay_model, simulate_hay
    from neurosurrogate.data.io import provenance
    from neurosurrogate.inputs import EventTable

    shared = Path(args.shared)
    spec = HayCell(morphology=str(shared / "cell1.asc"), prerun=False, v_init_mV=-80.0)
    hay_model(spec)  # build outside the timing
    z = np.load(shared / "reference" / "synaptic_bombardment.npz")
    off = z["ev_offsets"]
    configs = {"no input": EventTable.empty()}
    for k in (10, 19):
        sl = slice(int(off[k]), int(off[k + 1]))
        configs[f"bombardment trial {k}"] = EventTable(z["ev_time_ms"][sl], z["ev_syn"][sl].astype(np.int64),
                                                       z["ev_weight_nS"][sl])
    res = {}
    for label, ev in configs.items():
        cpu, wall = [], []
        for _ in range(args.repeats):
            t, w = time.process_time(), time.perf_counter()
            tr = simulate_hay(spec, ev, args.duration_ms)
            cpu.append(time.process_time() - t)
            wall.append(time.perf_counter() - w)
        sim_s = args.duration_ms / 1000
        res[label] = {"events": len(ev), "spikes": len(tr.spike_times_ms), "cpu_s": cpu, "wall_s": wall,
                      "cpu_s_per_sim_s": min(cpu) / sim_s, "wall_s_per_sim_s": min(wall) / sim_s}
        print(f"{label:24s} {len(ev):6d} events {len(tr.spike_times_ms):3d} spikes  "
              f"{min(cpu) / sim_s:5.2f} CPU s / simulated s  ({min(wall) / sim_s:5.2f} wall)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": res, "dt_ms": spec.dt_ms, "provenance": provenance()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
