"""Can an exact soma, driven by a learned dendritic current, fire like the hay-l5pc cell?

README hay item 14 found that every surrogate misses the slow approaches to threshold: its soma voltage is a
conditional mean that never dwells in the last 2 mV below threshold, while the real cell, given a somatic
noise current as large as the surrogate's error, still commits to those spikes. This experiment keeps the
soma (and the 2-section axon stub) of the Hay model exact, in NEURON with the project's own mechanisms, and
replaces only the dendritic tree by what the soma sees of it: a conductance ``g_d`` to a driving voltage
``E_d(t)`` (a Thevenin equivalent, updated once per ms), so that

    I_dend(t) = g_d (E_d(t) - V_soma(t)),   E_d = 1 ms mean of (V_soma + I_dend / g_d).

Subcommands (run from the repository root with ``.venv/bin/python``):

* ``record``: simulate a dataset's event tables with the whole cell in NEURON (from the steady state, as the
  dataset was made) and record, per 1 ms bin, the mean soma voltage and the mean current the dendrites push
  into the soma (``i_membrane_`` of the soma plus the current it passes to the axon), nA. Resumable: trials
  are written in parts; ``--out`` (NPZ) is assembled when all are done.
* ``replay``: drive the soma + axon stub alone (dendrites deleted) with the recorded ``E_d`` (for each
  ``--g-nS``) or with the recorded current held per ms (``--g-nS 0``), and score its spikes against the
  whole cell's: how much of the cell's firing a 1 ms dendritic drive can carry.
* ``train``: fit a GRU (the package's ``gru`` surrogate: input projection, traces, 2 layers) that maps the
  synaptic input (and, with ``--feedback``, the soma's own spikes / voltage of the previous ms) to ``E_d``
  (teacher forcing: the whole cell's soma in the feedback).
* ``loop``: run the trained GRU and the exact soma together, closed loop (the soma's own spikes and voltage
  fed back), on a dataset's event tables, and score spikes and voltage against the cell (and ``--baseline``
  surrogates on the same trials); also how far the GRU's drive is from the cell's, teacher forced and closed loop.
* ``tree``: the whole cell without synapses, its soma clamped to the free run's voltage: the tree's own answer
  to the soma, fitted as a per-ms kernel of the soma's past voltage and spikes, and closed-loop oracles (that
  kernel, or the exact tree, fed the soma's own past with the exact rest of the drive).
* ``spike-kernel``: the drive after each of the cell's spikes as a fixed kernel; ``replay --spike-kernel`` runs
  its oracles, ``train --spike-kernel`` learns the drive less that kernel from the input alone, and ``loop`` adds
  the kernel of the soma's own spikes.
* ``report``: the rows of ``replay`` / ``loop`` / ``tree`` JSON files as Markdown tables.

Results and their reading: README, the detailed cell, items 15 and 16; ``scripts/hay_physics_soma_experiment.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.hay import dataset_cell, load_steady_hay_dataset
from neurosurrogate.inputs import ou_noise

DEFAULT_G_NS = (0.0, 20.0, 40.0, 80.0)


# -- NEURON, whole cell ------------------------------------------------------------------------------------
def whole_cell(cell_dict: dict):
    """The Hay model of ``cell_dict`` in NEURON, with fast_imem on (for :func:`measure_run`)."""
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    from neurosurrogate.biophys.cells import cell_from_dict
    from neurosurrogate.biophys.hay import hay_model

    model = hay_model(cell_from_dict(cell_dict))
    model.h.cvode.use_fast_imem(1)
    return model


def measure_run(model, events, duration_ms: float, clamp=None, v_play=None) -> tuple[np.ndarray, np.ndarray]:
    """One run of the whole cell ``model`` (from :func:`whole_cell`): the soma voltage (mV, full resolution, the
    run's every sample) and the current the dendrites push into the soma (nA, positive = depolarising: the soma's
    i_membrane_ plus what it passes to the axon, less any electrode's current; ``duration_ms / dt`` samples). With
    ``v_play`` (mV, one value per sample, the last included) the soma is voltage clamped to it by the ``SEClamp``
    ``clamp``."""
    h = model.h
    soma, ax = model.soma(0.5), model.cell.axon[0](0.5)
    r_ax = ax.ri()  # MOhm between the soma node and the first axon node
    dt = model.spec.dt_ms
    m = int(round(duration_ms)) * int(round(1.0 / dt))
    recs = [h.Vector().record(soma._ref_v), h.Vector().record(soma._ref_i_membrane_), h.Vector().record(ax._ref_v)]
    played = None
    if v_play is not None:
        recs.append(h.Vector().record(clamp._ref_i))
        played = (h.Vector(v_play), h.Vector(np.arange(len(v_play)) * dt))
        played[0].play(clamp._ref_amp1, played[1], 1)
        clamp.dur1 = 1e9
    try:
        model.run(events, duration_ms, dt)
        v = recs[0].as_numpy().copy()
        i = recs[1].as_numpy()[:m] + (v[:m] - recs[2].as_numpy()[:m]) / r_ax
        if v_play is not None:  # i_membrane_ leaves electrode currents out
            i = i - recs[3].as_numpy()[:m]
    finally:
        for vec in recs:
            vec.play_remove()
        if played is not None:
            played[0].play_remove()
            clamp.dur1 = 0.0
    return v, i


def record_worker(tables: list, cell_dict: dict, duration_ms: float) -> list[dict]:
    """Worker of ``map_chunks``: per table the 1 ms bin means of soma voltage (mV) and dendritic current into
    the soma (nA, positive = depolarising), the spike times (ms), and the fast-component sums that estimate
    the tree's conductance (``sxy`` = sum dV dI, ``sxx`` = sum dV^2, d = deviation from the bin mean)."""
    from neurosurrogate.data.trace import detect_spikes

    model = whole_cell(cell_dict)
    spec = model.spec
    n = int(round(duration_ms))
    per_ms = int(round(1.0 / spec.dt_ms))
    out = []
    for events in tables:
        v_all, i = measure_run(model, events, duration_ms)
        vb, ib = v_all[: n * per_ms].reshape(n, per_ms), i.reshape(n, per_ms)
        dv, di = vb - vb.mean(1, keepdims=True), ib - ib.mean(1, keepdims=True)
        out.append({"v_mV": vb.mean(1).astype(np.float32), "i_nA": ib.mean(1).astype(np.float32),
                    "spikes_ms": detect_spikes(v_all, spec.dt_ms, spec.spike_threshold_mV),
                    "sxy": float((dv * di).sum()), "sxx": float((dv * dv).sum())})
    return out


def run_in_parts(parts: Path, n: int, chunk: int, key: dict, label: str, compute) -> list:
    """Resumable work on trials 0..n-1 in chunks of ``chunk``: ``compute(idx)`` gives the arrays of the trials
    ``idx``, written atomically as one NPZ per chunk in ``parts``; chunks already there are skipped. ``key``
    (option name -> value: what the parts depend on) is kept in ``parts/key.json``, and parts made under another
    value are refused (ValueError naming the option), not mixed in. Returns the loaded parts in trial order."""
    parts.mkdir(parents=True, exist_ok=True)
    key_file = parts / "key.json"
    if key_file.exists():
        made = json.loads(key_file.read_text())
        for option, value in key.items():
            if made.get(option, value) != value:
                raise ValueError(f"{parts}: its parts were made with another {option}; remove them or write elsewhere")
    key_file.write_text(json.dumps(key))
    t0 = time.time()
    for start in range(0, n, chunk):
        f = parts / f"{start:05d}.npz"
        if f.exists():
            continue
        idx = list(range(start, min(start + chunk, n)))
        np.savez(str(f) + ".tmp.npz", **compute(idx))
        os.replace(str(f) + ".tmp.npz", f)
        print(f"{label}: trials {idx[0]}..{idx[-1]} of {n} done ({time.time() - t0:.0f} s)", flush=True)
    return [np.load(p) for p in sorted(parts.glob("[0-9][0-9][0-9][0-9][0-9].npz"))]  # not a crash's .tmp.npz


def rest_of(parts: Path, cell: dict) -> tuple[float, float]:
    """The whole cell at rest (no input for 200 ms, the last 50 ms): soma voltage (mV) and the dendrites' drive
    into the soma (nA), cached in ``parts/rest.npz``."""
    from neurosurrogate.biophys.generate import map_chunks
    from neurosurrogate.inputs import EventTable

    rest_file = parts / "rest.npz"
    if not rest_file.exists():
        r = map_chunks(record_worker, [EventTable.empty()], 1, cell, 200.0)[0]
        np.savez(str(rest_file) + ".tmp.npz", v_mV=r["v_mV"], i_nA=r["i_nA"])
        os.replace(str(rest_file) + ".tmp.npz", rest_file)
    rest = np.load(rest_file)
    return float(rest["v_mV"][-50:].mean()), float(rest["i_nA"][-50:].mean())


def cmd_record(args) -> int:
    from neurosurrogate.biophys.generate import map_chunks

    d = load_steady_hay_dataset(args.data)
    cell = dataset_cell(d, args.morphology).to_dict()
    n_trials = d.n_trials if args.trials is None else min(args.trials, d.n_trials)
    parts = Path(str(args.out) + ".parts")

    def compute(idx):
        res = map_chunks(record_worker, [d.events[k] for k in idx], args.workers, cell, d.duration_ms)
        return {"v_mV": np.stack([r["v_mV"] for r in res]), "i_nA": np.stack([r["i_nA"] for r in res]),
                "sxy": np.array([r["sxy"] for r in res]), "sxx": np.array([r["sxx"] for r in res]),
                "spikes": np.array([json.dumps(r["spikes_ms"].tolist()) for r in res])}

    arrs = run_in_parts(parts, n_trials, args.chunk, {"--chunk": args.chunk, "--data": d.content_hash}, "record",
                        compute)
    v_rest, i_rest = rest_of(parts, cell)  # the driving voltage the soma sees at the steady state
    sxy = np.concatenate([a["sxy"] for a in arrs]).sum()
    sxx = np.concatenate([a["sxx"] for a in arrs]).sum()
    out = {"v_mV": np.concatenate([a["v_mV"] for a in arrs])[:n_trials],
           "i_nA": np.concatenate([a["i_nA"] for a in arrs])[:n_trials],
           "spikes": np.concatenate([a["spikes"] for a in arrs])[:n_trials],
           "v_rest_mV": v_rest, "i_rest_nA": i_rest,
           "g_fast_nS": float(-sxy / sxx * 1e3) if sxx > 0 else float("nan"),
           "data": str(args.data), "data_hash": d.content_hash}
    tmp = str(args.out) + ".tmp.npz"
    np.savez(tmp, **out)
    os.replace(tmp, args.out)
    print(f"record: {args.out}: {n_trials} trials; rest {out['v_rest_mV']:.2f} mV, {out['i_rest_nA']:.4f} nA; "
          f"fast-component conductance of the tree {out['g_fast_nS']:.1f} nS")
    return 0


def data_cell_dict(data: str, morphology: str) -> dict:
    """The configuration of the cell that made the dataset ``data``, on the morphology file ``morphology``."""
    return dataset_cell(load_steady_hay_dataset(data), morphology).to_dict()


def load_record(path) -> dict:
    z = np.load(path)
    r = {k: z[k] for k in z.files}
    r["spikes"] = [np.asarray(json.loads(str(s)), float) for s in r["spikes"]]
    return r


def driving_voltage(v_mV: np.ndarray, i_nA: np.ndarray, g_nS: float) -> np.ndarray:
    """E_d = V + I / g (mV) of 1 ms bin means; ``g_nS`` > 0."""
    return v_mV + i_nA / (g_nS * 1e-3)


# -- NEURON, the soma alone --------------------------------------------------------------------------------
class SomaAlone:
    """``n`` copies of the soma + axon stub of the cell (dendrites deleted after the biophysics is set), each
    with a drive at the soma: an ``SEClamp`` (a conductance ``g_nS`` to the voltage ``amp1``) or, with
    ``g_nS`` = 0, an ``IClamp`` (current ``amp``, nA). One NEURON run steps all copies together."""

    def __init__(self, cell_dict: dict, n: int, g_nS: float) -> None:
        os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
        from neurosurrogate.biophys.cells import cell_from_dict
        from neurosurrogate.biophys.hay import _h, apply_biophysics, load_morphology

        self.spec = spec = cell_from_dict(cell_dict)
        self.h = h = _h()
        self.g_nS = float(g_nS)
        self.cells, self.drives = [], []
        for _ in range(n):
            c = load_morphology(h, spec.morphology)
            apply_biophysics(h, c)
            for sec in list(c.basal) + list(c.apical):
                h.delete_section(sec=sec)
            seg = c.soma[0](0.5)
            if self.g_nS > 0:
                dr = h.SEClamp(seg)
                dr.rs = 1.0 / (self.g_nS * 1e-3)  # MOhm
                dr.dur1, dr.dur2, dr.dur3 = 1e9, 0.0, 0.0
            else:
                dr = h.IClamp(seg)
                dr.delay, dr.dur = 0.0, 1e9
            self.cells.append(c)
            self.drives.append(dr)
        self.v = [h.Vector().record(c.soma[0](0.5)._ref_v) for c in self.cells]

    def set(self, values) -> None:
        for dr, x in zip(self.drives, values):
            if self.g_nS > 0:
                dr.amp1 = float(x)
            else:
                dr.amp = float(x)

    def start(self, rest_value: float, v_rest_mV: float, settle_ms: float = 1000.0) -> float:
        """Initialise at ``v_rest_mV`` and relax ``settle_ms`` with the drive at ``rest_value``; returns the
        time (ms) at which trials start."""
        h = self.h
        h.celsius = self.spec.celsius_degC
        h.dt = self.spec.dt_ms
        h.steps_per_ms = 1.0 / self.spec.dt_ms
        h.secondorder = 0
        self.set([rest_value] * len(self.drives))
        h.finitialize(v_rest_mV)
        h.continuerun(settle_ms)
        return float(h.t)

    def advance(self, t_ms: float) -> None:
        self.h.continuerun(t_ms)

    def run(self, t0_ms: float, n_ms: int, drive_at) -> tuple[np.ndarray, np.ndarray]:
        """Step all copies ``n_ms`` ms from ``t0_ms``, 1 ms at a time: before ms ``t`` the drive of each copy is
        ``drive_at(t, v, s)``, where ``v`` (copies, n_ms) holds the soma's 1 ms mean voltages (mV) and ``s`` its
        spike bins (1 where it crossed the spike threshold), filled for the ms before ``t`` (the closed loop's view
        of the soma's past). Returns (v, s) of the whole run."""
        per_ms, thr = int(round(1.0 / self.spec.dt_ms)), self.spec.spike_threshold_mV
        v, s = np.zeros((len(self.v), n_ms)), np.zeros((len(self.v), n_ms))
        for t in range(n_ms):
            self.set(drive_at(t, v, s))
            self.advance(t0_ms + t + 1)
            i0 = int(round((t0_ms + t) / self.spec.dt_ms))
            for q, vec in enumerate(self.v):
                w = vec.as_numpy()[i0: i0 + per_ms + 1]
                v[q, t] = w[1:].mean()
                s[q, t] = float(np.any((w[:-1] < thr) & (w[1:] >= thr)))
        return v, s

    def voltages(self, t0_ms: float, n_ms: int) -> list[np.ndarray]:
        """Soma voltage of each copy at full resolution from ``t0_ms`` over ``n_ms``."""
        per_ms = int(round(1.0 / self.spec.dt_ms))
        k0 = int(round(t0_ms / self.spec.dt_ms))
        return [vec.as_numpy()[k0: k0 + n_ms * per_ms].copy() for vec in self.v]


def replay_worker(items: list, cell_dict: dict, g_nS: float, rest: tuple[float, float]) -> list[np.ndarray]:
    """Worker: each item a (T,) drive (E_d in mV, or current in nA for g = 0), held per ms; returns the soma
    voltage at full resolution of each."""
    soma = SomaAlone(cell_dict, len(items), g_nS)
    x, T = np.stack(items), len(items[0])
    t0 = soma.start(rest[0], rest[1])
    soma.run(t0, T, lambda t, v, s: x[:, t])
    return soma.voltages(t0, T)


def trials_of(args):
    """The record, the dataset, its cell on ``--morphology`` and the number of trials to run (``--trials``)."""
    rec = load_record(args.record)
    d = load_steady_hay_dataset(args.data)
    return rec, d, dataset_cell(d, args.morphology), min(len(rec["spikes"]), args.trials or 10**9)


def scored(name: str, vs: list, rec: dict, n: int, cell, t0: float) -> tuple[dict, list]:
    """:func:`score_row` of full-resolution soma voltages ``vs`` against the record's cell, and their spikes."""
    from neurosurrogate.data.trace import detect_spikes

    spikes = [detect_spikes(v, cell.dt_ms, cell.spike_threshold_mV) for v in vs]
    per_ms = int(round(1.0 / cell.dt_ms))
    vbin = np.stack([v.reshape(-1, per_ms).mean(1) for v in vs])
    return score_row(name, rec["spikes"][:n], spikes, rec["v_mV"][:n], vbin, time.time() - t0), spikes


def spike_kernel_worker(items: list, cell_dict: dict, s_mV: list, g_nS: float, rest: tuple[float, float],
                        own: bool) -> list[np.ndarray]:
    """Worker: the soma + axon alone under E_d = item's base drive (T,) + the spike kernel ``s_mV`` (lag >= 1) of
    the soma's own spikes (``own``) or of the item's recorded spike bins (T,). Soma voltage at full resolution."""
    soma = SomaAlone(cell_dict, len(items), g_nS)
    base, sb_rec = np.stack([it[0] for it in items]), np.stack([it[1] for it in items])
    t0 = soma.start(*rest)
    soma.run(t0, base.shape[1], lambda t, v, s: base[:, t] + past_sum(s_mV, s if own else sb_rec, t))
    return soma.voltages(t0, base.shape[1])


def replay_spike_kernel(args, rec: dict, cell, n: int) -> int:
    """``replay --spike-kernel``: the recorded E_d less the kernel of the cell's spikes (the exact target of a
    drive model trained with that kernel), plus the kernel of the recorded spikes (must replay the cell) or of the
    soma's own spikes (the closed loop with an exact input part), with ``--noise-mV`` on the base."""
    from neurosurrogate.biophys.generate import map_chunks

    k = load_spike_kernel(args.spike_kernel)
    g = k["g_nS"]
    T = rec["v_mV"].shape[1]
    sb = spike_bins(rec["spikes"][:n], T)
    base = driving_voltage(rec["v_mV"][:n], rec["i_nA"][:n], g) - spike_kernel_drive(k["s_mV"], sb, from_lag=0)
    rest = (float(driving_voltage(rec["v_rest_mV"], rec["i_rest_nA"], g)), float(rec["v_rest_mV"]))
    rows = []
    for own in (False, True):
        for noise in args.noise_mV:
            b = base + (ou_noise(base.shape, noise, args.noise_tau_ms, np.random.default_rng([args.seed, int(g)]))
                        if noise > 0 else 0.0)
            t0 = time.time()
            vs = map_chunks(spike_kernel_worker, [(b[q], sb[q]) for q in range(n)], args.workers, cell.to_dict(),
                            k["s_mV"], g, rest, own)
            row = scored("replay", vs, rec, n, cell, t0)[0]
            del row["model"]
            rows.append({"g_nS": g, "spikes_fed_back": "own" if own else "recorded", "noise_mV": noise,
                         "noise_tau_ms": args.noise_tau_ms if noise > 0 else 0.0, **row})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"record": str(args.record), "trials": n, "spike_kernel": str(args.spike_kernel),
                                              "rows": rows}, indent=1))
    return 0


