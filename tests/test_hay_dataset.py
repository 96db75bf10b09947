"""Datasets of the Hay et al. 2011 L5PC (``hay-l5pc``): fields, metadata, resume, errors.

Needs the morphology in ``../shared/hay2011`` (the tests skip without it). NEURON runs
only in the generator's spawned worker processes and in CLI subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import SHARED
from neurosurrogate.biophys.cells import get_cell
from neurosurrogate.data import dataset as ds

HAY = SHARED / "hay2011"
MORPH = HAY / "cell1.asc"

pytestmark = [
    pytest.mark.neuron,
    pytest.mark.skipif(not MORPH.exists(), reason=f"no Hay 2011 morphology in {HAY}"),
]

T_MS, N, SEED = 300, 2, 7
OPTIONS = {"exc_rate_range_Hz": (400, 9000), "p_quiet": 0.0}
CLI_OPTIONS = ["--option", "exc_rate_range_Hz=400,9000", "--option", "p_quiet=0"]


def _cli_args(out, seed: int = SEED, workers: int = 1) -> list[str]:
    return ["simulate", "--cell", "hay-l5pc", "--morphology", str(MORPH), "--trials", str(N),
            "--duration-ms", str(T_MS), "--seed", str(seed), "--protocol", "mixed", *CLI_OPTIONS,
            "--workers", str(workers), "--quiet", "--out", str(out)]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("NEUROSURROGATE_HAY_MORPHOLOGY", None)
    return env


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neurosurrogate.cli", *args], capture_output=True, text=True,
                          env=_env(), timeout=timeout)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """An uninterrupted 2-trial x 300 ms dataset (two workers, one trial each)."""
    from neurosurrogate.biophys.generate import generate_dataset

    out = tmp_path_factory.mktemp("hayds") / "ref.h5"
    cell = get_cell("hay-l5pc", morphology=str(MORPH))
    generate_dataset(out, cell, N, T_MS, SEED, protocol="mixed", protocol_options=OPTIONS, workers=2,
                     progress=False)
    return out


def test_fields_shapes_and_metadata(ref):
    d = ds.load_dataset(ref)
    assert d.n_trials == N and d.duration_ms == T_MS
    assert d.v_mV.shape == d.ina.shape == d.ik.shape == d.ica.shape == (N, T_MS)
    assert d.v_dend_mV.shape == (N, 2, T_MS)
    assert len(d.spike_times_ms) == len(d.events) == N
    for a in (d.v_mV, d.v_dend_mV, d.ica, d.ina, d.ik):
        assert a.dtype == np.float32 and np.isfinite(a).all()
    assert all(len(e) > 100 and e.synapse.max() < 200 for e in d.events)
    # every trial starts from the steady state without input
    assert d.extra["v_rest_mV"] == pytest.approx(-77.25, abs=0.02)
    assert np.allclose(d.v_mV[:, 0], d.extra["v_rest_mV"], atol=1e-4)
    # the calcium current is inward and grows with dendritic depolarisation
    assert (d.ica < 0).all()
    assert d.ica.min() < 100 * d.ica[:, 0].max()
    # configuration and provenance
    assert d.config["cell_name"] == "hay-l5pc" and d.config["seed"] == SEED
    assert d.config["protocol_options"] == {"exc_rate_range_Hz": [400, 9000], "p_quiet": 0.0}
    assert len(d.config["morphology_sha256"]) == 64 and d.cell["morphology"] == str(MORPH.resolve())
    assert "git_commit" in d.provenance
    # the placed synapse table
    assert len(d.synapses) == 200
    kinds = [s["kind"] for s in d.synapses]
    assert kinds.count("exc") == 150 and kinds.count("inh") == 50
    for s in d.synapses:
        assert {"section", "x", "x_node", "dist_um", "kind", "region", "weight_nS", "tau_ms", "e_rev_mV"} <= set(s)
        assert s["section"].startswith("apic" if s["region"] == "apical" else "dend")
        assert 0 <= s["x"] <= 1 and s["dist_um"] > 0
    ref_table = HAY / "reference" / "synapses.json"
    if ref_table.exists():
        want = json.loads(ref_table.read_text())["synapses"]
        assert [(s["section"], s["kind"]) for s in d.synapses] == [(s["section"], s["kind"]) for s in want]
    # recording sites and the ica compartment (middle of the 685-885 um hot zone)
    assert [round(s["target_dist_um"]) for s in d.sites] == [400, 700]
    site = d.ica_site
    assert site["section"] == "apic[37]" and site["x_node"] == pytest.approx(7.5 / 13)
    assert site["dist_um"] == pytest.approx(786.23, abs=0.01) and 685 < site["dist_um"] < 885
    assert site["in_hot_zone"] and site["gbar_CaLVA_S_cm2"] == 0.0187 and site["gbar_CaHVA_S_cm2"] == 0.000555
    assert set(d.extra["units"]) >= {"v_mV", "v_dend_mV", "ica", "ina", "ik"}
    with h5py.File(ref) as f:
        assert {"sites", "ica_site", "units"} <= set(f.attrs)
        assert set(f["trials/000001"]) == {"events", "v_mV", "ina", "ik", "spike_times_ms", "v_dend_mV", "ica"}
    # a subset keeps the extra arrays
    sub = d.subset([1])
    assert sub.v_dend_mV.shape == (1, 2, T_MS) and np.array_equal(sub.ica[0], d.ica[1])


def test_record_states_adds_the_slow_states_and_changes_nothing_else(ref, tmp_path):
    """--set record_states=true: each trial also holds ``states`` (Ca2+ concentrations and gates at
    the soma, the hot zone and the 400 um site, 1 ms means) named in ``state_names``; the
    simulation itself is unchanged (same voltages as the run without), the cell dict records the
    option only while it is on."""
    from neurosurrogate.biophys.generate import generate_dataset

    out = tmp_path / "states.h5"
    cell = get_cell("hay-l5pc", morphology=str(MORPH), record_states=True)
    generate_dataset(out, cell, 1, T_MS, SEED, protocol="mixed", protocol_options=OPTIONS, workers=1,
                     progress=False)
    d, r = ds.load_dataset(out), ds.load_dataset(ref)
    assert np.array_equal(d.v_mV[0], r.v_mV[0]) and np.array_equal(d.v_dend_mV[0], r.v_dend_mV[0])
    names = d.extra["state_names"]
    assert d.states.shape == (1, len(names), T_MS) and d.states.dtype == np.float32
    assert names[0] == "soma.cai" and "soma.HayKPst.h" in names and "hotzone.HayCaLVA.h" in names
    assert {n.split(".")[0] for n in names} == {"soma", "hotzone", "site0"}
    assert not any("HayNaTa" in n or "HaySKv31" in n for n in names)  # the spike's own fast gates are left out
    for n, row in zip(names, d.states[0]):
        assert np.isfinite(row).all() and row.std() > 0, n
        if n.endswith("cai"):
            assert row.min() >= 1e-4 * 0.999 and row.max() < 0.1, n  # mM, from the resting 1e-4 up
        else:
            assert 0 <= row.min() and row.max() <= 1, n
    assert d.cell["record_states"] is True and "record_states" not in r.cell
    assert r.states is None and "state_names" not in r.extra
    assert d.subset([0]).states.shape == d.states.shape


def test_interrupted_run_resumes_to_the_same_data(ref, tmp_path):
    """`kill PID` after the first trial, then the same command again: identical to an
    uninterrupted run (which used two workers); another configuration is refused."""
    out = tmp_path / "d.h5"
    parts = ds.parts_dir(out)
    proc = subprocess.Popen([sys.executable, "-m", "neurosurrogate.cli", *_cli_args(out)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        t0 = time.monotonic()
        while not list(parts.glob("trial_*.npz")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 240, "no trial finished within 240 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    assert sorted(p.name for p in parts.glob("trial_*.npz")) == ["trial_000000.npz"]
    assert (parts / "cell_info.json").exists() and not out.exists()
    # the parts of this configuration refuse another one
    r = _cli(*_cli_args(out, seed=SEED + 1))
    assert r.returncode == 2 and "different configuration" in r.stderr, r.stderr
    # resume
    r = _cli(*_cli_args(out))
    assert r.returncode == 0, r.stderr
    assert not parts.exists()
    a, b = ds.load_dataset(out), ds.load_dataset(ref)
    for key in ("v_mV", "ina", "ik", "v_dend_mV", "ica"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    for x, y in zip(a.spike_times_ms, b.spike_times_ms):
        assert np.array_equal(x, y)
    for x, y in zip(a.events, b.events):
        assert np.array_equal(x.t_ms, y.t_ms) and np.array_equal(x.weight_nS, y.weight_nS)
    assert a.config == b.config and a.synapses == b.synapses and a.extra == b.extra
    # the same command on the finished file is a no-op; another configuration is refused
    assert _cli(*_cli_args(out)).returncode == 0
    r = _cli(*_cli_args(out, seed=SEED + 1))
    assert r.returncode == 2 and "different" in r.stderr


def test_bad_input_gives_clear_errors(tmp_path):
    sim = ["simulate", "--cell", "hay-l5pc", "--trials", "2", "--duration-ms", "100", "--quiet"]
    junk = tmp_path / "junk.asc"
    junk.write_text("not a morphology\n")
    cases = [
        (sim + ["--out", str(tmp_path / "a.h5")], "needs a morphology"),
        (sim + ["--morphology", str(tmp_path / "none.asc"), "--out", str(tmp_path / "a.h5")], "does not exist"),
        (sim + ["--morphology", str(MORPH), "--out", str(tmp_path / "a.npz")], "use a .h5 suffix"),
        (sim + ["--morphology", str(MORPH), "--protocol", "mixed", "--option", "bogus=1",
                "--out", str(tmp_path / "a.h5")], "bogus"),
        # found by the worker process (NEURON's Import3d), reported like the single-run error
        (sim + ["--morphology", str(junk), "--workers", "1", "--out", str(tmp_path / "j.h5")],
         "no somatic/basal/apical sections"),
    ]
    for args, msg in cases:
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "neurosurrogate: error:" in r.stderr and msg in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    from neurosurrogate.biophys.generate import generate_dataset

    cell = get_cell("hay-l5pc", morphology=str(MORPH))
    with pytest.raises(ValueError, match="workers"):
        generate_dataset(tmp_path / "w.h5", cell, 1, 100, 0, workers=0, progress=False)


def test_volleys_on_proximal_sites(tmp_path):
    """--option volley_max_dist_um=D: the dataset records the excitatory sites within D um of the soma
    as volley_synapses, and every volley event lands on one of them; a distance without sites fails."""
    out = tmp_path / "v.h5"
    r = _cli("simulate", "--cell", "hay-l5pc", "--morphology", str(MORPH), "--trials", "1", "--duration-ms", "200",
             "--seed", "3", "--protocol", "mixed", "--option", "exc_rate_range_Hz=1,1", "--option", "p_quiet=0",
             "--option", "p_volleys=1", "--option", "volley_rate_range_Hz=40,40", "--option", "volley_size_range=8,8",
             "--option", "volley_max_dist_um=200", "--workers", "1", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    d = ds.load_dataset(out)
    near = {s["index"] for s in d.synapses if s["kind"] == "exc" and s["dist_um"] <= 200.0}
    assert 20 < len(near) < 150 and set(d.config["protocol_options"]["volley_synapses"]) == near
    assert "volley_max_dist_um" not in d.config["protocol_options"]
    ev = d.events[0]
    exc = np.array([d.synapses[i]["kind"] == "exc" for i in ev.synapse])
    assert exc.sum() >= 8 and set(ev.synapse[exc].tolist()) <= near  # 1 Hz background: (almost) all volleys
    r = _cli("simulate", "--cell", "hay-l5pc", "--morphology", str(MORPH), "--trials", "1", "--duration-ms", "100",
             "--protocol", "mixed", "--option", "volley_max_dist_um=1", "--quiet", "--out", str(tmp_path / "x.h5"))
    assert r.returncode == 2 and "no excitatory site" in r.stderr and "Traceback" not in r.stderr
    # `events` understands the option as `simulate` does
    r = _cli("events", "--cell", "hay-l5pc", "--morphology", str(MORPH), "--duration-ms", "200", "--seed", "3",
             "--protocol", "mixed", "--option", "exc_rate_range_Hz=1,1", "--option", "p_quiet=0",
             "--option", "p_volleys=1", "--option", "volley_rate_range_Hz=40,40", "--option", "volley_size_range=8,8",
             "--option", "volley_max_dist_um=200", "--out", str(tmp_path / "e.npz"))
    assert r.returncode == 0, r.stderr
    from neurosurrogate.inputs import EventTable

    ev2 = EventTable.load(tmp_path / "e.npz")
    exc2 = np.array([d.synapses[i]["kind"] == "exc" for i in ev2.synapse])
    assert exc2.sum() >= 8 and set(ev2.synapse[exc2].tolist()) <= near


def test_hay_regimes_span_this_cells_range_and_make_valid_event_tables():
    """hay-l5pc gets its own held-out regime set (the point cell's rates leave it silent): every
    regime's options are valid for its protocol, Poisson drive rises from quiet to very-strong,
    and an unknown name is an error that lists the set."""
    from neurosurrogate.evaluate.rollout import HAY_REGIMES, REGIMES, generate_regimes, regimes_for
    from neurosurrogate.inputs import protocol_events

    cell = get_cell("hay-l5pc", morphology=str(MORPH))
    prefix, regimes = regimes_for(cell)
    assert regimes is HAY_REGIMES and prefix == "hay-l5pc_"
    assert regimes_for(get_cell("point-hh")) == ("", REGIMES)
    kinds = [s.kind for s in cell.synapses]
    weights = [s.weight_nS for s in cell.synapses]
    for name, (proto, opts) in regimes.items():
        ev = protocol_events(proto, kinds, weights, 1000.0, np.random.default_rng(0), **dict(opts))
        assert len(ev) > 100, name  # every regime drives the cell (none is the empty table)
    for name in ("mixed", "strong"):  # same trials as the point cell's set (same seed offset, same input)
        assert list(regimes).index(name) == list(REGIMES).index(name) and regimes[name] == REGIMES[name]
    drive = [regimes[n][1]["exc_rate_Hz"] for n in ("quiet", "moderate", "strong", "very-strong")]
    assert drive == sorted(drive) and drive[-1] / drive[0] > 5
    with pytest.raises(ValueError, match="unknown regime 'paper' for hay-l5pc.*very-strong"):
        generate_regimes(Path("unused"), cell, names=["paper"])
