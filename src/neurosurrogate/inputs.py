"""Synaptic event tables: validation, generators, files, binning to 1 ms channels.

An event table is the user's input format (as NEURON's VecStim + NetCon):
three equal-length arrays

* ``t_ms``      (float64, ms): event (conductance onset) times, >= 0, finite;
* ``synapse``   (int64): index into the cell's synapse table;
* ``weight_nS`` (float64, nS): peak conductance of that event, finite, >= 0.

Generators
----------
* :func:`poisson_events` / :func:`uniform_events`: independent events per
  synapse at a given rate (Hz) per synapse, Poisson process or a fixed count
  uniformly spread over the duration.
* :func:`paper_protocol_events`: the protocol of Olah, Pedersen & Rowan (2022)
  for the point neuron: events on integer milliseconds, excitatory to
  inhibitory event counts 8:3, an activity scale drawn per trial (uniform in
  [0, 1] times the maximal rate), and a fraction of trials with no input.

Weights are fixed (each synapse's default) or drawn per event from a
log-normal distribution with the default as its mean and a given coefficient
of variation.
"""

from __future__ import annotations

import csv
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "EventTable",
    "EventTableError",
    "bin_events",
    "paper_protocol_events",
    "poisson_events",
    "uniform_events",
    "draw_weights",
    "mixed_protocol_events",
    "protocol_events",
    "protocol_events_with_probes",
    "parse_synapses",
    "ou_noise",
]


class EventTableError(ValueError):
    """An event table or event file is malformed (message names field and row)."""


