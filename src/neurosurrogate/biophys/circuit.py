"""NEURON reference simulation of realised circuits (:class:`~neurosurrogate.network.circuit.Circuit`).

Every cell of every given circuit becomes an independent NEURON cell; all
circuits given to one :func:`simulate_circuits` call are simulated together
in ONE NEURON run (they share nothing but the integrator, which amortises
NEURON's per-step overhead, as :func:`neurosurrogate.biophys.simulate.simulate_batch`
does for single cells). Populations are point cells or ``hay-l5pc`` cells.

Per cell (a point cell built exactly as :mod:`neurosurrogate.biophys.simulate`
builds one, with its ``_Soma``; a ``hay-l5pc`` cell as
:func:`neurosurrogate.biophys.hay.simulate_hay` builds one, a ``HayModel``
with one ``AlphaSynEv`` per row of its 200-site synapse table):

* external events (background, stimuli) arrive at the cell's ``AlphaSynEv``
  synapses (one per row of the cell's synapse table), through NetCons pooled
  by weight and queued with ``NetCon.event(t)``, in chunks of ``CHUNK_MS``
  (the first after ``finitialize``, each next one when the run reaches its
  start; this bounds the number of NetCons, see ``_CircuitModel._plan_external``);
* recurrent synapses: one ``AlphaSynTM`` point process per (postsynaptic
  cell, channel) that has recurrent inputs, at the channel's site (its
  section and position for ``hay-l5pc``), with ``tau``/``e`` from the
  cell's synapse table; one NetCon per synapse row, watching the
  presynaptic soma voltage (threshold: the presynaptic cell's
  ``spike_threshold_mV``), ``delay = delay_ms`` and weight vector
  ``(weight_nS, U, D_ms, F_ms)``; the mechanism applies the Tsodyks-Markram
  recursion of :mod:`neurosurrogate.network.circuit` per NetCon;
* every point cell starts at its cell specification's resting potential with all
  gates at steady state (as ``simulate.py``); every ``hay-l5pc`` cell at the
  steady state of its specification without input (``prerun``, the default;
  computed once per specification and copied to every cell) or, with
  ``prerun=False``, at ``finitialize(v_init_mV)`` (as ``simulate_hay``);
  fixed step, implicit Euler, ``dt`` from the cell specification (0.025 ms)
  unless given.

Spike times are NEURON's threshold-detection times: the end of the
integration step on which the soma voltage first reached threshold. They
are on average ``dt/2`` (at most ``dt``) later than the linearly
interpolated crossing that :func:`neurosurrogate.data.trace.detect_spikes`
gives for datasets, and they are the times NEURON itself uses: a spike
detected at ``t`` opens the postsynaptic conductance exactly at
``t + delay_ms``.

Results are the simulator-neutral :class:`~neurosurrogate.network.circuit.CircuitRun`
(``simulator='neuron'``), the type the surrogate engine returns too.

NEURON keeps global state: call :func:`simulate_circuits` in a worker process,
or use :func:`simulate_circuits_parallel`, which starts spawned processes itself.
"""

from __future__ import annotations

import time

import numpy as np

from neurosurrogate.biophys.cells import CellSpec, PointCell, get_cell
from neurosurrogate.biophys.generate import map_chunks
from neurosurrogate.biophys.hay import HayCell, is_hay  # no NEURON import
from neurosurrogate.data.trace import detect_spikes, resample_1khz
from neurosurrogate.network.circuit import Circuit, CircuitRun

__all__ = ["CircuitRun", "simulate_circuits", "simulate_circuits_parallel"]

#: External events are queued in chunks of this many ms (see ``_CircuitModel._plan_external``);
#: running NEURON in pieces gives bit-identical results to one run.
CHUNK_MS = 2.0


# ---------------------------------------------------------------------------------------------
# checks (no NEURON)
# ---------------------------------------------------------------------------------------------
def _population_specs(i: int, c: Circuit, cells: dict | None = None) -> list[CellSpec]:
    """The cell specification of each population of ``circuits[i]``: ``cells[name]`` if given,
    else ``get_cell(name)`` (``hay-l5pc`` takes its morphology from ``$NEUROSURROGATE_HAY_MORPHOLOGY``)."""
    specs = []
    for p in c.populations:
        spec = (cells or {}).get(p.cell)
        if spec is None:
            try:
                spec = get_cell(p.cell)
            except ValueError as err:
                raise ValueError(f"circuits[{i}] population {p.name!r}: cell {p.cell!r}: {err}") from None
        if not isinstance(spec, (PointCell, HayCell)):
            raise ValueError(
                f"circuits[{i}] population {p.name!r}: cell {p.cell!r} is a {type(spec).__name__}; "
                "expected a point cell or hay-l5pc"
            )
        specs.append(spec)
    return specs


