"""Biophysical ground truth: the only package that imports NEURON.

Importing this package does not import NEURON; the simulation functions do,
on first call.
"""

from neurosurrogate.biophys.build import build_mechanisms, load_mechanisms, mechanisms_key
from neurosurrogate.biophys.cells import CELLS, CellSpec, SynapseSpec, get_cell
from neurosurrogate.biophys.circuit import simulate_circuits, simulate_circuits_parallel
from neurosurrogate.biophys.hay import HayCell
from neurosurrogate.biophys.simulate import SimulationResult, simulate_events

__all__ = [
    "CELLS",
    "CellSpec",
    "HayCell",
    "SimulationResult",
    "SynapseSpec",
    "build_mechanisms",
    "get_cell",
    "load_mechanisms",
    "mechanisms_key",
    "simulate_circuits",
    "simulate_circuits_parallel",
    "simulate_events",
]
