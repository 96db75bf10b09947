"""The Hay et al. (2011) layer-5b pyramidal cell, ``hay-l5pc``, built from the project's mechanisms.

Model: Hay, Hill, Schuermann, Markram & Segev (2011), PLoS Comput Biol 7:e1002107,
parameter set "L5PCbiophys3" on a reconstructed morphology. Everything here (and the
``hay_*.mod`` mechanisms) is written from the equations and rules of the model's
written description; no file of the original package is used. The reference output
of the original model lives outside the repository (``../shared/hay2011`` in the
project's layout) and is used by the tests only.

Design
------
* :class:`HayCell` is the cell *specification*: pure, hashable data, no NEURON. It
  names the morphology file (a Neurolucida ``.asc`` or an ``.swc``; from the
  ``morphology`` argument, else the environment variable
  ``NEUROSURROGATE_HAY_MORPHOLOGY``), the protocol constants (celsius, dt,
  initialisation) and the synapse-table rule. It is registered as ``hay-l5pc``:
  ``get_cell("hay-l5pc", morphology="cell1.asc")``.
* :class:`HayModel` (NEURON) instantiates one cell from a specification: Import3d
  loads the morphology into a small hoc template with the section arrays ``soma``,
  ``dend``, ``apic``, ``axon`` and the section lists ``all``, ``somatic``, ``basal``,
  ``apical``, ``axonal``; then the nseg rule, the axon replacement and the
  biophysics (:func:`apply_biophysics`) are applied, the default synapse table
  (:func:`synapse_table`) is placed with one event-driven ``AlphaSynEv`` per site,
  and the two dendritic recording sites are located.
* :func:`simulate_hay` runs an event table (and optionally a somatic current step)
  and returns a :class:`HayTrace`: soma voltage at 1 kHz (AP peaks kept), the
  dendritic sites at 1 kHz (point samples), spike times, soma ``ina``/``ik``, and the
  calcium current density ``ica`` at one compartment of the Ca hot zone
  (:func:`locate_ca_site`).

Mechanism order: NEURON advances mechanisms in the order nrnivmodl registered them
(sorted file names), so ``hay_cadyn.mod`` sorts before ``hay_sk_e2.mod``: within a
step SK reads the freshly updated [Ca]i, as in the original (CaDynamics_E2 before
SK_E2). The file names keep the original's whole order, which makes the summation of
currents, and hence the results, agree with the original to ~1e-7 ms in spike times.

Initialisation
--------------
``prerun=True`` (default): every trial starts from the cell's steady state without
input. It is found once per process and specification by relaxing the cell from
``v_init_mV`` (a long run at a coarse step, whose fixed point is that of the
fine-step scheme, checked at the fine step), then every trial restores it exactly
(all voltages, gates, [Ca]i and eca) at t = 0.
``prerun=False``: ``finitialize(v_init_mV)`` and no pre-run, the original protocol
(``v_init_mV = -80``): the cell is not at rest then and drifts for hundreds of ms.

Synapse table (default 200 sites)
---------------------------------
``numpy.random.default_rng(synapse_seed)`` draws four groups in order: 100 apical
excitatory, 50 basal excitatory, 30 apical inhibitory, 20 basal inhibitory. For a
group of n, ``rng.choice(len(secs), size=n, p=L/sum(L))`` picks sections from the
apical (or basal) list with probability proportional to length, then
``rng.uniform(size=n)`` the positions x. Excitatory: alpha conductance tau 2 ms,
E 0 mV, 3 nS; inhibitory: tau 1 ms, E -90 mV, 1 nS. Each site is one
``AlphaSynEv`` at ``section(x)`` (NEURON puts it at the centre of the compartment
holding x). ``alpha_cutoff_tau = 10`` (the default for this cell) truncates each
alpha conductance 10 tau after onset, exactly as NEURON's ``AlphaSynapse`` that
defines the reference experiment; 0 keeps the untruncated alpha function (the point
cells' convention; spikes then move by up to ~1 ms over 2 s of bombardment).

Recording sites: for each target path distance (400 and 700 um), among the apical
sections that contain it, the one with the largest diameter there (the main trunk).

Calcium site: NEURON's ``ica`` (mA/cm2; the sum of the HVA and LVA calcium currents,
negative = inward) is recorded in ONE compartment in the middle of the Ca hot zone,
``CA_SITE_DIST_UM = 785`` um from the soma (hot zone 685-885 um), on the branch of the
distal (700 um) recording site; for cell1.asc that is ``apic[37]``, compartment 7 of 13
(centre x = 0.5769, 786.2 um; the trunk splits at 627 um into apic[37] and apic[50]).

Units: mV, ms, um, nS, nA, S/cm2, mA/cm2.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.cells import SynapseSpec, check_signs
from neurosurrogate.data.trace import Trace, bin_mean_1khz, detect_spikes, resample_1khz

__all__ = [
    "BIOPHYS",
    "CA_SITE_DIST_UM",
    "HAY_MORPHOLOGY_ENV",
    "HayCell",
    "HayModel",
    "HayTrace",
    "MorphologyError",
    "locate_ca_site",
    "resolve_morphology",
    "simulate_hay",
    "synapse_table",
]

HAY_MORPHOLOGY_ENV = "NEUROSURROGATE_HAY_MORPHOLOGY"
MORPHOLOGY_SUFFIXES = (".asc", ".swc")


class MorphologyError(ValueError):
    """The morphology file is missing, of an unknown kind, or unusable."""


# --------------------------------------------------------------------------------------
# Parameters (L5PCbiophys3). Conductances in S/cm2. Mechanism suffixes are ours (hay_*.mod).
# --------------------------------------------------------------------------------------
RA_OHM_CM = 100.0
E_PAS_MV = -90.0
ENA_MV = 50.0
EK_MV = -85.0

#: region -> cm, g_pas and the uniform gbar of every inserted channel (region-rule
#: channels of the apical tree are set by :func:`apply_biophysics`)
BIOPHYS: dict[str, dict] = {
    "somatic": {
        "cm": 1.0,
        "g_pas": 3.38e-5,
        "gbar": {
            "HayNaTa": 2.04,
            "HayNap": 0.00172,
            "HayKTst": 0.0812,
            "HayKPst": 0.00223,
            "HaySKv31": 0.693,
            "HaySK": 0.0441,
            "HayIh": 0.0002,
            "HayCaHVA": 0.000992,
            "HayCaLVA": 0.00343,
        },
        "cadyn": {"decay": 460.0, "gamma": 0.000501},
    },
    "apical": {
        "cm": 2.0,
        "g_pas": 5.89e-5,
        "gbar": {
            "HayNaTa": 0.0213,
            "HaySKv31": 0.000261,
            "HaySK": 0.0012,
            "HayIm": 6.75e-5,
            "HayIh": None,  # distance rule
            "HayCaHVA": None,  # hot-zone rule
            "HayCaLVA": None,  # hot-zone rule
        },
        "cadyn": {"decay": 122.0, "gamma": 0.000509},
    },
    "basal": {"cm": 2.0, "g_pas": 4.67e-5, "gbar": {"HayIh": 0.0002}, "cadyn": None},
    "axonal": {"cm": 1.0, "g_pas": 3.25e-5, "gbar": {}, "cadyn": None},
}

#: apical rules: Ih exponential in normalised distance, Ca hot zone (strict bounds)
IH_APICAL = (0.0002, -0.8696, 2.0870, 3.6161)  # gbar = a (b + c exp(k d / D_max))
HOT_ZONE_UM = (685.0, 885.0)
#: path distance (um) of the compartment whose calcium current ``ica`` is recorded: the
#: middle of the hot zone
CA_SITE_DIST_UM = 0.5 * (HOT_ZONE_UM[0] + HOT_ZONE_UM[1])
CA_LVA_HOT, CA_LVA_FACTOR_OUT = 0.0187, 0.01
CA_HVA_HOT, CA_HVA_FACTOR_OUT = 0.000555, 0.1
CADYN_DEPTH_UM, CADYN_MIN_CAI_MM = 0.1, 1e-4

#: the state variables of every mechanism (restored exactly by the steady-state start)
MECH_STATES = {
    "HayNaTa": ("m", "h"),
    "HayNaTs2": ("m", "h"),
    "HayNap": ("m", "h"),
    "HayKPst": ("m", "h"),
    "HayKTst": ("m", "h"),
    "HaySKv31": ("m",),
    "HaySK": ("z",),
    "HayIm": ("m",),
    "HayIh": ("m",),
    "HayCaHVA": ("m", "h"),
    "HayCaLVA": ("m", "h"),
}


#: Gates left out of the recorded states: the spike's own fast gates (sub-ms; the 1 ms means
#: of the soma voltage and spike times carry them).
FAST_MECHS = ("HayNaTa", "HayNaTs2", "HaySKv31")

#: Where :func:`state_probes` records: the soma, the Ca hot-zone compartment of ``ica`` and
#: the first dendritic recording site (400 um on the trunk). (The replacement axon is passive.)
STATE_LOCATIONS = ("soma", "hotzone", "site0")


def state_probes(model: "HayModel") -> list[tuple[str, object, str]]:
    """The state variables recorded with ``record_states``: ``(name, object, attribute)``.

    At each of :data:`STATE_LOCATIONS`, the intracellular Ca2+ concentration ``cai`` (mM;
    where the Ca dynamics are inserted) and every gate of :data:`MECH_STATES` present there
    except those of :data:`FAST_MECHS`, in that table's order. Names read
    ``<location>.<mechanism>.<gate>`` or ``<location>.cai`` (e.g. ``soma.HayKPst.h``).
    """
    segs = {"soma": model.soma(0.5),
            "hotzone": model.sections[model.ca_site["section"]](model.ca_site["x"])}
    if model.sites:
        segs["site0"] = model.sections[model.sites[0]["section"]](model.sites[0]["x"])
    out = []
    for loc in STATE_LOCATIONS:
        seg = segs.get(loc)
        if seg is None:
            continue
        if hasattr(seg, "HayCaDyn"):
            out.append((f"{loc}.cai", seg, "cai"))
        for mech, gates in MECH_STATES.items():
            if mech in FAST_MECHS or not hasattr(seg, mech):
                continue
            out.extend((f"{loc}.{mech}.{g}", getattr(seg, mech), g) for g in gates)
    return out


def nseg_rule(L_um: float) -> int:
    """Compartments of a section of length ``L_um``: ``1 + 2 floor(L/40)`` (always odd)."""
    return 1 + 2 * int(L_um // 40.0)


def ih_apical(d_um: float, d_max_um: float) -> float:
    """Apical Ih density (S/cm2) at path distance ``d_um`` from the soma."""
    a, b, c, k = IH_APICAL
    return a * (b + c * math.exp(k * d_um / d_max_um))


def in_hot_zone(d_um: float) -> bool:
    return HOT_ZONE_UM[0] < d_um < HOT_ZONE_UM[1]


def ca_lva_apical(d_um: float) -> float:
    return CA_LVA_HOT if in_hot_zone(d_um) else CA_LVA_HOT * CA_LVA_FACTOR_OUT


def ca_hva_apical(d_um: float) -> float:
    return CA_HVA_HOT if in_hot_zone(d_um) else CA_HVA_HOT * CA_HVA_FACTOR_OUT


# --------------------------------------------------------------------------------------
# The specification
# --------------------------------------------------------------------------------------
def resolve_morphology(path: str | os.PathLike | None) -> str:
    """Absolute path of the morphology file: ``path``, else ``$NEUROSURROGATE_HAY_MORPHOLOGY``.

    Raises:
        MorphologyError: neither given, the file does not exist, or its suffix is not
            ``.asc`` / ``.swc``.
    """
    if path is None or str(path) == "":
        path = os.environ.get(HAY_MORPHOLOGY_ENV, "")
        if not path:
            raise MorphologyError(
                f"hay-l5pc needs a morphology file (.asc or .swc): pass morphology=PATH "
                f"(CLI: --morphology PATH) or set ${HAY_MORPHOLOGY_ENV}"
            )
    p = Path(path).expanduser()
    if not p.is_file():
        raise MorphologyError(f"morphology file {p} does not exist (or is not a file)")
    if p.suffix.lower() not in MORPHOLOGY_SUFFIXES:
        raise MorphologyError(
            f"morphology file {p}: unknown kind {p.suffix!r}; expected a Neurolucida .asc or an .swc file"
        )
    return str(p.resolve())


@dataclass(frozen=True)
class HayCell:
    """Specification of the Hay et al. 2011 L5b pyramidal cell (L5PCbiophys3).

    Attributes:
        name: registry name.
        morphology: morphology file (.asc or .swc); empty = ``$NEUROSURROGATE_HAY_MORPHOLOGY``.
            Stored as an absolute path.
        celsius_degC: NEURON's celsius. The channels' 34 degC factor is fixed inside the
            mechanisms; celsius enters only the Nernst potential of calcium.
        dt_ms: fixed integration step (implicit Euler).
        v_init_mV: voltage of ``finitialize``; with ``prerun`` only the start of the relaxation.
        prerun: start every trial from the steady state without input (default); False = the
            original protocol, ``finitialize(v_init_mV)`` and go.
        spike_threshold_mV: soma spike detection level (upward crossings).
        synapse_seed, n_apical_exc, n_basal_exc, n_apical_inh, n_basal_inh: synapse-table rule.
        exc_* / inh_*: alpha-synapse kinetics and default peak conductance of the two kinds.
        alpha_cutoff_tau: truncate each alpha conductance this many tau after onset (10, the
            default = NEURON's AlphaSynapse, as in the reference experiment; 0 = exact alpha).
        recording_dist_um: path distances of the dendritic recording sites on the apical trunk.
        record_states: also record the cell's slower state variables (:data:`STATE_LOCATIONS`,
            :func:`state_probes`): Ca2+ concentrations and gates, 1 ms bin means, as ``states``
            of each trial (auxiliary training targets). Off by default; left out of
            :meth:`to_dict` while off, so the configuration of earlier datasets is unchanged.
    """

    name: str = "hay-l5pc"
    morphology: str = ""
    celsius_degC: float = 34.0
    dt_ms: float = 0.025
    v_init_mV: float = -80.0
    prerun: bool = True
    spike_threshold_mV: float = -20.0
    synapse_seed: int = 2011
    n_apical_exc: int = 100
    n_basal_exc: int = 50
    n_apical_inh: int = 30
    n_basal_inh: int = 20
    exc_tau_ms: float = 2.0
    exc_e_mV: float = 0.0
    exc_weight_nS: float = 3.0
    inh_tau_ms: float = 1.0
    inh_e_mV: float = -90.0
    inh_weight_nS: float = 1.0
    alpha_cutoff_tau: float = 10.0
    recording_dist_um: tuple[float, ...] = (400.0, 700.0)
    record_states: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "morphology", resolve_morphology(self.morphology))
        object.__setattr__(self, "recording_dist_um", tuple(float(d) for d in self.recording_dist_um))
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            if isinstance(val, float) and not math.isfinite(val):
                raise ValueError(f"cell parameter {f.name} must be finite, got {val}")
        check_signs(self, positive=("dt_ms", "exc_tau_ms", "inh_tau_ms"),
                    non_negative=("exc_weight_nS", "inh_weight_nS", "alpha_cutoff_tau"))
        counts = (self.n_apical_exc, self.n_basal_exc, self.n_apical_inh, self.n_basal_inh)
        if any(int(n) != n or n < 0 for n in counts) or sum(counts) == 0:
            raise ValueError(f"synapse counts must be whole numbers >= 0, not all 0; got {counts}")
        if abs(round(1.0 / self.dt_ms) * self.dt_ms - 1.0) > 1e-9:
            raise ValueError(f"dt_ms={self.dt_ms} must divide 1 ms exactly (1 kHz records)")
        for flag in ("prerun", "record_states"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"cell parameter {flag} must be true or false, got {getattr(self, flag)!r}")
        if any(d <= 0 for d in self.recording_dist_um):
            raise ValueError(f"recording_dist_um must be > 0, got {self.recording_dist_um}")

    @property
    def synapse_groups(self) -> tuple[tuple[str, str, int], ...]:
        """(region, kind, count) in drawing order."""
        return (
            ("apical", "exc", int(self.n_apical_exc)),
            ("basal", "exc", int(self.n_basal_exc)),
            ("apical", "inh", int(self.n_apical_inh)),
            ("basal", "inh", int(self.n_basal_inh)),
        )

    @property
    def synapses(self) -> tuple[SynapseSpec, ...]:
        """Kinds, kinetics and default weights of the synapse table, in index order.

        Placing a site needs the instantiated morphology (NEURON), so here ``section``
        holds the region (``'apical'``/``'basal'``) and ``x`` is NaN; the exact sections
        and positions come from :func:`synapse_table`.
        """
        out = []
        for region, kind, n in self.synapse_groups:
            if kind == "exc":
                s = SynapseSpec("exc", self.exc_tau_ms, self.exc_e_mV, self.exc_weight_nS, region, math.nan)
            else:
                s = SynapseSpec("inh", self.inh_tau_ms, self.inh_e_mV, self.inh_weight_nS, region, math.nan)
            out.extend([s] * n)
        return tuple(out)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["recording_dist_um"] = list(self.recording_dist_um)
        if not self.record_states:
            del d["record_states"]
        return d

    def replace(self, **changes) -> "HayCell":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown cell parameter(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------
# NEURON: morphology, biophysics, synapses
# --------------------------------------------------------------------------------------
_TEMPLATE = """
begintemplate NsHayL5PC
public soma, dend, apic, axon, all, somatic, basal, apical, axonal, replace_axon
create soma[1], dend[1], apic[1], axon[1]
objref all, somatic, basal, apical, axonal

