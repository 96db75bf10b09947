"""High-level Python API mirroring the command-line contracts.

    >>> import neurosurrogate as ns
    >>> ev = ns.EventTable.load("events.npz")
    >>> gt = ns.simulate(ev, 2000)                 # NEURON (the `simulate --events` contract)
    >>> pred = ns.predict(ev, 2000)                # surrogate (the `predict` contract)
    >>> pred.v_mV, pred.spike_times_ms

NEURON and torch are imported on first call, not at import.
"""

from __future__ import annotations

from pathlib import Path

from neurosurrogate.biophys.cells import CellSpec, get_cell
from neurosurrogate.data.trace import Trace
from neurosurrogate.inputs import EventTable


def load_model(model: str | Path = "point-hh"):
    """A shipped surrogate by name or a model folder -> :class:`SurrogateModel`."""
    from neurosurrogate.surrogate.model import SurrogateModel

    return SurrogateModel.load(model)


def predict(events: EventTable, duration_ms: float, model="point-hh", device: str | None = None) -> Trace:
    """Free-running surrogate prediction from rest: ``t_ms``, ``v_mV`` (1 kHz), ``spike_times_ms``
    (+ ``ina``/``ik`` for point-hh; a multi-compartment model returns a ``HayTrace`` with
    ``v_dend_mV`` (n_sites, T) in mV and ``ica`` (T,) in mA/cm2, see ``SurrogateModel.predict``).

    Args:
        events: the input event table.
        duration_ms: simulated time, ms.
        model: shipped name, model folder, or a loaded ``SurrogateModel``.
        device: torch device (default CUDA if available, else CPU).
    """
    if isinstance(model, (str, Path)):
        model = load_model(model)
    return model.predict(events, duration_ms, device=device)


def simulate(events: EventTable, duration_ms: float, cell: str | CellSpec = "point-hh", **params) -> Trace:
    """NEURON ground truth of one trial in this process (see ``biophys.simulate_events``)."""
    from neurosurrogate.biophys.simulate import simulate_events

    spec = get_cell(cell, **params) if isinstance(cell, str) else cell
    return simulate_events(spec, events, duration_ms)
