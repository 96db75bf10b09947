"""Network configuration: a TOML file describing a circuit statistically.

Example (see ``examples/paper_circuit.toml`` for the paper's circuit)::

    [network]
    duration_ms = 250          # simulated time, whole ms
    seed = 1                   # every random choice of the instance derives from it
    exc_scale = 1.0            # multiplies every excitatory synaptic weight (quantal scale)
    inh_scale = 1.0            # multiplies every inhibitory synaptic weight
    record_v = [0, 1]          # global indices of cells whose voltage is recorded

    [populations.L5]
    n = 150
    model = "point-hh"         # surrogate: shipped name or model folder
    # cell = "point-hh"        # NEURON cell for the cross-check (default: the model's cell)

    [projections.recurrent]
    pre = "L5"
    post = "L5"
    rule = "paper"             # fixed-probability | paper | fixed-indegree | distance | file
    p = 0.075
    weight_nS = 2.5            # peak conductance per contact before plasticity
    channel = "exc"            # synapse kind ('exc'/'inh'), a list of synapse indices, or a selector
                               # { kind = "exc", region = "basal", max_dist_um = 300 } (multi-compartment cells)
    contacts = 1               # synaptic contacts per connection (sites drawn from `channel`)
    delay_ms = [1, 3]          # whole ms: one value, or [min, max] drawn uniformly per connection
    reciprocal_scale = 1.5     # paper rule: weight factor of reciprocally connected pairs
    stp = { U = 0.38, D_ms = 365.6, F_ms = 25.71 }   # or stp = "none"

    [background.L5]            # independent input to every cell of a population
    protocol = "poisson"       # poisson | paper
    exc_rate_Hz = 600.0        # total excitatory event rate per cell
    inh_rate_Hz = 225.0
    exc_weight_nS = 2.5
    inh_weight_nS = 8.0

    [stimuli.thalamic]         # a timed strong input
    population = "L5"
    time_ms = 100.0
    width_ms = 1.0             # events uniformly spread over [time, time + width)
    fraction = 1.0             # fraction of the population's cells that receive it (drawn per instance)
    # cells = [0, 5, 9]        # or: these cells (indices within the population)
    events = 8                 # events per stimulated cell
    weight_nS = 2.5
    channel = "exc"
    scaled = true              # apply exc_scale / inh_scale to it too (false: a fixed probe)

    [measures]
    stimulus_ms = 100.0        # baseline = [0, stimulus), response = [stimulus, stimulus + window)
    response_window_ms = 10.0

Rules' parameters: ``fixed-probability``: ``p``; ``paper``: ``p`` (unidirectional
pair probability; reciprocal pairs ``reciprocal_ratio * p``, default 0.5);
``fixed-indegree``: ``k``; ``distance``: ``p_max``, ``scale_um``,
``profile`` (gaussian | exponential), cell positions uniform in the population's
``extent_um`` box; ``file``: ``path`` (dense matrix or edge list, see
:func:`neurosurrogate.network.connectivity.load_edges`).

Every error names the TOML location and what was expected.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurosurrogate.data.io import read_toml

__all__ = [
    "BackgroundConfig",
    "ConfigError",
    "MeasuresConfig",
    "NetworkConfig",
    "PopulationConfig",
    "ProjectionConfig",
    "StimulusConfig",
    "get_path",
    "load_network_config",
    "set_path",
]

RULES = ("fixed-probability", "paper", "fixed-indegree", "distance", "file")
PAPER_STP = {"U": 0.38, "D_ms": 365.6, "F_ms": 25.71}


class ConfigError(ValueError):
    """A network or sweep configuration is invalid (the message names the field)."""


# ---------------------------------------------------------------------------------------------
# small typed readers: each knows its TOML location for the error message
# ---------------------------------------------------------------------------------------------
class _Table:
    def __init__(self, d: Any, where: str) -> None:
        if not isinstance(d, dict):
            raise ConfigError(f"[{where}] must be a table, got {type(d).__name__}")
        self.d, self.where, self.used = d, where, set()

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key not in self.d:
            if default is _REQUIRED:
                raise ConfigError(f"[{self.where}] needs '{key}'")
            return default
        return self.d[key]

    def _fail(self, key: str, expected: str, got: Any) -> ConfigError:
        return ConfigError(f"[{self.where}] {key}: expected {expected}, got {got!r}")

    def num(self, key: str, default: Any = None, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False) -> float:
        v = self._get(key, default)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v <= hi
        if not ok:
            rng = f"{'>' if lo_open else '>='} {lo}" if lo is not None else ""
            rng += (" and " if rng and hi is not None else "") + (f"<= {hi}" if hi is not None else "")
            raise self._fail(key, f"a finite number {rng}".strip(), v)
        return float(v)

    def int_(self, key: str, default: Any = None, lo: int | None = None) -> int:
        v = self._get(key, default)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or (lo is not None and v < lo):
            raise self._fail(key, f"a whole number >= {lo}" if lo is not None else "a whole number", v)
        return v

    def str_(self, key: str, default: Any = None, choices: tuple[str, ...] | None = None) -> str:
        v = self._get(key, default)
        if not isinstance(v, str) or (choices and v not in choices):
            raise self._fail(key, f"one of {list(choices)}" if choices else "a string", v)
        return v

    def raw(self, key: str, default: Any = None) -> Any:
        return self._get(key, default)

    def done(self) -> None:
        unknown = sorted(set(self.d) - self.used)
        if unknown:
            raise ConfigError(f"[{self.where}] unknown key(s) {unknown}; allowed: {sorted(self.used)}")


_REQUIRED = object()


def _channel(t: _Table, key: str, default: Any = "exc") -> str | tuple:
    """Synapse sites: a kind, a list of synapse indices, or a selector table.

    The selector ``{ kind = "exc", region = "basal", min_dist_um = 0, max_dist_um = 300 }`` picks the
    sites of that kind (and region, and path distance from the soma in um) from the cell's synapse table
    (point cells: region "soma", distance 0). Returned as a sorted tuple of (key, value) pairs.
    """
    v = t.raw(key, default)
    if isinstance(v, str) and v in ("exc", "inh"):
        return v
    if isinstance(v, list) and v and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v):
        return tuple(v)
    if isinstance(v, dict):
        sel = _Table(v, f"{t.where}.{key}")
        out = {"kind": sel.str_("kind", _REQUIRED, ("exc", "inh"))}
        if "region" in v:
            out["region"] = sel.str_("region", None, ("soma", "basal", "apical", "axon"))
        lo, hi = sel.num("min_dist_um", 0.0, 0), sel.num("max_dist_um", float("inf"), 0) if "max_dist_um" in v else None
        if hi is not None and hi < lo:
            raise sel._fail("max_dist_um", f"a distance >= min_dist_um ({lo})", hi)
        out["min_dist_um"] = lo
        if hi is not None:
            out["max_dist_um"] = hi
        sel.done()
        return tuple(sorted(out.items()))
    raise t._fail(key, "'exc', 'inh', a non-empty list of synapse indices or a {kind, region, min_dist_um, "
                       "max_dist_um} table", v)


def _delay(t: _Table) -> tuple[int, int]:
    v = t.raw("delay_ms", 1)
    vals = v if isinstance(v, list) else [v]
    if len(vals) not in (1, 2) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and float(x).is_integer() and x >= 1 for x in vals
    ):
        raise t._fail("delay_ms", "a whole number of ms >= 1, or [min, max] of them", v)
    lo, hi = int(vals[0]), int(vals[-1])
    if hi < lo:
        raise t._fail("delay_ms", "[min, max] with min <= max", v)
    return lo, hi


# ---------------------------------------------------------------------------------------------
# the dataclasses
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PopulationConfig:
    """``n`` cells simulated by surrogate ``model``; ``cell``: NEURON cell (default: the model's)."""

    name: str
    n: int
    model: str
    cell: str | None = None
    extent_um: tuple[float, float, float] = (500.0, 500.0, 0.0)


@dataclass(frozen=True)
class ProjectionConfig:
    """Connections from population ``pre`` to ``post`` by a seeded ``rule`` (see module doc)."""

    name: str
    pre: str
    post: str
    rule: str
    params: tuple[tuple[str, Any], ...]
    weight_nS: float
    channel: str | tuple[int, ...] = "exc"
    contacts: int = 1
    delay_ms: tuple[int, int] = (1, 1)
    reciprocal_scale: float = 1.5
    stp: tuple[float, float, float] | None = (0.38, 365.6, 25.71)
    allow_autapses: bool = False

    def param(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)


@dataclass(frozen=True)
class BackgroundConfig:
    """Independent input to every cell of ``population``: per-cell total rates (Hz) per kind."""

    population: str
    protocol: str = "poisson"
    exc_rate_Hz: float = 0.0
    inh_rate_Hz: float = 0.0
    exc_weight_nS: float | None = None
    inh_weight_nS: float | None = None
    weight_cv: float = 0.0
    max_exc_rate_Hz: float = 600.0
    p_quiet: float = 0.0


@dataclass(frozen=True)
class StimulusConfig:
    """``events`` events of ``weight_nS`` per stimulated cell in ``[time_ms, time_ms + width_ms)``.

    ``cells``: explicit cells (indices within the population) instead of a random ``fraction``.
    ``scaled``: the weights are multiplied by the network's ``exc_scale``/``inh_scale`` like
    every other synapse of that kind (default); false keeps the stimulus a fixed probe.
    """

    name: str
    population: str
    time_ms: float
    width_ms: float = 1.0
    fraction: float = 1.0
    events: int = 1
    weight_nS: float = 2.5
    channel: str | tuple[int, ...] = "exc"
    scaled: bool = True
    cells: tuple[int, ...] | None = None


@dataclass(frozen=True)
class MeasuresConfig:
    """Windows of the paper's measures: baseline ``[0, stimulus_ms)``, response ``[stimulus_ms, +window)``."""

    stimulus_ms: float = 100.0
    response_window_ms: float = 10.0


@dataclass(frozen=True)
class NetworkConfig:
    """A validated network description; ``raw`` is the nested dict it came from."""

    duration_ms: int
    seed: int
    exc_scale: float
    inh_scale: float
    record_v: tuple[int, ...]
    populations: tuple[PopulationConfig, ...]
    projections: tuple[ProjectionConfig, ...]
    background: tuple[BackgroundConfig, ...]
    stimuli: tuple[StimulusConfig, ...]
    measures: MeasuresConfig
    raw: dict
    base_dir: str = "."

    @property
    def n_cells(self) -> int:
        return sum(p.n for p in self.populations)

    def population(self, name: str) -> PopulationConfig:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    @classmethod
    def from_dict(cls, d: dict, base_dir: str | Path = ".") -> "NetworkConfig":
        """Validate a nested dict (as read from TOML)."""
        top = _Table(d, "top level")
        net = _Table(top.raw("network", {}), "network")
        duration = net.int_("duration_ms", _REQUIRED, lo=1)
        seed = net.int_("seed", 0, lo=0)
        exc_scale = net.num("exc_scale", 1.0, lo=0)
        inh_scale = net.num("inh_scale", 1.0, lo=0)
        rec = net.raw("record_v", [])
        if not isinstance(rec, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in rec):
            raise net._fail("record_v", "a list of cell indices >= 0", rec)
        net.done()

        pops_d = top.raw("populations", _REQUIRED)
        if not isinstance(pops_d, dict) or not pops_d:
            raise ConfigError("[populations] must hold at least one [populations.NAME] table")
        pops = []
        for name, pd in pops_d.items():
            t = _Table(pd, f"populations.{name}")
            ext = t.raw("extent_um", [500.0, 500.0, 0.0])
            if not (isinstance(ext, list) and len(ext) == 3 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in ext)):
                raise t._fail("extent_um", "[x, y, z] box size in um, each >= 0", ext)
            cell = t.raw("cell", None)
            if cell is not None and not isinstance(cell, str):
                raise t._fail("cell", "a cell name", cell)
            pops.append(PopulationConfig(name, t.int_("n", _REQUIRED, lo=1), t.str_("model", _REQUIRED), cell,
                                         tuple(float(x) for x in ext)))
            t.done()
        n_total = sum(p.n for p in pops)
        bad = [i for i in rec if i >= n_total]
        if bad:
            raise ConfigError(f"[network] record_v: cell indices {bad} exceed the {n_total} cells")
        names = {p.name for p in pops}

        def _pop_ref(t: _Table, key: str) -> str:
            v = t.str_(key, _REQUIRED)
            if v not in names:
                raise t._fail(key, f"a population name ({sorted(names)})", v)
            return v

        projs = []
        for name, pd in (top.raw("projections", {}) or {}).items():
            t = _Table(pd, f"projections.{name}")
            pre, post = _pop_ref(t, "pre"), _pop_ref(t, "post")
            rule = t.str_("rule", _REQUIRED, RULES)
            params: dict[str, Any] = {}
            if rule in ("fixed-probability", "paper"):
                params["p"] = t.num("p", _REQUIRED, 0, 1)
                if rule == "paper":
                    if pre != post:
                        raise t._fail("rule", "'paper' only within one population (pre == post)", rule)
                    params["reciprocal_ratio"] = t.num("reciprocal_ratio", 0.5, 0)
                    if params["p"] * (1 + params["reciprocal_ratio"]) > 1:
                        raise ConfigError(f"[projections.{name}] p * (1 + reciprocal_ratio) must be <= 1")
            elif rule == "fixed-indegree":
                params["k"] = t.int_("k", _REQUIRED, lo=0)
            elif rule == "distance":
                params["p_max"] = t.num("p_max", _REQUIRED, 0, 1)
                params["scale_um"] = t.num("scale_um", _REQUIRED, 0, lo_open=True)
                params["profile"] = t.str_("profile", "gaussian", ("gaussian", "exponential"))
            else:
                path = Path(t.str_("path", _REQUIRED))
                params["path"] = str(path if path.is_absolute() else Path(base_dir) / path)
            stp_v = t.raw("stp", dict(PAPER_STP))
            if stp_v == "none":
                stp = None
            else:
                st = _Table(stp_v, f"projections.{name}.stp")
                stp = (st.num("U", PAPER_STP["U"], 0, 1, lo_open=True), st.num("D_ms", PAPER_STP["D_ms"], 0),
                       st.num("F_ms", PAPER_STP["F_ms"], 0))
                st.done()
            aut = t.raw("allow_autapses", False)
            if not isinstance(aut, bool):
                raise t._fail("allow_autapses", "true or false", aut)
            projs.append(ProjectionConfig(
                name, pre, post, rule, tuple(sorted(params.items())), t.num("weight_nS", _REQUIRED, 0),
                _channel(t, "channel"), t.int_("contacts", 1, lo=1), _delay(t),
                t.num("reciprocal_scale", 1.5, 0), stp, aut))
            t.done()

        bgs = []
        for name, bd in (top.raw("background", {}) or {}).items():
            t = _Table(bd, f"background.{name}")
            if name not in names:
                raise ConfigError(f"[background.{name}]: '{name}' is not a population ({sorted(names)})")
            proto = t.str_("protocol", "poisson", ("poisson", "paper"))
            ew, iw = t.raw("exc_weight_nS", None), t.raw("inh_weight_nS", None)
            if ew is not None:
                ew = t.num("exc_weight_nS", None, 0)
            if iw is not None:
                iw = t.num("inh_weight_nS", None, 0)
            if proto == "poisson":
                bg = BackgroundConfig(name, proto, t.num("exc_rate_Hz", 0.0, 0), t.num("inh_rate_Hz", 0.0, 0),
                                      ew, iw, t.num("weight_cv", 0.0, 0))
            else:
                bg = BackgroundConfig(name, proto, 0.0, 0.0, ew, iw, t.num("weight_cv", 0.0, 0),
                                      t.num("max_exc_rate_Hz", 600.0, 0), t.num("p_quiet", 0.0, 0, 1))
            bgs.append(bg)
            t.done()

        stims = []
        for name, sd in (top.raw("stimuli", {}) or {}).items():
            t = _Table(sd, f"stimuli.{name}")
            st = StimulusConfig(name, _pop_ref(t, "population"), t.num("time_ms", _REQUIRED, 0),
                                t.num("width_ms", 1.0, 0), t.num("fraction", 1.0, 0, 1), t.int_("events", 1, lo=0),
                                t.num("weight_nS", 2.5, 0), _channel(t, "channel"), t.raw("scaled", True))
            if not isinstance(st.scaled, bool):
                raise t._fail("scaled", "true or false", st.scaled)
            cells = t.raw("cells", None)
            if cells is not None:
                n_pop = next(p.n for p in pops if p.name == st.population)
                if not (isinstance(cells, list) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_pop
                                                        for i in cells) and len(set(cells)) == len(cells)):
                    raise t._fail("cells", f"a list of distinct cell indices in 0..{n_pop - 1}", cells)
                if "fraction" in sd:
                    raise ConfigError(f"[stimuli.{name}] give either cells or fraction, not both")
                st = dataclasses.replace(st, cells=tuple(cells))
            if st.time_ms >= duration:
                raise t._fail("time_ms", f"a time before the end of the run ({duration} ms)", st.time_ms)
            stims.append(st)
            t.done()

        m = _Table(top.raw("measures", {}), "measures")
        default_stim = stims[0].time_ms if stims else min(100.0, float(duration))
        meas = MeasuresConfig(m.num("stimulus_ms", default_stim, 0, float(duration)),
                              m.num("response_window_ms", 10.0, 0, lo_open=True))
        m.done()
        top.done()
        return cls(duration, seed, exc_scale, inh_scale, tuple(rec), tuple(pops), tuple(projs), tuple(bgs),
                   tuple(stims), meas, copy.deepcopy(d), str(base_dir))

    def with_values(self, values: dict[str, Any]) -> "NetworkConfig":
        """A copy with dotted-path fields replaced (e.g. ``{'projections.recurrent.p': 0.1}``), re-validated."""
        d = copy.deepcopy(self.raw)
        for path, value in values.items():
            set_path(d, path, value)
        return NetworkConfig.from_dict(d, self.base_dir)


def get_path(d: dict, path: str) -> Any:
    """Value at a dotted path (``network.exc_scale``); KeyError naming the path if absent."""
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(path)
        cur = cur[part]
    return cur


def set_path(d: dict, path: str, value: Any) -> None:
    """Set a dotted path in a nested dict. The parent tables must exist (a typo is an error)."""
    parts = path.split(".")
    cur = d
    for i, part in enumerate(parts[:-1]):
        if not isinstance(cur, dict) or part not in cur:
            raise ConfigError(f"parameter {path!r}: no table [{'.'.join(parts[: i + 1])}] in the network config")
        cur = cur[part]
    if not isinstance(cur, dict):
        raise ConfigError(f"parameter {path!r}: {'.'.join(parts[:-1])} is not a table")
    cur[parts[-1]] = value


def load_network_config(path: str | Path) -> NetworkConfig:
    """Read and validate a network TOML file (relative paths inside resolve against its folder)."""
    path = Path(path)
    d = read_toml(path, "network config", ConfigError)
    return NetworkConfig.from_dict(d, path.parent)
