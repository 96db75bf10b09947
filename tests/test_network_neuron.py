"""NEURON reference of circuits: the AlphaSynTM synapse and ``biophys.circuit``.

Every NEURON call runs in a fresh spawned process (``in_fresh_process``, the
``run_neuron`` fixture); the
case functions below are module-level so that the workers can import them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from neurosurrogate.network.circuit import Circuit, PopulationSpec

pytestmark = pytest.mark.neuron

DT = 0.025
HAY_MORPH = Path(__file__).resolve().parents[2] / "shared" / "hay2011" / "cell1.asc"


# ---------------------------------------------------------------------------------------------
# helpers (also imported by the workers)
# ---------------------------------------------------------------------------------------------
def tm_amplitudes(t_ms, U: float, D: float, F: float) -> np.ndarray:
    """Peak factors u_n * R_n of a spike train: a plain loop of the circuit.py recursion."""
    u, R, tlast = 0.0, 1.0, -1e9
    out = []
    for t in t_ms:
        d = t - tlast
        fd = np.exp(-d / D) if D > 0 else 0.0
        ff = np.exp(-d / F) if F > 0 else 0.0
        R = 1.0 + (R * (1.0 - u) - 1.0) * fd  # uses the previous u
        u = U + u * (1.0 - U) * ff
        tlast = t
        out.append(u * R)
    return np.array(out)


def alpha_sum(t_eval, t_ev, peaks, tau: float) -> np.ndarray:
    """sum_i peaks_i * ((t - t_i)/tau) exp(1 - (t - t_i)/tau) over events with t_i <= t, nS."""
    s = np.asarray(t_eval)[:, None] - np.asarray(t_ev)[None, :]
    a = np.where(s >= 0, np.maximum(s, 0) / tau * np.exp(1 - np.maximum(s, 0) / tau), 0.0)
    return a @ np.asarray(peaks)


def make_circuit(
    n: int, p_conn: float, seed: int, duration_ms: int = 200, cell: str = "point-hh",
    bg_rate_hz: float = 1500.0, record_v=(0,),
) -> Circuit:
    """A random circuit: 80 % excitatory (facilitating/depressing mix), 20 % inhibitory cells,
    Poisson excitatory background on every cell."""
    rng = np.random.default_rng(seed)
    n_e = max(1, int(0.8 * n))
    pops = (PopulationSpec("E", n_e, "m", cell), PopulationSpec("I", n - n_e, "m", cell))
    mask = rng.random((n, n)) < p_conn
    np.fill_diagonal(mask, False)
    pre, post = np.nonzero(mask)
    S = pre.size
    inh = pre >= n_e
    channel = inh.astype(np.int64)
    weight = np.where(inh, 6.0, 1.5) * rng.uniform(0.5, 1.5, S)
    U = np.where(inh, 0.25, rng.choice([0.38, 0.5], S))
    D = np.where(inh, 706.0, rng.choice([365.6, 0.0], S))
    F = np.where(inh, 21.0, rng.choice([25.71, 0.0], S))
    k = rng.poisson(bg_rate_hz * duration_ms / 1000.0, n)
    ext_cell = np.repeat(np.arange(n), k)
    ext_t = rng.uniform(0, duration_ms, ext_cell.size)
    return Circuit(
        populations=pops,
        duration_ms=duration_ms,
        pre=pre.astype(np.int64),
        post=post.astype(np.int64),
        channel=channel,
        weight_nS=weight,
        delay_ms=rng.integers(1, 5, S).astype(np.int64),
        U=U.astype(float),
        D_ms=D.astype(float),
        F_ms=F.astype(float),
        ext_t_ms=ext_t,
        ext_cell=ext_cell.astype(np.int64),
        ext_channel=np.zeros(ext_cell.size, dtype=np.int64),
        ext_weight_nS=rng.uniform(1.5, 3.5, ext_cell.size),
        record_v=np.asarray(record_v, dtype=np.int64),
    )


def two_cell_circuit(delay_ms: int = 3, weight_nS: float = 2.5) -> Circuit:
    """Cell 0 is driven to spike by one strong event at 10 ms; cell 1 receives one static
    excitatory synapse from cell 0."""
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    f64 = lambda *x: np.array(x, dtype=np.float64)  # noqa: E731
    return Circuit(
        populations=(PopulationSpec("E", 2, "m", "point-hh"),),
        duration_ms=40,
        pre=i64(0), post=i64(1), channel=i64(0), weight_nS=f64(weight_nS), delay_ms=i64(delay_ms),
        U=f64(1.0), D_ms=f64(0.0), F_ms=f64(0.0),
        ext_t_ms=f64(10.0), ext_cell=i64(0), ext_channel=i64(0), ext_weight_nS=f64(60.0),
        record_v=i64(0, 1),
    )


# ---------------------------------------------------------------------------------------------
# case functions (run in fresh processes)
# ---------------------------------------------------------------------------------------------
def case_tm_conductance(t_spikes, params, weight_nS: float, tau_ms: float, dt_ms: float, T_ms: float):
    """One passive cell; per (U, D, F) one AlphaSynTM receiving ``t_spikes`` by NetCon.event,
    plus one AlphaSynEv with the same events; returns their recorded g (nS) at every step."""
    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.simulate import _h, _Soma

    h = _h()
    soma = _Soma(h, get_cell("point-passive"))
    tms, ncs, recs = [], [], []
    for U, D, F in params:
        syn = h.AlphaSynTM(soma.soma(0.5))
        syn.tau, syn.e = tau_ms, 0.0
        nc = h.NetCon(None, syn)
        for j, x in enumerate((weight_nS, U, D, F)):
            nc.weight[j] = x
        tms.append(syn)
        ncs.append(nc)
        recs.append(h.Vector().record(syn._ref_g))
    ev = h.AlphaSynEv(soma.soma(0.5))
    ev.tau, ev.e, ev.cutoff = tau_ms, 0.0, 0.0
    nc_ev = h.NetCon(None, ev)
    nc_ev.weight[0] = weight_nS
    rec_ev = h.Vector().record(ev._ref_g)
    h.dt = dt_ms
    h.steps_per_ms = 1.0 / dt_ms
    h.finitialize(-70.0)
    for t in t_spikes:
        for nc in ncs + [nc_ev]:
            nc.event(float(t))
    h.continuerun(T_ms)
    return [r.as_numpy().copy() for r in recs], rec_ev.as_numpy().copy()


def case_delivery(delay_ms: int):
    """Run the two-cell circuit with extra full-resolution recorders on every AlphaSynTM
    (conductance) and on cell 0's voltage."""
    from neurosurrogate.biophys import circuit as bc

    made = []
    orig = bc._CircuitModel.__init__

    def patched(self, h, *args, **kwargs):
        orig(self, h, *args, **kwargs)
        self.g_rec = {k: h.Vector().record(s._ref_g) for k, s in self.tm.items()}
        self.v0_rec = h.Vector().record(self.cells[0].soma(0.5)._ref_v)
        made.append(self)

    bc._CircuitModel.__init__ = patched
    run = bc.simulate_circuits([two_cell_circuit(delay_ms)])[0]
    m = made[0]
    g = {k: v.as_numpy().copy() for k, v in m.g_rec.items()}
    return run, g, m.v0_rec.as_numpy().copy()


