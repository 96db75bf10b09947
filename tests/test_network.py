"""The surrogate network engine: delivery, short-term plasticity, batching, realisation, configs."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from neurosurrogate.network.build import realise
from neurosurrogate.network.circuit import Circuit, PopulationSpec
from neurosurrogate.network.config import ConfigError, NetworkConfig, load_network_config
from neurosurrogate.network.engine import EngineError, simulate
from neurosurrogate.network.measures import circuit_measures, psth_Hz

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
POP = (PopulationSpec("A", 2, "point-hh", "point-hh"),)


def two_cells(stim_ms, delay=3, U=1.0, D=0.0, F=0.0, extra_delay=None, weight=2.5, duration=200):
    """Cell 0 driven by strong input at ``stim_ms``; synapse 0 -> 1 (exc) with the given delay/STP."""
    stim_ms = np.asarray(stim_ms, dtype=float)
    n_ev = 4
    t = np.repeat(stim_ms, n_ev) + np.tile(np.linspace(0, 0.6, n_ev), stim_ms.size)
    delays = [delay] + ([extra_delay] if extra_delay else [])
    S = len(delays)
    return Circuit(
        POP, duration, pre=np.zeros(S, np.int64), post=np.ones(S, np.int64), channel=np.zeros(S, np.int64),
        weight_nS=np.full(S, weight), delay_ms=np.asarray(delays, np.int64), U=np.full(S, U), D_ms=np.full(S, D),
        F_ms=np.full(S, F), ext_t_ms=t, ext_cell=np.zeros(t.size, np.int64), ext_channel=np.zeros(t.size, np.int64),
        ext_weight_nS=np.full(t.size, 2.5), record_v=np.array([0, 1]),
    )


def tm_amplitudes(times, U, D, F):
    """Plain-loop Tsodyks-Markram recursion (u_0 = 0, R_0 = 1), the reference for the engine."""
    u, R, last, out = 0.0, 1.0, -1e9, []
    for t in times:
        dt = t - last
        ef = math.exp(-dt / F) if F > 0 else 0.0
        ed = math.exp(-dt / D) if D > 0 else 0.0
        u_new = U + u * (1 - U) * ef
        R_new = 1 + (R * (1 - u) - 1) * ed
        out.append(u_new * R_new)
        u, R, last = u_new, R_new, t
    return np.asarray(out)


def test_spike_arrives_after_exactly_the_delay():
    run = simulate(two_cells([20.0], delay=3), record_inputs=True, dtype=torch.float64)
    t0 = run.spikes_of(0)
    assert t0.size == 1 and 20 < t0[0] < 26
    x1 = run.inputs[1]  # (T, 4): exc drive, exc offset, inh drive, inh offset
    k = int(np.floor(t0[0] + 3))
    assert np.flatnonzero(x1[:, 0]).tolist() == [k]
    assert x1[k, 0] == pytest.approx(1.0)  # 2.5 nS = one default weight
    assert x1[k, 1] == pytest.approx(t0[0] - np.floor(t0[0]), abs=1e-9)  # the sub-ms offset is kept
    assert not x1[:, 2:].any()


@pytest.mark.parametrize("U,D,F", [(0.38, 365.6, 25.71), (0.5, 100.0, 0.0), (0.1, 50.0, 300.0)])
def test_tsodyks_markram_matches_closed_form_recursion(U, D, F):
    stim = [10.0, 30.0, 42.0, 70.0, 95.0, 160.0, 175.0]
    run = simulate(two_cells(stim, delay=2, U=U, D=D, F=F, extra_delay=5), record_inputs=True,
                   dtype=torch.float64)
    spikes = run.spikes_of(0)
    assert spikes.size == len(stim)  # every stimulus fires cell 0 once
    x1 = run.inputs[1][:, 0]
    expected = tm_amplitudes(spikes, U, D, F)
    for d in (2, 5):  # two synapse rows from the same cell, each with its own delay
        got = x1[np.floor(spikes + d).astype(int)]
        both = np.floor(spikes + 2).astype(int)[:, None] == np.floor(spikes + 5).astype(int)[None, :]
        assert not both.any()
        np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert x1.sum() == pytest.approx(2 * expected.sum(), rel=1e-9)


def test_batched_circuits_equal_one_by_one():
    cfg = load_network_config(EXAMPLES / "paper_circuit.toml").with_values({"network.duration_ms": 150})
    circuits = [realise(cfg.with_values({"network.exc_scale": s}), seed=i) for i, s in enumerate((0.8, 1.0, 1.2))]
    together = simulate(circuits, dtype=torch.float64)
    for c, r in zip(circuits, together):
        alone = simulate(c, dtype=torch.float64)
        np.testing.assert_array_equal(alone.spike_cell, r.spike_cell)
        np.testing.assert_allclose(alone.spike_t_ms, r.spike_t_ms, atol=1e-9)
        np.testing.assert_allclose(alone.v_mV, r.v_mV, atol=1e-7)
    assert len({r.spike_t_ms.size for r in together}) > 1  # the instances really differ


def test_engine_rejects_mismatched_circuits():
    a = two_cells([10.0])
    b = two_cells([10.0], duration=100)
    with pytest.raises(EngineError, match="lasts"):
        simulate([a, b])
    c = two_cells([10.0])
    c.channel = np.array([5])
    with pytest.raises(ValueError, match="site 5"):
        simulate(c)


def test_paper_circuit_is_stable_and_responds():
    """The example circuit at its defaults: quiet before the stimulus, every cell answers it."""
    cfg = load_network_config(EXAMPLES / "paper_circuit.toml")
    runs = simulate([realise(cfg, seed=s) for s in range(4)])
    m = [circuit_measures(r, 150, 100.0, 10.0) for r in runs]
    assert np.mean([x["instability"] for x in m]) < 0.5
    assert np.mean([x["immediate_response"] for x in m]) > 0.95
    lag, rate = psth_Hz(runs[0], 150, 100.0)
    assert rate[(lag >= 0) & (lag < 10)].sum() > 5 * rate[lag < 0].sum()


# --------------------------------------------------------------------------------------------
# realisation: seeds, streams, the paper rule's weights
# --------------------------------------------------------------------------------------------
def test_realise_is_reproducible_and_streams_are_independent():
    cfg = load_network_config(EXAMPLES / "paper_circuit.toml")
    a, b, c = realise(cfg, seed=3), realise(cfg, seed=3), realise(cfg, seed=4)
    for f in ("pre", "post", "weight_nS", "delay_ms", "ext_t_ms", "ext_cell"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.ext_t_ms, c.ext_t_ms)
    # changing the background leaves the connectivity of the same seed untouched
    d = realise(cfg.with_values({"background.L5.exc_rate_Hz": 123.0}), seed=3)
    np.testing.assert_array_equal(a.pre, d.pre)
    np.testing.assert_array_equal(a.post, d.post)
    assert not np.array_equal(a.ext_t_ms, d.ext_t_ms)


def test_fingerprint_names_the_network_not_the_surrogate():
    import dataclasses

    cfg = load_network_config(EXAMPLES / "paper_circuit.toml")
    a = realise(cfg, seed=3)
    assert realise(cfg, seed=3).fingerprint() == a.fingerprint() != realise(cfg, seed=4).fingerprint()
    # another surrogate (model name), recorded cells or metadata: the same NEURON network
    other = tuple(dataclasses.replace(p, model="some/other/model") for p in a.populations)
    same = dataclasses.replace(a, populations=other, record_v=np.arange(3), meta={"x": 1})
    assert same.fingerprint() == a.fingerprint()
    # any contact, event, duration or biophysical cell changes it
    w = a.weight_nS.copy()
    w[0] += 1e-9
    t = a.ext_t_ms.copy()
    t[-1] += 0.5
    cells = tuple(dataclasses.replace(p, cell="other-cell") for p in a.populations)
    for changed in (dataclasses.replace(a, weight_nS=w), dataclasses.replace(a, ext_t_ms=t),
                    dataclasses.replace(a, duration_ms=a.duration_ms + 1), dataclasses.replace(a, populations=cells)):
        assert changed.fingerprint() != a.fingerprint()


def test_paper_rule_reciprocal_pairs_are_stronger_and_scales_apply():
    cfg = load_network_config(EXAMPLES / "paper_circuit.toml").with_values({"projections.recurrent.p": 0.2})
    c = realise(cfg, seed=0)
    pairs = set(zip(c.pre.tolist(), c.post.tolist()))
    recip = np.asarray([(j, i) in pairs for i, j in zip(c.pre, c.post)])
    w = 3.0  # the example's weight_nS
    np.testing.assert_allclose(c.weight_nS[recip], 1.5 * w)
    np.testing.assert_allclose(c.weight_nS[~recip], w)
    assert 1 <= c.delay_ms.min() and c.delay_ms.max() <= 3
    scaled = realise(cfg.with_values({"network.exc_scale": 0.8}), seed=0)
    np.testing.assert_allclose(scaled.weight_nS, 0.8 * c.weight_nS)
    exc = c.ext_channel == 0
    np.testing.assert_allclose(scaled.ext_weight_nS[exc], 0.8 * c.ext_weight_nS[exc])  # background and stimulus
    np.testing.assert_allclose(scaled.ext_weight_nS[~exc], c.ext_weight_nS[~exc])  # inh_scale stays 1
    stim = exc & (c.ext_weight_nS == 2.5)
    assert stim.sum() == 150 * 4 and np.all((c.ext_t_ms[stim] >= 100.0) & (c.ext_t_ms[stim] < 101.0))


def test_contacts_and_fixed_indegree():
    raw = tomllib.loads((EXAMPLES / "paper_circuit.toml").read_text())
    raw["projections"]["recurrent"] = {"pre": "L5", "post": "L5", "rule": "fixed-indegree", "k": 7, "weight_nS": 1.0,
                                       "contacts": 3, "delay_ms": 2, "stp": "none"}
    c = realise(NetworkConfig.from_dict(raw, EXAMPLES), seed=1)
    assert c.n_synapses == 150 * 7 * 3
    np.testing.assert_array_equal(np.bincount(c.post, minlength=150), np.full(150, 21))
    assert np.all(c.U == 1.0) and np.all(c.D_ms == 0.0) and np.all(c.delay_ms == 2)


# --------------------------------------------------------------------------------------------
# every config validation error
# --------------------------------------------------------------------------------------------
def _raw():
    return tomllib.loads((EXAMPLES / "paper_circuit.toml").read_text())


def _mut(path, value):
    def f(d):
        cur = d
        parts = path.split(".")
        for p in parts[:-1]:
            cur = cur[p]
        if value is _DEL:
            del cur[parts[-1]]
        else:
            cur[parts[-1]] = value
        return d
    return f


_DEL = object()

BAD = [
    (_mut("network.duration_ms", 0), r"\[network\] duration_ms: expected a whole number >= 1"),
    (_mut("network.duration_ms", _DEL), r"\[network\] needs 'duration_ms'"),
    (_mut("network.seed", -1), r"seed: expected a whole number >= 0"),
    (_mut("network.exc_scale", -0.5), r"exc_scale: expected a finite number >= 0"),
    (_mut("network.exc_scale", "big"), r"exc_scale: expected a finite number"),
    (_mut("network.record_v", [0, 500]), r"record_v: cell indices \[500\] exceed the 150 cells"),
    (_mut("network.record_v", "all"), r"record_v: expected a list of cell indices"),
    (_mut("network.typo", 1), r"\[network\] unknown key\(s\) \['typo'\]"),
    (_mut("populations", {}), r"\[populations\] must hold at least one"),
    (_mut("populations.L5.n", 0), r"\[populations.L5\] n: expected a whole number >= 1"),
    (_mut("populations.L5.model", _DEL), r"\[populations.L5\] needs 'model'"),
    (_mut("populations.L5.extent_um", [1, 2]), r"extent_um: expected \[x, y, z\]"),
    (_mut("projections.recurrent.pre", "L4"), r"\[projections.recurrent\] pre: expected a population name"),
    (_mut("projections.recurrent.rule", "smallworld"), r"rule: expected one of"),
    (_mut("projections.recurrent.p", 1.5), r"p: expected a finite number >= 0 and <= 1"),
    (_mut("projections.recurrent.p", 0.7), r"p \* \(1 \+ reciprocal_ratio\) must be <= 1"),
    (_mut("projections.recurrent.weight_nS", -1), r"weight_nS: expected a finite number >= 0"),
    (_mut("projections.recurrent.channel", "gaba"), r"channel: expected 'exc', 'inh', a non-empty list of synapse indices or a"),
    (_mut("projections.recurrent.delay_ms", 0), r"delay_ms: expected a whole number of ms >= 1"),
    (_mut("projections.recurrent.delay_ms", 1.5), r"delay_ms: expected a whole number of ms >= 1"),
    (_mut("projections.recurrent.delay_ms", [3, 1]), r"delay_ms: expected \[min, max\] with min <= max"),
    (_mut("projections.recurrent.contacts", 0), r"contacts: expected a whole number >= 1"),
    (_mut("projections.recurrent.stp", {"U": 0.0}), r"stp\] U: expected a finite number > 0"),
    (_mut("projections.recurrent.stp", {"U": 0.5, "tau": 3}), r"stp\] unknown key"),
    (_mut("projections.recurrent.allow_autapses", "yes"), r"allow_autapses: expected true or false"),
    (_mut("background.L4", {"exc_rate_Hz": 10.0}), r"\[background.L4\]: 'L4' is not a population"),
    (_mut("background.L5.protocol", "bursty"), r"protocol: expected one of"),
    (_mut("background.L5.exc_rate_Hz", -3.0), r"exc_rate_Hz: expected a finite number >= 0"),
    (_mut("stimuli.thalamic.time_ms", 400.0), r"time_ms: expected a time before the end of the run"),
    (_mut("stimuli.thalamic.fraction", 2.0), r"fraction: expected a finite number >= 0 and <= 1"),
    (_mut("stimuli.thalamic.scaled", 1), r"scaled: expected true or false"),
    (_mut("measures.response_window_ms", 0.0), r"response_window_ms: expected a finite number > 0"),
]


@pytest.mark.parametrize("mutate,message", BAD, ids=[m for _, m in BAD])
def test_network_config_errors_name_the_field(mutate, message):
    with pytest.raises(ConfigError, match=message):
        NetworkConfig.from_dict(mutate(copy.deepcopy(_raw())), EXAMPLES)


def test_network_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_network_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[network\nduration_ms = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_network_config(bad)
    cfg = load_network_config(EXAMPLES / "paper_circuit.toml")
    with pytest.raises(ConfigError, match=r"no table \[projections.recurent\]"):
        cfg.with_values({"projections.recurent.p": 0.1})
    with pytest.raises(ConfigError, match="channel: cell 'point-hh' has no 'inh'|synapse index"):
        realise(cfg.with_values({"projections.recurrent.channel": [4]}))


def test_two_populations_deliver_across_blocks():
    """Population A (2 cells) -> B (3 cells): a spike of A[0] reaches B[2]'s inhibitory site after its delay."""
    pops = (PopulationSpec("A", 2, "point-hh", "point-hh"), PopulationSpec("B", 3, "point-hh", "point-hh"))
    t = 30.0 + np.linspace(0, 0.6, 4)
    c = Circuit(pops, 80, pre=np.array([0]), post=np.array([4]), channel=np.array([1]), weight_nS=np.array([4.0]),
                delay_ms=np.array([4]), U=np.array([1.0]), D_ms=np.array([0.0]), F_ms=np.array([0.0]),
                ext_t_ms=t, ext_cell=np.zeros(4, np.int64), ext_channel=np.zeros(4, np.int64),
                ext_weight_nS=np.full(4, 2.5), record_v=np.array([0, 3, 4]))
    runs = simulate([c, c], record_inputs=True, dtype=torch.float64)
    for run in runs:
        s = run.spikes_of(0)
        assert s.size == 1 and set(run.spike_cell.tolist()) == {0}
        x = run.inputs[2]  # cell 4 = B[2]
        k = int(np.floor(s[0] + 4))
        assert np.flatnonzero(x[:, 2]).tolist() == [k] and x[k, 2] == pytest.approx(0.5)  # 4 nS / 8 nS default
        assert not x[:, :2].any() and not run.inputs[1].any()  # B[0] gets nothing
        assert run.v_mV[2, k + 3] < run.v_mV[2, k - 1] - 0.5  # the IPSP hyperpolarises B[2]