@dataclass(frozen=True)
class EventTable:
    """Validated, time-sorted synaptic events.

    Attributes:
        t_ms: (n,) float64 event times in ms, sorted ascending.
        synapse: (n,) int64 synapse indices.
        weight_nS: (n,) float64 peak conductances in nS.
    """

    t_ms: np.ndarray
    synapse: np.ndarray
    weight_nS: np.ndarray

    def __post_init__(self) -> None:
        t, s, w = _validated(self.t_ms, self.synapse, self.weight_nS)
        object.__setattr__(self, "t_ms", t)
        object.__setattr__(self, "synapse", s)
        object.__setattr__(self, "weight_nS", w)

    @classmethod
    def empty(cls) -> "EventTable":
        return cls(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0))

    def __len__(self) -> int:
        return int(self.t_ms.size)

    def check_synapses(self, n_synapses: int) -> "EventTable":
        """Raise :class:`EventTableError` if a synapse index is not in ``range(n_synapses)``."""
        bad = np.flatnonzero((self.synapse < 0) | (self.synapse >= n_synapses))
        if bad.size:
            r = int(bad[0])
            raise EventTableError(
                f"field 'synapse', row {r}: index {int(self.synapse[r])} is not a synapse of this cell "
                f"(expected 0..{n_synapses - 1}); {bad.size} row(s) affected"
            )
        return self

    def window(self, start_ms: float, stop_ms: float) -> "EventTable":
        """Events with ``start_ms <= t < stop_ms``, times shifted by ``-start_ms``."""
        m = (self.t_ms >= start_ms) & (self.t_ms < stop_ms)
        return EventTable(self.t_ms[m] - start_ms, self.synapse[m], self.weight_nS[m])

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"t_ms": self.t_ms, "synapse": self.synapse, "weight_nS": self.weight_nS}

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write NPZ or CSV (by suffix) atomically."""
        from neurosurrogate.data.io import atomic_path

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".npz", ".csv"):
            raise EventTableError(f"event file {path}: expected a .npz or .csv suffix")
        with atomic_path(path) as tmp:
            if suffix == ".npz":
                with open(tmp, "wb") as fh:
                    np.savez(fh, **self.to_dict())
            else:
                with open(tmp, "w", newline="") as fh:
                    wr = csv.writer(fh)
                    wr.writerow(["t_ms", "synapse", "weight_nS"])
                    for t, s, w in zip(self.t_ms, self.synapse, self.weight_nS):
                        wr.writerow([repr(float(t)), int(s), repr(float(w))])
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EventTable":
        """Read an NPZ (arrays ``t_ms``, ``synapse``, ``weight_nS``) or CSV with that header."""
        path = Path(path)
        if not path.exists():
            raise EventTableError(f"event file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    missing = [k for k in ("t_ms", "synapse", "weight_nS") if k not in z.files]
                    if missing:
                        raise EventTableError(
                            f"event file {path}: missing array(s) {missing}; found {sorted(z.files)}"
                        )
                    return cls(z["t_ms"], z["synapse"], z["weight_nS"])
            except (OSError, ValueError) as exc:
                if isinstance(exc, EventTableError):
                    raise
                raise EventTableError(f"event file {path}: not a readable NPZ ({exc})") from None
        if suffix == ".csv":
            return cls(*_read_csv(path))
        raise EventTableError(f"event file {path}: expected a .npz or .csv suffix")


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise EventTableError(f"event file {path}: empty (expected header t_ms,synapse,weight_nS)")
    header = [h.strip() for h in rows[0]]
    cols = {}
    for name in ("t_ms", "synapse", "weight_nS"):
        if name not in header:
            raise EventTableError(f"event file {path}: header lacks column '{name}' (found {header})")
        cols[name] = header.index(name)
    out: dict[str, list] = {k: [] for k in cols}
    for r, row in enumerate(rows[1:]):
        if not row or all(not c.strip() for c in row):
            continue
        for name, j in cols.items():
            try:
                cell = row[j]
                out[name].append(float(cell))
            except (IndexError, ValueError):
                raise EventTableError(
                    f"event file {path}: field '{name}', row {r}: {row[j] if j < len(row) else '(missing)'!r} "
                    "is not a number"
                ) from None
    s = np.asarray(out["synapse"], dtype=float)
    if s.size and np.any(s != np.round(s)):
        r = int(np.flatnonzero(s != np.round(s))[0])
        raise EventTableError(f"event file {path}: field 'synapse', row {r}: {s[r]} is not an integer")
    return np.asarray(out["t_ms"]), s.astype(np.int64), np.asarray(out["weight_nS"])


def _as_1d(name: str, a, dtype) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise EventTableError(f"field '{name}': expected a 1-D array, got shape {arr.shape}")
    if dtype is np.int64:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
                raise EventTableError(f"field '{name}': expected integer synapse indices, got dtype {arr.dtype}")
            f = arr.astype(float)
            bad = np.flatnonzero(~np.isfinite(f) | (f != np.round(f)))
            if bad.size:
                raise EventTableError(f"field '{name}', row {int(bad[0])}: {arr[bad[0]].item()!r} is not an integer index")
        return arr.astype(np.int64)
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise EventTableError(f"field '{name}': expected numbers, got dtype {arr.dtype}") from None


def _validated(t, s, w):
    t = _as_1d("t_ms", t, np.float64)
    s = _as_1d("synapse", s, np.int64)
    w = _as_1d("weight_nS", w, np.float64)
    if not (t.size == s.size == w.size):
        raise EventTableError(
            f"fields 't_ms', 'synapse', 'weight_nS' must have equal length, got {t.size}, {s.size}, {w.size}"
        )
    for name, arr, what in (("t_ms", t, "time"), ("weight_nS", w, "weight")):
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
        if bad.size:
            r = int(bad[0])
            raise EventTableError(
                f"field '{name}', row {r}: {arr[r]!r} is not a finite non-negative {what}; {bad.size} row(s) affected"
            )
    bad = np.flatnonzero(s < 0)
    if bad.size:
        r = int(bad[0])
        raise EventTableError(f"field 'synapse', row {r}: negative index {int(s[r])}")
    order = np.argsort(t, kind="stable")
    return t[order], s[order], w[order]


# ---------------------------------------------------------------------------------------------
# weights and generators
# ---------------------------------------------------------------------------------------------
def draw_weights(
    default_nS: np.ndarray, rng: np.random.Generator, cv: float = 0.0
) -> np.ndarray:
    """Per-event weights: the synapse default (cv = 0) or log-normal with that mean and CV.

    Args:
        default_nS: (n,) default weight of each event's synapse, nS.
        rng: random generator.
        cv: coefficient of variation (std/mean) of the log-normal; 0 = fixed weights.
    """
    default_nS = np.asarray(default_nS, dtype=float)
    if cv < 0 or not np.isfinite(cv):
        raise ValueError(f"weight_cv must be finite and >= 0, got {cv}")
    if cv == 0:
        return default_nS.copy()
    sigma2 = np.log1p(cv * cv)
    return default_nS * rng.lognormal(-0.5 * sigma2, np.sqrt(sigma2), size=default_nS.shape)


def parse_synapses(text: str, n_synapses: int | None = None) -> list[int] | None:
    """The ``--synapses`` option of the scripts: comma-separated synapse indices; None if ``text`` is blank.

    Raises:
        ValueError: not whole numbers, or (given ``n_synapses``) an index outside 0..n_synapses - 1.
    """
    if not text.strip():
        return None
    try:
        syns = [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--synapses: expected comma-separated whole numbers, got {text!r}") from None
    if n_synapses is not None and (min(syns) < 0 or max(syns) >= n_synapses):
        raise ValueError(f"--synapses: indices must lie in 0..{n_synapses - 1}")
    return syns


def _check_rate(name: str, rate: float) -> None:
    if not np.isfinite(rate) or rate < 0:
        raise ValueError(f"{name} must be a finite rate >= 0 Hz, got {rate}")


def _check_duration(duration_ms: float) -> None:
    if not np.isfinite(duration_ms) or duration_ms <= 0:
        raise ValueError(f"duration_ms must be > 0, got {duration_ms}")


def _assemble(times: list[np.ndarray], syns: list[np.ndarray], defaults: Sequence[float], rng, weight_cv) -> EventTable:
    t = np.concatenate(times) if times else np.zeros(0)
    s = np.concatenate(syns).astype(np.int64) if syns else np.zeros(0, dtype=np.int64)
    w = draw_weights(np.asarray(defaults, dtype=float)[s], rng, weight_cv) if s.size else np.zeros(0)
    return EventTable(t, s, w)


def poisson_events(
    rates_Hz: Sequence[float],
    default_weights_nS: Sequence[float],
    duration_ms: float,
    rng: np.random.Generator,
    weight_cv: float = 0.0,
) -> EventTable:
    """Independent homogeneous Poisson events on each synapse.

    Args:
        rates_Hz: (n_synapses,) event rate of each synapse, Hz.
        default_weights_nS: (n_synapses,) default peak conductance per synapse, nS.
        duration_ms: length of the trial, ms.
        rng: random generator (the only source of randomness).
        weight_cv: coefficient of variation of log-normal weights (0 = fixed).
    """
    _check_duration(duration_ms)
    times, syns = [], []
    for i, r in enumerate(rates_Hz):
        _check_rate(f"rates_Hz[{i}]", r)
        n = rng.poisson(r * duration_ms / 1000.0)
        times.append(rng.uniform(0.0, duration_ms, size=n))
        syns.append(np.full(n, i))
    return _assemble(times, syns, default_weights_nS, rng, weight_cv)


def uniform_events(
    counts: Sequence[int],
    default_weights_nS: Sequence[float],
    duration_ms: float,
    rng: np.random.Generator,
    weight_cv: float = 0.0,
) -> EventTable:
    """A fixed number of events per synapse, uniformly distributed over the trial."""
    _check_duration(duration_ms)
    times, syns = [], []
    for i, n in enumerate(counts):
        if int(n) != n or n < 0:
            raise ValueError(f"counts[{i}] must be a non-negative integer, got {n}")
        times.append(rng.uniform(0.0, duration_ms, size=int(n)))
        syns.append(np.full(int(n), i))
    return _assemble(times, syns, default_weights_nS, rng, weight_cv)


def paper_protocol_events(
    kinds: Sequence[str],
    default_weights_nS: Sequence[float],
    duration_ms: float,
    rng: np.random.Generator,
    max_exc_rate_Hz: float = 600.0,
    exc_to_inh: tuple[int, int] = (8, 3),
    p_quiet: float = 0.1,
    weight_cv: float = 0.0,
    activity_scale: float | None = None,
) -> EventTable:
    """Random inputs following Olah et al. (2022), point-neuron protocol.

    For each trial an activity scale ``a ~ U(0, 1)`` is drawn (unless given);
    with probability ``p_quiet`` the trial has no input at all. The total
    excitatory event rate is ``a * max_exc_rate_Hz`` shared equally among the
    excitatory synapses; inhibitory events are ``exc_to_inh[1]/exc_to_inh[0]``
    as many, shared among the inhibitory synapses. Events fall on integer
    milliseconds (several events may share a millisecond and a synapse).

    Args:
        kinds: (n_synapses,) 'exc' or 'inh' for each synapse.
        default_weights_nS: (n_synapses,) default weights, nS.
        duration_ms: trial length, ms (events at 0, 1, ..., floor(duration_ms) - 1).
        rng: random generator.
        max_exc_rate_Hz: total excitatory rate at activity scale 1, Hz.
        exc_to_inh: ratio of excitatory to inhibitory event counts.
        p_quiet: probability of a trial without input.
        weight_cv: coefficient of variation of log-normal weights (0 = fixed).
        activity_scale: fix the activity scale instead of drawing it.
    """
    _check_duration(duration_ms)
    _check_rate("max_exc_rate_Hz", max_exc_rate_Hz)
    if not 0 <= p_quiet <= 1:
        raise ValueError(f"p_quiet must be in [0, 1], got {p_quiet}")
    kinds = list(kinds)
    exc = [i for i, k in enumerate(kinds) if k == "exc"]
    inh = [i for i, k in enumerate(kinds) if k == "inh"]
    quiet = rng.random() < p_quiet
    a = rng.random() if activity_scale is None else float(activity_scale)
    if quiet:
        return EventTable.empty()
    n_ms = int(np.floor(duration_ms))
    total_e = a * max_exc_rate_Hz * n_ms / 1000.0
    total_i = total_e * exc_to_inh[1] / exc_to_inh[0]
    times, syns = [], []
    for group, total in ((exc, total_e), (inh, total_i)):
        if not group:
            continue
        n = rng.poisson(total)
        times.append(rng.integers(0, n_ms, size=n).astype(float))
        syns.append(rng.choice(np.asarray(group), size=n))
    return _assemble(times, syns, default_weights_nS, rng, weight_cv)


# ---------------------------------------------------------------------------------------------
# binning to 1 ms input channels (the surrogates' input encoding)
# ---------------------------------------------------------------------------------------------
def bin_events(
    events: EventTable, n_synapses: int, duration_ms: float, bin_ms: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Bin events into per-synapse conductance-onset channels.

    For every bin ``k`` (``[k*bin_ms, (k+1)*bin_ms)``) and synapse ``j``:

    * ``drive[k, j] = sum of weight_nS`` of the events in the bin (nS);
    * ``offset[k, j] = sum of weight_nS * (t - k*bin_ms)/bin_ms`` (nS), the
      weight-weighted sub-bin onset, so that ``offset/drive`` is the mean onset
      fraction in [0, 1). Events on the bin edge have offset 0. This keeps
      sub-millisecond onset timing that the drive alone would lose.

    Returns:
        ``(drive, offset)``, each (n_bins, n_synapses) float32 with
        ``n_bins = ceil(duration_ms / bin_ms)``; events at or after
        ``duration_ms`` are dropped.
    """
    events.check_synapses(n_synapses)
    n_bins = int(np.ceil(duration_ms / bin_ms - 1e-9))
    drive = np.zeros((n_bins, n_synapses), dtype=np.float64)
    offset = np.zeros_like(drive)
    m = events.t_ms < duration_ms
    t, s, w = events.t_ms[m], events.synapse[m], events.weight_nS[m]
    k = np.minimum((t / bin_ms).astype(np.int64), n_bins - 1)
    frac = t / bin_ms - k
    np.add.at(drive, (k, s), w)
    np.add.at(offset, (k, s), w * frac)
    return drive.astype(np.float32), offset.astype(np.float32)


