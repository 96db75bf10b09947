"""Run a cell on an event table with NEURON and record a 1 kHz trace.

The NEURON model is built once per process and cell specification and
re-used across trials (events are re-queued, weights re-assigned). Inputs
use the project's event-driven ``AlphaSynEv`` synapse: one point process per
synapse site; events arrive through NetCons (one per distinct weight on that
synapse, pooled across trials) queued with ``NetCon.event(t)``.

Initialisation is at the steady state: the resting potential of each cell
specification is found once by a 2 s run without input (then refined so
that ``dV/dt`` is below 1e-6 mV/ms), and every trial starts with
``finitialize(v_rest)``, which sets every gate to its steady-state value at
that voltage. Fixed step, implicit Euler (NEURON's default), ``dt`` from
the specification (0.025 ms).

The detailed cell ``hay-l5pc`` is simulated by :mod:`neurosurrogate.biophys.hay`
(same synapse and recording conventions; its own initialisation options).
"""

from __future__ import annotations

import os
import numpy as np

from neurosurrogate.biophys.build import load_mechanisms
from neurosurrogate.biophys.cells import CellSpec
from neurosurrogate.biophys.hay import is_hay  # no NEURON import
from neurosurrogate.data.trace import Trace, bin_mean_1khz, detect_spikes, resample_1khz
from neurosurrogate.inputs import EventTable

__all__ = ["SimulationResult", "resting_potential", "simulate_batch", "simulate_events"]

SimulationResult = Trace


def _h():
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    from neuron import h

    load_mechanisms()
    h.load_file("stdrun.hoc")
    return h


class _Soma:
    """NEURON objects of one point cell: section, synapses and a NetCon pool."""

    def __init__(self, h, spec: CellSpec) -> None:
        s = spec
        self.h = h
        soma = h.Section(name="soma")
        soma.nseg = 1
        soma.L, soma.diam = s.L_um, s.diam_um
        soma.cm, soma.Ra = s.cm_uF_cm2, s.Ra_ohm_cm
        soma.insert("pas")
        soma.g_pas, soma.e_pas = s.g_pas_S_cm2, s.e_pas_mV
        if s.active:
            mech = "hh" if s.kshift_mV is None else "hhks"
            soma.insert(mech)
            m = getattr(soma(0.5), mech)
            m.gnabar, m.gkbar, m.gl, m.el = s.gnabar_S_cm2, s.gkbar_S_cm2, s.gl_S_cm2, s.el_mV
            if s.kshift_mV is not None:
                m.kshift = s.kshift_mV
            soma.ena, soma.ek = s.ena_mV, s.ek_mV
        self.soma = soma
        self.syns = []
        for syn in s.synapses:
            p = h.AlphaSynEv(soma(syn.x))
            p.tau, p.e, p.cutoff = syn.tau_ms, syn.e_rev_mV, s.alpha_cutoff_tau
            self.syns.append(p)
        self.pool: list[list] = [[] for _ in self.syns]

    def prepare(self, events: EventTable, duration_ms: float) -> list:
        """Assign NetCon weights (one NetCon per distinct weight and synapse); return the queue."""
        return queue_events(self.h, self.syns, self.pool, events, duration_ms)


def queue_events(h, syns: list, pools: list[list], events: EventTable, duration_ms: float) -> list:
    """Point NetCons at synapse objects for an event table; returns what to queue after ``finitialize``.

    Each synapse ``j`` keeps a pool of NetCons (``pools[j]``, grown on demand, reused across trials),
    one per distinct weight of its events; returns ``[(pool, netcon index per event, times)]`` for
    ``pool[i].event(t)``. Events at or after ``duration_ms`` are dropped.
    """
    keep = events.t_ms < duration_ms
    t, syn, w = events.t_ms[keep], events.synapse[keep], events.weight_nS[keep]
    queued = []
    order = np.argsort(syn, kind="stable")
    bounds = np.searchsorted(syn[order], np.arange(len(syns) + 1))
    for j in range(len(syns)):
        sel = order[bounds[j] : bounds[j + 1]]
        if sel.size == 0:
            continue
        uw, inv = np.unique(w[sel], return_inverse=True)
        pool = pools[j]
        while len(pool) < uw.size:
            pool.append(h.NetCon(None, syns[j]))
        for nc, wt in zip(pool, uw):
            nc.weight[0] = float(wt)
            nc.delay = 0.0
        queued.append((pool, inv.tolist(), t[sel].tolist()))
    return queued