def test_external_events_reach_each_cell_as_its_model_encodes_them():
    """Every cell of every stacked circuit gets, at each step, the features the model's encoding makes
    of that cell's own events (several per step and site, the last step's events, weights scaled)."""
    from neurosurrogate.api import load_model
    from neurosurrogate.inputs import EventTable

    enc = load_model("point-hh").encoding
    rng = np.random.default_rng(5)
    pops = (PopulationSpec("A", 3, "point-hh", "point-hh"),)
    none_i, none_f = np.zeros(0, np.int64), np.zeros(0)
    circuits = []
    for _ in range(2):
        n_ev = 120
        t = np.concatenate([rng.uniform(0, 60, n_ev - 3), [59.5, 59.5, 10.2]])  # last step; same ms, cell, site
        cell = np.concatenate([rng.integers(0, 3, n_ev - 3), [2, 2, 1]])
        chan = np.concatenate([rng.integers(0, 2, n_ev - 3), [0, 0, 1]])
        w = rng.uniform(0.5, 6.0, n_ev)
        circuits.append(Circuit(pops, 60, pre=none_i, post=none_i, channel=none_i, weight_nS=none_f, delay_ms=none_i,
                                U=none_f, D_ms=none_f, F_ms=none_f, ext_t_ms=t, ext_cell=cell, ext_channel=chan,
                                ext_weight_nS=w, record_v=np.arange(3)))
    runs = simulate(circuits, record_inputs=True, dtype=torch.float64, device="cpu")
    for c, run in zip(circuits, runs):
        for i in range(3):
            m = c.ext_cell == i
            want = enc.features(EventTable(c.ext_t_ms[m], c.ext_channel[m], c.ext_weight_nS[m]), 60)
            np.testing.assert_allclose(run.inputs[i], want, rtol=1e-6, atol=1e-6)  # encoding: float32
        assert np.abs(run.inputs).sum() > 0