def case_together_vs_alone(seeds):
    from neurosurrogate.biophys.circuit import simulate_circuits

    circuits = [make_circuit(24, 0.15, s, duration_ms=150, record_v=(0, 5)) for s in seeds]
    together = simulate_circuits(circuits)
    alone = [simulate_circuits([c])[0] for c in circuits]
    return together, alone


def case_no_synapses_equals_simulate_events(seed: int):
    """A circuit without recurrent synapses is just independent cells: it must equal
    simulate_events (the dataset path) on each cell's external events."""
    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.circuit import simulate_circuits
    from neurosurrogate.biophys.simulate import simulate_events
    from neurosurrogate.inputs import EventTable

    c = make_circuit(3, 0.0, seed, duration_ms=200, record_v=(0, 1, 2))
    # the same cells as two populations of different kinds (different resting potentials)
    mixed = dataclasses.replace(
        c, populations=(PopulationSpec("E", 2, "m", "point-hh"), PopulationSpec("P", 1, "m", "point-passive"))
    )
    # events on, and just before, the 2 ms chunk boundaries of the external-event queueing,
    # repeated times with distinct weights
    rng = np.random.default_rng(seed)
    tb = np.sort(np.concatenate([np.arange(2.0, 190.0, 2.0), np.arange(2.0, 190.0, 2.0) - 0.01,
                                 np.arange(2.0, 190.0, 6.0), rng.uniform(0, 200, 300)]))
    edge = dataclasses.replace(
        c, ext_t_ms=tb, ext_cell=rng.integers(0, 3, tb.size), ext_channel=(rng.random(tb.size) < 0.2).astype(np.int64),
        ext_weight_nS=rng.uniform(1.0, 4.0, tb.size),
    )
    edge.ext_weight_nS[edge.ext_channel == 1] *= 2.0
    runs = simulate_circuits([c]) + simulate_circuits([mixed]) + simulate_circuits([edge])
    refs = []
    for cc, cells in ((c, ["point-hh"] * 3), (c, ["point-hh"] * 2 + ["point-passive"]), (edge, ["point-hh"] * 3)):
        ref = []
        for k, name in enumerate(cells):
            m = cc.ext_cell == k
            ev = EventTable(cc.ext_t_ms[m], cc.ext_channel[m], cc.ext_weight_nS[m])
            tr = simulate_events(get_cell(name), ev, c.duration_ms)
            ref.append((tr.v_mV, tr.spike_times_ms))
        refs.append(ref)
    return runs, refs


