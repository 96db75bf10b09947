"""Dataset generation with NEURON: round trip, provenance, resume, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from neurosurrogate.biophys.cells import get_cell
from neurosurrogate.data import dataset as ds

pytestmark = pytest.mark.neuron


def _generate(out, n, seed=3, workers=2, **kw):
    # generation spawns fresh worker processes, so NEURON never runs in the test process
    from neurosurrogate.biophys.generate import generate_dataset

    return generate_dataset(out, get_cell("point-hh"), n, 300, seed, protocol="paper", workers=workers,
                            progress=False, **kw)


def test_round_trip_and_provenance(tmp_path):
    out = _generate(tmp_path / "d.h5", 5)
    d = ds.load_dataset(out)
    assert d.n_trials == 5 and d.v_mV.shape == (5, 300)
    assert d.config["seed"] == 3 and d.config["protocol"] == "paper"
    assert d.cell["gnabar_S_cm2"] == 0.12
    for k in ("git_commit", "neuron_version", "python_version", "neurosurrogate_version", "cpu"):
        assert k in d.provenance
    assert [s["kind"] for s in d.synapses] == ["exc", "inh"]
    with h5py.File(out) as f:
        assert f.attrs["complete"]
        assert set(f["trials/000000"].keys()) >= {"events", "v_mV", "ina", "ik", "spike_times_ms"}
    assert not ds.parts_dir(out).exists()
    # deterministic in (seed, trial): a second file from one worker is identical
    out2 = _generate(tmp_path / "d2.h5", 5, workers=1)
    assert np.array_equal(ds.load_dataset(out2).v_mV, d.v_mV)
    # the same command again is a no-op, another configuration is refused
    assert _generate(out, 5) == out
    with pytest.raises(ds.DatasetError, match="different"):
        _generate(out, 6)


def test_resume_keeps_finished_trials_and_ignores_half_written(tmp_path):
    full = ds.load_dataset(_generate(tmp_path / "ref.h5", 4))
    out = tmp_path / "d.h5"
    # an "interrupted" run: trials 0 and 2 finished (trial 0 marked), trial 1 half-written
    from neurosurrogate.biophys.generate import trial_events

    cell = get_cell("point-hh")
    config = {"cell_name": "point-hh", "protocol": "paper", "protocol_options": {}, "n_trials": 4,
              "duration_ms": 300.0, "seed": 3, "cell": cell.to_dict()}
    ds.write_meta(out, config)
    for i in (0, 2):
        arrays = {"v_mV": full.v_mV[i].astype(float), "ina": full.ina[i], "ik": full.ik[i],
                  "spike_times_ms": full.spike_times_ms[i]}
        if i == 0:
            arrays["v_mV"] = arrays["v_mV"] + 1000.0  # marker: a resumed run must not redo it
        ds.write_part(out, i, trial_events(cell, "paper", {}, 300.0, 3, i), arrays)
    (ds.parts_dir(out) / ".trial_000001.npz.abc.tmp").write_bytes(b"half")
    assert sorted(ds.finished_parts(out)) == [0, 2]
    _generate(out, 4)
    d = ds.load_dataset(out)
    assert np.allclose(d.v_mV[0], full.v_mV[0] + 1000.0)
    assert np.array_equal(d.v_mV[1:], full.v_mV[1:])


def test_parts_of_another_config_are_refused(tmp_path):
    out = tmp_path / "d.h5"
    ds.write_meta(out, {"seed": 1})
    with pytest.raises(ds.DatasetError, match="different configuration"):
        _generate(out, 2)


def test_load_errors(tmp_path):
    with pytest.raises(ds.DatasetError, match="does not exist"):
        ds.load_dataset(tmp_path / "no.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(ds.DatasetError, match="HDF5"):
        ds.load_dataset(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = json.dumps("x")
    with pytest.raises(ds.DatasetError, match="complete"):
        ds.load_dataset(tmp_path / "other.h5")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_trials"):
        _generate(tmp_path / "a.h5", 0)
    with pytest.raises(ValueError, match="protocol"):
        from neurosurrogate.biophys.generate import generate_dataset

        generate_dataset(tmp_path / "b.h5", get_cell("point-hh"), 1, 100, 0, protocol="bogus", progress=False)


def test_reuse_takes_the_first_trials_of_another_run(tmp_path):
    """Trial i depends only on (seed, i): the first n trials of an unfinished longer run are a run of n."""
    ref = ds.load_dataset(_generate(tmp_path / "ref.h5", 3, workers=1))
    long_out = tmp_path / "long.h5"
    from neurosurrogate.biophys.generate import trial_events

    cell = get_cell("point-hh")
    config = {"cell_name": "point-hh", "protocol": "paper", "protocol_options": {}, "n_trials": 10,
              "duration_ms": 300.0, "seed": 3, "cell": cell.to_dict()}
    ds.write_meta(long_out, config)  # a longer run, interrupted after trials 0, 1 and 4 (0 marked)
    for i in (0, 1):
        arrays = {"v_mV": ref.v_mV[i] + (1000.0 if i == 0 else 0.0), "ina": ref.ina[i], "ik": ref.ik[i],
                  "spike_times_ms": ref.spike_times_ms[i]}
        ds.write_part(long_out, i, trial_events(cell, "paper", {}, 300.0, 3, i), arrays)
    ds.write_part(long_out, 4, trial_events(cell, "paper", {}, 300.0, 3, 4), arrays)
    for src in (ds.parts_dir(long_out), long_out):  # the parts folder or the run's .h5 name
        out = tmp_path / f"snap_{src.suffix[1:]}.h5"
        d = ds.load_dataset(_generate(out, 3, workers=1, reuse=src))
        assert np.allclose(d.v_mV[0], ref.v_mV[0] + 1000.0)  # taken, not simulated again
        assert np.array_equal(d.v_mV[1:], ref.v_mV[1:])  # trial 1 taken, trial 2 simulated
        assert d.config["n_trials"] == 3
    assert sorted(ds.finished_parts(long_out)) == [0, 1, 4]  # the source run is untouched
    with pytest.raises(ds.DatasetError, match=r"different configuration \(differs in \['seed'\]\)"):
        _generate(tmp_path / "other_seed.h5", 2, seed=4, reuse=long_out)
    with pytest.raises(ds.DatasetError, match="no parts folder"):
        _generate(tmp_path / "none.h5", 2, reuse=tmp_path / "missing.h5")


def test_reuse_extends_a_finished_run(tmp_path):
    """A finished run's .h5 (its parts already assembled and removed) is extended to more trials: its
    trials are taken bit for bit, only the new ones are simulated, and the result equals a fresh run."""
    fresh = ds.load_dataset(_generate(tmp_path / "fresh.h5", 3, workers=1))
    short = _generate(tmp_path / "short.h5", 2, workers=1)
    with h5py.File(short, "r+") as f:  # mark trial 0, to see that it is taken and not simulated again
        f["trials/000000/v_mV"][0] += 1000.0
    assert not ds.parts_dir(short).exists()
    d = ds.load_dataset(_generate(tmp_path / "long.h5", 3, workers=1, reuse=short))
    assert d.v_mV[0, 0] == fresh.v_mV[0, 0] + 1000.0 and np.array_equal(d.v_mV[0, 1:], fresh.v_mV[0, 1:])
    assert np.array_equal(d.v_mV[1:], fresh.v_mV[1:]) and d.config == fresh.config
    for a, b in zip(d.events, fresh.events):
        assert np.array_equal(a.t_ms, b.t_ms) and np.array_equal(a.synapse, b.synapse)
    assert all(np.array_equal(a, b) for a, b in zip(d.spike_times_ms, fresh.spike_times_ms))
    assert ds.load_dataset(short).n_trials == 2  # the source is untouched
    with pytest.raises(ds.DatasetError, match=r"different configuration \(differs in \['seed'\]\)"):
        _generate(tmp_path / "other.h5", 3, seed=4, reuse=short)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ds.DatasetError, match="--reuse .*bad.h5.*not a readable HDF5"):
        _generate(tmp_path / "x.h5", 2, reuse=bad)



_INTERRUPTED_POOL = """
import multiprocessing as mp, time
from concurrent.futures import ProcessPoolExecutor
from neurosurrogate.biophys.generate import stop_pool
if __name__ == "__main__":
    try:
        with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(time.sleep, 30.0) for _ in range(6)]
            time.sleep(3.0)  # both workers busy, more tasks queued
            try:
                raise KeyboardInterrupt
            except BaseException:
                stop_pool(pool)  # with shutdown(cancel_futures=True) alone this script takes 90 s
                raise
    except KeyboardInterrupt:
        pass
