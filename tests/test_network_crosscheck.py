"""Surrogate circuits against the same circuits in NEURON, and the engine on a GPU."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, in_fresh_process
from neurosurrogate.network.build import realise
from neurosurrogate.network.config import load_network_config
from neurosurrogate.network.measures import circuit_measures

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _neuron_runs(circuits):
    from neurosurrogate.biophys.circuit import simulate_circuits

    return simulate_circuits(circuits)


@pytest.mark.neuron
def test_surrogate_and_neuron_circuits_agree_on_the_paper_measures():
    """Stable and unstable settings of the example circuit, 3 instances each: the two paper measures agree
    within 0.1 (the issue's bound: 10 % of their [0, 1] range) and the settings really differ."""
    from neurosurrogate.network.engine import simulate

    base = load_network_config(EXAMPLES / "paper_circuit.toml")
    means = {}
    for name, vals in {"stable": {"network.exc_scale": 0.75, "projections.recurrent.p": 0.05},
                       "unstable": {"network.exc_scale": 1.25, "projections.recurrent.p": 0.1}}.items():
        circuits = [realise(base.with_values(vals), seed=100 + s) for s in range(3)]
        for sim, runs in (("surrogate", simulate(circuits)), ("neuron", in_fresh_process(_neuron_runs, circuits))):
            m = [circuit_measures(r, 150, 100.0, 10.0) for r in runs]
            means[name, sim] = {k: np.mean([x[k] for x in m]) for k in ("instability", "immediate_response")}
    for name in ("stable", "unstable"):
        for k in ("instability", "immediate_response"):
            assert abs(means[name, "surrogate"][k] - means[name, "neuron"][k]) <= 0.1, (name, k, means)
    assert means["unstable", "neuron"]["instability"] > means["stable", "neuron"]["instability"] + 0.5


@pytest.mark.neuron
def test_cli_network_with_neuron(tmp_path):
    text = (EXAMPLES / "paper_circuit.toml").read_text()
    text = re.sub(r"\nn = 150", "\nn = 30", text).replace("duration_ms = 250", "duration_ms = 150")
    (tmp_path / "net.toml").write_text(text)
    r = cli("network", "--config", str(tmp_path / "net.toml"), "--simulator", "neuron", "--out", str(tmp_path / "n.npz"))
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "n.npz")
    assert str(z["simulator"]) == "neuron" and z["v_mV"].shape == (4, 150) and z["pop_rate_Hz"].shape == (1, 150)
    assert z["spike_t_ms"].size > 0 and np.all(np.diff(z["spike_t_ms"]) >= 0)


@pytest.mark.gpu
def test_engine_on_cuda_matches_cpu():
    import torch

    from neurosurrogate.network.engine import simulate

    cfg = load_network_config(EXAMPLES / "paper_circuit.toml")
    circuits = [realise(cfg, seed=s) for s in range(3)]
    cpu = simulate(circuits, device="cpu", dtype=torch.float64)
    for graph in (True, False):  # the step replayed from a CUDA graph, and PyTorch's operations
        gpu = simulate(circuits, device="cuda", dtype=torch.float64, cuda_graph=graph)
        for a, b in zip(cpu, gpu):
            np.testing.assert_array_equal(a.spike_cell, b.spike_cell)
            np.testing.assert_allclose(a.spike_t_ms, b.spike_t_ms, atol=1e-6)
            np.testing.assert_allclose(a.v_mV, b.v_mV, atol=1e-4)