def hay_circuit(connect: bool = True) -> tuple[Circuit, object]:
    """Three hay-l5pc cells, 120 ms: cells 0 and 2 get the same synchronous volley at 20 ms
    (40 events of 3 nS on the first 40 basal excitatory sites within 1 ms); cell 0 contacts cell 1 on the same
    5 sites x 25 nS each (static, 2 ms delay), cell 2 contacts nobody and nobody contacts it.
    Returns the circuit and the cell specification."""
    from neurosurrogate.biophys.cells import get_cell

    spec = get_cell("hay-l5pc", morphology=str(HAY_MORPH))
    exc = [j for j, s in enumerate(spec.synapses) if s.kind == "exc" and s.section == "basal"][:40]
    rng = np.random.default_rng(3)
    t = 20.0 + rng.uniform(0.0, 1.0, len(exc))
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    n_syn = 5 if connect else 0
    return Circuit(
        populations=(PopulationSpec("L5", 3, "m", "hay-l5pc"),),
        duration_ms=120,
        pre=np.zeros(n_syn, np.int64), post=np.ones(n_syn, np.int64), channel=np.array(exc[:n_syn], np.int64),
        weight_nS=np.full(n_syn, 25.0), delay_ms=np.full(n_syn, 2, np.int64),
        U=np.ones(n_syn), D_ms=np.zeros(n_syn), F_ms=np.zeros(n_syn),
        ext_t_ms=np.concatenate([t, t]), ext_cell=np.repeat(i64(0, 2), len(exc)),
        ext_channel=np.array(exc + exc, np.int64), ext_weight_nS=np.full(2 * len(exc), 3.0),
        record_v=i64(0, 1, 2),
    ), spec


