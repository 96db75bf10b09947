"""Parallel, resumable generation of ground-truth datasets with NEURON.

Trials are independent: trial ``i`` draws its events from
``numpy.random.default_rng([seed, i])``, so its content does not depend on
which worker ran it or on interruptions. Workers (one process per core,
started with 'spawn' so no NEURON state is inherited) each simulate a batch
of trials together in one NEURON run; the parent writes every finished
trial atomically and assembles the HDF5 file at the end (see
:mod:`neurosurrogate.data.dataset`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.cells import CellSpec, cell_from_dict
from neurosurrogate.data import dataset as ds
from neurosurrogate.data.io import provenance
from neurosurrogate.inputs import EventTable, protocol_events


def trial_events(cell: CellSpec, protocol: str, options: dict, duration_ms: float, seed: int, index: int) -> EventTable:
    """The event table of trial ``index`` of a dataset (deterministic in seed and index)."""
    syn = cell.synapses
    rng = np.random.default_rng([seed, index])
    return protocol_events(
        protocol, [s.kind for s in syn], [s.weight_nS for s in syn], duration_ms, rng, **dict(options)
    )


def _worker(cell_dict: dict, items: list[tuple[int, dict]], duration_ms: float) -> list[tuple[int, dict]]:
    from neurosurrogate.biophys.simulate import simulate_batch

    cell = cell_from_dict(cell_dict)
    tables = [EventTable(**e) for _, e in items]
    traces = simulate_batch(cell, tables, duration_ms)
    out = []
    for (i, _), tr in zip(items, traces):
        out.append((i, {"v_mV": tr.v_mV, "ina": tr.ina, "ik": tr.ik, "spike_times_ms": tr.spike_times_ms}))
    return out


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
        batch_size: trials simulated together by one worker task.
        progress: show a progress bar.
    """
    out = Path(out)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if duration_ms < 1 or duration_ms != int(duration_ms):
        raise ValueError(f"duration_ms must be a whole number >= 1, got {duration_ms}")
    options = dict(protocol_options or {})
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
    if out.exists():
        try:
            existing = ds.load_dataset(out)
        except ds.DatasetError:
            existing = None
        if existing is not None and existing.config == config:
            return out
        raise ds.DatasetError(f"{out} exists with a different or unreadable configuration; choose another --out")
    ds.write_meta(out, config)
    done = ds.finished_parts(out)
    todo = [i for i in range(n_trials) if i not in done]
    workers = workers or os.cpu_count() or 1
    bs = max(1, min(batch_size, -(-len(todo) // workers))) if todo else 1
    batches = [todo[k : k + bs] for k in range(0, len(todo), bs)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_trials, initial=n_trials - len(todo), unit="trial", desc=f"simulate {cell.name}",
                   file=sys.stderr, dynamic_ncols=True)
    cell_dict = cell.to_dict()
    tables = {}

    def submit(pool, batch):
        items = []
        for i in batch:
            ev = trial_events(cell, protocol, options, duration_ms, seed, i)
            tables[i] = ev
            items.append((i, ev.to_dict()))
        return pool.submit(_worker, cell_dict, items, float(duration_ms))

    if batches:
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(batches)), mp_context=ctx) as pool:
            try:
                pending = {submit(pool, b) for b in batches}
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        for i, arrays in fut.result():
                            ds.write_part(out, i, tables.pop(i), arrays)
                            if bar is not None:
                                bar.update(1)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                if bar is not None:
                    bar.close()
                raise
    if bar is not None:
        bar.close()
    syn = [dataclasses.asdict(s) for s in cell.synapses]
    return ds.assemble(out, config, cell.to_dict(), syn, provenance(), n_trials)
