"""benchmarks/l5pc_synapse_efficacy.py: contexts, scores, errors, and one small run against NEURON (needs the
Hay 2011 morphology in ../shared; NEURON runs only in the script's spawned processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, load_module

eff = load_module("benchmarks/l5pc_synapse_efficacy.py")
SCRIPT = Path(eff.__file__)
MORPH = SHARED / "hay2011" / "cell1.asc"


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_contexts_parse_or_name_the_problem():
    assert eff.parse_context("rest") == (-1, 100.0)
    assert eff.parse_context("3:440") == (3, 440.0)
    for bad in ("3", "a:440", "-1:440", "2:0", "2:nan"):
        with pytest.raises(ValueError, match="--context"):
            eff.parse_context(bad)


def test_with_event_adds_one_event_in_time_order():
    from neurosurrogate.biophys.psp import with_event
    from neurosurrogate.inputs import EventTable

    bg = EventTable(np.array([1.0, 5.0]), np.array([0, 1]), np.array([2.0, 2.0]))
    t = with_event(bg, 7, 3.5, 0.4)
    assert list(t.t_ms) == [1.0, 3.5, 5.0] and list(t.synapse) == [0, 7, 1] and list(t.weight_nS) == [2.0, 0.4, 2.0]
    assert len(with_event(bg, None, 3.5, 0.4).t_ms) == 2 and list(with_event(None, 3, 2.0, 1.0).synapse) == [3]


def test_scores_measure_scale_and_order():
    rng = np.random.default_rng(0)
    dn = rng.uniform(0.1, 2.0, (30, 1)) * np.exp(-np.arange(50) / 10.0)  # sizes differ by synapse
    s = eff.scores(dn, 0.5 * dn)  # every synapse's effect at half its size
    assert s["slope"] == pytest.approx(0.5) and s["r"] == pytest.approx(1.0) and s["median_rel_error"] == pytest.approx(0.5)
    shuffled = eff.scores(dn, dn[rng.permutation(30)])  # the right sizes on the wrong synapses
    assert shuffled["r"] < 0.6 and shuffled["median_rel_error"] > 0.1
    assert eff.scores(dn[:1], dn[:1]) == {"n": 1}


@pytest.mark.parametrize("args, message", [
    (["--context", "0:440"], "needs --data"),
    (["--window-ms", "1"], "--window-ms"),
    (["--workers", "0"], "--workers"),
    (["--context", "x"], "--context"),
    (["--model", "point-hh"], "not a hay-l5pc surrogate"),
])
def test_bad_arguments_get_a_clear_error(args, message, tmp_path):
    r = _run("--morphology", str(MORPH), "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.neuron
@pytest.mark.skipif(not MORPH.exists(), reason=f"no Hay 2011 morphology at {MORPH}")
def test_small_run_against_neuron(tmp_path):
    """Two excitatory synapses and one inhibitory, at rest: NEURON's changes are depolarising for the
    excitatory ones, scores exist where there are two synapses of a kind, and the records are written."""
    r = _run("--morphology", str(MORPH), "--synapses", "0,1,199", "--workers", "1", "--window-ms", "20",
             "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "o" / "efficacy.json").read_text())
    row = rec["rows"][0]
    assert row["trial"] == -1 and row["synapses"] == [0, 1, 199] and row["spike_changed"] == 0
    soma = row["sites"]["soma"]
    assert soma["exc"]["n"] == 2 and soma["inh"] == {"n": 1}
    assert soma["exc"]["mean_integral_neuron_mV_ms"] > 0 and np.isfinite(soma["exc"]["slope"])
    with np.load(tmp_path / "o" / "efficacy.npz") as f:
        assert list(f["synapses"]) == [0, 1, 199] and f["rest_soma_neuron_mV_ms"].shape == (3,)
        assert f["rest_soma_neuron_mV_ms"][2] < 0 < f["rest_soma_neuron_mV_ms"][0]
    assert (tmp_path / "o" / "efficacy.png").stat().st_size > 0 and "| rest | soma |" in (tmp_path / "o" / "efficacy.md").read_text()