def case_hay_circuit():
    """The circuit with and without its connection, and simulate_hay on cell 0's events."""
    from neurosurrogate.biophys.circuit import simulate_circuits
    from neurosurrogate.biophys.hay import simulate_hay
    from neurosurrogate.inputs import EventTable

    c, spec = hay_circuit(True)
    c0, _ = hay_circuit(False)
    runs = simulate_circuits([c, c0], cells={"hay-l5pc": spec})
    m = c.ext_cell == 0
    alone = simulate_hay(spec, EventTable(c.ext_t_ms[m], c.ext_channel[m], c.ext_weight_nS[m]), c.duration_ms)
    return runs, alone.spike_times_ms, alone.v_mV


def case_bad_inputs_in_worker():
    from neurosurrogate.biophys.circuit import simulate_circuits

    msgs = []
    for circuits in _bad_circuit_lists():
        try:
            simulate_circuits(circuits)
        except ValueError as err:
            msgs.append(str(err))
    return msgs


def _bad_circuit_lists():
    a = make_circuit(4, 0.3, 1, duration_ms=50)
    b = make_circuit(4, 0.3, 2, duration_ms=60)
    hay = make_circuit(4, 0.3, 3, duration_ms=50, cell="hay-l5pc")
    bad_ch = make_circuit(4, 0.5, 4, duration_ms=50)
    bad_ch.channel[0] = 2
    return [[a, b], [a, hay], [bad_ch]]


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
def test_alphasyntm_equals_closed_form_recursion(run_neuron):
    """AlphaSynTM's conductance = sum of alpha functions with peaks w * u_n * R_n from the
    recursion of circuit.py (facilitating+depressing, depressing only); the static synapse
    (U=1, D=0, F=0) equals AlphaSynEv bit for bit.

    NEURON evaluates BREAKPOINT (where g is set) at the middle of each step: the recorded
    g[k] (k >= 1) is g((k - 1/2) dt), and g[0] = g(0)."""
    rng = np.random.default_rng(0)
    isi = rng.uniform(3.0, 80.0, 12)
    t_sp = 5.0 + np.cumsum(isi) - isi[0] + rng.uniform(0, 1)  # irregular, off the dt grid
    params = [(0.38, 365.6, 25.71), (0.5, 200.0, 0.0), (1.0, 0.0, 0.0)]
    w, tau, dt = 2.0, 2.0, 0.005
    T = float(np.ceil(t_sp[-1] + 30))
    gs, g_ev = run_neuron(case_tm_conductance, t_sp.tolist(), params, w, tau, dt, T)
    n = gs[0].size
    t_eval = np.concatenate([[0.0], (np.arange(1, n) - 0.5) * dt])
    for (U, D, F), g in zip(params, gs):
        amps = tm_amplitudes(t_sp, U, D, F)
        assert np.isclose(amps[0], U)
        ref = alpha_sum(t_eval, t_sp, w * amps, tau)
        err = np.abs(g - ref).max() / ref.max()
        assert err < 1e-6, f"U={U} D={D} F={F}: max relative error {err:.2e}"
    amps = tm_amplitudes(t_sp, 0.38, 365.6, 25.71)
    steps = np.diff(amps)
    assert np.any(steps > 0) and np.any(steps < 0), "facilitation and depression both act"
    assert np.all(np.diff(tm_amplitudes(np.arange(12) * 5.0, 0.5, 200.0, 0.0)) < 0), "depressing only"
    assert np.array_equal(gs[2], g_ev), "static AlphaSynTM == AlphaSynEv"