class _PointModel:
    """``n_cells`` independent copies of one cell, simulated together (one trial each).

    Simulating many independent cells in one NEURON run amortises NEURON's
    per-step overhead: one point cell alone costs ~130 ms of CPU per
    simulated second, 64 together ~10 ms each.
    """

    def __init__(self, spec: CellSpec, n_cells: int) -> None:
        self.h = h = _h()
        self.spec = spec
        self.cells = [_Soma(h, spec) for _ in range(n_cells)]

    def _setup(self, dt_ms: float) -> None:
        h = self.h
        h.celsius = self.spec.celsius_degC
        h.dt = dt_ms
        h.steps_per_ms = 1.0 / dt_ms

    def rest(self) -> float:
        """Resting potential (cached per specification), found with one cell alone."""
        if self.spec not in _REST:
            if len(self.cells) > 1:
                return _model(self.spec, 1).rest()
            self._setup(self.spec.dt_ms)
            v = self.spec.e_pas_mV if not self.spec.active else -65.0
            for _ in range(3):
                self.h.finitialize(v)
                self.h.continuerun(2000.0)
                v = float(self.cells[0].soma(0.5).v)
            _REST[self.spec] = v
        return _REST[self.spec]

    def run(self, tables: list[EventTable], duration_ms: float, dt_ms: float) -> list[dict[str, np.ndarray]]:
        """Simulate ``len(tables) <= n_cells`` trials together; unused cells get no input."""
        h = self.h
        n_syn = len(self.spec.synapses)
        for ev in tables:
            ev.check_synapses(n_syn)
        v_rest = resting_potential(self.spec)
        self._setup(dt_ms)
        queues = [c.prepare(ev, duration_ms) for c, ev in zip(self.cells, tables)]
        recs = []
        for c in self.cells[: len(tables)]:
            seg = c.soma(0.5)
            r = {"v": h.Vector().record(seg._ref_v)}
            if self.spec.active:
                r["ina"] = h.Vector().record(seg._ref_ina)
                r["ik"] = h.Vector().record(seg._ref_ik)
            recs.append(r)
        h.finitialize(v_rest)
        for q in queues:
            for pool, inv, tt in q:
                for i, te in zip(inv, tt):
                    pool[i].event(te)
        h.continuerun(float(duration_ms))
        n_expected = int(round(duration_ms / dt_ms)) + 1
        outs = []
        for r in recs:
            outs.append({k: vec.as_numpy()[:n_expected].copy() for k, vec in r.items()})
            for vec in r.values():
                vec.play_remove()
        return outs


_MODEL: _PointModel | None = None
_REST: dict[CellSpec, float] = {}


def _model(spec: CellSpec, n_cells: int = 1) -> _PointModel:
    """The process's NEURON model for ``spec`` with at least ``n_cells`` cells."""
    global _MODEL
    if _MODEL is None or _MODEL.spec != spec or len(_MODEL.cells) != n_cells:
        _MODEL = None  # drop the previous cells' NEURON objects first
        from neurosurrogate.biophys import hay

        hay.release_model()  # and a detailed cell: NEURON would integrate it alongside
        _MODEL = _PointModel(spec, n_cells)
    return _MODEL


def release_model() -> None:
    """Delete this process's point-cell NEURON objects (if any)."""
    global _MODEL
    _MODEL = None


def resting_potential(spec: CellSpec) -> float:
    """Steady-state membrane potential of the cell without input, mV (the soma's, for hay-l5pc)."""
    if is_hay(spec):
        from neurosurrogate.biophys.hay import hay_model

        return hay_model(spec).steady_state()
    if spec not in _REST:
        _model(spec, 1).rest()
    return _REST[spec]


