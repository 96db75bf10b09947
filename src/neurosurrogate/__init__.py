"""neurosurrogate: NEURON ground truth and fast streaming ANN surrogates of neurons.

Public API (re-exports only; importing this package imports neither NEURON
nor torch: they load on first use).
"""

from neurosurrogate.api import load_model, predict, simulate
from neurosurrogate.biophys.cells import CELLS, PointCell, SynapseSpec, get_cell
from neurosurrogate.data.trace import Trace
from neurosurrogate.inputs import EventTable, EventTableError

__version__ = "0.1.0"

__all__ = [
    "CELLS",
    "EventTable",
    "EventTableError",
    "PointCell",
    "SynapseSpec",
    "Trace",
    "__version__",
    "get_cell",
    "load_model",
    "predict",
    "simulate",
]
