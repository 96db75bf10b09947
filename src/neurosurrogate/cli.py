"""Command-line interface: ``neurosurrogate <command> ...`` (see ``--help``).

Every command validates its arguments and reports bad input as
``neurosurrogate: error: ...`` with exit status 2 (no traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.cells import CELLS, get_cell
from neurosurrogate.inputs import PROTOCOLS, EventTable, EventTableError


class CLIError(Exception):
    """A user error to print without a traceback."""


def _parse_value(text: str):
    if "," in text:  # a list, e.g. exc_rate_range_Hz=400,3000
        return tuple(_parse_value(t.strip()) for t in text.split(","))
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _kv_list(pairs: list[str] | None, what: str) -> dict:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise CLIError(f"{what} {p!r}: expected NAME=VALUE")
        k, v = p.split("=", 1)
        out[k.strip()] = _parse_value(v.strip())
    return out


HAY = "hay-l5pc"


def _cell_from_args(args):
    from neurosurrogate.biophys.hay import MorphologyError

    params = _kv_list(args.set, "--set")
    if getattr(args, "kshift_mV", None) is not None:
        params["kshift_mV"] = args.kshift_mV
    hay_only = {
        "--morphology": ("morphology", getattr(args, "morphology", None)),
        "--v-init-mV": ("v_init_mV", getattr(args, "v_init_mV", None)),
        "--no-prerun": ("prerun", False if getattr(args, "no_prerun", False) else None),
    }
    for flag, (name, value) in hay_only.items():
        if value is None:
            continue
        if args.cell != HAY:
            raise CLIError(f"{flag} applies to --cell {HAY} only (got --cell {args.cell})")
        params[name] = value
    try:
        return get_cell(args.cell, **params)
    except MorphologyError as exc:
        raise CLIError(f"--morphology: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise CLIError(f"--cell/--set: {exc}") from None


def _duration(value: str) -> float:
    try:
        d = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of ms, got {value!r}") from None
    if not np.isfinite(d) or d < 1 or d != int(d):
        raise argparse.ArgumentTypeError(f"expected a whole number of ms >= 1, got {value!r}")
    return d


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def _add_cell_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cell", default="point-hh", choices=sorted(CELLS),
                   help="cell model (default point-hh)")
    p.add_argument("--kshift-mV", dest="kshift_mV", type=float, default=None,
                   help="shift of the K+ activation in mV (point-hh-kshift; default +10)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a cell parameter, e.g. --set gkbar_S_cm2=0.03 (repeatable)")
    p.add_argument("--morphology", metavar="PATH",
                   help=f"morphology file (.asc or .swc) of --cell {HAY} "
                   "(default: $NEUROSURROGATE_HAY_MORPHOLOGY)")


# ---------------------------------------------------------------------------------------------
def cmd_build_mechanisms(args) -> int:
    from neurosurrogate.biophys.build import build_mechanisms, mechanisms_key

    t = time.perf_counter()
    folder = build_mechanisms(force=args.force, verbose=args.verbose)
    print(f"mechanisms {mechanisms_key()} ready in {folder} ({time.perf_counter() - t:.1f} s)")
    from neurosurrogate.surrogate.fast import KernelBuildError, build_kernel

    t = time.perf_counter()
    try:
        lib = build_kernel(force=args.force)
    except KernelBuildError as exc:  # optional: the surrogates then step with PyTorch
        print(f"warning: fused GRU step not built, surrogates will step with PyTorch (slower): {exc}",
              file=sys.stderr)
    else:
        print(f"fused GRU step ready in {lib.parent} ({time.perf_counter() - t:.1f} s)")
    return 0


def cmd_synapses(args) -> int:
    cell = _cell_from_args(args)
    if cell.name == HAY:  # sites are placed on the instantiated morphology (NEURON)
        from neurosurrogate.biophys.hay import MorphologyError, synapse_table

        try:
            rows = synapse_table(cell)
        except MorphologyError as exc:
            raise CLIError(f"--morphology: {exc}") from None
        print("index kind tau_ms e_rev_mV weight_nS section x x_node dist_um")
        for r in rows:
            print(f"{r['index']:5d} {r['kind']:4s} {r['tau_ms']:6g} {r['e_rev_mV']:8g} {r['weight_nS']:9g} "
                  f"{r['section']} {r['x']:.6f} {r['x_node']:.6f} {r['dist_um']:.2f}")
        return 0
    print("index kind tau_ms e_rev_mV weight_nS section x")
    for i, s in enumerate(cell.synapses):
        print(f"{i:5d} {s.kind:4s} {s.tau_ms:6g} {s.e_rev_mV:8g} {s.weight_nS:9g} {s.section} {s.x:g}")
    return 0


def cmd_events(args) -> int:
    cell = _cell_from_args(args)
    from neurosurrogate.inputs import PROBE_STREAM, protocol_events_with_probes

    opts = _kv_list(args.option, "--option")
    syn = cell.synapses
    try:
        if "volley_max_dist_um" in opts:  # as simulate does: the excitatory sites within that distance
            from neurosurrogate.biophys.generate import volley_sites

            opts = volley_sites(cell, opts)
        # probe_rate_Hz: the same table plus probes from their own stream (a pair with the table without)
        ev = protocol_events_with_probes(args.protocol, [s.kind for s in syn], [s.weight_nS for s in syn],
                                         args.duration_ms, np.random.default_rng(args.seed),
                                         np.random.default_rng([args.seed, PROBE_STREAM]), opts)
        ev.save(args.out)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"--protocol/--option/--out: {exc}") from None
    print(f"wrote {len(ev)} events to {args.out}")
    return 0


def cmd_simulate(args) -> int:
    cell = _cell_from_args(args)
    out = Path(args.out)
    if args.events is not None:
        return _simulate_single(cell, args, out)
    if args.trials is None:
        raise CLIError("simulate: give --events FILE (one run) or --trials N (a dataset)")
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise CLIError(f"--out {out}: a dataset (--trials) is written as HDF5, {out.suffix or 'no suffix'!r} "
                       "is not supported; use a .h5 suffix")
    from neurosurrogate.biophys.generate import generate_dataset, sigterm_as_interrupt
    from neurosurrogate.biophys.hay import MorphologyError
    from neurosurrogate.data.dataset import DatasetError

    opts = _kv_list(args.option, "--option")
    t = time.perf_counter()
    try:
        with sigterm_as_interrupt():  # `kill PID`: stop like Ctrl-C, keeping the finished trials
            generate_dataset(out, cell, args.trials, args.duration_ms, args.seed, protocol=args.protocol,
                             protocol_options=opts, workers=args.workers, progress=not args.quiet,
                             reuse=args.reuse)
    except MorphologyError as exc:
        raise CLIError(f"--morphology: {exc}") from None
    except (DatasetError, TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    except KeyboardInterrupt:
        print("\ninterrupted: finished trials are kept; run the same command again to resume", file=sys.stderr)
        return 130
    el = time.perf_counter() - t
    print(f"wrote {out}: {args.trials} trials x {args.duration_ms:g} ms in {el:.1f} s")
    if args.plot:
        from neurosurrogate.data.dataset import load_dataset
        from neurosurrogate.evaluate.rollout import dataset_traces
        from neurosurrogate.plotting import plot_traces

        d = load_dataset(out)
        k = min(4, d.n_trials)
        plot_traces(args.plot, dataset_traces(d)[:k], d.events[:k], [s["kind"] for s in d.synapses],
                    title=f"{cell.name}: NEURON ground truth ({args.protocol} protocol)")
        print(f"wrote {args.plot}")
    return 0


def _simulate_single(cell, args, out: Path) -> int:
    from neurosurrogate.biophys.simulate import simulate_events
    from neurosurrogate.data.io import provenance

    if args.trials is not None:
        raise CLIError("simulate: --events and --trials are exclusive")
    if out.suffix.lower() != ".npz":
        raise CLIError(f"--out {out}: a single run is written as NPZ; use a .npz suffix")
    try:
        ev = EventTable.load(args.events).check_synapses(len(cell.synapses))
    except EventTableError as exc:
        raise CLIError(f"--events: {exc}") from None
    from neurosurrogate.biophys.hay import MorphologyError

    t = time.perf_counter()
    try:
        tr = simulate_events(cell, ev, args.duration_ms)
    except MorphologyError as exc:
        raise CLIError(f"--morphology: {exc}") from None
    el = time.perf_counter() - t
    meta = {"cell": cell.to_dict(), "duration_ms": args.duration_ms, "events_file": str(args.events),
            "units": {"t_ms": "ms", "v_mV": "mV", "ina": "mA/cm2", "ik": "mA/cm2", "spike_times_ms": "ms"},
            "provenance": provenance()}
    if cell.name == HAY:
        meta["units"]["v_dend_mV"] = "mV"
        meta["v_dend_mV"] = ("shape (n_sites, T): row k is the apical trunk site sites[k] "
                             "(default rows: 400 um, 700 um from the soma), 1 kHz point samples")
        meta["sites"] = tr.meta["sites"]
        meta["init"] = ("steady state without input" if cell.prerun
                        else f"finitialize({cell.v_init_mV:g} mV), no pre-run")
    tr.save_npz(out, meta)
    print(f"wrote {out}: {len(tr.spike_times_ms)} spikes in {args.duration_ms:g} ms (NEURON {el:.2f} s)")
    if args.plot:
        from neurosurrogate.plotting import plot_traces

        plot_traces(args.plot, [tr], [ev], [s.kind for s in cell.synapses], title=f"{cell.name}: NEURON")
        print(f"wrote {args.plot}")
    return 0


def cmd_demo(args) -> int:
    """The main job on the embedded default."""
    from neurosurrogate.demo import run_demo

    return run_demo(Path(args.out_dir), quick=args.quick)


# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="neurosurrogate",
        description="NEURON ground truth and fast ANN surrogates of biophysical neurons. "
        "Units: ms, mV, nS, mA/cm2.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    q = sub.add_parser("build-mechanisms", help="compile the project's NEURON .mod files and the fused "
                       "surrogate step (cached)",
                       description="Compile the NMODL mechanisms with nrnivmodl into a cache keyed by "
                       "the mod files' hash and the NEURON version, and the C kernel of the GRU surrogate's "
                       "streaming step (neurosurrogate.surrogate.fast) with the system C compiler into a cache "
                       "keyed by its source, the compiler and the CPU. Without a C compiler the surrogates "
                       "step with PyTorch (a warning says so).")
    q.add_argument("--force", action="store_true", help="rebuild even if cached")
    q.add_argument("--verbose", action="store_true", help="show nrnivmodl output")
    q.set_defaults(func=cmd_build_mechanisms)

    q = sub.add_parser("synapses", help="print a cell's synapse table")
    _add_cell_args(q)
    q.set_defaults(func=cmd_synapses)

    q = sub.add_parser("events", help="write a random event table (NPZ or CSV)",
                       description="Draw synaptic events from a protocol and write t_ms, synapse, weight_nS.")
    _add_cell_args(q)
    q.add_argument("--protocol", choices=PROTOCOLS, default="paper",
                   help="input protocol (default paper; see the README's *Event tables*)")
    q.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="protocol option, e.g. --option max_exc_rate_Hz=800 (repeatable)")
    q.add_argument("--duration-ms", dest="duration_ms", type=_duration, default=2000.0,
                   help="length of the table, whole ms (default 2000): events in [0, duration)")
    q.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0): the same seed, the same table")
    q.add_argument("--out", required=True, help="output file (.npz or .csv)")
    q.set_defaults(func=cmd_events)

    q = sub.add_parser(
        "simulate", help="NEURON ground truth: one run (--events) or a dataset (--trials)",
        description="One run: --events FILE --duration-ms T --out gt.npz writes t_ms, v_mV (1 kHz, AP peaks "
        "kept), ina, ik (mA/cm2, 1 ms means), spike_times_ms. Dataset: --trials N --duration-ms T --seed S "
        "--out data.h5 simulates N trials in parallel on all cores; an interrupted run resumes. "
        f"--cell {HAY} --morphology PATH: the Hay et al. 2011 L5 pyramidal cell; event synapse indices "
        "refer to its default 200-site table (see the synapses command); the output also has v_dend_mV, "
        "shape (2, T), the apical trunk at 400 and 700 um (1 kHz point samples), and ica, the calcium current "
        "density (mA/cm2) in one compartment in the middle of the Ca hot zone (785 um); a dataset's metadata "
        "holds the placed synapse table, the sites and that compartment. It starts at the steady "
        "state unless --no-prerun (then finitialize(--v-init-mV), the original protocol with -80).")
    _add_cell_args(q)
    q.add_argument("--v-init-mV", dest="v_init_mV", type=float, default=None,
                   help=f"{HAY}: initial voltage of finitialize, mV (default -80)")
    q.add_argument("--no-prerun", dest="no_prerun", action="store_true",
                   help=f"{HAY}: start at finitialize(--v-init-mV) without relaxing to the steady state")
    q.add_argument("--events", help="event table (.npz or .csv) for a single run")
    q.add_argument("--trials", type=_positive_int, help="number of trials of a dataset")
    q.add_argument("--duration-ms", dest="duration_ms", type=_duration, default=2000.0,
                   help="simulated time per trial, ms (default 2000)")
    q.add_argument("--seed", type=int, default=0, help="master seed of a dataset (default 0)")
    q.add_argument("--protocol", choices=PROTOCOLS, default="paper", help="input protocol of a dataset")
    q.add_argument("--option", action="append", metavar="NAME=VALUE", help="protocol option (repeatable)")
    q.add_argument("--workers", type=_positive_int, default=None, help="processes (default: all cores)")
    q.add_argument("--reuse", metavar="RUN.h5[.parts]",
                   help="dataset: take the finished trials < --trials of another run with the same cell, protocol, "
                   "options, duration and seed (trial i depends only on --seed and i) instead of simulating them: "
                   "a snapshot of a dataset still being generated, nested subsets for a learning curve, or a finished "
                   "run's .h5 extended to more trials")
    q.add_argument("--plot", help="also write a PNG of traces here")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--out", required=True, help="gt.npz (single run) or data.h5 (dataset)")
    q.set_defaults(func=cmd_simulate)

    q = sub.add_parser("demo", help="the main job on the embedded default (writes into --out-dir)")
    q.add_argument("--out-dir", dest="out_dir", default="out/demo", help="output folder (default out/demo)")
    q.add_argument("--quick", action="store_true", help="smaller run (used by the tests)")
    q.set_defaults(func=cmd_demo)

    from neurosurrogate import cli_surrogate

    cli_surrogate.add_commands(sub, CLIError)
    from neurosurrogate import cli_network

    cli_network.add_commands(sub, CLIError)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"neurosurrogate: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