def _check_run_args(spec: CellSpec, duration_ms: float, dt_ms: float | None) -> float:
    if not np.isfinite(duration_ms) or duration_ms < 1 or abs(duration_ms - round(duration_ms)) > 1e-9:
        raise ValueError(f"duration_ms must be a whole number of ms >= 1, got {duration_ms}")
    dt = spec.dt_ms if dt_ms is None else float(dt_ms)
    if dt <= 0 or abs(round(1.0 / dt) * dt - 1.0) > 1e-9:
        raise ValueError(f"dt_ms={dt} must be > 0 and divide 1 ms exactly")
    return dt


def _to_trace(spec: CellSpec, full: dict, duration_ms: float, dt: float, keep_full: bool) -> Trace:
    v = full["v"]
    spikes = detect_spikes(v, dt, spec.spike_threshold_mV)
    spikes = spikes[spikes < duration_ms]
    n = int(round(duration_ms))
    zeros = np.zeros(n)
    tr = Trace(
        t_ms=np.arange(n, dtype=float),
        v_mV=resample_1khz(v, dt, n, spikes),
        spike_times_ms=spikes,
        ina=bin_mean_1khz(full["ina"], dt, n) if "ina" in full else zeros,
        ik=bin_mean_1khz(full["ik"], dt, n) if "ik" in full else zeros.copy(),
        meta={"dt_ms": dt, "spike_threshold_mV": spec.spike_threshold_mV},
    )
    if keep_full:
        tr.meta["v_full_mV"] = v
    return tr


def simulate_batch(
    spec: CellSpec,
    tables: list[EventTable],
    duration_ms: float,
    dt_ms: float | None = None,
    keep_full: bool = False,
) -> list[Trace]:
    """Simulate several independent trials of one cell together in this process.

    Same contract as :func:`simulate_events`, one trace per event table. The
    cells do not interact; running them in one NEURON simulation only
    amortises the per-step overhead.
    """
    dt = _check_run_args(spec, duration_ms, dt_ms)
    for i, ev in enumerate(tables):
        if not isinstance(ev, EventTable):
            raise TypeError(f"tables[{i}] must be an EventTable")
    if not tables:
        return []
    if is_hay(spec):  # one detailed cell at a time (batching buys nothing at 642 compartments)
        from neurosurrogate.biophys.hay import simulate_hay

        return [simulate_hay(spec, ev, duration_ms, dt, keep_full) for ev in tables]
    fulls = _model(spec, len(tables)).run(list(tables), duration_ms, dt)
    return [_to_trace(spec, f, duration_ms, dt, keep_full) for f in fulls]


def simulate_events(
    spec: CellSpec,
    events: EventTable,
    duration_ms: float,
    dt_ms: float | None = None,
    keep_full: bool = False,
) -> Trace:
    """Simulate one trial in this process.

    Args:
        spec: cell specification (see :mod:`neurosurrogate.biophys.cells`).
        events: validated event table; synapse indices must exist on the cell.
        duration_ms: simulated time, ms, a whole number >= 1.
        dt_ms: integration step, ms (default: the cell's ``dt_ms``).
        keep_full: also return the full-resolution voltage in ``meta['v_full_mV']``.

    Returns:
        A :class:`Trace` with ``t_ms`` = 0..duration-1, ``v_mV`` (1 kHz, AP
        peaks kept), ``ina``/``ik`` (mA/cm2, bin means; zeros for a passive
        cell) and ``spike_times_ms`` (threshold crossings at full resolution).
        For ``hay-l5pc`` a :class:`~neurosurrogate.biophys.hay.HayTrace` that also
        holds ``v_dend_mV`` (see :func:`neurosurrogate.biophys.hay.simulate_hay`).
    """
    return simulate_batch(spec, [events], duration_ms, dt_ms, keep_full)[0]