proc init() {
    all = new SectionList()
    somatic = new SectionList()
    basal = new SectionList()
    apical = new SectionList()
    axonal = new SectionList()
    forall delete_section()
}

// delete every reconstructed axonal section; add two 30 um x 1 um cylinders
proc replace_axon() { local i
    forsec axonal { delete_section() }
    create axon[2]
    axonal = new SectionList()
    for i = 0, 1 {
        axon[i] {
            L = 30
            diam = 1
            nseg = 1
            all.append()
            axonal.append()
        }
    }
    soma[0] connect axon[0](0), 0.5
    axon[0] connect axon[1](0), 1
}
endtemplate NsHayL5PC
"""


def is_hay(cell) -> bool:
    """Whether ``cell`` is a ``hay-l5pc`` specification (:class:`HayCell`, any morphology)."""
    return isinstance(cell, HayCell)


def load_steady_hay_dataset(path, option: str = "--data"):
    """A ``hay-l5pc`` dataset of ``neurosurrogate simulate`` whose trials start from the steady state (the
    simulate default); :class:`~neurosurrogate.data.dataset.DatasetError` (a ValueError) naming ``option``
    otherwise (a point-cell dataset, or trials from ``--v-init-mV`` without a pre-run)."""
    from neurosurrogate.data.dataset import DatasetError, load_dataset

    ds = load_dataset(path)
    if ds.v_dend_mV is None or "morphology" not in ds.cell:
        raise DatasetError(f"{option} {path}: not a hay-l5pc dataset (no morphology, no dendritic recordings)")
    if not ds.cell.get("prerun", True):
        raise DatasetError(f"{option} {path}: its trials start at {ds.cell.get('v_init_mV')} mV without a pre-run; "
                           "this needs trials from the steady state (the simulate default)")
    return ds


def dataset_cell(ds, morphology: str):
    """The cell that made dataset ``ds`` (its configuration as generated), on the morphology file ``morphology``
    (datasets record the path they were made with, which need not exist here)."""
    from neurosurrogate.biophys.cells import cell_from_dict

    if "morphology" not in ds.cell:
        raise ValueError(f"the dataset's cell ({ds.cell.get('name', '?')}) has no morphology to replace: "
                         "not a hay-l5pc dataset")
    return cell_from_dict({**ds.cell, "morphology": morphology})


def _h():
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    from neuron import h

    from neurosurrogate.biophys.build import load_mechanisms

    load_mechanisms()
    h.load_file("stdrun.hoc")
    h.load_file("import3d.hoc")
    if not hasattr(h, "NsHayL5PC"):
        h(_TEMPLATE)
    return h


def short_name(sec) -> str:
    """Section name without the template prefix, e.g. ``'apic[12]'``."""
    return sec.name().split(".")[-1]


def load_morphology(h, path: str):
    """A template instance with the morphology of ``path`` (Import3d), nseg rule applied,
    axon replaced. Raises :class:`MorphologyError` if Import3d fails or parts are missing."""
    suffix = Path(path).suffix.lower()
    if suffix == ".asc":
        reader = h.Import3d_Neurolucida3()
    elif suffix == ".swc":
        reader = h.Import3d_SWC_read()
    else:  # pragma: no cover - resolve_morphology already checked
        raise MorphologyError(f"unknown morphology kind {suffix!r}")
    if hasattr(reader, "quiet"):
        reader.quiet = 1
    cell = h.NsHayL5PC()
    try:
        reader.input(str(path))
        gui = h.Import3d_GUI(reader, 0)
        gui.instantiate(cell)
    except RuntimeError as exc:
        raise MorphologyError(f"morphology file {path}: NEURON's Import3d could not read it ({exc})") from None
    n = {k: sum(1 for _ in getattr(cell, k)) for k in ("somatic", "basal", "apical")}
    missing = [k for k, v in n.items() if v == 0]
    if missing:
        raise MorphologyError(f"morphology file {path}: no {'/'.join(missing)} sections after import ({n})")
    for sec in cell.all:
        sec.nseg = nseg_rule(sec.L)
    cell.replace_axon()
    return cell


def _sections(cell, region: str) -> list:
    return list(getattr(cell, region))


def apply_biophysics(h, cell) -> dict[str, float]:
    """Insert and set every mechanism (L5PCbiophys3). Returns ``{'d_max_um': ...}``.

    Apical rules are evaluated at each compartment centre except in the last
    compartment of a section, which takes the value at the section's distal end
    (x = 1): the original's ``for (x)`` loop writes the x = 1 value last.
    """
    soma = cell.soma[0]
    origin = soma(0.5)
    for region, par in BIOPHYS.items():
        for sec in getattr(cell, region):
            sec.Ra = RA_OHM_CM
            sec.cm = par["cm"]
            sec.insert("pas")
            for seg in sec:
                seg.pas.g = par["g_pas"]
                seg.pas.e = E_PAS_MV
            for mech in par["gbar"]:
                sec.insert(mech)
            if par["cadyn"] is not None:
                sec.insert("HayCaDyn")
                for seg in sec:
                    cd = seg.HayCaDyn
                    cd.decay, cd.gamma = par["cadyn"]["decay"], par["cadyn"]["gamma"]
                    cd.depth, cd.minCai = CADYN_DEPTH_UM, CADYN_MIN_CAI_MM
            if region in ("somatic", "apical"):
                sec.ena = ENA_MV
                sec.ek = EK_MV
            for mech, g in par["gbar"].items():
                if g is None:
                    continue
                for seg in sec:
                    getattr(seg, mech).gbar = g
    apical = _sections(cell, "apical")
    d_max = max(h.distance(origin, sec(1.0)) for sec in apical)
    for sec in apical:
        segs = list(sec)
        for i, seg in enumerate(segs):
            d = h.distance(origin, sec(1.0) if i == len(segs) - 1 else seg)
            seg.HayIh.gbar = ih_apical(d, d_max)
            seg.HayCaLVA.gbar = ca_lva_apical(d)
            seg.HayCaHVA.gbar = ca_hva_apical(d)
    return {"d_max_um": d_max}


def _xyz_at(sec, x: float) -> list[float]:
    """3-D position of ``sec(x)`` by linear interpolation along the 3-D points' arc length."""
    n = int(sec.n3d())
    if n == 0:
        return [math.nan] * 3
    arc = np.array([sec.arc3d(i) for i in range(n)])
    pts = np.array([[sec.x3d(i), sec.y3d(i), sec.z3d(i)] for i in range(n)])
    s = x * arc[-1]
    return [float(np.interp(s, arc, pts[:, k])) for k in range(3)]


