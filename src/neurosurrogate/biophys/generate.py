"""Parallel, resumable generation of ground-truth datasets with NEURON.

Trials are independent: trial ``i`` draws its events from
``numpy.random.default_rng([seed, i])``, so its content does not depend on
which worker ran it or on interruptions. Workers (one process per core by
default, started with 'spawn' so no NEURON state is inherited) each simulate
a batch of point-cell trials together in one NEURON run; the parent writes
every finished trial atomically and assembles the HDF5 file at the end (see
:mod:`neurosurrogate.data.dataset`). At most ``2 * workers`` tasks are in
flight, so the parent never holds more than that many event tables.

``hay-l5pc``: each worker simulates one trial at a time (a batch of detailed
cells in one NEURON run is no faster); its NEURON model and the steady state
that starts every trial are built once per worker process. Besides the soma
voltage, ``ina``/``ik`` and spikes, a trial records ``v_dend_mV`` (the two
apical trunk sites) and ``ica`` (calcium current density in the middle of
the Ca hot zone, see :func:`neurosurrogate.biophys.hay.locate_ca_site`). The
placed synapse table, the sites and the Ca compartment, reported by the
workers, are kept in ``<out>.parts/cell_info.json`` and stored in the HDF5
metadata. The morphology file's SHA-256 is part of the configuration, so a
changed file refuses to resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.cells import CellSpec, cell_from_dict
from neurosurrogate.biophys.hay import is_hay  # no NEURON import
from neurosurrogate.data import dataset as ds
from neurosurrogate.data.io import atomic_path, provenance
from neurosurrogate.inputs import PROBE_STREAM, EventTable, protocol_events_with_probes


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM (``kill PID``) raises KeyboardInterrupt as Ctrl-C does, so that a
    :func:`spawn_pool` ends its workers instead of leaving them running as orphans. Only in the main
    thread (elsewhere the block runs unchanged); the previous handler is restored on exit."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_interruptible(main, message: str = "interrupted") -> None:
    """The ``__main__`` of a script that runs NEURON workers: ``sys.exit(main())`` with SIGTERM treated as
    Ctrl-C (:func:`sigterm_as_interrupt`), and either one printing ``message`` and exiting with 130."""
    try:
        with sigterm_as_interrupt():
            code = main()
    except KeyboardInterrupt:
        print(message, file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel the tasks that have not started and end the worker processes now.

    ``shutdown(cancel_futures=True)`` alone lets the running tasks finish, and leaving the
    ``with`` block then waits for them: after Ctrl-C (or a SIGINT sent to the parent only, which
    the workers never see) a run of hay-l5pc trials went on for minutes. Finished trials are on
    disk already, so nothing is lost but the trials in progress."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # no public API before 3.14;
    pool.shutdown(wait=False, cancel_futures=True)                     # shutdown forgets them
    for proc in procs:
        if proc.is_alive():
            proc.terminate()


@contextlib.contextmanager
def spawn_pool(max_workers: int):
    """A process pool of ``max_workers`` spawned processes (no NEURON state is inherited) whose
    workers end at once (:func:`stop_pool`) when the body raises or is interrupted."""
    with ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("spawn")) as pool:
        try:
            yield pool
        except BaseException:
            stop_pool(pool)
            raise


def map_chunks(fn, items, workers: int, *args) -> list:
    """``fn(chunk, *args)`` on ``workers`` spawned processes, each with a round-robin chunk of
    ``items``; ``fn`` returns one result per item of its chunk. Returns the results in the order of
    ``items``. Ctrl-C or a failed chunk ends every worker at once."""
    items = list(items)
    chunks = [list(range(i, len(items), workers)) for i in range(min(int(workers), len(items)))]
    out: list = [None] * len(items)
    if not chunks:
        return out
    with spawn_pool(len(chunks)) as pool:
        futures = [pool.submit(fn, [items[i] for i in ch], *args) for ch in chunks]
        for ch, fut in zip(chunks, futures):
            for i, res in zip(ch, fut.result()):
                out[i] = res
    return out


def hay_traces(tables: list, cell_dict: dict, duration_ms: float) -> list:
    """Worker of :func:`map_chunks`: one :class:`~neurosurrogate.biophys.hay.HayTrace` per item,
    simulated in this process (from the steady state unless the cell says otherwise). An item is an
    event table, or ``(events, i_soma_nA)`` with a somatic current waveform (nA, one sample per ms;
    :func:`~neurosurrogate.biophys.hay.simulate_hay`)."""
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    from neurosurrogate.biophys.hay import simulate_hay

    spec = cell_from_dict(cell_dict)
    return [simulate_hay(spec, item[0], duration_ms, i_soma_nA=item[1]) if isinstance(item, tuple)
            else simulate_hay(spec, item, duration_ms) for item in tables]


def trial_events(cell: CellSpec, protocol: str, options: dict, duration_ms: float, seed: int, index: int) -> EventTable:
    """The event table of trial ``index`` of a dataset (deterministic in seed and index).

    The option ``probe_rate_Hz = R`` (any protocol) adds single events at R Hz in total, drawn from
    their own stream ``default_rng([seed, index, PROBE_STREAM])``: trial ``i`` of such a run holds
    exactly the events of trial ``i`` of the run without the option, plus the probes (a *pair*)."""
    syn = cell.synapses
    return protocol_events_with_probes(protocol, [s.kind for s in syn], [s.weight_nS for s in syn], duration_ms,
                                       np.random.default_rng([seed, index]),
                                       np.random.default_rng([seed, index, PROBE_STREAM]), options)


def volley_sites(cell: CellSpec, options: dict) -> dict:
    """Protocol options with ``volley_max_dist_um = D`` replaced by ``volley_synapses``: the indices
    of the excitatory sites within D um path distance of the soma (a placed synapse table: ``hay-l5pc``;
    builds the morphology in NEURON). The dataset's configuration records the explicit indices.

    Raises:
        ValueError: the cell has no placed sites, D is not > 0, or no excitatory site is that close.
    """
    opts = dict(options)
    d = opts.pop("volley_max_dist_um")
    if not is_hay(cell):
        raise ValueError(f"volley_max_dist_um needs a cell with placed synapse sites (hay-l5pc), not {cell.name!r}")
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not d > 0:
        raise ValueError(f"volley_max_dist_um must be a path distance > 0 (um), got {d!r}")
    from neurosurrogate.biophys.hay import synapse_table

    sel = [int(r["index"]) for r in synapse_table(cell) if r["kind"] == "exc" and r["dist_um"] <= d]
    if not sel:
        raise ValueError(f"volley_max_dist_um = {d}: no excitatory site lies within {d} um of the soma")
    opts["volley_synapses"] = sel
    return opts


def _worker(cell_dict: dict, items: list[tuple[int, dict]], duration_ms: float) -> list[tuple[int, dict]]:
    from neurosurrogate.biophys.simulate import simulate_batch

    cell = cell_from_dict(cell_dict)
    tables = [EventTable(**e) for _, e in items]
    traces = simulate_batch(cell, tables, duration_ms)
    out = []
    for (i, _), tr in zip(items, traces):
        out.append((i, {"v_mV": tr.v_mV, "ina": tr.ina, "ik": tr.ik, "spike_times_ms": tr.spike_times_ms}))
    return out


#: cell info of a hay-l5pc run that becomes dataset metadata (``state_names`` only with record_states)
HAY_INFO_KEYS = ("sites", "ica_site", "v_rest_mV", "state_names")


def _hay_info(model) -> dict:
    """What the dataset metadata needs from an instantiated hay-l5pc (JSON-serialisable): the
    placed synapse table and :data:`HAY_INFO_KEYS`."""
    return {
        "synapses": model.synapse_rows,
        "sites": model.sites,
        "ica_site": model.ca_site,
        "v_rest_mV": float(model.v_rest_mV),
        **({"state_names": model.state_names} if model.spec.record_states else {}),
    }


def _hay_worker(cell_dict: dict, index: int, events: dict, duration_ms: float) -> tuple[int, dict, dict]:
    """One hay-l5pc trial in a worker process: (index, arrays of the part file, cell info)."""
    from neurosurrogate.biophys.hay import hay_model, simulate_hay

    cell = cell_from_dict(cell_dict)
    tr = simulate_hay(cell, EventTable(**events), duration_ms)
    arrays = {"v_mV": tr.v_mV, "ina": tr.ina, "ik": tr.ik, "spike_times_ms": tr.spike_times_ms,
              "v_dend_mV": tr.v_dend_mV, "ica": tr.ica}
    if tr.states is not None:
        arrays["states"] = tr.states
    return index, arrays, _hay_info(hay_model(cell))


def _hay_info_worker(cell_dict: dict) -> dict:
    """Cell info of a hay-l5pc without simulating a trial (worker process)."""
    from neurosurrogate.biophys.hay import hay_model

    model = hay_model(cell_from_dict(cell_dict))
    model.steady_state()
    return _hay_info(model)


def _info_path(out: Path) -> Path:
    return ds.parts_dir(out) / "cell_info.json"


def _normalised(info: dict) -> dict:
    return json.loads(json.dumps(info, sort_keys=True))


def _keep_info(out: Path, info: dict) -> None:
    """Write the workers' cell info beside the parts once; later reports must agree with it."""
    path = _info_path(out)
    info = _normalised(info)
    if path.exists():
        old = json.loads(path.read_text())
        geometry = ("synapses", "sites", "ica_site")
        if any(old.get(k) != info.get(k) for k in geometry):
            raise ds.DatasetError(
                f"{path}: a worker placed synapses or recording sites differently from the earlier "
                "trials of this dataset (was the morphology file or the code changed?)"
            )
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, sort_keys=True, indent=1))