def mixed_protocol_events(
    kinds: Sequence[str],
    default_weights_nS: Sequence[float],
    duration_ms: float,
    rng: np.random.Generator,
    exc_rate_range_Hz: tuple[float, float] = (20.0, 2000.0),
    ei_ratio_range: tuple[float, float] = (0.5, 4.0),
    p_quiet: float = 0.05,
    p_variable_weights: float = 0.5,
    max_weight_cv: float = 0.8,
    p_integer_ms: float = 0.3,
    p_volleys: float = 0.0,
    volley_rate_range_Hz: tuple[float, float] = (1.0, 20.0),
    volley_size_range: tuple[int, int] = (3, 20),
    volley_jitter_ms: float = 1.0,
    volley_synapses: Sequence[int] | None = None,
) -> EventTable:
    """Diverse regimes for training and testing surrogates beyond the paper's protocol.

    Per trial: total excitatory rate log-uniform in ``exc_rate_range_Hz``; the
    ratio of excitatory to inhibitory event counts log-uniform in
    ``ei_ratio_range`` (0.5 = 1:2, 4 = 4:1); with probability
    ``p_variable_weights`` log-normal weights with a CV uniform in
    ``[0, max_weight_cv]``; with probability ``p_integer_ms`` events on integer
    ms (as the paper), otherwise continuous times; with probability ``p_quiet``
    no input. Half of the trials modulate the rate slowly (a random sinusoid,
    period 100-1000 ms, depth up to 100 %), so one trial visits several regimes.

    Synchronous volleys (what a circuit's stimulus and recurrent bursts deliver; off by default, so
    the trials of earlier datasets are unchanged): with probability ``p_volleys`` a trial also gets
    volleys at a Poisson rate log-uniform in ``volley_rate_range_Hz``, each of a number of events
    uniform in ``volley_size_range`` on distinct random excitatory synapses within
    ``volley_jitter_ms`` (continuous times, the trial's weight distribution); ``volley_synapses``
    restricts them to the given excitatory synapse indices (e.g. the proximal sites that a circuit's
    connections use; ``simulate --option volley_max_dist_um=D`` fills it for ``hay-l5pc``).
    """
    _check_duration(duration_ms)
    if rng.random() < p_quiet:
        return EventTable.empty()
    kinds = list(kinds)
    exc = np.asarray([i for i, k in enumerate(kinds) if k == "exc"])
    inh = np.asarray([i for i, k in enumerate(kinds) if k == "inh"])
    lo, hi = exc_rate_range_Hz
    rate_e = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    ratio = float(np.exp(rng.uniform(np.log(ei_ratio_range[0]), np.log(ei_ratio_range[1]))))
    rate_i = rate_e / ratio
    cv = rng.uniform(0.0, max_weight_cv) if rng.random() < p_variable_weights else 0.0
    integer = rng.random() < p_integer_ms
    modulate = rng.random() < 0.5
    period = rng.uniform(100.0, 1000.0)
    depth = rng.uniform(0.0, 1.0)
    phase = rng.uniform(0, 2 * np.pi)
    times, syns = [], []
    for group, rate in ((exc, rate_e), (inh, rate_i)):
        if group.size == 0:
            continue
        # thinning of a Poisson process at the peak rate gives the modulated rate
        peak = rate * (1 + depth) if modulate else rate
        n = rng.poisson(peak * duration_ms / 1000.0)
        t = rng.uniform(0.0, duration_ms, size=n)
        if modulate:
            keep = rng.random(n) * (1 + depth) < 1 + depth * np.sin(2 * np.pi * t / period + phase)
            t = t[keep]
        if integer:
            t = np.floor(t)
        times.append(t)
        syns.append(rng.choice(group, size=t.size))
    pool = exc
    if volley_synapses is not None:
        pool = np.unique(np.asarray(volley_synapses, dtype=np.int64))
        if not pool.size or not np.isin(pool, exc).all():
            raise ValueError(f"volley_synapses must be excitatory synapse indices (of {exc.tolist()[:5]}...), got "
                             f"{sorted(set(pool.tolist()) - set(exc.tolist()))[:5] or 'none'}")
    if p_volleys > 0 and pool.size and rng.random() < p_volleys:
        lo_v, hi_v = volley_rate_range_Hz
        lo_n, hi_n = int(volley_size_range[0]), min(int(volley_size_range[1]), pool.size)
        if not (0 < lo_v <= hi_v) or not (1 <= lo_n <= hi_n) or volley_jitter_ms < 0:
            raise ValueError(f"volleys: need 0 < volley_rate_range_Hz[0] <= [1], 1 <= volley_size_range[0] <= [1] "
                             f"(at most {pool.size} excitatory synapses), volley_jitter_ms >= 0; got "
                             f"{volley_rate_range_Hz}, {volley_size_range}, {volley_jitter_ms}")
        rate_v = float(np.exp(rng.uniform(np.log(lo_v), np.log(hi_v))))
        for t0 in np.sort(rng.uniform(0.0, duration_ms, size=rng.poisson(rate_v * duration_ms / 1000.0))):
            k = int(rng.integers(lo_n, hi_n + 1))
            t = np.minimum(t0 + rng.uniform(0.0, volley_jitter_ms, size=k), np.nextafter(duration_ms, 0))
            times.append(t)
            syns.append(rng.choice(pool, size=k, replace=False))
    return _assemble(times, syns, default_weights_nS, rng, cv)