def test_stimulus_to_chosen_cells():
    raw = tomllib.loads((EXAMPLES / "paper_circuit.toml").read_text())
    del raw["stimuli"]["thalamic"]["fraction"]
    raw["stimuli"]["thalamic"]["cells"] = [3, 7, 11]
    c = realise(NetworkConfig.from_dict(raw, EXAMPLES), seed=0)
    stim = (c.ext_t_ms >= 100.0) & (c.ext_t_ms < 101.0) & (c.ext_weight_nS == 2.5)
    assert sorted(set(c.ext_cell[stim].tolist())) == [3, 7, 11] and stim.sum() == 3 * 4
    raw["stimuli"]["thalamic"]["cells"] = [3, 3]
    with pytest.raises(ConfigError, match="cells: expected a list of distinct cell indices"):
        NetworkConfig.from_dict(raw, EXAMPLES)
    raw["stimuli"]["thalamic"]["cells"] = [3]
    raw["stimuli"]["thalamic"]["fraction"] = 0.5
    with pytest.raises(ConfigError, match="either cells or fraction"):
        NetworkConfig.from_dict(raw, EXAMPLES)


def test_site_selectors_for_multi_compartment_cells():
    from neurosurrogate.network.build import CellTable

    table = CellTable("toy", ["exc", "exc", "inh", "exc", "exc"], [3, 3, 1, 3, 3],
                      ["basal", "apical", "basal", "apical", "basal"], [50.0, 400.0, 80.0, 120.0, 310.0])
    raw = _raw()
    for sel, expected in [({"kind": "exc"}, [0, 1, 3, 4]), ({"kind": "exc", "region": "basal"}, [0, 4]),
                          ({"kind": "exc", "max_dist_um": 200.0}, [0, 3]),
                          ({"kind": "exc", "region": "apical", "min_dist_um": 200.0}, [1])]:
        raw["projections"]["recurrent"]["channel"] = sel
        ch = NetworkConfig.from_dict(raw, EXAMPLES).projections[0].channel
        assert table.sites(ch, "here").tolist() == expected
    assert table.sites("inh", "here").tolist() == [2] and table.sites((4, 1), "here").tolist() == [4, 1]
    with pytest.raises(ConfigError, match="no synapse site matching"):
        table.sites((("kind", "inh"), ("region", "apical")), "here")
    for sel, msg in [({"region": "basal"}, r"needs 'kind'"), ({"kind": "exc", "region": "tuft"}, "region: expected one of"),
                     ({"kind": "exc", "min_dist_um": 300.0, "max_dist_um": 100.0}, "max_dist_um: expected a distance"),
                     ({"kind": "exc", "colour": 1}, "unknown key")]:
        raw["projections"]["recurrent"]["channel"] = sel
        with pytest.raises(ConfigError, match=msg):
            NetworkConfig.from_dict(raw, EXAMPLES)
    # point cells: the selector works on their (soma) table too
    raw["projections"]["recurrent"]["channel"] = {"kind": "exc", "region": "soma"}
    c = realise(NetworkConfig.from_dict(raw, EXAMPLES), seed=0)
    assert c.n_synapses > 0 and np.all(c.channel == 0)