"""


def test_stop_pool_ends_running_workers_at_once(tmp_path):
    """An interrupted generation run must end at once, not after the trials in progress and those
    already handed to the workers (minutes for hay-l5pc): the whole process exits within seconds."""
    import subprocess
    import sys
    import time

    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED_POOL)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(script)], check=True, timeout=120)
    assert time.perf_counter() - t0 < 20.0  # the workers sleep 30 s per task


_TERMINATED_POOL = """
import time
from neurosurrogate.biophys.generate import run_interruptible, spawn_pool

def main():
    with spawn_pool(2) as pool:
        futures = [pool.submit(time.sleep, 30.0) for _ in range(4)]
        time.sleep(2.0)
        print(*pool._processes, flush=True)  # the worker pids
        futures[0].result()

if __name__ == "__main__":
    run_interruptible(main)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in state


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see the workers")
def test_sigterm_ends_the_workers_of_a_spawn_pool(tmp_path):
    """``kill PID`` of a run inside sigterm_as_interrupt (simulate; run_interruptible: the NEURON
    benchmarks) ends its spawned workers too, instead of leaving them running as orphans."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "terminated.py"
    script.write_text(_TERMINATED_POOL)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = [int(x) for x in proc.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 130
    for _ in range(50):
        if not any(_alive(p) for p in pids):
            break
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def test_map_chunks_keeps_order_and_raises_worker_errors():
    """map_chunks hands round-robin chunks to spawned processes and returns the per-item results
    in the order of the items; a worker's exception reaches the caller."""
    from neurosurrogate.biophys.generate import map_chunks

    assert [int(x) for x in map_chunks(np.negative, list(range(7)), 3)] == [-i for i in range(7)]
    assert map_chunks(np.negative, [], 2) == []
    with pytest.raises(TypeError):
        map_chunks(np.negative, ["not a number"], 2)


