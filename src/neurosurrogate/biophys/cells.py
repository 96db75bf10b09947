"""Cell specifications (pure data) and the registry of named cells.

A cell specification is a frozen dataclass with every physical parameter,
in units named in the field; building the NEURON objects is done by the
simulator (``simulate.py``, ``hay.py``), so specs can be created, compared,
hashed and stored without NEURON.

Registered cells: the point cells ``point-hh``, ``point-passive``,
``point-hh-kshift`` (:class:`PointCell`) and the detailed Hay et al. 2011
layer-5 pyramidal cell ``hay-l5pc`` (:class:`~neurosurrogate.biophys.hay.HayCell`,
which needs a morphology file: ``get_cell("hay-l5pc", morphology=PATH)`` or
``$NEUROSURROGATE_HAY_MORPHOLOGY``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Union

if TYPE_CHECKING:  # pragma: no cover
    from neurosurrogate.biophys.hay import HayCell

__all__ = ["CELLS", "CellSpec", "PointCell", "SynapseSpec", "get_cell"]


@dataclass(frozen=True)
class SynapseSpec:
    """One row of a cell's synapse table.

    Attributes:
        kind: 'exc' or 'inh'.
        tau_ms: alpha-function time constant (time to peak), ms.
        e_rev_mV: reversal potential, mV.
        weight_nS: default peak conductance, nS.
        section: section name.
        x: position along the section, 0..1.
    """

    kind: str
    tau_ms: float
    e_rev_mV: float
    weight_nS: float
    section: str = "soma"
    x: float = 0.5


def check_signs(spec, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
    """Raise ValueError naming the first cell parameter that is not > 0 (``positive``) or not >= 0."""
    for name in positive:
        if not getattr(spec, name) > 0:
            raise ValueError(f"cell parameter {name} must be > 0, got {getattr(spec, name)}")
    for name in non_negative:
        if getattr(spec, name) < 0:
            raise ValueError(f"cell parameter {name} must be >= 0, got {getattr(spec, name)}")


@dataclass(frozen=True)
class PointCell:
    """Single-compartment cell of Olah, Pedersen & Rowan (2022).

    Soma L = diam = 25 um, cm = 1 uF/cm2, Ra = 35.4 ohm cm, passive leak
    (g = 0.001 S/cm2, e = -70 mV) plus Hodgkin-Huxley channels (gnabar 0.12,
    gkbar 0.036, gl 0.0003 S/cm2, el -54.3 mV; ena 50 mV, ek -77 mV) at
    6.3 degC. ``kshift_mV`` (if not None) uses the project's ``hhks``
    mechanism whose delayed-rectifier activation is shifted by that many mV;
    otherwise NEURON's built-in ``hh``. ``active=False`` removes HH.
    Synapses: ``n_exc`` excitatory (tau 2 ms, e 0 mV, 2.5 nS) then ``n_inh``
    inhibitory (tau 1 ms, e -90 mV, 8 nS), all on the soma; with identical
    kinetics at one site they are interchangeable, so the default is one of
    each kind (index 0 excitatory, index 1 inhibitory).
    ``alpha_cutoff_tau`` > 0 truncates each alpha conductance that many time
    constants after onset, as NEURON's built-in AlphaSynapse does at 10 (only
    for comparisons with it; 0 = the exact alpha function).
    """

    name: str = "point-hh"
    diam_um: float = 25.0
    L_um: float = 25.0
    cm_uF_cm2: float = 1.0
    Ra_ohm_cm: float = 35.4
    g_pas_S_cm2: float = 0.001
    e_pas_mV: float = -70.0
    active: bool = True
    gnabar_S_cm2: float = 0.12
    gkbar_S_cm2: float = 0.036
    gl_S_cm2: float = 0.0003
    el_mV: float = -54.3
    ena_mV: float = 50.0
    ek_mV: float = -77.0
    kshift_mV: float | None = None
    celsius_degC: float = 6.3
    n_exc: int = 1
    n_inh: int = 1
    exc_tau_ms: float = 2.0
    exc_e_mV: float = 0.0
    exc_weight_nS: float = 2.5
    inh_tau_ms: float = 1.0
    inh_e_mV: float = -90.0
    inh_weight_nS: float = 8.0
    alpha_cutoff_tau: float = 0.0
    dt_ms: float = 0.025
    spike_threshold_mV: float = -20.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            if f.name in ("name", "active", "kshift_mV"):
                continue
            if isinstance(val, (int, float)) and val != val:  # NaN
                raise ValueError(f"cell parameter {f.name} is NaN")
        check_signs(self, positive=("diam_um", "L_um", "cm_uF_cm2", "Ra_ohm_cm", "exc_tau_ms", "inh_tau_ms", "dt_ms"),
                    non_negative=("alpha_cutoff_tau", "g_pas_S_cm2", "gnabar_S_cm2", "gkbar_S_cm2", "gl_S_cm2",
                                  "exc_weight_nS", "inh_weight_nS"))
        if self.n_exc < 0 or self.n_inh < 0 or self.n_exc + self.n_inh == 0:
            raise ValueError("a cell needs n_exc + n_inh >= 1 synapses")
        if abs(round(1.0 / self.dt_ms) * self.dt_ms - 1.0) > 1e-9:
            raise ValueError(f"dt_ms={self.dt_ms} must divide 1 ms exactly (1 kHz records)")

    @property
    def area_um2(self) -> float:
        """Membrane area of the cylinder's side, um2 (NEURON's area())."""
        import math

        return math.pi * self.diam_um * self.L_um

    @property
    def synapses(self) -> tuple[SynapseSpec, ...]:
        exc = SynapseSpec("exc", self.exc_tau_ms, self.exc_e_mV, self.exc_weight_nS)
        inh = SynapseSpec("inh", self.inh_tau_ms, self.inh_e_mV, self.inh_weight_nS)
        return (exc,) * self.n_exc + (inh,) * self.n_inh

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "PointCell":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown cell parameter(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)


CellSpec = Union[PointCell, "HayCell"]


def _hay_l5pc(**kw) -> "HayCell":
    from neurosurrogate.biophys.hay import HayCell

    unknown = set(kw) - {f.name for f in dataclasses.fields(HayCell)}
    if unknown:
        raise ValueError(f"unknown cell parameter(s) {sorted(unknown)}")
    return HayCell(**kw)


CELLS: dict[str, Callable[..., CellSpec]] = {
    "point-hh": lambda **kw: PointCell(name="point-hh").replace(**kw),
    "point-passive": lambda **kw: PointCell(name="point-passive", active=False).replace(**kw),
    "point-hh-kshift": lambda **kw: PointCell(name="point-hh-kshift", kshift_mV=10.0).replace(**kw),
    "hay-l5pc": _hay_l5pc,
}


def get_cell(name: str, **params) -> CellSpec:
    """A registered cell by name, with parameters overridden by keyword.

    Raises:
        ValueError: unknown name or parameter.
    """
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(CELLS)}")
    return CELLS[name](**params)


#: cell parameters that say what was recorded, not what was simulated: data whose cells differ
#: only in these come from the same cell
RECORDING_ONLY = ("record_states",)


def cell_key(cell: dict) -> str:
    """A cell dict (``CellSpec.to_dict``, as datasets store it) as a comparable string, without
    :data:`RECORDING_ONLY` parameters."""
    return json.dumps({k: v for k, v in cell.items() if k not in RECORDING_ONLY}, sort_keys=True)


def cell_from_dict(d: dict) -> CellSpec:
    """Inverse of ``CellSpec.to_dict``."""
    if "morphology" in d:
        from neurosurrogate.biophys.hay import HayCell

        return HayCell(**d)
    return PointCell(**d)