#: protocol option (any protocol, ``biophys.generate.trial_events``) that adds probe events
PROBE_OPTION = "probe_rate_Hz"
#: last seed word of the probes' own random stream, so a trial's protocol events do not depend on the probes
PROBE_STREAM = 7


def with_probe_events(base: EventTable, default_weights_nS: Sequence[float], duration_ms: float,
                      rate_Hz: float, rng: np.random.Generator) -> EventTable:
    """``base`` plus single extra events ("probes") at a total Poisson rate ``rate_Hz`` (Hz, over all
    synapses together): continuous times in [0, duration_ms), synapses uniform over the table, each at
    its default weight (nS). Two trials that differ only by these events form a *pair*: the difference
    of the cell's responses is what the probes did in that context (``TrainConfig.pair_weight``).

    Raises:
        ValueError: ``rate_Hz`` is not a finite number >= 0.
    """
    if isinstance(rate_Hz, bool) or not isinstance(rate_Hz, (int, float)) or not (np.isfinite(rate_Hz) and rate_Hz >= 0):
        raise ValueError(f"probe_rate_Hz must be a rate >= 0 (Hz, all synapses together), got {rate_Hz!r}")
    _check_duration(duration_ms)
    w = np.asarray(default_weights_nS, dtype=float)
    n = rng.poisson(float(rate_Hz) * duration_ms / 1000.0)
    t = rng.uniform(0.0, duration_ms, size=n)
    s = rng.integers(0, w.size, size=n).astype(np.int64)
    if n == 0:
        return base
    tt = np.r_[np.asarray(base.t_ms, float), t]
    ss = np.r_[np.asarray(base.synapse, np.int64), s]
    ww = np.r_[np.asarray(base.weight_nS, float), w[s]]
    o = np.argsort(tt, kind="stable")
    return EventTable(tt[o], ss[o], ww[o])