def _check_same_run(src: Path, theirs: dict, config: dict) -> None:
    """Raise DatasetError unless the run ``src`` (configuration ``theirs``) differs from ``config`` at
    most in its number of trials."""
    diff = sorted(k for k in set(theirs) | set(config) if k != "n_trials" and theirs.get(k) != config.get(k))
    if diff:
        raise ds.DatasetError(f"--reuse {src}: its trials come from a different configuration (differs in {diff})")


def _reuse_parts(out: Path, src: Path, config: dict, n_trials: int) -> int:
    """Link (or copy) the finished trials ``< n_trials`` of another run's parts into ``out``'s.

    Returns the number of trials taken. Raises DatasetError if ``src`` holds no parts or
    another configuration (anything but ``n_trials`` differs).
    """
    import shutil

    run = src.with_name(src.name[: -len(".parts")]) if src.suffix == ".parts" else src
    src = ds.parts_dir(run)
    meta = src / "config.json"
    if not meta.exists():
        if run.is_file():  # a finished run: its parts were assembled into the .h5 and removed
            return _reuse_finished(out, run, config, n_trials)
        raise ds.DatasetError(f"--reuse {src}: no parts folder of a dataset run (config.json missing), "
                              f"and no finished dataset {run}")
    if src.resolve() == ds.parts_dir(out).resolve():
        return 0
    _check_same_run(src, json.loads(meta.read_text()), config)
    info = src / "cell_info.json"
    if info.exists():
        _keep_info(out, json.loads(info.read_text()))
    have = ds.finished_parts(out)
    taken = 0
    for i, path in sorted(ds.finished_parts(run).items()):
        if i >= n_trials or i in have:
            continue
        dest = ds.parts_dir(out) / path.name
        tmp = dest.with_name(dest.name + ".tmp")
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
        taken += 1
    return taken