def test_delivery_at_spike_time_plus_delay(run_neuron):
    """Cell 0 spikes once; cell 1's conductance opens at (NEURON spike time) + delay, on
    the first step whose midpoint follows it, as an exact alpha function; the NEURON spike
    time is the end of the step on which v crossed threshold (0..dt after the interpolated
    crossing)."""
    delay = 3
    run, g, v0 = run_neuron(case_delivery, delay)
    assert np.array_equal(run.spike_cell, [0]), f"expected one spike of cell 0, got {run.spike_cell}"
    t_sp = run.spike_t_ms[0]
    from neurosurrogate.data.trace import detect_spikes

    t_interp = detect_spikes(v0, DT, -20.0)[0]
    assert 0 <= t_sp - t_interp < DT + 1e-9
    g1 = g[(1, 0)]
    t_eval = np.concatenate([[0.0], (np.arange(1, g1.size) - 0.5) * DT])
    onset = t_eval[np.flatnonzero(g1 > 0)[0]]
    assert 0 <= onset - (t_sp + delay) < DT + 1e-9, (onset, t_sp)
    ref = alpha_sum(t_eval, [t_sp + delay], [2.5], 2.0)
    assert np.abs(g1 - ref).max() < 1e-9 * 2.5
    # the EPSP of cell 1 (1 kHz record) starts after the onset, not before
    v1 = run.v_mV[1]
    k_on = int(np.ceil(t_sp + delay))
    assert np.ptp(v1[:k_on]) < 1e-6
    assert v1[k_on + 3] - v1[0] > 0.2
    assert run.v_mV.shape == (2, 40)


def test_circuits_together_equal_alone_and_parallel(run_neuron):
    seeds = [11, 12]
    together, alone = run_neuron(case_together_vs_alone, seeds)
    n_spikes = [r.spike_t_ms.size for r in together]
    assert min(n_spikes) >= 10, n_spikes
    for a, b in zip(together, alone):
        assert np.array_equal(a.spike_cell, b.spike_cell)
        assert np.array_equal(a.spike_t_ms, b.spike_t_ms)
        assert np.array_equal(a.v_mV, b.v_mV)
        assert a.spike_cell.dtype == np.int64 and a.spike_t_ms.dtype == np.float64
        assert np.all(np.diff(a.spike_t_ms) >= 0) and a.v_mV.shape == (2, 150)
    assert together[0].simulator == "neuron" and together[0].wall_s == together[1].wall_s > 0
    # the same circuits split over two spawned workers (this process never imports NEURON)
    from neurosurrogate.biophys.circuit import simulate_circuits_parallel

    circuits = [make_circuit(24, 0.15, s, duration_ms=150, record_v=(0, 5)) for s in seeds]
    par = simulate_circuits_parallel(circuits, workers=2)
    for a, b in zip(par, alone):
        assert np.array_equal(a.spike_cell, b.spike_cell)
        assert np.array_equal(a.spike_t_ms, b.spike_t_ms)


def test_circuit_without_synapses_equals_simulate_events(run_neuron):
    """Bit-identical voltages where all cells share one resting potential (same
    finitialize as simulate.py), also with events on and just before the boundaries of
    the chunked event queueing; with mixed cell kinds (each cell set to its own rest,
    then finitialize()) equal to round-off."""
    runs, refs = run_neuron(case_no_synapses_equals_simulate_events, 7)
    assert len(runs) == 3
    for run, ref, tol in zip(runs, refs, (0.0, 1e-9, 0.0)):
        for k, (v, sp) in enumerate(ref):
            assert np.abs(run.v_mV[k] - v).max() <= tol, f"cell {k}: voltage differs from simulate_events"
            mine = run.spike_t_ms[run.spike_cell == k]
            assert mine.size == sp.size
            assert np.all((mine - sp >= 0) & (mine - sp < DT + 1e-9)), "NetCon time = step end after crossing"
    assert runs[0].spike_t_ms.size > 0
    assert np.all(runs[1].spike_cell < 2) and np.ptp(runs[1].v_mV[2]) > 1.0, "passive cell: no spikes, EPSPs"


def test_bad_input_raises_clear_value_error(run_neuron):
    from neurosurrogate.biophys.circuit import simulate_circuits_parallel

    bad = _bad_circuit_lists()
    expect = ["duration_ms", "hay-l5pc", "channel[0] = 2"]
    for circuits, word in zip(bad, expect):
        with pytest.raises(ValueError, match=word.replace("[", r"\[").replace("]", r"\]")):
            simulate_circuits_parallel(circuits, workers=2)  # checked before any process starts
    with pytest.raises(ValueError, match="workers"):
        simulate_circuits_parallel(bad[0][:1], workers=0)
    msgs = run_neuron(case_bad_inputs_in_worker)
    assert len(msgs) == 3
    for m, word in zip(msgs, expect):
        assert word in m, m
    assert "morphology" in msgs[1] or "one temperature" in msgs[1], msgs[1]  # hay-l5pc beside point-hh


