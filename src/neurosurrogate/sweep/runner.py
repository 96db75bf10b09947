"""Run a sweep: chunks of network instances as batched tensor programs, in-process or on Dask.

The runs of a sweep are cut into chunks of ``chunk_size`` consecutive runs.
A chunk is realised (every instance with its own parameters and seed) and
simulated as ONE batch by :func:`neurosurrogate.network.engine.simulate`
(instances whose structure differs, e.g. a swept population size, form
separate batches within the chunk). Each finished chunk is written atomically
to ``<out>.parts/chunk-NNNNN.parquet``; a re-run skips the chunks already
there (resume), after checking that ``<out>.parts/sweep.json`` records the
same sweep. When all chunks exist they are concatenated into ``<out>``.

``scheduler``: ``None`` runs the chunks here, one after the other (torch uses
all cores); an address (``tcp://host:8786``) sends them to a Dask distributed
cluster, one task per chunk; ``"local"`` or ``"local:N"`` starts a local Dask
cluster of N worker processes.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from neurosurrogate.data.io import atomic_path, provenance
from neurosurrogate.network.config import NetworkConfig
from neurosurrogate.sweep.config import Run, SweepConfig

__all__ = ["SweepError", "run_chunk", "run_sweep"]


class SweepError(RuntimeError):
    """A sweep cannot run or resume (the message says why)."""


def _structure(c) -> tuple:
    return (c.populations, c.duration_ms, tuple(c.record_v.tolist()))


def run_chunk(payload: dict) -> list[dict]:
    """Simulate one chunk of runs; returns one row (dict) per run. Executed on workers too."""
    import torch

    from neurosurrogate.network.build import realise
    from neurosurrogate.network.engine import simulate
    from neurosurrogate.network.measures import MEASURES, circuit_measures

    if payload.get("threads"):
        torch.set_num_threads(int(payload["threads"]))
    base = NetworkConfig.from_dict(payload["network"], payload["base_dir"])
    dtype = {"float32": torch.float32, "float64": torch.float64}[payload.get("dtype", "float32")]
    runs = [Run(**r) if isinstance(r, dict) else r for r in payload["runs"]]
    circuits, cfgs = [], []
    t0 = time.perf_counter()
    for r in runs:
        cfg = base.with_values(dict(r.values))
        cfgs.append(cfg)
        circuits.append(realise(cfg, seed=r.seed))
    t_build = time.perf_counter() - t0
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, c in enumerate(circuits):
        groups[_structure(c)].append(i)
    results: list[Any] = [None] * len(runs)
    t0 = time.perf_counter()
    for idx in groups.values():
        for i, res in zip(idx, simulate([circuits[i] for i in idx], device=payload.get("device"), dtype=dtype)):
            results[i] = res
    t_sim = time.perf_counter() - t0
    chunk_cells = int(sum(c.n_cells for c in circuits))
    rows = []
    for r, cfg, c, res in zip(runs, cfgs, circuits, results):
        m = circuit_measures(res, c.n_cells, cfg.measures.stimulus_ms, cfg.measures.response_window_ms)
        row: dict[str, Any] = {"run": r.run, "setting": r.setting, "repeat": r.repeat, "seed": r.seed}
        row.update({k: float(v) for k, v in r.values})
        row.update({k: m[k] for k in MEASURES})
        row.update({"n_spikes": int(res.spike_t_ms.size), "n_cells": c.n_cells, "n_synapses": c.n_synapses,
                    "chunk_cells": chunk_cells,
                    "chunk_build_s": t_build, "chunk_sim_s": t_sim})
        rows.append(row)
    return rows


def _chunks(runs: list[Run], size: int) -> list[list[Run]]:
    return [runs[i:i + size] for i in range(0, len(runs), size)]


def _write_chunk(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def run_sweep(
    sweep: SweepConfig,
    out: str | Path,
    scheduler: str | None = None,
    device: str | None = None,
    chunk_size: int | None = None,
    dtype: str = "float32",
    progress: bool = True,
    stop_after_chunks: int | None = None,
    log: Callable[[str], None] = print,
):
    """Run (or resume) a sweep and write the tidy table to ``out`` (Parquet).

    Args:
        sweep: validated sweep config.
        out: results file (``.parquet``); partial results live in ``<out>.parts/``.
        scheduler: None (in-process), a Dask scheduler address, or 'local[:N]'.
        device: torch device for the engine (default: CUDA if available).
        chunk_size: instances per batch (default: the config's).
        dtype: 'float32' or 'float64'.
        stop_after_chunks: stop after this many new chunks (to test resuming).

    Returns:
        The results as a pandas DataFrame (None if stopped early).
    """
    import pandas as pd

    out = Path(out)
    if out.suffix != ".parquet":
        raise SweepError(f"--out {out}: expected a .parquet file name")
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    size = chunk_size or sweep.chunk_size
    if size < 1:
        raise SweepError(f"chunk size must be >= 1, got {size}")
    fp = sweep.fingerprint()
    manifest = parts / "sweep.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old.get("fingerprint") != fp or old.get("chunk_size") != size:
            raise SweepError(
                f"{parts} holds chunks of another sweep (or chunk size {old.get('chunk_size')}); "
                "remove it or choose another --out")
    else:
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps({"fingerprint": fp, "chunk_size": size, "sweep": sweep.raw,
                                       "network": sweep.network.raw, "provenance": provenance()},
                                      indent=1, default=str))
    runs = sweep.runs()
    chunks = _chunks(runs, size)
    todo = [i for i in range(len(chunks)) if not (parts / f"chunk-{i:05d}.parquet").exists()]
    if len(todo) < len(chunks):
        log(f"resuming: {len(chunks) - len(todo)} of {len(chunks)} chunks already done in {parts}")
    if stop_after_chunks is not None:
        todo = todo[:stop_after_chunks]

    def payload(i: int) -> dict:
        return {"network": sweep.network.raw, "base_dir": sweep.network.base_dir,
                "runs": [r.__dict__ for r in chunks[i]], "device": device, "dtype": dtype}

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(chunks[i]) for i in todo), desc="sweep", unit="run")
    t0 = time.perf_counter()
    if scheduler is None:
        for i in todo:
            _write_chunk(parts / f"chunk-{i:05d}.parquet", run_chunk(payload(i)))
            if bar:
                bar.update(len(chunks[i]))
    else:
        _run_dask(scheduler, todo, payload, parts, bar)
    wall = time.perf_counter() - t0
    if bar:
        bar.close()
    missing = [i for i in range(len(chunks)) if not (parts / f"chunk-{i:05d}.parquet").exists()]
    if missing:
        log(f"stopped with {len(missing)} of {len(chunks)} chunks left; run the same command again to resume")
        return None
    df = pd.concat([pd.read_parquet(parts / f"chunk-{i:05d}.parquet") for i in range(len(chunks))],
                   ignore_index=True)
    df = df.sort_values("run", kind="stable").reset_index(drop=True)
    with atomic_path(out) as tmp:
        df.to_parquet(tmp, index=False)
    meta = {"fingerprint": fp, "runs": len(runs), "chunks": len(chunks), "chunk_size": size,
            "wall_s_this_call": wall, "chunks_this_call": len(todo), "scheduler": scheduler or "in-process",
            "provenance": provenance()}
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return df


def _run_dask(scheduler: str, todo: list[int], payload, parts: Path, bar) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover
        raise SweepError("--scheduler needs dask distributed: pip install 'dask[distributed]'") from None
    cluster = None
    if scheduler.startswith("local"):
        n = int(scheduler.split(":", 1)[1]) if ":" in scheduler else 2
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        address = cluster.scheduler_address
    else:
        address = scheduler
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        if cluster:
            cluster.close()
        raise SweepError(f"--scheduler {scheduler}: cannot reach a Dask scheduler ({exc})") from None
    try:
        futs, fut_runs = {}, {}
        for i in todo:
            p = payload(i)
            p["threads"] = 1 if cluster else None
            fut_runs[i] = p["runs"]
            futs[client.submit(run_chunk, p, pure=False, key=f"sweep-chunk-{parts.name}-{i}")] = i
        for fut in as_completed(futs):
            i = futs[fut]
            _write_chunk(parts / f"chunk-{i:05d}.parquet", fut.result())
            if bar:
                bar.update(len(fut_runs[i]))
    finally:
        client.close()
        if cluster:
            cluster.close()