def _reuse_finished(out: Path, run: Path, config: dict, n_trials: int) -> int:
    """Write the trials ``< n_trials`` of the finished dataset ``run`` (.h5) as parts of ``out``.

    The file stores traces as float32, which is what ``out`` stores too, so ``out``'s copies of
    those trials are bit-identical to ``run``'s. Returns the number of trials taken. Raises
    DatasetError if ``run`` is not a complete dataset or comes from another configuration.
    """
    try:
        d = ds.load_dataset(run)
    except ds.DatasetError as exc:
        raise ds.DatasetError(f"--reuse {run}: {exc}") from None
    _check_same_run(run, d.config, config)
    if {"sites", "ica_site", "v_rest_mV"} <= set(d.extra):  # hay-l5pc: the cell info the parts keep
        _keep_info(out, {"synapses": d.synapses, **{k: d.extra[k] for k in HAY_INFO_KEYS if k in d.extra}})
    have = ds.finished_parts(out)
    taken = 0
    for i in range(min(n_trials, d.n_trials)):
        if i in have:
            continue
        arrays = {"v_mV": d.v_mV[i], "ina": d.ina[i], "ik": d.ik[i], "spike_times_ms": d.spike_times_ms[i]}
        for k in ds.OPTIONAL_TRACE_KEYS:  # Dataset attributes of the same names
            if getattr(d, k) is not None:
                arrays[k] = getattr(d, k)[i]
        ds.write_part(out, i, d.events[i], arrays)
        taken += 1
    return taken


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


