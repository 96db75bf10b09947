"""A realised circuit: one network instance with every random choice already made.

The network config (:mod:`neurosurrogate.network.config`) describes a circuit
statistically (rules, rates, seeds); :func:`neurosurrogate.network.build.realise`
turns it into a :class:`Circuit`: explicit synapses (one row per contact),
explicit external events (background and stimulus), nothing left to draw.
Both simulators take a ``Circuit``: the surrogate engine
(:mod:`neurosurrogate.network.engine`) and the NEURON reference
(:mod:`neurosurrogate.biophys.circuit`), so they see exactly the same
connections, delays and input events.

Cells are numbered globally: the populations' cells are concatenated in
population order (population ``p`` owns ``offset[p] .. offset[p] + n[p] - 1``).

Short-term plasticity (Tsodyks & Markram 1997; Markram et al. 1998), per
synapse row, for the n-th presynaptic spike after an interval ``dt``::

    u_n = U + u_{n-1} (1 - U) exp(-dt / F)          (u_0 = 0;  F = 0: u_n = U)
    R_n = 1 + (R_{n-1} (1 - u_{n-1}) - 1) exp(-dt / D)   (R_0 = 1; D = 0: R_n = 1)
    peak conductance of the n-th event = weight_nS * u_n * R_n

so the first spike gives ``weight_nS * U``. A static synapse has
``U = 1, D = 0, F = 0`` (every event at ``weight_nS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Circuit", "CircuitRun", "PopulationSpec", "STATIC_STP"]

#: (U, D_ms, F_ms) of a synapse without short-term plasticity.
STATIC_STP = (1.0, 0.0, 0.0)


@dataclass(frozen=True)
class PopulationSpec:
    """A population: ``n`` cells of one kind.

    Attributes:
        name: population name (config key).
        n: number of cells.
        model: surrogate model (shipped name or folder) simulating the cells.
        cell: biophysical cell name (``neurosurrogate.biophys.get_cell``) for the NEURON reference.
    """

    name: str
    n: int
    model: str
    cell: str


@dataclass
class Circuit:
    """One realised network instance.

    Synapses (arrays of equal length S, one row per synaptic contact):
        pre, post: global cell indices (int64).
        channel: synapse index in the postsynaptic cell's synapse table (int64;
            point cell: 0 = excitatory, 1 = inhibitory).
        weight_nS: peak conductance before short-term plasticity, nS (float64, >= 0).
        delay_ms: axonal delay from the presynaptic spike to the conductance onset,
            whole ms >= 1 (int64).
        U, D_ms, F_ms: Tsodyks-Markram parameters (float64; static: 1, 0, 0).

    External events (arrays of equal length E; background and stimuli):
        ext_t_ms (float64, ms), ext_cell (int64, global), ext_channel (int64),
        ext_weight_nS (float64, nS). Not subject to short-term plasticity.

    Other:
        duration_ms: simulated time, whole ms.
        record_v: global indices of cells whose voltage is recorded.
        meta: parameters and seed that made this instance (for result tables).
    """

    populations: tuple[PopulationSpec, ...]
    duration_ms: int
    pre: np.ndarray
    post: np.ndarray
    channel: np.ndarray
    weight_nS: np.ndarray
    delay_ms: np.ndarray
    U: np.ndarray
    D_ms: np.ndarray
    F_ms: np.ndarray
    ext_t_ms: np.ndarray
    ext_cell: np.ndarray
    ext_channel: np.ndarray
    ext_weight_nS: np.ndarray
    record_v: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    meta: dict = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return int(sum(p.n for p in self.populations))

    @property
    def offsets(self) -> np.ndarray:
        """(P + 1,) first global index of each population, then the total."""
        return np.concatenate([[0], np.cumsum([p.n for p in self.populations])]).astype(np.int64)

    @property
    def n_synapses(self) -> int:
        return int(self.pre.size)

    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of what a simulator of this circuit sees: the populations' names, sizes and
        biophysical cells, the duration, every contact and every external event. Not the surrogate model
        names, nor ``record_v`` or ``meta``: two circuits with the same fingerprint are the same NEURON
        network, whichever surrogate simulates them."""
        import hashlib

        h = hashlib.sha256(repr([(p.name, int(p.n), p.cell) for p in self.populations]).encode())
        h.update(repr(int(self.duration_ms)).encode())
        for name in ("pre", "post", "channel", "weight_nS", "delay_ms", "U", "D_ms", "F_ms",
                     "ext_t_ms", "ext_cell", "ext_channel", "ext_weight_nS"):
            a = np.asarray(getattr(self, name))
            h.update(name.encode() + str(a.dtype).encode() + np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def validate(self) -> "Circuit":
        """Check shapes, ranges and types; raises ValueError naming the field."""
        S = self.pre.size
        for name in ("post", "channel", "weight_nS", "delay_ms", "U", "D_ms", "F_ms"):
            if getattr(self, name).shape != (S,):
                raise ValueError(f"circuit field {name} has shape {getattr(self, name).shape}, expected ({S},)")
        E = self.ext_t_ms.size
        for name in ("ext_cell", "ext_channel", "ext_weight_nS"):
            if getattr(self, name).shape != (E,):
                raise ValueError(f"circuit field {name} has shape {getattr(self, name).shape}, expected ({E},)")
        n = self.n_cells
        for name in ("pre", "post", "ext_cell", "record_v"):
            a = getattr(self, name)
            if a.size and (a.min() < 0 or a.max() >= n):
                raise ValueError(f"circuit field {name} has cell indices outside 0..{n - 1}")
        if S and (self.delay_ms.min() < 1):
            raise ValueError("circuit delays must be whole ms >= 1")
        for name in ("weight_nS", "ext_weight_nS", "D_ms", "F_ms"):
            a = getattr(self, name)
            if a.size and (not np.all(np.isfinite(a)) or a.min() < 0):
                raise ValueError(f"circuit field {name} must be finite and >= 0")
        if S and (not np.all(np.isfinite(self.U)) or self.U.min() <= 0 or self.U.max() > 1):
            raise ValueError("circuit field U must be in (0, 1]")
        if E and (not np.all(np.isfinite(self.ext_t_ms)) or self.ext_t_ms.min() < 0):
            raise ValueError("circuit field ext_t_ms must be finite and >= 0")
        return self


@dataclass
class CircuitRun:
    """What a simulator returns for one circuit.

    Attributes:
        spike_cell: global cell index of each spike (int64), in time order.
        spike_t_ms: spike times, ms (float64; threshold crossings, sub-ms resolution).
        v_mV: (len(record_v), duration_ms) voltages of the recorded cells at 1 kHz, mV.
        duration_ms: simulated time, ms.
        wall_s: wall-clock time of the simulation this circuit was part of, s.
        simulator: 'surrogate' or 'neuron'.
        inputs: optional per recorded cell, the (T, n_in) input features the surrogate saw.
    """

    spike_cell: np.ndarray
    spike_t_ms: np.ndarray
    v_mV: np.ndarray
    duration_ms: int
    wall_s: float = 0.0
    simulator: str = "surrogate"
    inputs: list | None = None

    def spikes_of(self, cell: int) -> np.ndarray:
        """Spike times of one cell, ms."""
        return self.spike_t_ms[self.spike_cell == cell]