def _check_channels(i: int, c: Circuit, cell_spec: list[CellSpec]) -> None:
    n_syn = np.array([len(s.synapses) for s in cell_spec], dtype=np.int64)
    for field, cells, ch in (("channel", c.post, c.channel), ("ext_channel", c.ext_cell, c.ext_channel)):
        if ch.size == 0:
            continue
        bad = np.flatnonzero((ch < 0) | (ch >= n_syn[cells]))
        if bad.size:
            r = int(bad[0])
            raise ValueError(
                f"circuits[{i}].{field}[{r}] = {int(ch[r])} is not a synapse of cell {int(cells[r])} "
                f"(expected 0..{int(n_syn[cells[r]]) - 1}); {bad.size} row(s) affected"
            )


def _check_circuits(circuits: list[Circuit], dt_ms: float | None,
                    cells: dict | None = None) -> tuple[list[list[CellSpec]], float, int]:
    """Validate the circuits for one joint run.

    Returns:
        (per circuit the specification of each of its cells, dt in ms, duration in ms).

    Raises:
        TypeError: an entry is not a Circuit.
        ValueError: invalid circuit, unsupported cell, mismatched durations, cell
            specifications that cannot share one run (temperature, dt), bad channel.
    """
    from neurosurrogate.biophys.simulate import _check_run_args

    if not isinstance(circuits, (list, tuple)):
        raise TypeError(f"circuits must be a list of Circuit, got {type(circuits).__name__}")
    for i, c in enumerate(circuits):
        if not isinstance(c, Circuit):
            raise TypeError(f"circuits[{i}] must be a Circuit, got {type(c).__name__}")
    duration = circuits[0].duration_ms
    cell_specs: list[list[CellSpec]] = []
    for i, c in enumerate(circuits):
        if c.duration_ms != duration:
            raise ValueError(
                f"circuits[{i}].duration_ms = {c.duration_ms} differs from circuits[0].duration_ms = "
                f"{duration}; circuits simulated together need the same duration"
            )
        try:
            c.validate()
        except ValueError as err:
            raise ValueError(f"circuits[{i}]: {err}") from None
        pops = _population_specs(i, c, cells)
        per_cell = [s for s, p in zip(pops, c.populations) for _ in range(p.n)]
        _check_channels(i, c, per_cell)
        cell_specs.append(per_cell)
    all_specs = {s for per_cell in cell_specs for s in per_cell}
    if not all_specs:
        raise ValueError("the circuits have no cells")
    first = next(iter(all_specs))
    dt = _check_run_args(first, duration, dt_ms)
    for s in all_specs:
        if s.celsius_degC != first.celsius_degC:
            raise ValueError(
                f"cells {first.name!r} ({first.celsius_degC} degC) and {s.name!r} ({s.celsius_degC} degC) "
                "cannot share one NEURON run (one temperature)"
            )
        if dt_ms is None and s.dt_ms != first.dt_ms:
            raise ValueError(
                f"cells {first.name!r} (dt {first.dt_ms} ms) and {s.name!r} (dt {s.dt_ms} ms) differ; "
                "pass dt_ms to simulate them together"
            )
    return cell_specs, dt, int(round(duration))


# ---------------------------------------------------------------------------------------------
# NEURON
# ---------------------------------------------------------------------------------------------
def _free_in_order(objs: list) -> None:
    """Drop the references in ``objs`` first to last, then empty the list."""
    for i in range(len(objs)):
        objs[i] = None
    objs.clear()


def _build_cell(h, spec: CellSpec, relaxed: dict):
    """One cell's NEURON objects: a ``_Soma`` for a point cell, a ``HayModel`` for ``hay-l5pc``
    (at the steady state of the first cell of its specification, kept in ``relaxed``)."""
    if not is_hay(spec):
        from neurosurrogate.biophys.simulate import _Soma

        return _Soma(h, spec)
    from neurosurrogate.biophys.hay import HayModel

    cell = HayModel(spec)
    if spec.prerun:
        first = relaxed.get(spec)
        if first is None:
            cell.steady_state()  # integrates only the cells built so far; their state is reset at finitialize
            relaxed[spec] = cell
        else:
            cell.adopt_steady_state(first)
    return cell