def cmd_replay(args) -> int:
    from neurosurrogate.biophys.generate import map_chunks

    rec, d, cell, n = trials_of(args)
    rows = []
    if args.spike_kernel:
        return replay_spike_kernel(args, rec, cell, n)
    for g in args.g_nS:
        if g > 0:
            base = driving_voltage(rec["v_mV"][:n], rec["i_nA"][:n], g)
            rest = (float(driving_voltage(rec["v_rest_mV"], rec["i_rest_nA"], g)), float(rec["v_rest_mV"]))
        else:
            base = rec["i_nA"][:n]
            rest = (float(rec["i_rest_nA"]), float(rec["v_rest_mV"]))
        if args.hold_spike_bin:  # what a drive that cannot know the spike in its own bin would give there
            base = base.copy()
            for b, st in enumerate(rec["spikes"][:n]):
                k = np.floor(np.asarray(st)).astype(int)
                k = k[(k >= 1) & (k < base.shape[1])]
                base[b, k] = base[b, k - 1]
        for noise in args.noise_mV:
            drives = base
            if noise > 0:  # a smooth error of the drive (Ornstein-Uhlenbeck, stationary from t = 0)
                sd = noise * (1.0 if g > 0 else args.noise_g_nS * 1e-3)  # for a current drive: nA
                drives = base + ou_noise(base.shape, sd, args.noise_tau_ms,
                                                       np.random.default_rng([args.seed, int(g)]))
            t0 = time.time()
            vs = map_chunks(replay_worker, list(drives), args.workers, cell.to_dict(), g, rest) if args.workers > 1 \
                else replay_worker(list(drives), cell.to_dict(), g, rest)
            row = scored("replay", vs, rec, n, cell, t0)[0]
            del row["model"]
            rows.append({"g_nS": g, "hold_spike_bin": bool(args.hold_spike_bin), "noise_mV": noise,
                         "noise_tau_ms": args.noise_tau_ms if noise > 0 else 0.0, **row})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"record": str(args.record), "trials": n, "rows": rows}, indent=1))
    return 0


