"""NEURON test cases, executed in fresh processes by the tests (importable by name)."""

from __future__ import annotations

import numpy as np


def passive_single_event(weight_nS: float, t_event_ms: float, duration_ms: float):
    from neurosurrogate import EventTable, get_cell
    from neurosurrogate.biophys.simulate import simulate_events

    cell = get_cell("point-passive")
    ev = EventTable([t_event_ms], [0], [weight_nS])
    tr = simulate_events(cell, ev, duration_ms, keep_full=True)
    return tr.meta["v_full_mV"], cell.to_dict()


def rest_and_drive():
    from neurosurrogate import EventTable, get_cell
    from neurosurrogate.biophys.simulate import resting_potential, simulate_events
    from neurosurrogate.inputs import poisson_events

    cell = get_cell("point-hh")
    quiet = simulate_events(cell, EventTable.empty(), 1000, keep_full=True)
    ev = poisson_events([1500.0, 0.0], [2.5, 8.0], 1000, np.random.default_rng(5))
    driven = simulate_events(cell, ev, 1000)
    return resting_potential(cell), quiet.meta["v_full_mV"], len(quiet.spike_times_ms), driven.spike_times_ms


def alpha_vs_builtin(seed: int, duration_ms: float, cutoff_tau: float):
    """Same random events through AlphaSynEv (one object per site) and AlphaSynapse (one per event)."""
    import os

    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    from neurosurrogate import get_cell
    from neurosurrogate.biophys.simulate import resting_potential, simulate_events, _h
    from neurosurrogate.data.trace import detect_spikes
    from neurosurrogate.inputs import poisson_events

    cell = get_cell("point-hh", alpha_cutoff_tau=cutoff_tau)
    ev = poisson_events([500.0, 150.0], [2.5, 8.0], duration_ms, np.random.default_rng(seed), weight_cv=0.5)
    ours = simulate_events(cell, ev, duration_ms, keep_full=True)
    v_rest = resting_potential(cell)
    h = _h()
    soma = h.Section(name="ref")
    soma.L = soma.diam = 25.0
    soma.cm, soma.Ra = 1.0, 35.4
    soma.insert("pas")
    soma.g_pas, soma.e_pas = 0.001, -70.0
    soma.insert("hh")
    soma.ena, soma.ek = 50.0, -77.0
    syn_def = cell.synapses
    objs = []
    for t, s, w in zip(ev.t_ms, ev.synapse, ev.weight_nS):
        a = h.AlphaSynapse(soma(0.5))
        a.onset, a.tau, a.e, a.gmax = float(t), syn_def[s].tau_ms, syn_def[s].e_rev_mV, float(w) * 1e-3
        objs.append(a)
    vec = h.Vector().record(soma(0.5)._ref_v)
    h.dt = cell.dt_ms
    h.steps_per_ms = 1 / cell.dt_ms
    h.finitialize(v_rest)
    h.continuerun(duration_ms)
    v_ref = vec.as_numpy().copy()
    n = ours.meta["v_full_mV"].size
    sp_ref = detect_spikes(v_ref[:n], cell.dt_ms, cell.spike_threshold_mV)
    return ours.meta["v_full_mV"], v_ref[:n], ours.spike_times_ms, sp_ref[sp_ref < duration_ms], len(ev)


def dt_convergence(seed: int, duration_ms: float):
    from neurosurrogate import get_cell
    from neurosurrogate.biophys.simulate import simulate_events
    from neurosurrogate.inputs import poisson_events

    cell = get_cell("point-hh")
    ev = poisson_events([500.0, 150.0], [2.5, 8.0], duration_ms, np.random.default_rng(seed))
    out = {}
    for dt in (0.025, 0.0125, 0.00625):
        out[dt] = simulate_events(cell, ev, duration_ms, dt_ms=dt).spike_times_ms
    return out


def peaks_kept(seed: int):
    from neurosurrogate import get_cell
    from neurosurrogate.biophys.simulate import simulate_events
    from neurosurrogate.inputs import poisson_events

    cell = get_cell("point-hh")
    ev = poisson_events([600.0, 150.0], [2.5, 8.0], 1000, np.random.default_rng(seed))
    tr = simulate_events(cell, ev, 1000, keep_full=True)
    return tr.v_mV, tr.meta["v_full_mV"], tr.spike_times_ms, tr.ina, tr.ik


def kshift_cases(seed: int):
    from neurosurrogate import get_cell
    from neurosurrogate.biophys.simulate import simulate_events
    from neurosurrogate.inputs import poisson_events

    ev = poisson_events([500.0, 150.0], [2.5, 8.0], 1000, np.random.default_rng(seed))
    out = {}
    for name, kw in (("hh", {}), ("ks0", {"kshift_mV": 0.0}), ("ks+10", {"kshift_mV": 10.0}),
                     ("ks-10", {"kshift_mV": -10.0})):
        cell = get_cell("point-hh" if name == "hh" else "point-hh-kshift", **kw)
        tr = simulate_events(cell, ev, 1000, keep_full=True)
        out[name] = (tr.meta["v_full_mV"], tr.spike_times_ms)
    return out


def batch_equals_single(seed: int):
    from neurosurrogate import get_cell
    from neurosurrogate.biophys.simulate import simulate_batch, simulate_events
    from neurosurrogate.inputs import poisson_events

    cell = get_cell("point-hh")
    rng = np.random.default_rng(seed)
    tabs = [poisson_events([400.0, 150.0], [2.5, 8.0], 500, rng, weight_cv=0.3) for _ in range(3)]
    batch = simulate_batch(cell, tabs, 500)
    single = [simulate_events(cell, t, 500) for t in tabs]
    return [b.v_mV for b in batch], [s.v_mV for s in single]


def point_psp(synapse: int, weight_nS: float, window_ms: int = 200, t_event_ms: float = 100.0):
    """The point-hh cell's somatic response to one event at rest, mV, (window_ms,) from the event's bin on."""
    from neurosurrogate import EventTable, get_cell
    from neurosurrogate.biophys.simulate import simulate_events

    cell, T = get_cell("point-hh"), t_event_ms + window_ms + 1
    one = simulate_events(cell, EventTable(np.array([t_event_ms]), np.array([synapse]), np.array([weight_nS])), T)
    rest = simulate_events(cell, EventTable(np.zeros(0), np.zeros(0, dtype=int), np.zeros(0)), T)
    k0 = int(t_event_ms)
    return (np.asarray(one.v_mV) - np.asarray(rest.v_mV))[k0 : k0 + window_ms]