def _x_node(sec, x: float) -> float:
    """Centre of the compartment that holds ``x`` (NEURON's node for 0 < x < 1)."""
    n = int(sec.nseg)
    i = min(int(x * n), n - 1)
    return (i + 0.5) / n


def synapse_table(spec: HayCell, cell=None) -> list[dict]:
    """The default synapse table of ``spec`` (NEURON; builds the morphology unless ``cell`` is given).

    Returns one dict per site, in index order: ``index, section, x, x_node, nseg, dist_um,
    xyz_um, kind, region, tau_ms, e_rev_mV, weight_nS``.
    """
    h = _h()
    if cell is None:
        cell = load_morphology(h, spec.morphology)
    origin = cell.soma[0](0.5)
    rng = np.random.default_rng(spec.synapse_seed)
    rows = []
    for region, kind, n in spec.synapse_groups:
        secs = _sections(cell, region)
        L = np.array([s.L for s in secs])
        idx = rng.choice(len(secs), size=n, p=L / L.sum())
        xs = rng.uniform(size=n)
        tau, e, w = (
            (spec.exc_tau_ms, spec.exc_e_mV, spec.exc_weight_nS)
            if kind == "exc"
            else (spec.inh_tau_ms, spec.inh_e_mV, spec.inh_weight_nS)
        )
        for i, x in zip(idx, xs):
            sec = secs[int(i)]
            xn = _x_node(sec, float(x))
            rows.append({
                "index": len(rows),
                "section": short_name(sec),
                "x": float(x),
                "x_node": xn,
                "nseg": int(sec.nseg),
                "dist_um": float(h.distance(origin, sec(xn))),
                "xyz_um": _xyz_at(sec, xn),
                "kind": kind,
                "region": region,
                "tau_ms": tau,
                "e_rev_mV": e,
                "weight_nS": w,
            })
    return rows