def protocol_events_with_probes(protocol: str, kinds: Sequence[str], default_weights_nS: Sequence[float],
                                duration_ms: float, rng: np.random.Generator, probe_rng: np.random.Generator,
                                options: dict) -> EventTable:
    """:func:`protocol_events` with ``options``, where the option :data:`PROBE_OPTION` (if given) adds
    probes (:func:`with_probe_events`) drawn from ``probe_rng``: the protocol's own events are those
    of the same call without the option."""
    opts = dict(options)
    rate = opts.pop(PROBE_OPTION, None)
    ev = protocol_events(protocol, kinds, default_weights_nS, duration_ms, rng, **opts)
    return ev if rate is None else with_probe_events(ev, default_weights_nS, duration_ms, rate, probe_rng)


PROTOCOLS = ("paper", "mixed", "poisson")


def protocol_events(
    protocol: str,
    kinds: Sequence[str],
    default_weights_nS: Sequence[float],
    duration_ms: float,
    rng: np.random.Generator,
    **options,
) -> EventTable:
    """Dispatch to a named protocol: 'paper', 'mixed' or 'poisson'.

    For 'poisson' the options are ``exc_rate_Hz``, ``inh_rate_Hz`` (total per
    kind, shared among the synapses of that kind) and ``weight_cv``.
    """
    if protocol in ("paper", "mixed"):
        fn = paper_protocol_events if protocol == "paper" else mixed_protocol_events
        known = list(inspect.signature(fn).parameters)[4:]  # after kinds, weights, duration, rng
        unknown = sorted(set(options) - set(known))
        if unknown:
            hint = (" (volley_max_dist_um is understood by `simulate` and `events` for hay-l5pc only)"
                    if "volley_max_dist_um" in unknown else "")
            raise ValueError(f"unknown option(s) for protocol {protocol!r}: {unknown}; known: {known}{hint}")
        return fn(kinds, default_weights_nS, duration_ms, rng, **options)
    if protocol == "poisson":
        exc_rate = float(options.pop("exc_rate_Hz", 400.0))
        inh_rate = float(options.pop("inh_rate_Hz", 150.0))
        cv = float(options.pop("weight_cv", 0.0))
        if options:
            raise ValueError(f"unknown option(s) for protocol 'poisson': {sorted(options)}")
        kinds = list(kinds)
        n_e, n_i = kinds.count("exc"), kinds.count("inh")
        rates = [exc_rate / max(n_e, 1) if k == "exc" else inh_rate / max(n_i, 1) for k in kinds]
        return poisson_events(rates, default_weights_nS, duration_ms, rng, weight_cv=cv)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")


def ou_noise(shape, sd: float, tau_ms: float, rng: np.random.Generator) -> np.ndarray:
    """Ornstein-Uhlenbeck noise, one sample per ms along the last axis of ``shape``: stationary SD ``sd`` (in the
    caller's unit: nA of a noise current, mV of a drive), correlation time ``tau_ms``, started from its stationary
    distribution (exact AR(1) update at 1 ms)."""
    from scipy.signal import lfilter

    if not (np.isfinite(sd) and sd >= 0 and np.isfinite(tau_ms) and tau_ms > 0):
        raise ValueError(f"ou_noise: sd must be >= 0 and tau_ms > 0, got sd={sd}, tau_ms={tau_ms}")
    a = np.exp(-1.0 / tau_ms)
    xi = rng.standard_normal(shape)
    xi[..., 1:] *= np.sqrt(1.0 - a * a)
    return sd * lfilter([1.0], [1.0, -a], xi, axis=-1)