def _segment(cell, spec: CellSpec, ch: int):
    """The segment of synapse row ``ch`` of a built cell."""
    if is_hay(spec):
        row = cell.synapse_rows[ch]
        return cell.sections[row["section"]](row["x"])
    return cell.soma(spec.synapses[ch].x)


class _CircuitModel:
    """NEURON objects of one circuit: cells, synapses, NetCons and recorders."""

    def __init__(self, h, c: Circuit, cell_spec: list[CellSpec], rest: dict, duration_ms: int,
                 relaxed: dict) -> None:
        self.h = h
        self.circuit = c
        self.cell_spec = cell_spec
        self.cells = [_build_cell(h, s, relaxed) for s in cell_spec]
        self.v_rest = [rest.get(s) for s in cell_spec]
        # external events through the cells' AlphaSynEv synapses, queued chunk by chunk
        self._plan_external(c, duration_ms)
        # recurrent synapses: one AlphaSynTM per (post, channel), one NetCon per row
        self.tm: dict[tuple[int, int], object] = {}
        self.netcons = []
        for r in range(c.n_synapses):
            pre, post, ch = int(c.pre[r]), int(c.post[r]), int(c.channel[r])
            key = (post, ch)
            syn = self.tm.get(key)
            if syn is None:
                sd = cell_spec[post].synapses[ch]
                syn = h.AlphaSynTM(_segment(self.cells[post], cell_spec[post], ch))
                syn.tau, syn.e = sd.tau_ms, sd.e_rev_mV
                self.tm[key] = syn
            src = self.cells[pre].soma
            nc = h.NetCon(src(0.5)._ref_v, syn, sec=src)
            nc.threshold = cell_spec[pre].spike_threshold_mV
            nc.delay = float(c.delay_ms[r])
            nc.weight[0] = float(c.weight_nS[r])
            nc.weight[1] = float(c.U[r])
            nc.weight[2] = float(c.D_ms[r])
            nc.weight[3] = float(c.F_ms[r])
            self.netcons.append(nc)
        # spike detectors (NetCon to None) and voltage recorders
        self.spike_t = h.Vector()
        self.spike_id = h.Vector()
        self.detectors = []
        for k, soma in enumerate(self.cells):
            nc = h.NetCon(soma.soma(0.5)._ref_v, None, sec=soma.soma)
            nc.threshold = cell_spec[k].spike_threshold_mV
            nc.record(self.spike_t, self.spike_id, k)
            self.detectors.append(nc)
        self.v_rec = [h.Vector().record(self.cells[int(k)].soma(0.5)._ref_v) for k in c.record_v]

    def set_rest(self, on: bool = True) -> None:
        """Before ``finitialize()`` (``on``): set each point cell's voltage to its resting potential,
        each ``hay-l5pc`` cell to restore its steady state (``prerun``) or to ``v_init_mV``.
        After it (not ``on``): stop the restoring."""
        for cell, spec, v in zip(self.cells, self.cell_spec, self.v_rest):
            if not is_hay(spec):
                if on:
                    cell.soma(0.5).v = v
            elif spec.prerun:
                cell.restore_on_init(on)
            elif on:
                for seg in cell.segments():
                    seg.v = spec.v_init_mV

    def _plan_external(self, c: Circuit, duration_ms: int) -> None:
        """Assign every external event a pooled NetCon; create the pools.

        Events are queued chunk by chunk (``CHUNK_MS``), so a NetCon only has
        to serve the events of one chunk: within chunk ``k``, on each
        (cell, synapse), the ``r``-th distinct weight uses NetCon ``r`` of pool
        set ``k % 2``. A NetCon's weight is read when its event is delivered,
        so a set must not be re-weighted while events of the previous chunk
        may wait in the queue. NEURON's fixed step delivers, at the end of each
        step, every event due up to half a step later, so all events of chunk
        ``k - 1`` are in fact delivered when chunk ``k`` is queued; the two
        alternating sets keep this correct without relying on that detail.
        Pools thus hold a few NetCons per synapse instead of one per distinct
        weight of the whole run (one per event for log-normal weights): e.g.
        ~2 300 instead of ~56 000 for 150 cells with 1.5 kHz background each
        for 250 ms, which matters because freeing NetCons is quadratic in
        their number (see :meth:`close`).
        """
        h = self.h
        keep = c.ext_t_ms < duration_ms
        t = c.ext_t_ms[keep]
        cell, syn, w = c.ext_cell[keep], c.ext_channel[keep], c.ext_weight_nS[keep]
        chunk = np.floor(t / CHUNK_MS).astype(np.int64)
        n_syn = max((len(s.synapses) for s in self.cell_spec), default=1)
        group = (chunk * len(self.cells) + cell) * n_syn + syn
        # rank of each event's weight among the distinct weights of its group
        o = np.lexsort((w, group))
        gs, ws = group[o], w[o]
        new_group = np.ones(o.size, dtype=bool)
        new_group[1:] = gs[1:] != gs[:-1]
        new_w = new_group.copy()
        new_w[1:] |= ws[1:] != ws[:-1]
        count = np.cumsum(new_w)
        first = np.maximum.accumulate(np.where(new_group, np.arange(o.size), 0))
        rank = np.empty(o.size, dtype=np.int64)
        rank[o] = count - count[first]
        # pool sizes per (set, cell, synapse) and the flat NetCon index of each event
        slot = ((chunk % 2) * len(self.cells) + cell) * n_syn + syn
        size = np.zeros(2 * len(self.cells) * n_syn, dtype=np.int64)
        np.maximum.at(size, slot, rank + 1)
        base = np.concatenate([[0], np.cumsum(size)[:-1]])
        self.ext_nc = []
        for sl in np.flatnonzero(size):
            k, j = divmod(int(sl) % (len(self.cells) * n_syn), n_syn)
            for _ in range(int(size[sl])):
                self.ext_nc.append(h.NetCon(None, self.cells[k].syns[j]))
        # events in queueing order: chunk, then cell, synapse, time (stable: table order on ties)
        q = np.lexsort((t, syn, cell, chunk))
        self.ext_idx = (base[slot] + rank)[q].tolist()
        self.ext_t = t[q].tolist()
        self.ext_w = w[q].tolist()
        self.ext_start = np.searchsorted(chunk[q], np.arange(int(np.ceil(duration_ms / CHUNK_MS)) + 1)).tolist()

    def queue_chunk(self, k: int) -> None:
        """Assign the weights of chunk ``k``'s NetCons and queue its events (at t <= its start)."""
        ncs, idx, tt, ww = self.ext_nc, self.ext_idx, self.ext_t, self.ext_w
        for e in range(self.ext_start[k], self.ext_start[k + 1]):
            nc = ncs[idx[e]]
            nc.weight[0] = ww[e]
            nc.event(tt[e])

    def close(self) -> None:
        """Free the NEURON objects: NetCons first, oldest first, then point processes and sections.

        NEURON's time to free one NetCon grows with the number of live NetCons,
        several times faster oldest first than newest first (what dropping a
        Python list does): 80 000 NetCons take ~0.3 s oldest first, ~2.4 s
        newest first, and the cost grows quadratically with their number.
        """
        _free_in_order(self.ext_nc)
        _free_in_order(self.netcons)
        _free_in_order(self.detectors)
        self.v_rec = []
        self.tm = {}
        for cell, spec in zip(self.cells, self.cell_spec):
            if is_hay(spec):
                cell.close()  # a HayModel
            else:
                cell.syns = []
        self.cells = []

    def result(self, duration_ms: int, dt: float, wall_s: float) -> CircuitRun:
        t = self.spike_t.as_numpy().copy()
        cell = self.spike_id.as_numpy().copy().astype(np.int64)
        keep = t < duration_ms
        t, cell = t[keep], cell[keep]
        order = np.lexsort((cell, t))
        n_expected = int(round(duration_ms / dt)) + 1
        v = np.zeros((len(self.v_rec), duration_ms), dtype=np.float64)
        for j, (vec, k) in enumerate(zip(self.v_rec, self.circuit.record_v)):
            full = vec.as_numpy()[:n_expected].copy()
            sp = detect_spikes(full, dt, self.cell_spec[int(k)].spike_threshold_mV)
            v[j] = resample_1khz(full, dt, duration_ms, sp[sp < duration_ms])
        return CircuitRun(
            spike_cell=cell[order],
            spike_t_ms=t[order].astype(np.float64),
            v_mV=v,
            duration_ms=duration_ms,
            wall_s=wall_s,
            simulator="neuron",
        )