# -- the tree's own answer to the soma: can the drive be split into synapses + the soma's feedback? ---------
def tree_worker(tables: list, cell_dict: dict, duration_ms: float) -> list[dict]:
    """Worker: per table the whole cell as it runs (1 ms means of soma voltage and dendritic current, spike
    times), then the same cell without synapses with its soma clamped to that voltage (full resolution): the
    current the tree alone sends back to such a soma (``i_tree_nA``). For the chunk's first table also the clamp
    with the synapses on, which must give the free run's current back (``clamp_check_rms_nA``: the measurement's
    own error)."""
    from neurosurrogate.data.trace import detect_spikes
    from neurosurrogate.inputs import EventTable

    model = whole_cell(cell_dict)
    clamp = model.h.SEClamp(model.soma(0.5))
    clamp.rs, clamp.dur1, clamp.dur2, clamp.dur3 = 1e-3, 0.0, 0.0, 0.0  # MOhm; off until a run plays into it
    n, per_ms = int(round(duration_ms)), int(round(1.0 / model.spec.dt_ms))

    def bins(x):
        return x[: n * per_ms].reshape(n, per_ms).mean(1)

    out = []
    for j, events in enumerate(tables):
        v_all, i_nat = measure_run(model, events, duration_ms)
        i_tree = measure_run(model, EventTable.empty(), duration_ms, clamp, v_all)[1]
        row = {"v_mV": bins(v_all), "i_nA": bins(i_nat), "i_tree_nA": bins(i_tree),
               "spikes_ms": detect_spikes(v_all, model.spec.dt_ms, model.spec.spike_threshold_mV)}
        if j == 0:
            i_syn = measure_run(model, events, duration_ms, clamp, v_all)[1]
            row["clamp_check_rms_nA"] = float(np.sqrt(np.mean((bins(i_syn) - row["i_nA"]) ** 2)))
        out.append(row)
    return out


