"""Every CLI command on tiny settings, through the installed console script."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cli

pytestmark = pytest.mark.neuron


def test_help_lists_commands():
    r = cli("--help")
    assert r.returncode == 0
    for c in ("build-mechanisms", "simulate", "events", "synapses", "demo"):
        assert c in r.stdout


def test_build_mechanisms_and_synapses():
    r = cli("build-mechanisms")
    assert r.returncode == 0 and "ready" in r.stdout
    r = cli("synapses", "--cell", "point-hh")
    assert r.returncode == 0 and "exc" in r.stdout and "inh" in r.stdout


def test_single_run_contract(tmp_path):
    ev = tmp_path / "events.npz"
    r = cli("events", "--protocol", "poisson", "--option", "exc_rate_Hz=600", "--duration-ms", "500",
            "--seed", "1", "--out", str(ev))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "gt.npz"
    r = cli("simulate", "--cell", "point-hh", "--events", str(ev), "--duration-ms", "500", "--out", str(out),
            "--plot", str(tmp_path / "gt.png"))
    assert r.returncode == 0, r.stderr
    z = np.load(out)
    for k in ("t_ms", "v_mV", "ina", "ik", "spike_times_ms"):
        assert k in z.files
    assert z["v_mV"].shape == (500,) and np.array_equal(z["t_ms"], np.arange(500.0))
    assert len(z["spike_times_ms"]) > 0
    assert (tmp_path / "gt.png").stat().st_size > 1000
    # CSV input and the kshift variant work too
    csv = tmp_path / "events.csv"
    assert cli("events", "--duration-ms", "200", "--out", str(csv), "--seed", "2").returncode == 0
    r = cli("simulate", "--cell", "point-hh-kshift", "--kshift-mV", "-10", "--events", str(csv),
            "--duration-ms", "200", "--out", str(tmp_path / "k.npz"))
    assert r.returncode == 0, r.stderr


def test_dataset_mode_and_demo(tmp_path):
    out = tmp_path / "data.h5"
    r = cli("simulate", "--cell", "point-hh", "--trials", "3", "--duration-ms", "200", "--seed", "4",
            "--out", str(out), "--plot", str(tmp_path / "d.png"))
    assert r.returncode == 0, r.stderr
    assert out.exists() and (tmp_path / "d.png").exists()
    r = cli("demo", "--quick", "--out-dir", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "demo" / "groundtruth.png").exists()
    assert (tmp_path / "demo" / "neuron_vs_surrogate.png").exists()
    assert "variance" in r.stdout or "VE" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["simulate", "--out", "x.npz"], "--events FILE"),
        (["simulate", "--events", "missing.npz", "--out", "x.npz"], "does not exist"),
        (["simulate", "--trials", "2", "--out", "x.npz"], ".h5"),
        (["simulate", "--set", "gkbar_S_cm2", "--trials", "1", "--out", "x.h5"], "NAME=VALUE"),
        (["simulate", "--set", "nope=1", "--trials", "1", "--out", "x.h5"], "unknown cell parameter"),
        (["simulate", "--set", "diam_um=-1", "--trials", "1", "--out", "x.h5"], "diam_um"),
        (["simulate", "--trials", "0", "--out", "x.h5"], "positive integer"),
        (["simulate", "--duration-ms", "1.5", "--trials", "1", "--out", "x.h5"], "whole number"),
        (["simulate", "--cell", "nope", "--trials", "1", "--out", "x.h5"], "invalid choice"),
        (["events", "--option", "bogus=1", "--protocol", "poisson", "--out", "e.npz"], "unknown option"),
        (["events", "--option", "bogus=1", "--protocol", "mixed", "--out", "e.npz"], "known: ['exc_rate_range_Hz'"),
        (["events", "--option", "volley_max_dist_um=100", "--protocol", "mixed", "--out", "e.npz"],
         "needs a cell with placed synapse sites"),
        (["events", "--out", "e.txt"], "suffix"),
    ],
)
def test_bad_input_gives_clear_error(tmp_path, args, message):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_synapse_index_in_events(tmp_path):
    np.savez(tmp_path / "ev.npz", t_ms=[1.0, 2.0], synapse=[0, 7], weight_nS=[1.0, 1.0])
    r = cli("simulate", "--events", "ev.npz", "--out", "gt.npz", cwd=tmp_path)
    assert r.returncode == 2 and "row 1" in r.stderr and "synapse" in r.stderr
    assert not (tmp_path / "gt.npz").exists()


def test_every_option_of_every_command_explains_itself():
    """--help is documentation: each option of each subcommand has a help text."""
    import argparse

    from neurosurrogate.cli import build_parser

    missing = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += [f"{name} {a.option_strings[-1] if a.option_strings else a.dest}" for a in sub._actions
                            if a.help is None and not isinstance(a, argparse._HelpAction)]
    assert not missing, f"options without help: {missing}"