@pytest.mark.skipif(not HAY_MORPH.exists(), reason="needs ../shared/hay2011/cell1.asc")
def test_hay_l5pc_circuit(run_neuron):
    """hay-l5pc cells in a NEURON circuit: every copy starts at the cell's steady state (a cell
    without recurrent input fires as simulate_hay does on its events, and two such cells
    identically), and a spike of cell 0 reaches cell 1 through its 5 contacts after the delay."""
    (run, run0), alone_spikes, alone_v = run_neuron(case_hay_circuit)
    sp = [run.spike_t_ms[run.spike_cell == k] for k in range(3)]
    assert alone_spikes.size >= 1 and sp[0].size == alone_spikes.size
    assert np.all((sp[0] - alone_spikes >= 0) & (sp[0] - alone_spikes < DT + 1e-9)), "NetCon time = step end"
    assert np.abs(run.v_mV[0] - alone_v).max() < 1e-6
    assert np.array_equal(sp[0], sp[2]) and np.abs(run.v_mV[0] - run.v_mV[2]).max() < 1e-6
    assert sp[1].size >= 1 and sp[1][0] > sp[0][0] + 2.0, "cell 1 fires after cell 0's spike plus the delay"
    assert abs(run.v_mV[1][:15].mean() - alone_v[:15].mean()) < 1e-6, "cell 1 at the same rest before any input"
    assert run0.spike_t_ms.size == 2 * sp[0].size and np.all(run0.spike_cell != 1), "no contact, no spike"
    assert np.ptp(run0.v_mV[1]) < 1e-6, "an unconnected cell without input stays at its steady state"


def case_uncarded_hay_sites(model_dir: str, morphology: str):
    """Sites a circuit picks for hay-l5pc with the shipped model and with a copy lacking its synapse table."""
    import os

    os.environ["NEUROSURROGATE_HAY_MORPHOLOGY"] = morphology
    from neurosurrogate.network.build import realise
    from neurosurrogate.network.config import load_network_config

    examples = Path(__file__).resolve().parent.parent / "examples"
    cfg = load_network_config(examples / "l5pc_circuit.toml")
    a = realise(cfg, seed=1)
    b = realise(cfg.with_values({"populations.L5.model": model_dir}), seed=1)
    return a.channel, a.ext_channel, b.channel, b.ext_channel, a.fingerprint(), b.fingerprint()


@pytest.mark.skipif(not HAY_MORPH.exists(), reason="needs ../shared/hay2011/cell1.asc")
def test_hay_model_without_a_stored_table_picks_the_same_sites(run_neuron, tmp_path):
    """A hay-l5pc model whose card lacks the synapse table (an unpackaged training output) gets the table
    placed on the morphology, so 'exc within 200 um' selects the same 60 proximal sites, not all 150."""
    import json
    import shutil

    from neurosurrogate.surrogate.model import resolve_model_path

    dst = tmp_path / "model"
    shutil.copytree(resolve_model_path("hay-l5pc"), dst)
    meta = json.loads((dst / "model.json").read_text())
    assert meta["card"].pop("synapses") and "synapses" not in meta
    (dst / "model.json").write_text(json.dumps(meta))
    ch_a, ext_a, ch_b, ext_b, fp_a, fp_b = run_neuron(case_uncarded_hay_sites, str(dst), str(HAY_MORPH))
    assert np.unique(ch_a).size == 60  # the proximal excitatory sites of the default table
    np.testing.assert_array_equal(ch_a, ch_b)
    np.testing.assert_array_equal(ext_a, ext_b)
    assert fp_a == fp_b