def lagged(x: np.ndarray, j: int, fill=0.0) -> np.ndarray:
    """x[..., t - j] at t (``fill`` before the start; with j = 1: what the soma's previous ms was)."""
    if j == 0:
        return x
    out = np.full_like(x, fill)
    out[..., j:] = x[..., :-j]
    return out


def past_sum(coefs, hist: np.ndarray, t: int):
    """sum_{j = 1 .. min(len(coefs) - 1, t)} coefs[j] hist[:, t - j]: a kernel over the past bins of ``hist``
    (copies, T) before bin ``t`` (0 when there are none)."""
    return sum(coefs[j] * hist[:, t - j] for j in range(1, min(len(coefs), t + 1)))


def fit_kernel(v_mV, i_nA, sb, v_rest_mV: float, lags: int, spike_lags: int, fit: slice) -> dict:
    """Least squares per 1 ms bin: I(t) = c + sum_{j=0..lags} b_j (V(t-j) - V_rest) + sum_{j=1..spike_lags} s_j S(t-j)
    (nA; V the bin mean in mV, S = 1 in a spike's bin; no s_0: a closed loop cannot know its spike before the bin
    is run), on the trials ``fit``; R^2 and RMS error (nA) on the others."""
    def design(rows):
        dv = v_mV[rows] - v_rest_mV
        cols = [np.ones_like(dv)] + [lagged(dv, j) for j in range(lags + 1)] + \
            [lagged(sb[rows], j) for j in range(1, spike_lags + 1)]
        return np.stack(cols, -1).reshape(-1, len(cols))

    coef = np.linalg.lstsq(design(fit), i_nA[fit].ravel(), rcond=None)[0]
    test = np.setdiff1d(np.arange(len(v_mV)), np.arange(len(v_mV))[fit])
    k = {"c": float(coef[0]), "b": coef[1: lags + 2].tolist(), "s": [0.0] + coef[lags + 2:].tolist(),
         "v_rest_mV": float(v_rest_mV), "g_nS": float(-coef[1] * 1e3)}
    k["loop_gain"] = float(np.sum(coef[2: lags + 2]) / -coef[1])  # E_d per mV of past V (1 = no damping)
    if test.size:
        y = i_nA[test].ravel()
        r = y - design(test) @ coef
        k.update({"r2_test": round(float(1 - r.var() / y.var()), 4), "rms_test_nA": round(float(r.std()), 4)})
    return k


def kernel_residual(k: dict, v_mV, i_nA, sb) -> np.ndarray:
    """The part of the dendrites' current that the kernel ``k`` does not attribute to the soma's own past (nA):
    I - c - sum b_j (V(t-j) - V_rest) - sum s_j S(t-j); with the recorded V and S it gives I back exactly."""
    dv = v_mV - k["v_rest_mV"]
    a = i_nA - k["c"] - sum(b * lagged(dv, j) for j, b in enumerate(k["b"]))
    return a - sum(s * lagged(sb, j) for j, s in enumerate(k["s"]) if j > 0)


def kernel_loop_worker(items: list, cell_dict: dict, k: dict, own: bool) -> list[np.ndarray]:
    """Worker: the soma + axon alone under the drive I = A(t) + kernel(past V, past spikes) as a Thevenin source
    (g = the kernel's -b_0, so the bin's own voltage term is the clamp's conductance), each item (A (T,) nA,
    recorded V (T,) mV, recorded spike bins (T,)). ``own``: the kernel sees the soma's own past; else the
    recorded one (which must give the replay of the recorded drive). Returns soma voltages at full resolution."""
    g, vr = k["g_nS"] * 1e-3, k["v_rest_mV"]
    soma = SomaAlone(cell_dict, len(items), k["g_nS"])
    a, v_rec, sb_rec = (np.stack([it[q] for it in items]) for q in range(3))
    T = a.shape[1]

    def drive_at(t, v, s):
        hv, hs = (v, s) if own else (v_rec, sb_rec)
        return vr + (k["c"] + a[:, t] + past_sum(k["b"], hv - vr, t) + past_sum(k["s"], hs, t)) / g

    t0 = soma.start(vr + k["c"] / g, vr)
    soma.run(t0, T, drive_at)
    return soma.voltages(t0, T)


def tree_oracle_worker(items: list, cell_dict: dict, duration_ms: float) -> list[np.ndarray]:
    """Worker: the whole cell without synapses, its soma given each item's current (T,) nA (1 ms means, played
    piecewise linear through the bin midpoints): the exact tree in place of a kernel. Soma voltage at full
    resolution."""
    from neurosurrogate.inputs import EventTable

    model = whole_cell(cell_dict)
    out = []
    for a in items:
        w = np.concatenate([[a[0]], 0.5 * (a[1:] + a[:-1]), [a[-1]]])
        v = model.run(EventTable.empty(), duration_ms, model.spec.dt_ms, i_soma_nA=w)["v"]
        out.append(v[: int(round(duration_ms)) * int(round(1.0 / model.spec.dt_ms))])
    return out