def locate_site(h, cell, dist_um: float) -> dict:
    """Apical site at path distance ``dist_um``: among the apical sections that contain that
    distance, the one with the largest diameter there (the main trunk)."""
    origin = cell.soma[0](0.5)
    best = None
    for sec in cell.apical:
        d0, d1 = h.distance(origin, sec(0.0)), h.distance(origin, sec(1.0))
        if d0 <= dist_um <= d1 and d1 > d0:
            x = (dist_um - d0) / (d1 - d0)
            diam = sec(x).diam
            if best is None or diam > best[0]:
                best = (diam, sec, x)
    if best is None:
        raise MorphologyError(f"no apical section reaches {dist_um} um from the soma")
    diam, sec, x = best
    xn = _x_node(sec, x)
    return {
        "section": short_name(sec),
        "x": float(x),
        "x_node": xn,
        "nseg": int(sec.nseg),
        "dist_um": float(h.distance(origin, sec(xn))),
        "diam_um": float(diam),
        "xyz_um": _xyz_at(sec, xn),
        "target_dist_um": float(dist_um),
    }


def locate_ca_site(h, cell, trunk_section: str | None = None, dist_um: float = CA_SITE_DIST_UM) -> dict:
    """The compartment whose calcium current is recorded: at path distance ``dist_um``
    (default the middle of the Ca hot zone, 785 um) on the apical trunk.

    Among the apical sections that contain ``dist_um``, the one that is
    ``trunk_section`` (short name, normally the section of the distal recording site)
    or descends from it; if none, the one with the largest diameter there (as
    :func:`locate_site`). Returns the keys of :func:`locate_site` plus
    ``gbar_CaHVA_S_cm2``, ``gbar_CaLVA_S_cm2`` (densities in that compartment) and
    ``in_hot_zone``. Raises :class:`MorphologyError` if no apical section reaches it.
    """
    site = locate_site(h, cell, dist_um)
    if trunk_section is not None:
        origin = cell.soma[0](0.5)
        for sec in cell.apical:
            d0, d1 = h.distance(origin, sec(0.0)), h.distance(origin, sec(1.0))
            if not (d0 <= dist_um <= d1 and d1 > d0):
                continue
            s, on_branch = sec, False
            while s is not None:
                if short_name(s) == trunk_section:
                    on_branch = True
                    break
                ps = s.parentseg()
                s = ps.sec if ps is not None else None
            if on_branch:
                x = (dist_um - d0) / (d1 - d0)
                xn = _x_node(sec, x)
                site = {"section": short_name(sec), "x": float(x), "x_node": xn, "nseg": int(sec.nseg),
                        "dist_um": float(h.distance(origin, sec(xn))), "diam_um": float(sec(x).diam),
                        "xyz_um": _xyz_at(sec, xn), "target_dist_um": float(dist_um)}
                break
    seg = None
    for sec in cell.apical:
        if short_name(sec) == site["section"]:
            seg = sec(site["x"])
            break
    site["gbar_CaHVA_S_cm2"] = float(seg.HayCaHVA.gbar)
    site["gbar_CaLVA_S_cm2"] = float(seg.HayCaLVA.gbar)
    site["in_hot_zone"] = bool(site["gbar_CaLVA_S_cm2"] == CA_LVA_HOT)
    site["current"] = "ica: HVA + LVA calcium current density, mA/cm2, negative = inward"
    return site