HAY_UNITS = {
    "t_ms": "ms", "v_mV": "mV (soma, 1 kHz, AP peaks kept)", "ina": "mA/cm2 (soma, 1 ms bin means)",
    "ik": "mA/cm2 (soma, 1 ms bin means)", "spike_times_ms": "ms (soma, upward crossings of the threshold)",
    "v_dend_mV": "mV, shape (n_sites, T): row k = sites[k], 1 kHz point samples at t = 0, 1, ... ms",
    "ica": "mA/cm2, calcium current density (HVA + LVA) at ica_site, 1 ms bin means, negative = inward",
    "states": "shape (n_states, T): row k = state_names[k] (cai in mM, gates 0-1), 1 ms bin means",
    "dist_um": "um, path distance from soma[0](0.5)", "weight_nS": "nS (peak conductance)",
    "tau_ms": "ms", "e_rev_mV": "mV",
}


def generate_dataset(
    out: str | Path,
    cell: CellSpec,
    n_trials: int,
    duration_ms: float,
    seed: int,
    protocol: str = "paper",
    protocol_options: dict | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    reuse: str | Path | None = None,
) -> Path:
    """Simulate ``n_trials`` trials and write the dataset to ``out`` (HDF5).

    Resumable: trials finished by an earlier, interrupted call with the same
    configuration are kept and skipped.

    Args:
        out: destination ``.h5`` file.
        cell: cell specification.
        n_trials: number of trials (>= 1).
        duration_ms: length of each trial, ms (whole number).
        seed: master seed; trial ``i`` uses ``default_rng([seed, i])``.
        protocol: input protocol name ('paper', 'mixed', 'poisson').
        protocol_options: keyword options of the protocol.
        workers: processes (default: all cores).
        batch_size: trials simulated together by one worker task (point cells; ``hay-l5pc``
            always simulates one trial per task).
        progress: show a progress bar (on stderr).
        reuse: the ``.parts`` folder (or its ``.h5`` name) of another, possibly unfinished run
            with the same cell, protocol, options, duration and seed but any number of trials,
            or that run's finished ``.h5`` file: its finished trials ``i < n_trials`` are
            linked (or copied, or written from the file) instead of simulated again. Trial
            ``i`` depends only on ``seed`` and ``i``, so the first ``n`` trials of a long run
            are exactly a run of ``n`` trials (e.g. a snapshot of a dataset still being
            generated, nested subsets for a learning curve, or a finished run extended).

    Returns:
        ``out``.

    Raises:
        ValueError: bad ``n_trials``, ``duration_ms``, ``workers``, protocol or option.
        DatasetError: ``out`` or its parts folder holds another configuration.
    """
    out = Path(out)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if duration_ms < 1 or duration_ms != int(duration_ms):
        raise ValueError(f"duration_ms must be a whole number >= 1, got {duration_ms}")
    if workers is not None and (int(workers) != workers or workers < 1):
        raise ValueError(f"workers must be a whole number >= 1, got {workers}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size}")
    options = dict(protocol_options or {})
    hay = is_hay(cell)
    if "volley_max_dist_um" in options:
        options = volley_sites(cell, options)
    # fail early on a bad protocol or option, before any process starts
    trial_events(cell, protocol, options, duration_ms, seed, 0)
    config = {
        "cell_name": cell.name,
        "protocol": protocol,
        "protocol_options": options,
        "n_trials": int(n_trials),
        "duration_ms": float(duration_ms),
        "seed": int(seed),
        "cell": cell.to_dict(),
    }
    if hay:
        config["morphology_sha256"] = file_sha256(cell.morphology)
    # as stored (JSON: tuples become lists), so a rerun compares equal to the file / parts
    config = json.loads(json.dumps(config, sort_keys=True))
    if out.exists():
        try:
            existing = ds.load_dataset(out)
        except ds.DatasetError:
            existing = None
        if existing is not None and existing.config == config:
            return out
        raise ds.DatasetError(f"{out} exists with a different or unreadable configuration; choose another --out")
    ds.write_meta(out, config)
    if reuse is not None:
        _reuse_parts(out, Path(reuse), config, n_trials)
    done = ds.finished_parts(out)
    todo = [i for i in range(n_trials) if i not in done]
    workers = int(workers or os.cpu_count() or 1)
    if hay:
        bs = 1
    else:
        bs = max(1, min(batch_size, -(-len(todo) // workers))) if todo else 1
    batches = [todo[k : k + bs] for k in range(0, len(todo), bs)]
    bar = None
    if progress:
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        bar = tqdm(total=n_trials, initial=n_trials - len(todo), unit="trial", desc=f"simulate {cell.name}",
                   file=sys.stderr, dynamic_ncols=tty, mininterval=0.1 if tty else 10.0)
    cell_dict = cell.to_dict()
    tables = {}

    def submit(pool, batch):
        items = []
        for i in batch:
            ev = trial_events(cell, protocol, options, duration_ms, seed, i)
            tables[i] = ev
            items.append((i, ev.to_dict()))
        if hay:
            return pool.submit(_hay_worker, cell_dict, items[0][0], items[0][1], float(duration_ms))
        return pool.submit(_worker, cell_dict, items, float(duration_ms))

    def finish(fut):
        if hay:
            i, arrays, info = fut.result()
            _keep_info(out, info)  # before the part: a part on disk implies the info is there
            results = [(i, arrays)]
        else:
            results = fut.result()
        for i, arrays in results:
            ds.write_part(out, i, tables.pop(i), arrays)
            if bar is not None:
                bar.update(1)

    try:  # Ctrl-C, a failed trial: the pool stops now; a re-run resumes from the parts
        if batches:
            n_proc = min(workers, len(batches))
            with spawn_pool(n_proc) as pool:
                queue = iter(batches)
                pending = set()
                while True:
                    for batch in queue:  # keep at most 2 tasks per process in flight
                        pending.add(submit(pool, batch))
                        if len(pending) >= 2 * n_proc:
                            break
                    if not pending:
                        break
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        finish(fut)
    finally:
        if bar is not None:
            bar.close()
    if not hay:
        syn = [dataclasses.asdict(s) for s in cell.synapses]
        return ds.assemble(out, config, cell.to_dict(), syn, provenance(), n_trials)
    if not _info_path(out).exists():  # only if someone deleted it: ask a fresh process
        with spawn_pool(1) as pool:
            _keep_info(out, pool.submit(_hay_info_worker, cell_dict).result())
    info = json.loads(_info_path(out).read_text())
    extra = {
        **{k: info[k] for k in HAY_INFO_KEYS if k in info},
        "units": HAY_UNITS,
        "init": ("steady state without input (computed once per worker process)" if cell.prerun
                 else f"finitialize({cell.v_init_mV:g} mV), no pre-run"),
    }
    return ds.assemble(out, config, cell.to_dict(), info["synapses"], provenance(), n_trials, extra_attrs=extra)