def cmd_tree(args) -> int:
    from neurosurrogate.biophys.generate import map_chunks

    d = load_steady_hay_dataset(args.data)
    cell = dataset_cell(d, args.morphology)
    n = min(args.trials, d.n_trials)
    dur = float(args.duration_ms or d.duration_ms)
    if dur > d.duration_ms:
        raise ValueError(f"--duration-ms {dur} is longer than the dataset's trials ({d.duration_ms} ms)")
    out = Path(args.out_dir)
    parts = out / "parts"
    t_start = time.time()

    def compute(idx):
        res = map_chunks(tree_worker, [d.events[q] for q in idx], args.workers, cell.to_dict(), dur)
        return {**{key: np.stack([r[key] for r in res]) for key in ("v_mV", "i_nA", "i_tree_nA")},
                "spikes": np.array([json.dumps(r["spikes_ms"].tolist()) for r in res]),
                "clamp_check_rms_nA": np.array([r.get("clamp_check_rms_nA", np.nan) for r in res])}

    z = run_in_parts(parts, n, args.chunk, {"--chunk": args.chunk, "--data": d.content_hash, "--duration-ms": dur},
                     "tree", compute)
    v_rest = rest_of(parts, cell.to_dict())[0]
    v, i_nat, i_tree = (np.concatenate([a[key] for a in z])[:n].astype(float) for key in ("v_mV", "i_nA", "i_tree_nA"))
    rec = {"v_mV": v, "spikes": [np.asarray(json.loads(str(x)), float) for a in z for x in a["spikes"]][:n]}
    check = np.concatenate([a["clamp_check_rms_nA"] for a in z])[:n]
    T = v.shape[1]
    sb = spike_bins(rec["spikes"], T)
    fit = slice(0, n - max(1, n // 5)) if n > 1 else slice(0, 1)
    kernels = {"V + spikes": fit_kernel(v, i_tree, sb, v_rest, args.lags, args.spike_lags, fit),
               "V only": fit_kernel(v, i_tree, sb, v_rest, args.lags, 0, fit)}
    for name, k in kernels.items():
        print(f"tree: kernel {name}: g {k['g_nS']:.1f} nS, loop gain {k['loop_gain']:.3f}, "
              f"held-out R2 {k.get('r2_test', float('nan'))}, RMS {k.get('rms_test_nA', float('nan'))} nA", flush=True)
    rows = []
    runs = [("kernel V + spikes, recorded past", kernels["V + spikes"], False),
            ("kernel V + spikes, own past", kernels["V + spikes"], True),
            ("kernel V only, own past", kernels["V only"], True)]
    for name, k, own in runs:
        a = kernel_residual(k, v, i_nat, sb)
        t0 = time.time()
        vs = map_chunks(kernel_loop_worker, [(a[q], v[q], sb[q]) for q in range(n)], args.workers, cell.to_dict(), k, own)
        rows.append(scored(name, vs, rec, n, cell, t0)[0])
        print(json.dumps(rows[-1]), flush=True)
    t0 = time.time()
    vs = map_chunks(tree_oracle_worker, list(i_nat - i_tree), args.workers, cell.to_dict(), dur)
    rows.append(scored("tree without synapses + the rest as a soma current", vs, rec, n, cell, t0)[0])
    print(json.dumps(rows[-1]), flush=True)
    res = {"data": str(args.data), "data_hash": d.content_hash, "trials": n, "duration_ms": dur,
           "fit_trials": fit.stop, "clamp_check_rms_nA": float(np.nanmax(check)),
           "current_sd_nA": float(i_nat.std()), "kernels": kernels, "rows": rows, "seconds": round(time.time() - t_start, 1)}
    tmp = out / "tree.json.tmp"
    tmp.write_text(json.dumps(res, indent=1))
    os.replace(tmp, out / "tree.json")
    print(f"tree: {out / 'tree.json'} ({res['seconds']:.0f} s)")
    return 0


# -- the learned dendrites ---------------------------------------------------------------------------------
FEEDBACK = {"none": 0, "spike": 1, "voltage": 2}
V_SCALE_MV = 20.0


def feedback_channels(kind: str, v_prev_mV: np.ndarray, spike_prev: np.ndarray, v_rest_mV: float) -> np.ndarray:
    """(..., n_fb) feedback inputs from the soma's previous ms: spike flag (``spike``) and also its clipped
    mean voltage (``voltage``, (min(max(v, -90), -40) - rest) / 20 mV)."""
    cols = []
    if FEEDBACK[kind] >= 1:
        cols.append(spike_prev.astype(np.float32))
    if FEEDBACK[kind] >= 2:
        cols.append(((np.clip(v_prev_mV, -90.0, -40.0) - v_rest_mV) / V_SCALE_MV).astype(np.float32))
    return np.stack(cols, -1) if cols else np.zeros(v_prev_mV.shape + (0,), np.float32)


def spike_bins(spikes: list, T: int) -> np.ndarray:
    """(n, T) 1 where a spike falls in the ms bin."""
    s = np.zeros((len(spikes), T), np.float32)
    for b, st in enumerate(spikes):
        k = np.floor(np.asarray(st)).astype(int)
        s[b, k[(k >= 0) & (k < T)]] = 1.0
    return s


def encoding_of(d):
    from neurosurrogate.surrogate.model import Encoding

    return Encoding(synapse_weights_nS=tuple(s["weight_nS"] for s in d.synapses), v_rest_mV=-75.0)


def input_covariates(d, n: int, T: int, taus_ms=(1.0, 3.0, 10.0, 30.0, 100.0)) -> np.ndarray:
    """(n, T, 1 + 2 len(taus)) a constant and the total excitatory and inhibitory conductance of the first ``n``
    trials' events per 1 ms bin (nS), each filtered by exponentials of ``taus_ms``: a linear model's view of the
    synaptic input (what :func:`fit_spike_kernel` uses so that the spike kernel does not absorb the input)."""
    from scipy.signal import lfilter

    enc = encoding_of(d)
    w = np.asarray(enc.synapse_weights_nS)
    exc = np.asarray([syn["kind"] == "exc" for syn in d.synapses])
    g = np.zeros((2, n, T))
    for k in range(n):
        f = enc.features(d.events[k], T)[:, 0::2] * w
        g[0, k], g[1, k] = f[:, exc].sum(1), f[:, ~exc].sum(1)
    cols = [np.ones((n, T))]
    for tau in taus_ms:
        a = np.exp(-1.0 / tau)
        cols += [lfilter([1.0], [1.0, -a], x, axis=-1) for x in g]
    return np.stack(cols, -1)


def fit_spike_kernel(rec: dict, d, n: int, g_nS: float, lags: int, skip_ms: int = 50) -> dict:
    """The cell's E_d (at ``g_nS``) after each of its spikes, as a fixed kernel: least squares of E_d on the input
    covariates and the spike bins of lag 0..``lags`` ms, on the first ``n`` trials (after ``skip_ms``). The
    kernel ``s`` (mV per spike, lag 0 first) is what the soma's own spikes bring back from the dendrites; a drive
    model learns E_d less the kernel of the cell's spikes, from the input alone, and the loop adds the kernel of
    the soma's own spikes (lag >= 1; the spike's own bin keeps the model's value)."""
    T = rec["v_mV"].shape[1]
    e = driving_voltage(rec["v_mV"][:n], rec["i_nA"][:n], g_nS)
    sb = spike_bins(rec["spikes"][:n], T)
    x = np.concatenate([input_covariates(d, n, T), np.stack([lagged(sb, j) for j in range(lags + 1)], -1)], -1)
    x, y = x[:, skip_ms:].reshape(-1, x.shape[-1]), e[:, skip_ms:].ravel()
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    r = y - x @ coef
    return {"g_nS": float(g_nS), "s_mV": coef[-(lags + 1):].tolist(), "trials": int(n),
            "rms_linear_fit_mV": round(float(r.std()), 3)}


def load_spike_kernel(path) -> dict:
    """A JSON of the ``spike-kernel`` subcommand (ValueError naming ``--spike-kernel`` if it is not one)."""
    try:
        k = json.loads(Path(path).read_text())
        s_mV, g = [float(x) for x in k["s_mV"]], float(k["g_nS"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--spike-kernel {path}: not a spike-kernel JSON of this script ({exc!r})") from None
    if len(s_mV) < 2 or not np.all(np.isfinite(s_mV)) or not (np.isfinite(g) and g > 0):
        raise ValueError(f"--spike-kernel {path}: needs >= 2 finite s_mV values and g_nS > 0")
    return {**k, "s_mV": s_mV, "g_nS": g}


def spike_kernel_drive(s_mV, sb: np.ndarray, from_lag: int = 1) -> np.ndarray:
    """sum_{j >= from_lag} s_j S(t - j): the kernel's drive (mV) of the spike bins ``sb`` (..., T)."""
    return sum(sj * lagged(sb, j) for j, sj in enumerate(s_mV) if j >= from_lag) + np.zeros_like(sb)


def cmd_spike_kernel(args) -> int:
    from neurosurrogate.data.io import provenance

    rec = load_record(args.record)
    d = load_steady_hay_dataset(args.data)
    n = min(len(rec["spikes"]), args.trials or 10**9)
    k = fit_spike_kernel(rec, d, n, args.g_nS, args.lags)
    k.update({"record": str(args.record), "data": str(args.data), "provenance": provenance()})
    tmp = Path(str(args.out) + ".tmp")
    tmp.write_text(json.dumps(k, indent=1))
    os.replace(tmp, args.out)
    print(f"spike-kernel: {args.out}: g {k['g_nS']} nS; s(0..5) = {np.round(k['s_mV'][:6], 1).tolist()} mV; "
          f"linear fit RMS {k['rms_linear_fit_mV']} mV")
    return 0


def cmd_train(args) -> int:
    import torch

    from neurosurrogate.data.dataset import load_dataset
    from neurosurrogate.data.io import provenance
    from neurosurrogate.surrogate.base import build

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    rec = load_record(args.record)
    d = load_dataset(args.data)
    n = len(rec["spikes"])
    T = rec["v_mV"].shape[1]
    enc = encoding_of(d)
    kernel = load_spike_kernel(args.spike_kernel) if args.spike_kernel else None
    if kernel is not None and (args.feedback != "none" or kernel["g_nS"] != args.g_nS):
        raise ValueError(f"--spike-kernel {args.spike_kernel} (g {kernel['g_nS']} nS) needs --feedback none and "
                         f"--g-nS {kernel['g_nS']}: the kernel is the feedback")
    e_rest = float(driving_voltage(rec["v_rest_mV"], rec["i_rest_nA"], args.g_nS))
    sb = spike_bins(rec["spikes"], T)
    e_d = driving_voltage(rec["v_mV"], rec["i_nA"], args.g_nS)
    if kernel is not None:  # the drive less what the cell's own spikes brought back (the lag-0 term too)
        e_d = e_d - spike_kernel_drive(kernel["s_mV"], sb, from_lag=0)
    target = (e_d - e_rest) / V_SCALE_MV
    fb = feedback_channels(args.feedback, lagged(rec["v_mV"], 1, rec["v_rest_mV"]), lagged(sb, 1),
                           float(rec["v_rest_mV"]))
    x = np.concatenate([np.stack([enc.features(d.events[k], T) for k in range(n)]), fb], -1)
    weight = np.ones_like(target, dtype=np.float32)
    if args.mask_spike_ms:  # the spike's bin and the next ones: the soma's own dynamics, not the dendrites'
        for k in range(args.mask_spike_ms):
            weight[:, k:] *= 1.0 - sb[:, : T - k]
    x, z, w = torch.from_numpy(x), torch.from_numpy(target.astype(np.float32)), torch.from_numpy(weight)
    net = build("gru", x.shape[-1], 3, hidden=args.hidden, layers=2, traces=4, dropout=args.dropout)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    step, log, elapsed = 0, [], 0.0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():  # resume: same data, same arguments (the config is checked), same random streams
        ck = torch.load(ckpt, weights_only=False)
        if ck["args"] != vars_of(args):
            raise ValueError(f"--out {out}: its checkpoint was made with other arguments ({ck['args']}); "
                             "remove it or choose another --out")
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        step, log, elapsed = ck["step"], ck["log"], ck["elapsed"]
        print(f"train: resumed at step {step}", flush=True)
    t0 = time.time() - elapsed
    net.train()
    while step < args.steps:
        idx = rng.choice(n, size=min(args.batch, n), replace=False)
        xb, zb, wb = x[idx], z[idx], w[idx]
        state = None
        for c in range(0, T, args.chunk_ms):
            y, state = net(xb[:, c:c + args.chunk_ms], state)
            wc = wb[:, c:c + args.chunk_ms]
            loss = torch.sum(wc * (y[..., 0] - zb[:, c:c + args.chunk_ms]) ** 2) / wc.sum().clamp(min=1.0)
            p = min(step / args.steps, 1.0)
            for g in opt.param_groups:
                g["lr"] = args.lr_final + 0.5 * (args.lr - args.lr_final) * (1 + np.cos(np.pi * p))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            state = tuple(s.detach() for s in state)
            step += 1
            if step % 100 == 0:
                log.append({"step": step, "loss": float(loss.detach()), "s": round(time.time() - t0, 1)})
                print(json.dumps(log[-1]), flush=True)
            if step % 250 == 0 or step >= args.steps or step == args.stop_after:
                torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "rng": rng.bit_generator.state,
                            "torch_rng": torch.get_rng_state(), "step": step, "log": log,
                            "elapsed": time.time() - t0, "args": vars_of(args)}, str(ckpt) + ".tmp")
                os.replace(str(ckpt) + ".tmp", ckpt)
            if step >= args.steps or (args.stop_after and step >= args.stop_after):
                break
        if args.stop_after and step >= args.stop_after and step < args.steps:
            print(f"train: stopped at step {step} (--stop-after); run again to resume", flush=True)
            return 0
    net.eval()
    meta = {"g_nS": args.g_nS, "e_rest_mV": e_rest, "v_rest_mV": float(rec["v_rest_mV"]), "feedback": args.feedback,
            "spike_kernel_mV": kernel["s_mV"] if kernel is not None else None,
            "mask_spike_ms": args.mask_spike_ms, "n_in": int(x.shape[-1]), "hidden": args.hidden, "dropout": args.dropout, "steps": args.steps,
            "seed": args.seed, "record": str(args.record), "data": str(args.data), "train_s": round(time.time() - t0, 1),
            "log": log, "args": vars_of(args), "provenance": provenance()}
    tmp = out / "net.pt.tmp"
    torch.save({"state": net.state_dict(), "meta": meta}, tmp)
    os.replace(tmp, out / "net.pt")
    print(f"train: {out / 'net.pt'} in {meta['train_s']:.0f} s")
    return 0


def vars_of(args) -> dict:
    """The training arguments as plain values (what a checkpoint must match to be resumed)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items()) if k != "stop_after"}


def load_net(path):
    import torch

    from neurosurrogate.surrogate.base import build

    ck = torch.load(Path(path) / "net.pt", weights_only=False)
    m = ck["meta"]
    net = build("gru", m["n_in"], 3, hidden=m["hidden"], layers=2, traces=4, dropout=m["dropout"])
    net.load_state_dict(ck["state"])
    net.eval()
    net.set_rest_from_silence(2000)
    return net, m


def loop_worker(items: list, cell_dict: dict, model_dir: str, seed: int, offset_mV: float = 0.0) -> list[tuple]:
    """Worker: the GRU and the exact soma in closed loop on each item's (T, n_syn_features) input features;
    returns per item the soma voltage at full resolution and the drive E_d the GRU gave (T,), mV. ``offset_mV``
    is added to every drive (a calibration knob like a surrogate's spike threshold: lower fires less)."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net, m = load_net(model_dir)
    B, T = len(items), items[0].shape[0]
    soma = SomaAlone(cell_dict, B, m["g_nS"])
    t0 = soma.start(m["e_rest_mV"], m["v_rest_mV"])
    x = torch.from_numpy(np.stack(items))
    state = [net.init_state(B)]
    drive = np.empty((B, T))
    kern = m.get("spike_kernel_mV") or [0.0]

    def drive_at(t, v, s):
        v_prev = v[:, t - 1] if t > 0 else np.full(B, m["v_rest_mV"])
        s_prev = s[:, t - 1] if t > 0 else np.zeros(B)
        fb = torch.from_numpy(feedback_channels(m["feedback"], v_prev, s_prev, m["v_rest_mV"]))
        y, state[0] = net.step(torch.cat([x[:, t], fb], -1), state[0])
        drive[:, t] = m["e_rest_mV"] + V_SCALE_MV * y[:, 0].numpy() + offset_mV + past_sum(kern, s, t)
        return drive[:, t]

    with torch.no_grad():
        soma.run(t0, T, drive_at)
    return list(zip(soma.voltages(t0, T), drive))


def prespike(sb: np.ndarray, bins: int = 3) -> np.ndarray:
    """(n, T) bool: the ``bins`` ms bins before each spike bin of ``sb`` (spike bins themselves may be among them
    when spikes follow within ``bins`` ms)."""
    pre = np.zeros(sb.shape, bool)
    for k in range(1, bins + 1):
        pre[:, : sb.shape[1] - k] |= sb[:, k:] > 0
    return pre


def drive_stats(pred: np.ndarray, rec: dict, g_nS: float, prefix: str) -> dict:
    """A drive ``pred`` (n, T) against the cell's E_d, in the bins that are not a spike's own: RMS error (mV) and
    the mean error in the 3 bins before each of the cell's spikes (mV; < 0: the drive that should trigger the
    spike is too low); keys ``{prefix}_rms_mV``, ``{prefix}_err_prespike_mV``."""
    n = pred.shape[0]
    true = driving_voltage(rec["v_mV"][:n], rec["i_nA"][:n], g_nS)
    sb = spike_bins(rec["spikes"][:n], true.shape[1])
    keep = sb == 0
    e = pred - true
    return {f"{prefix}_rms_mV": round(float(np.sqrt(np.mean(e[keep] ** 2))), 3),
            f"{prefix}_err_prespike_mV": round(float(e[prespike(sb) & keep].mean()), 3)}


def drive_errors(net, m: dict, rec: dict, feats: list) -> dict:
    """:func:`drive_stats` of the GRU's E_d teacher forced (the cell's own spikes and voltage fed back), and the
    slope of predicted on true in the kept bins (1 = unshrunk)."""
    import torch

    n, T = len(feats), feats[0].shape[0]
    sb = spike_bins(rec["spikes"][:n], T)
    fb = feedback_channels(m["feedback"], lagged(rec["v_mV"][:n], 1, rec["v_rest_mV"]), lagged(sb, 1),
                           float(rec["v_rest_mV"]))
    with torch.no_grad():
        y, _ = net(torch.from_numpy(np.concatenate([np.stack(feats), fb], -1)))
    pred = m["e_rest_mV"] + V_SCALE_MV * y[..., 0].numpy()
    if m.get("spike_kernel_mV"):
        pred = pred + spike_kernel_drive(m["spike_kernel_mV"], sb)
    keep = sb == 0
    t = driving_voltage(rec["v_mV"][:n], rec["i_nA"][:n], m["g_nS"])[keep]
    t, q = t - t.mean(), pred[keep] - pred[keep].mean()
    stats = drive_stats(pred, rec, m["g_nS"], "drive")
    return {"drive_rms_mV": stats["drive_rms_mV"], "drive_slope": round(float(np.dot(t, q) / np.dot(t, t)), 3),
            "drive_err_prespike_mV": stats["drive_err_prespike_mV"]}


def cmd_loop(args) -> int:
    from neurosurrogate.biophys.generate import map_chunks

    rec, d, cell, n = trials_of(args)
    T = rec["v_mV"].shape[1]
    enc = encoding_of(d)
    feats = [enc.features(d.events[k], T) for k in range(n)]
    rows = []
    for model_dir, offset in [(m, o) for m in args.model for o in args.offset_mV]:
        t0 = time.time()
        res = map_chunks(loop_worker, feats, args.workers, cell.to_dict(), str(model_dir), args.seed, offset)
        row, spikes = scored(str(model_dir), [r[0] for r in res], rec, n, cell, t0)
        row["offset_mV"] = offset
        rows.append(row)
        net, meta = load_net(model_dir)
        rows[-1].update(drive_errors(net, meta, rec, feats))
        rows[-1].update(drive_stats(np.stack([r[1] for r in res]), rec, meta["g_nS"], "loop_drive"))
        rows[-1]["spikes_ms"] = [np.round(s, 2).tolist() for s in spikes]
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "spikes_ms"}), flush=True)
    if args.baseline:
        from neurosurrogate.surrogate.model import SurrogateModel

        for b in args.baseline:
            t0 = time.time()
            tr = SurrogateModel.load(b).predict(list(d.events)[:n], d.duration_ms)
            rows.append(score_row(f"baseline {b}", rec["spikes"][:n], [t.spike_times_ms for t in tr], rec["v_mV"][:n],
                                  np.stack([t.v_mV for t in tr]), time.time() - t0))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"record": str(args.record), "trials": n, "rows": rows}, indent=1))
    return 0