class HayModel:
    """One instantiated ``hay-l5pc`` in this process: sections, synapses, recording sites.

    Attributes:
        h: NEURON's hoc interpreter.
        cell: the hoc template instance (``cell.soma[0]``, ``cell.apic[i]``, ...).
        sections: short name -> section.
        synapse_rows: the synapse table (see :func:`synapse_table`).
        syns: one ``AlphaSynEv`` per synapse row.
        sites: the dendritic recording sites (see :func:`locate_site`).
        ca_site: the compartment whose ``ica`` is recorded (see :func:`locate_ca_site`).
        d_max_um: largest apical path distance (normalises the Ih rule).
    """

    def __init__(self, spec: HayCell) -> None:
        self.h = h = _h()
        self.spec = spec
        self.cell = load_morphology(h, spec.morphology)
        self.d_max_um = apply_biophysics(h, self.cell)["d_max_um"]
        self.sections = {short_name(s): s for s in self.cell.all}
        self.soma = self.cell.soma[0]
        self.synapse_rows = synapse_table(spec, self.cell)
        self.syns = []
        for row in self.synapse_rows:
            p = h.AlphaSynEv(self.sections[row["section"]](row["x"]))
            p.tau, p.e, p.cutoff = row["tau_ms"], row["e_rev_mV"], spec.alpha_cutoff_tau
            self.syns.append(p)
        self.pool: list[list] = [[] for _ in self.syns]
        self.sites = [locate_site(h, self.cell, d) for d in spec.recording_dist_um]
        self.ca_site = locate_ca_site(h, self.cell, self.sites[-1]["section"] if self.sites else None)
        self.state_probes = state_probes(self)
        self._snapshot: list | None = None
        self.v_rest_mV = math.nan
        self._restore_on_init = False
        self._fih = h.FInitializeHandler(1, self._on_finitialize)
        self.iclamp = h.IClamp(self.soma(0.5))
        self.iclamp.amp = 0.0
        self.iclamp.dur = 0.0

    @property
    def state_names(self) -> list[str]:
        """Names of the recorded state variables (row order of ``states``, see :func:`state_probes`)."""
        return [name for name, _, _ in self.state_probes]

    def close(self) -> None:
        """Drop every NEURON object of this cell (the handler refers back to the model)."""
        self._fih = None
        self.iclamp = None
        self.pool = []
        self.syns = []
        self.sections = {}
        self.soma = None
        self.cell = None
        self._snapshot = None

    # -- state ------------------------------------------------------------------------
    def segments(self):
        for sec in self.cell.all:
            for seg in sec:
                yield seg

    def _state_refs(self) -> list:
        refs = []
        for seg in self.segments():
            refs.append((seg, "v"))
            for mech, states in MECH_STATES.items():
                if hasattr(seg, mech):
                    mo = getattr(seg, mech)
                    refs.extend((mo, s) for s in states)
            if hasattr(seg, "HayCaDyn"):
                refs.append((seg, "cai"))
                refs.append((seg, "eca"))
        return refs

    def _on_finitialize(self) -> None:
        if self._restore_on_init and self._snapshot is not None:
            for obj, name, val in self._snapshot:
                setattr(obj, name, val)

    def _setup(self, dt_ms: float) -> None:
        h = self.h
        h.celsius = self.spec.celsius_degC
        h.dt = dt_ms
        h.steps_per_ms = 1.0 / dt_ms
        h.secondorder = 0
        if h.cvode.active():
            h.cvode.active(0)

    def steady_state(self, dt_coarse_ms: float = 0.5, tol_mV_per_ms: float = 1e-9, max_ms: float = 60000.0) -> float:
        """Relax the cell without input from ``v_init_mV`` and keep its steady state.

        Runs at ``dt_coarse_ms`` (the fixed point of the implicit scheme does not depend
        on dt) until the largest |dv/dt| over all compartments, measured over 100 ms,
        is below ``tol_mV_per_ms``; then checks it at the fine step. Returns the soma
        voltage. Cached: later calls return at once.
        """
        if self._snapshot is not None:
            return self.v_rest_mV
        h = self.h
        self._restore_on_init = False
        self._setup(dt_coarse_ms)
        segs = list(self.segments())
        h.finitialize(self.spec.v_init_mV)
        t_run = 0.0
        prev = np.array([s.v for s in segs])
        while True:
            t_run += 100.0
            h.continuerun(t_run)
            cur = np.array([s.v for s in segs])
            rate = np.abs(cur - prev).max() / 100.0
            prev = cur
            if rate < tol_mV_per_ms and t_run >= 5000.0:
                break
            if t_run >= max_ms:
                raise RuntimeError(f"hay-l5pc: no steady state within {max_ms} ms (|dv/dt| = {rate:.2e} mV/ms)")
        self._snapshot = [(obj, name, getattr(obj, name)) for obj, name in self._state_refs()]
        self.v_rest_mV = float(self.soma(0.5).v)
        return self.v_rest_mV

    def adopt_steady_state(self, other: "HayModel") -> None:
        """Take the steady state of ``other`` (same specification, already relaxed) as this cell's:
        one relaxation serves every copy of the cell in a circuit (run alone, it would integrate
        all cells built so far).

        Raises:
            ValueError: ``other`` has another specification or no steady state yet.
        """
        if other.spec != self.spec or other._snapshot is None:
            raise ValueError("adopt_steady_state: the other cell must have the same specification and a steady state")
        refs = self._state_refs()
        if len(refs) != len(other._snapshot):
            raise ValueError(f"adopt_steady_state: {len(refs)} state variables here, {len(other._snapshot)} there")
        self._snapshot = [(obj, name, val) for (obj, name), (_, _, val) in zip(refs, other._snapshot)]
        self.v_rest_mV = other.v_rest_mV

    def restore_on_init(self, on: bool) -> None:
        """With ``on`` (and a steady state), the next ``finitialize`` puts the cell at its steady state."""
        self._restore_on_init = bool(on)

    # -- inputs -----------------------------------------------------------------------
    def prepare(self, events, duration_ms: float) -> list:
        """Assign NetCon weights (one NetCon per distinct weight and synapse); return the queue."""
        from neurosurrogate.biophys.simulate import queue_events

        return queue_events(self.h, self.syns, self.pool, events, duration_ms)

    def run(self, events, duration_ms: float, dt_ms: float, iclamp: tuple[float, float, float] | None = None,
            i_soma_nA: np.ndarray | None = None) -> dict:
        """One trial: returns full-resolution soma v/ina/ik and the dendritic sites' v. ``iclamp`` is a
        somatic step (amp nA, delay ms, dur ms); ``i_soma_nA`` a somatic current waveform sampled at
        t = 0, 1, 2, ... ms, linearly interpolated (see :func:`simulate_hay`)."""
        h = self.h
        if self.spec.prerun:
            self.steady_state()
        self._setup(dt_ms)
        queue = self.prepare(events, duration_ms)
        amp, delay, dur = iclamp if iclamp is not None else (0.0, 0.0, 0.0)
        self.iclamp.amp, self.iclamp.delay, self.iclamp.dur = amp, delay, dur
        played = None
        if i_soma_nA is not None:
            i_vec = np.asarray(i_soma_nA, dtype=float)
            played = (h.Vector(i_vec), h.Vector(np.arange(i_vec.size, dtype=float)))
            played[0].play(self.iclamp._ref_amp, played[1], 1)  # 1: continuous (linear interpolation)
            self.iclamp.delay, self.iclamp.dur = 0.0, 1e9
        seg = self.soma(0.5)
        recs = {
            "v": h.Vector().record(seg._ref_v),
            "ina": h.Vector().record(seg._ref_ina),
            "ik": h.Vector().record(seg._ref_ik),
        }
        for k, site in enumerate(self.sites):
            recs[f"v_site{k}"] = h.Vector().record(self.sections[site["section"]](site["x"])._ref_v)
        recs["ica"] = h.Vector().record(self.sections[self.ca_site["section"]](self.ca_site["x"])._ref_ica)
        if self.spec.record_states:
            for name, obj, attr in self.state_probes:
                recs[f"state:{name}"] = h.Vector().record(getattr(obj, f"_ref_{attr}"))
        self._restore_on_init = bool(self.spec.prerun)
        try:
            h.finitialize(self.spec.v_init_mV)
        finally:
            self._restore_on_init = False
        for pool, inv, tt in queue:
            for i, te in zip(inv, tt):
                pool[i].event(te)
        h.continuerun(float(duration_ms))
        n_expected = int(round(duration_ms / dt_ms)) + 1
        out = {k: vec.as_numpy()[:n_expected].copy() for k, vec in recs.items()}
        for vec in recs.values():
            vec.play_remove()
        if played is not None:
            played[0].play_remove()
        self.iclamp.amp, self.iclamp.dur = 0.0, 0.0
        return out


