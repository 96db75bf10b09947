"""The surrogate network engine: many circuits, one batched tensor program.

:func:`simulate` takes a list of realised circuits with the same populations
(same names, sizes and surrogate models) and stacks them into one disjoint
network: population ``p`` of every instance forms one block of cells, so one
call of the surrogate's ``step`` per population and millisecond advances every
cell of every instance. Nothing loops over cells, synapses or instances in
the time loop.

Each millisecond ``k``:

1. input features of bin ``k`` = the delay ring buffer's slot ``k mod L`` + the
   external events of bin ``k`` (kept sorted by bin, scattered into the slot;
   the slot is cleared after the step);
2. ``y = stepper.step(x)`` per population: the surrogate's step with its state kept by the
   stepper (:func:`~neurosurrogate.surrogate.stepper.make_stepper`: on a CUDA device replayed
   from a CUDA graph; on the CPU the compiled kernel with preallocated buffers);
3. a spike is called where the spike probability crosses the model's
   calibrated threshold upwards (a causal version of
   :func:`~neurosurrogate.surrogate.model.decode_spikes`), at time
   ``k + offset`` with the spike head's sub-millisecond offset;
4. for every synapse of a spiking cell (CSR lookup), the Tsodyks-Markram state
   is advanced to the spike time and ``weight * u * R`` (in units of the
   target site's default weight) is added, with the sub-ms offset, to slot
   ``(k + delay) mod L`` of the target's input features: so a spike at time
   ``t`` reaches the target at exactly ``t + delay`` (delays >= 1 ms).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from neurosurrogate.network.circuit import Circuit, CircuitRun
from neurosurrogate.surrogate.fast import tune_malloc
from neurosurrogate.surrogate.model import SurrogateModel
from neurosurrogate.surrogate.stepper import make_stepper

__all__ = ["simulate", "EngineError"]


class EngineError(ValueError):
    """Circuits that cannot be simulated together (or by these models)."""


_MODELS: dict[str, SurrogateModel] = {}


def _model(name: str) -> SurrogateModel:
    if name not in _MODELS:
        _MODELS[name] = SurrogateModel.load(name)
    return _MODELS[name]


@dataclass
class _Pop:
    model: SurrogateModel
    net: torch.nn.Module
    n_local: int          # cells per instance
    n: int                # cells in the stacked block
    start: int            # first stacked index
    w_def: np.ndarray     # default weight per synapse, nS
    threshold: float
    v_rest: float
    v_scale: float


def _check_same_structure(circuits: list[Circuit]) -> None:
    ref = circuits[0]
    for i, c in enumerate(circuits):
        if c.populations != ref.populations:
            raise EngineError(f"circuit {i} has populations {c.populations}, circuit 0 has {ref.populations}: "
                              "only circuits with the same populations can be simulated together")
        if c.duration_ms != ref.duration_ms:
            raise EngineError(f"circuit {i} lasts {c.duration_ms} ms, circuit 0 {ref.duration_ms} ms")
        if not np.array_equal(c.record_v, ref.record_v):
            raise EngineError(f"circuit {i} records other cells than circuit 0")


@torch.no_grad()
def simulate(
    circuits: list[Circuit] | Circuit,
    device: str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    record_inputs: bool = False,
    cuda_graph: bool | None = None,
) -> list[CircuitRun] | CircuitRun:
    """Simulate circuits with their populations' surrogates, all in one batch.

    Args:
        circuits: realised circuits with identical populations and duration
            (a single circuit gives a single result).
        device: torch device (default: CUDA if available, else CPU).
        dtype: float32 (default) or float64 (for exact comparisons).
        progress: show a progress bar over milliseconds.
        record_inputs: also return the input features of the ``record_v`` cells,
            ``(n_rec, T, n_in)`` in ``CircuitRun.inputs`` (drive in default-weight
            units and weight-weighted onset fraction per synapse; see the model encoding).
        cuda_graph: on a CUDA device, replay each population's surrogate step from a CUDA
            graph (:class:`~neurosurrogate.surrogate.graph.GraphStepper`: one launch instead of
            ~30 per step; same arithmetic). False steps with PyTorch's operations; None (default)
            uses the graph unless ``NEUROSURROGATE_CUDA_GRAPH=0``.

    Returns:
        One :class:`CircuitRun` per circuit: spikes (global cell index and time,
        ms), voltages of ``record_v`` cells at 1 kHz (mV).
    """
    single = isinstance(circuits, Circuit)
    circuits = [circuits] if single else list(circuits)
    if not circuits:
        return []
    tune_malloc()
    for i, c in enumerate(circuits):
        if not isinstance(c, Circuit):
            raise TypeError(f"circuits[{i}] must be a Circuit, got {type(c).__name__}")
        c.validate()
    _check_same_structure(circuits)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ref = circuits[0]
    B, T = len(circuits), int(ref.duration_ms)
    offsets = ref.offsets
    pops: list[_Pop] = []
    start = 0
    for spec in ref.populations:
        m = _model(spec.model)
        net = m.net if dtype == torch.float32 and dev.type == "cpu" else copy.deepcopy(m.net)
        net = net.to(device=dev, dtype=dtype).eval()
        e = m.encoding
        pops.append(_Pop(m, net, spec.n, spec.n * B, start, np.asarray(e.synapse_weights_nS, dtype=float),
                         float(e.spike_threshold), float(e.v_rest_mV), float(e.v_scale_mV)))
        start += spec.n * B
    n_total = start

    def stacked(b: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(instance, circuit-global index) -> (stacked index, population, index within the block)."""
        p = np.searchsorted(offsets, g, side="right") - 1
        n_loc = np.asarray([q.n_local for q in pops])[p]
        within = b * n_loc + (g - offsets[p])
        return np.asarray([q.start for q in pops])[p] + within, p, within

    # --- synapses: stacked, sorted by presynaptic cell (CSR) ---------------------------------
    b_syn = np.concatenate([np.full(c.n_synapses, b, dtype=np.int64) for b, c in enumerate(circuits)])
    cat = lambda name: np.concatenate([getattr(c, name) for c in circuits])  # noqa: E731
    pre, _, _ = stacked(b_syn, cat("pre"))
    _, post_pop, post_within = stacked(b_syn, cat("post"))
    channel = cat("channel")
    for p, q in enumerate(pops):
        bad = (post_pop == p) & (channel >= q.w_def.size)
        if bad.any():
            raise EngineError(f"a synapse targets site {int(channel[bad].max())} of population "
                              f"{ref.populations[p].name}, whose model has {q.w_def.size} sites")
    w_def = np.concatenate([q.w_def for q in pops])
    w_off = np.concatenate([[0], np.cumsum([q.w_def.size for q in pops])])
    amp = cat("weight_nS") / w_def[w_off[post_pop] + channel]
    order = np.argsort(pre, kind="stable")
    rowptr = np.concatenate([[0], np.cumsum(np.bincount(pre, minlength=n_total))])
    tt = lambda a, dt=dtype: torch.as_tensor(np.ascontiguousarray(a[order]), device=dev, dtype=dt)  # noqa: E731
    syn_post_pop = tt(post_pop, torch.long)
    syn_post = tt(post_within, torch.long)
    syn_col = tt(2 * channel, torch.long)
    syn_amp = tt(amp)
    syn_delay = tt(cat("delay_ms"), torch.long)
    syn_U, syn_D, syn_F = tt(cat("U")), tt(cat("D_ms")), tt(cat("F_ms"))
    S = int(pre.size)
    syn_u = torch.zeros(S, device=dev, dtype=dtype)
    syn_R = torch.ones(S, device=dev, dtype=dtype)
    syn_last = torch.full((S,), -1e9, device=dev, dtype=dtype)
    rowptr_t = torch.as_tensor(rowptr, device=dev, dtype=torch.long)
    L = int(cat("delay_ms").max()) + 1 if S else 1

    # --- external events: per population, sorted by step, scattered into each step's input -----
    # (a dense (T, n, n_in) array would be ~60 MB per 150-cell circuit x 250 ms: building and reading
    # it cost more than the surrogate's steps)
    ext, bufs, above = [], [], []
    for p, q in enumerate(pops):
        n_in = 2 * q.w_def.size
        ks, rows, cols, drive, onset = [], [], [], [], []
        for b, c in enumerate(circuits):
            g = c.ext_cell
            m = (g >= offsets[p]) & (g < offsets[p + 1]) & (c.ext_t_ms < T)
            t, ch = c.ext_t_ms[m], c.ext_channel[m]
            if ch.size and ch.max() >= q.w_def.size:
                raise EngineError(f"circuit {b}: an external event targets site {int(ch.max())} of population "
                                  f"{ref.populations[p].name}, whose model has {q.w_def.size} sites")
            k = np.minimum(t.astype(np.int64), T - 1)
            w = c.ext_weight_nS[m] / q.w_def[ch]
            ks.append(k)
            rows.append(b * q.n_local + (g[m] - offsets[p]))
            cols.append(2 * ch.astype(np.int64))
            drive.append(w)
            onset.append(w * (t - k))  # the encoding's weighted onset fraction within the step
        k = np.concatenate(ks)
        order_k = np.argsort(k, kind="stable")
        kptr = np.searchsorted(k[order_k], np.arange(T + 1)).tolist()  # host ints: no device sync per step
        on = lambda parts, dt: torch.as_tensor(np.concatenate(parts)[order_k], device=dev, dtype=dt)  # noqa: E731
        r_, c_ = on(rows, torch.long), on(cols, torch.long)
        ext.append((kptr, (r_, c_), (r_, c_ + 1), on(drive, dtype), on(onset, dtype)))
        bufs.append(torch.zeros(L, q.n, n_in, device=dev, dtype=dtype))
        above.append(torch.zeros(q.n, dtype=torch.bool, device=dev))
    # each from the model's rest (init_state)
    steppers = [make_stepper(q.net, q.n, dev, dtype, cuda_graph=cuda_graph) for q in pops]

    # --- recorded voltages ---------------------------------------------------------------------
    rec = ref.record_v
    rec_s, rec_p, rec_w = stacked(np.repeat(np.arange(B), rec.size), np.tile(rec, B))
    rec_idx = [torch.as_tensor(rec_w[rec_p == p], device=dev) for p in range(len(pops))]
    v_out = [torch.zeros(T, int((rec_p == p).sum()), device=dev, dtype=dtype) for p in range(len(pops))]
    x_out = [torch.zeros(T, int((rec_p == p).sum()), 2 * q.w_def.size, device=dev, dtype=dtype) if record_inputs
             else None for p, q in enumerate(pops)]

    spk_cells, spk_times = [], []
    steps = range(T)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"network ({B} x {ref.n_cells} cells)", unit="ms")
    t0 = time.perf_counter()
    for k in steps:
        slot = k % L
        fired_idx, fired_t = [], []
        for p, q in enumerate(pops):
            x = bufs[p][slot]  # recurrent input due now; the external events of step k added in place
            kptr, at_drive, at_onset, drive, onset = ext[p]
            e0, e1 = kptr[k], kptr[k + 1]
            if e1 > e0:
                x.index_put_(tuple(i[e0:e1] for i in at_drive), drive[e0:e1], accumulate=True)
                x.index_put_(tuple(i[e0:e1] for i in at_onset), onset[e0:e1], accumulate=True)
            y = steppers[p].step(x)  # may be the stepper's output buffer: read before its next step
            if rec_idx[p].numel():
                v_out[p][k] = q.v_rest + q.v_scale * y[rec_idx[p], 0]
                if record_inputs:
                    x_out[p][k] = x[rec_idx[p]]
            x.zero_()  # the slot is free for step k + L
            a = torch.sigmoid(y[:, 1]) > q.threshold
            spk = a & ~above[p]
            above[p] = a
            idx = torch.nonzero(spk).flatten()
            if idx.numel():
                fired_idx.append(idx + q.start)
                fired_t.append(k + torch.sigmoid(y[idx, 2]).clamp(0.0, 1.0 - 1e-6))
        if not fired_idx:
            continue
        cells = torch.cat(fired_idx)
        t_sp = torch.cat(fired_t)
        spk_cells.append(cells)
        spk_times.append(t_sp)
        # synapses of the spiking cells: CSR ranges, expanded without a Python loop
        starts, counts = rowptr_t[cells], rowptr_t[cells + 1] - rowptr_t[cells]
        n_sel = int(counts.sum())
        if n_sel == 0:
            continue
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        sel = first + torch.arange(n_sel, device=dev)
        t_syn = torch.repeat_interleave(t_sp, counts)
        dt_ = t_syn - syn_last[sel]
        U = syn_U[sel]
        u = U + syn_u[sel] * (1 - U) * torch.exp(-dt_ / syn_F[sel])
        R = 1 + (syn_R[sel] * (1 - syn_u[sel]) - 1) * torch.exp(-dt_ / syn_D[sel])
        syn_u[sel], syn_R[sel], syn_last[sel] = u, R, t_syn
        a_syn = syn_amp[sel] * u * R
        frac = t_syn - torch.floor(t_syn)
        slots = (k + syn_delay[sel]) % L
        posts, cols, pp = syn_post[sel], syn_col[sel], syn_post_pop[sel]
        for p in range(len(pops)):
            if len(pops) > 1:
                m = pp == p
                s_, po, co, am, fr = slots[m], posts[m], cols[m], a_syn[m], frac[m]
            else:
                s_, po, co, am, fr = slots, posts, cols, a_syn, frac
            bufs[p].index_put_((s_, po, co), am, accumulate=True)
            bufs[p].index_put_((s_, po, co + 1), am * fr, accumulate=True)
    wall = time.perf_counter() - t0

    # --- back to per-circuit results -------------------------------------------------------------
    if spk_cells:
        cells = torch.cat(spk_cells).cpu().numpy()
        times = torch.cat(spk_times).double().cpu().numpy()
    else:
        cells, times = np.zeros(0, dtype=np.int64), np.zeros(0)
    starts = np.asarray([q.start for q in pops])
    p_of = np.searchsorted(starts, cells, side="right") - 1
    n_loc = np.asarray([q.n_local for q in pops])[p_of]
    within = cells - starts[p_of]
    inst, local = within // n_loc, within % n_loc
    glob = offsets[p_of] + local
    v_all = np.zeros((B, rec.size, T))
    x_all = [[None] * rec.size for _ in range(B)]
    for p in range(len(pops)):
        sel_rec = np.flatnonzero(rec_p == p)
        if sel_rec.size:
            v_all.reshape(B * rec.size, T)[sel_rec] = v_out[p].double().cpu().numpy().T
            if record_inputs:
                xs = x_out[p].double().cpu().numpy()
                for j, flat in enumerate(sel_rec):
                    x_all[flat // rec.size][flat % rec.size] = xs[:, j]
    runs = []
    for b in range(B):
        m = inst == b
        o = np.lexsort((glob[m], times[m]))
        runs.append(CircuitRun(glob[m][o].astype(np.int64), times[m][o], v_all[b], T, wall, "surrogate",
                               x_all[b] if record_inputs else None))
    return runs[0] if single else runs