def score_row(name: str, true_spikes, pred_spikes, v_true, v_pred, seconds: float) -> dict:
    """Spike precision/recall/F1 at +-10 and +-2 ms, median |shift|, and the 1 ms soma voltage both clipped at
    -55 mV away from the cell's spikes (from 2 ms before to 5 ms after each): r, RMS error, and the fraction of
    that time above -57 mV in the model and in the cell (README item 14: the surrogates hardly go there)."""
    from neurosurrogate.evaluate.metrics import pearson_r, pooled_spike_fidelity

    f = pooled_spike_fidelity(true_spikes, pred_spikes, windows_ms=(10.0, 2.0))
    T = v_true.shape[1]
    keep = np.ones_like(v_true, bool)
    for b, st in enumerate(true_spikes):
        for s in np.asarray(st):
            keep[b, max(0, int(s) - 2): min(T, int(s) + 5)] = False
    a, p = np.minimum(v_true, -55.0)[keep], np.minimum(v_pred, -55.0)[keep]
    f1 = 2 * f["precision_10ms"] * f["recall_10ms"] / max(f["precision_10ms"] + f["recall_10ms"], 1e-12)
    return {"model": name, "F1_10ms": round(f1, 4), **{k: round(float(v), 4) for k, v in f.items()},
            "r_sub": round(float(pearson_r(a, p)), 4), "rms_sub_mV": round(float(np.sqrt(np.mean((a - p) ** 2))), 3),
            "above_57_model": round(float(np.mean(p > -57.0)), 4), "above_57_cell": round(float(np.mean(a > -57.0)), 4),
            "seconds": round(seconds, 1)}