@dataclass
class HayTrace(Trace):
    """A :class:`Trace` of ``hay-l5pc`` plus the dendritic recording sites.

    Attributes:
        v_dend_mV: (n_sites, n) voltage at the dendritic sites, 1 kHz point samples at
            t = 0, 1, ... ms (row k = ``meta['sites'][k]``; default rows: 400 um, 700 um).
        ica: (n,) calcium current density (HVA + LVA, NEURON's ``ica``) in the hot-zone
            compartment ``meta['ca_site']``, mA/cm2 (negative = inward), 1 ms bin means.
        states: (n_states, n) state variables (``meta['state_names']``, see
            :func:`state_probes`), 1 ms bin means; only with ``record_states``.
    """

    v_dend_mV: np.ndarray | None = None
    ica: np.ndarray | None = None
    states: np.ndarray | None = None

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out = super().to_npz_dict()
        if self.v_dend_mV is not None:
            out["v_dend_mV"] = self.v_dend_mV
        if self.ica is not None:
            out["ica"] = self.ica
        if self.states is not None:
            out["states"] = self.states
        return out


_MODEL: HayModel | None = None


def hay_model(spec: HayCell) -> HayModel:
    """The process's NEURON model of ``spec`` (built on first use, rebuilt when the spec changes)."""
    global _MODEL
    if _MODEL is not None and _MODEL.spec == spec:
        return _MODEL
    if _MODEL is not None and _MODEL.spec.replace(prerun=spec.prerun) == spec:
        _MODEL.spec = spec  # only the initialisation mode differs: same NEURON objects
        return _MODEL
    release_model()  # drop the previous cell's NEURON objects first
    from neurosurrogate.biophys import simulate

    simulate.release_model()  # and any point cells: NEURON would integrate them alongside
    _MODEL = HayModel(spec)
    return _MODEL