def simulate_circuits(circuits: list[Circuit], dt_ms: float | None = None,
                      cells: dict[str, CellSpec] | None = None) -> list[CircuitRun]:
    """Simulate several circuits together in ONE NEURON run in this process.

    The circuits do not interact: each cell of each circuit is its own NEURON
    cell; simulating them together only amortises NEURON's per-step overhead.

    Args:
        circuits: realised circuits; every population's ``cell`` must name a
            point cell or ``hay-l5pc`` (:func:`~neurosurrogate.biophys.cells.get_cell`),
            all circuits must have the same ``duration_ms``.
        dt_ms: integration step, ms (default: the cells' ``dt_ms``; must divide 1 ms).
        cells: cell specifications by population ``cell`` name, used instead of
            ``get_cell(name)`` (e.g. ``{"hay-l5pc": get_cell("hay-l5pc", morphology=PATH)}``).

    Returns:
        One :class:`~neurosurrogate.network.circuit.CircuitRun` per circuit, in
        input order, ``simulator='neuron'``: ``spike_cell`` (int64, global index
        within the circuit) and ``spike_t_ms`` (float64, ms, NEURON's
        threshold-detection times ``< duration_ms``, ascending, ties by cell),
        ``v_mV`` ((len(record_v), duration_ms) float64, mV: the ``record_v``
        cells' soma voltage resampled to 1 kHz with action-potential peaks kept,
        as datasets), ``wall_s`` (wall-clock seconds of the NEURON integration,
        ``finitialize`` to the end including the queueing of external events,
        shared by all circuits of this call; building and freeing the NEURON
        objects, ~15 % more, is not included).

    Raises:
        TypeError: an entry of ``circuits`` is not a Circuit.
        ValueError: an unsupported cell, mismatched durations, an invalid circuit
            (message names the circuit and field), or cells that cannot share a run.
    """
    if len(circuits) == 0:
        return []
    cell_specs, dt, duration = _check_circuits(list(circuits), dt_ms, cells)
    from neurosurrogate.biophys import hay as _hay
    from neurosurrogate.biophys import simulate as _sim

    h = _sim._h()
    specs = {s for per in cell_specs for s in per}
    rest = {s: _sim.resting_potential(s) for s in specs if not is_hay(s)}
    # resting_potential keeps a one-cell model as simulate.py's cache; drop it (and any
    # cached model of an earlier simulate_batch or simulate_hay) so that no idle cell joins this run
    _sim._MODEL = None
    _hay.release_model()
    relaxed: dict = {}
    models = [_CircuitModel(h, c, cs, rest, duration, relaxed) for c, cs in zip(circuits, cell_specs)]
    h.celsius = next(s for per in cell_specs for s in per).celsius_degC
    h.dt = dt
    h.steps_per_ms = 1.0 / dt
    t_run = time.perf_counter()
    v_rest = set(rest.values())
    if len(v_rest) == 1 and len(rest) == len(specs):
        # point cells with one resting potential: exactly as simulate.py (bit-identical traces)
        h.finitialize(v_rest.pop())
    else:
        # finitialize() without argument keeps each cell's v and sets its gates to steady state;
        # hay-l5pc cells restore their steady state after the mechanisms' initialisation
        for m in models:
            m.set_rest()
        try:
            h.finitialize()
        finally:
            for m in models:
                m.set_rest(False)
    n_chunks = int(np.ceil(duration / CHUNK_MS))
    for k in range(n_chunks):
        for m in models:
            m.queue_chunk(k)
        h.continuerun(float(min((k + 1) * CHUNK_MS, duration)))
    wall_s = time.perf_counter() - t_run
    out = [m.result(duration, dt, wall_s) for m in models]
    for m in models:
        m.close()
    return out


def _worker(circuits: list[Circuit], dt_ms: float | None, cells: dict | None) -> list[CircuitRun]:
    return simulate_circuits(circuits, dt_ms, cells)


def simulate_circuits_parallel(
    circuits: list[Circuit], workers: int, dt_ms: float | None = None, cells: dict[str, CellSpec] | None = None
) -> list[CircuitRun]:
    """Simulate circuits in ``workers`` spawned processes; results in input order.

    The list is split into ``min(workers, len(circuits))`` round-robin chunks of
    (nearly) equal size; each process simulates its chunk together in one
    NEURON run (:func:`simulate_circuits`). NEURON is never imported in the
    calling process.

    Args:
        circuits: as for :func:`simulate_circuits` (checked here, before any process starts).
        workers: number of processes, >= 1.
        dt_ms: integration step, ms (default: the cells' ``dt_ms``).
        cells: as for :func:`simulate_circuits`.
    """
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    circuits = list(circuits)
    if not circuits:
        return []
    _check_circuits(circuits, dt_ms, cells)
    return map_chunks(_worker, circuits, int(workers), dt_ms, cells)