REPORT_COLUMNS = ("F1_10ms", "precision_10ms", "recall_10ms", "precision_2ms", "recall_2ms", "median_abs_shift_ms",
                  "n_spikes_pred", "r_sub", "rms_sub_mV", "above_57_model", "above_57_cell", "drive_rms_mV",
                  "drive_slope", "drive_err_prespike_mV", "loop_drive_rms_mV", "loop_drive_err_prespike_mV")


def report_lines(path) -> list[str]:
    """A Markdown table of the rows of a ``replay`` or ``loop`` JSON."""
    res = json.loads(Path(path).read_text())
    rows = res["rows"]
    keys = [k for k in ("model", "offset_mV", "g_nS", "hold_spike_bin", "spikes_fed_back", "noise_mV", "noise_tau_ms")
            if any(k in r for r in rows)]
    cols = keys + [c for c in REPORT_COLUMNS if any(c in r for r in rows)]
    out = [f"{Path(path).name}: {res['trials']} trials of {res.get('record', res.get('data'))}", "",
           "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return out + [""]


def cmd_report(args) -> int:
    for path in args.json:
        print("\n".join(report_lines(path)))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="the whole cell's soma voltage and dendritic current per ms (NEURON)")
    r.add_argument("--data", required=True, help="a hay-l5pc dataset (HDF5) whose event tables to simulate")
    r.add_argument("--morphology", required=True, help="the cell's morphology file (.asc)")
    r.add_argument("--out", required=True, type=Path, help="NPZ to write (parts beside it while running)")
    r.add_argument("--trials", type=int, default=None, help="only the first N trials")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--chunk", type=int, default=20, help="trials per part file (resume granularity)")
    q = sub.add_parser("replay", help="drive the soma + axon alone with the recorded dendritic drive")
    q.add_argument("--record", required=True, type=Path)
    q.add_argument("--data", required=True)
    q.add_argument("--morphology", required=True)
    q.add_argument("--g-nS", type=float, nargs="+", default=list(DEFAULT_G_NS),
                   help="conductances of the Thevenin drive, nS (0 = the current held per ms)")
    q.add_argument("--trials", type=int, default=None)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--noise-mV", type=float, nargs="+", default=[0.0],
                   help="add a smooth error of this SD (mV of E_d) to the drive, one row per value: how exact must "
                        "E_d be? (0 = none)")
    q.add_argument("--noise-tau-ms", type=float, default=10.0, help="correlation time of that error, ms")
    q.add_argument("--noise-g-nS", type=float, default=80.0,
                   help="for the current drive (g = 0): the noise in nA is noise-mV times this conductance")
    q.add_argument("--hold-spike-bin", action="store_true",
                   help="in each ms bin where the cell spikes, hold the previous bin's drive (the spike's own "
                        "outflow into the dendrites left out, as a model trained with --mask-spike-ms 1 would)")
    q.add_argument("--spike-kernel", type=Path, default=None,
                   help="a spike-kernel JSON: instead of the rows above, the drive less the kernel of the cell's spikes "
                        "plus the kernel of the recorded spikes and then of the soma's own (closed loop)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default=None, help="JSON of the scores")
    t = sub.add_parser("train", help="fit the GRU that predicts the dendrites' driving voltage E_d")
    t.add_argument("--record", required=True, type=Path, help="record NPZ of the training trials")
    t.add_argument("--data", required=True, help="the dataset whose events the record simulated")
    t.add_argument("--out", required=True, help="folder for net.pt")
    t.add_argument("--g-nS", type=float, default=80.0, help="conductance of the Thevenin drive, nS")
    t.add_argument("--feedback", choices=sorted(FEEDBACK), default="spike",
                   help="what the GRU sees of the soma's previous ms")
    t.add_argument("--spike-kernel", type=Path, default=None,
                   help="a spike-kernel JSON: learn E_d less the kernel of the cell's spikes (with --feedback none); "
                        "the loop adds the kernel of the soma's own spikes")
    t.add_argument("--mask-spike-ms", type=int, default=0,
                   help="leave each spike's ms bin and the next N-1 out of the loss (the drive there is the soma's "
                        "spike flowing into the dendrites; 0 = keep all)")
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--chunk-ms", type=int, default=500)
    t.add_argument("--hidden", type=int, default=64)
    t.add_argument("--dropout", type=float, default=0.15)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--lr-final", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--stop-after", type=int, default=0,
                   help="stop after this many steps with a checkpoint (run again to resume; 0 = run to the end)")
    lp = sub.add_parser("loop", help="the GRU and the exact soma in closed loop, scored against the cell")
    lp.add_argument("--record", required=True, type=Path, help="record NPZ of the evaluation trials")
    lp.add_argument("--data", required=True)
    lp.add_argument("--morphology", required=True)
    lp.add_argument("--model", nargs="+", required=True, help="folders of train")
    lp.add_argument("--baseline", nargs="*", default=[], help="surrogate model folders scored on the same trials")
    lp.add_argument("--trials", type=int, default=None)
    lp.add_argument("--workers", type=int, default=2)
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--offset-mV", type=float, nargs="+", default=[0.0],
                    help="add this to every drive E_d the GRU gives, mV (calibration: lower fires less); several "
                         "values: a row per model and value")
    lp.add_argument("--out", default=None, help="JSON of the scores")
    tr = sub.add_parser("tree", help="the tree's own answer to the soma (clamped, no synapses) and closed-loop oracles")
    tr.add_argument("--data", required=True, help="a hay-l5pc dataset (HDF5) whose event tables to simulate")
    tr.add_argument("--morphology", required=True)
    tr.add_argument("--out-dir", required=True, type=Path, help="folder for tree.json (parts beside it: resumable)")
    tr.add_argument("--trials", type=int, default=28, help="the first N trials (the last N // 5 test the kernel)")
    tr.add_argument("--duration-ms", type=float, default=None, help="only the first ms of each trial (default: all)")
    tr.add_argument("--lags", type=int, default=40, help="ms of the soma's past voltage in the kernel")
    tr.add_argument("--spike-lags", type=int, default=40, help="ms of the soma's past spikes in the kernel")
    tr.add_argument("--workers", type=int, default=2)
    tr.add_argument("--chunk", type=int, default=4, help="trials per part file (resume granularity)")
    sk = sub.add_parser("spike-kernel", help="fit the drive the soma's own spikes bring back (a fixed kernel)")
    sk.add_argument("--record", required=True, type=Path, help="record NPZ of training trials")
    sk.add_argument("--data", required=True, help="the dataset whose events the record simulated")
    sk.add_argument("--g-nS", type=float, default=40.0, help="conductance of the Thevenin drive, nS")
    sk.add_argument("--lags", type=int, default=60, help="ms after a spike that the kernel covers")
    sk.add_argument("--trials", type=int, default=100, help="fit on the first N trials")
    sk.add_argument("--out", required=True, type=Path, help="JSON to write")
    rp = sub.add_parser("report", help="Markdown tables of replay / loop JSON files")
    rp.add_argument("json", nargs="+", type=Path)
    args = p.parse_args(argv)
    g = getattr(args, "g_nS", None)
    if g is not None and (min(np.atleast_1d(g)) < 0 or not np.all(np.isfinite(g))):
        p.error(f"--g-nS must be finite conductances >= 0 nS, got {g}")
    if args.cmd in ("train", "spike-kernel") and not args.g_nS > 0:
        p.error(f"--g-nS must be > 0 nS for train (the drive is g (E_d - V)), got {args.g_nS}")
    for name in ("steps", "batch", "chunk_ms", "hidden", "workers", "chunk", "trials", "lags"):
        val = getattr(args, name, None)
        if val is not None and val < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {val}")
    for name in ("record", "data", "morphology", "spike_kernel"):
        path = getattr(args, name, None)
        if path is not None and not Path(path).is_file():
            p.error(f"--{name.replace('_', '-')} {path}: no such file")
    if getattr(args, "spike_lags", 0) < 0:
        p.error(f"--spike-lags must be >= 0, got {args.spike_lags}")
    if getattr(args, "duration_ms", None) is not None and not (np.isfinite(args.duration_ms) and args.duration_ms >= 1):
        p.error(f"--duration-ms must be >= 1 ms, got {args.duration_ms}")
    if getattr(args, "spike_kernel", None) is not None:
        try:
            load_spike_kernel(args.spike_kernel)
        except ValueError as exc:
            p.error(str(exc))
    for path in getattr(args, "json", None) or []:
        if not path.is_file():
            p.error(f"{path}: no such file")
    for m in getattr(args, "model", None) or []:
        if not (Path(m) / "net.pt").is_file():
            p.error(f"--model {m}: no net.pt (a folder written by the train subcommand)")
    try:
        return {"record": cmd_record, "replay": cmd_replay, "train": cmd_train, "loop": cmd_loop,
                "tree": cmd_tree, "spike-kernel": cmd_spike_kernel, "report": cmd_report}[args.cmd](args)
    except ValueError as exc:  # a dataset that is not a hay-l5pc one from the steady state, and the like
        p.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())