def test_steady_hay_dataset_refuses_a_point_cell_dataset_naming_the_option(tmp_path):
    from neurosurrogate.biophys.hay import dataset_cell, load_steady_hay_dataset

    out = _generate(tmp_path / "point.h5", 2, workers=1)
    with pytest.raises(ds.DatasetError, match=r"--val .*point\.h5: not a hay-l5pc dataset"):
        load_steady_hay_dataset(out, option="--val")
    d = ds.load_dataset(out)
    with pytest.raises(ValueError, match="no morphology"):  # a point cell has none to replace
        dataset_cell(d, "cell1.asc")


def test_write_json_is_strict_and_atomic(tmp_path):
    from neurosurrogate.data.io import write_json

    p = write_json(tmp_path / "m.json", {"a": float("nan"), "b": [np.float32(1.5), np.inf], "c": np.arange(2),
                                          "d": {"e": np.float64(-np.inf), "f": np.int64(3)}, "g": "x"})
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": [0, 1], "d": {"e": None, "f": 3}, "g": "x"}
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]  # no temporary file left
    with pytest.raises(TypeError):  # not JSON at all: an error, and the old file stays
        write_json(p, {"a": object()})
    assert json.loads(p.read_text())["g"] == "x" and len(list(tmp_path.iterdir())) == 1