def release_model() -> None:
    """Delete this process's hay-l5pc NEURON objects (if any)."""
    global _MODEL
    if _MODEL is not None:
        _MODEL.close()
        _MODEL = None
        gc.collect()


def simulate_hay(
    spec: HayCell,
    events,
    duration_ms: float,
    dt_ms: float | None = None,
    keep_full: bool = False,
    iclamp: tuple[float, float, float] | None = None,
    i_soma_nA: np.ndarray | None = None,
) -> HayTrace:
    """Simulate one trial of ``hay-l5pc`` in this process.

    Args:
        spec: the cell specification.
        events: :class:`~neurosurrogate.inputs.EventTable`; ``synapse`` indexes the default
            synapse table (0..199).
        duration_ms: simulated time, ms (whole number >= 1).
        dt_ms: integration step (default ``spec.dt_ms``).
        keep_full: also return full-resolution soma voltage in ``meta['v_full_mV']``.
        iclamp: optional somatic current step ``(amp_nA, delay_ms, dur_ms)``.
        i_soma_nA: optional somatic current waveform, nA, sampled at t = 0, 1, 2, ... ms (at least
            ``duration_ms`` samples, finite), linearly interpolated between samples (e.g. a noise
            current; positive = depolarising). Not together with ``iclamp``.

    Returns:
        :class:`HayTrace`: ``t_ms`` = 0..duration-1, ``v_mV`` soma (1 kHz, AP peaks kept),
        ``v_dend_mV`` (n_sites, duration), ``spike_times_ms``, soma ``ina``/``ik`` (mA/cm2,
        1 ms bin means), ``ica`` at the hot-zone compartment (mA/cm2, 1 ms bin means);
        ``meta`` has the sites, the Ca site, dt and threshold.
    """
    dt = spec.dt_ms if dt_ms is None else float(dt_ms)
    if dt <= 0 or abs(round(1.0 / dt) * dt - 1.0) > 1e-9:
        raise ValueError(f"dt_ms={dt} must be > 0 and divide 1 ms exactly")
    if not np.isfinite(duration_ms) or duration_ms < 1 or abs(duration_ms - round(duration_ms)) > 1e-9:
        raise ValueError(f"duration_ms must be a whole number of ms >= 1, got {duration_ms}")
    events.check_synapses(len(spec.synapses))
    if i_soma_nA is not None:
        if iclamp is not None:
            raise ValueError("simulate_hay: give either iclamp (a step) or i_soma_nA (a waveform), not both")
        i_soma_nA = np.asarray(i_soma_nA, dtype=float)
        if i_soma_nA.ndim != 1 or i_soma_nA.size < round(duration_ms) or not np.all(np.isfinite(i_soma_nA)):
            raise ValueError(f"i_soma_nA must be a 1-D array of finite currents (nA), one per ms, at least "
                             f"{round(duration_ms)} samples; got shape {i_soma_nA.shape}")
    model = hay_model(spec)
    full = model.run(events, duration_ms, dt, iclamp, i_soma_nA)
    v = full["v"]
    spikes = detect_spikes(v, dt, spec.spike_threshold_mV)
    spikes = spikes[spikes < duration_ms]
    n = int(round(duration_ms))
    per_ms = int(round(1.0 / dt))
    dend = np.stack([full[f"v_site{k}"][: n * per_ms : per_ms] for k in range(len(model.sites))]) \
        if model.sites else np.zeros((0, n))
    tr = HayTrace(
        t_ms=np.arange(n, dtype=float),
        v_mV=resample_1khz(v, dt, n, spikes),
        spike_times_ms=spikes,
        ina=bin_mean_1khz(full["ina"], dt, n),
        ik=bin_mean_1khz(full["ik"], dt, n),
        meta={"dt_ms": dt, "spike_threshold_mV": spec.spike_threshold_mV, "sites": model.sites,
              "v_dend_layout": "(n_sites, T)", "ca_site": model.ca_site},
        v_dend_mV=dend,
        ica=bin_mean_1khz(full["ica"], dt, n),
    )
    if spec.record_states:
        tr.states = np.stack([bin_mean_1khz(full[f"state:{name}"], dt, n) for name in model.state_names])
        tr.meta["state_names"] = model.state_names
    if keep_full:
        tr.meta["v_full_mV"] = v
        tr.meta["v_dend_full_mV"] = np.stack([full[f"v_site{k}"] for k in range(len(model.sites))])
    return tr
