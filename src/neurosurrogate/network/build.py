"""Realise a network config into a :class:`~neurosurrogate.network.circuit.Circuit`.

Every random choice draws from its own stream, ``numpy.random.default_rng([seed,
crc32(name)])`` with names like ``projection:recurrent`` or ``background:L5``,
so an instance is a pure function of its config and seed, and adding a
projection does not change the draws of the others.

Weights: every synapse onto an excitatory site (recurrent, background and,
unless ``scaled = false``, stimulus) is scaled by ``network.exc_scale``, onto
an inhibitory site by ``network.inh_scale`` (the paper's quantal scales).
"""

from __future__ import annotations

import json
import zlib
from functools import lru_cache

import numpy as np

from neurosurrogate.network import connectivity as conn
from neurosurrogate.network.circuit import STATIC_STP, Circuit, PopulationSpec
from neurosurrogate.network.config import ConfigError, NetworkConfig, ProjectionConfig

__all__ = ["CellTable", "cell_table", "realise", "stream"]


def stream(seed: int, name: str) -> np.random.Generator:
    """The random stream ``name`` of an instance with ``seed``."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


class CellTable:
    """A cell's synapse table as the network needs it: kind, default weight (nS), region and path
    distance from the soma (um) of every site (point cells: region 'soma', distance 0)."""

    def __init__(self, cell: str, kinds, weights_nS, regions=None, dist_um=None) -> None:
        self.cell, self.kinds, self.weights_nS = cell, tuple(kinds), np.asarray(weights_nS, dtype=float)
        n = len(self.kinds)
        self.regions = np.asarray(regions if regions is not None else ["soma"] * n)
        self.dist_um = np.asarray(dist_um if dist_um is not None else np.zeros(n), dtype=float)

    def sites(self, channel, where: str) -> np.ndarray:
        """Synapse indices selected by a kind ('exc'/'inh'), an explicit list, or a selector (see config)."""
        if isinstance(channel, str):
            channel = (("kind", channel),)
        if channel and isinstance(channel[0], tuple):
            sel = dict(channel)
            m = np.asarray(self.kinds) == sel["kind"]
            if "region" in sel:
                m &= self.regions == sel["region"]
            m &= self.dist_um >= sel.get("min_dist_um", 0.0)
            m &= self.dist_um <= sel.get("max_dist_um", np.inf)
            idx = np.flatnonzero(m)
            if idx.size == 0:
                raise ConfigError(f"{where}: cell {self.cell!r} has no synapse site matching {sel}")
            return idx
        idx = np.asarray(channel, dtype=np.int64)
        if idx.max() >= len(self.kinds):
            raise ConfigError(f"{where}: synapse index {int(idx.max())} >= the {len(self.kinds)} synapses of {self.cell!r}")
        return idx

    def is_exc(self, sites: np.ndarray) -> np.ndarray:
        return np.asarray(self.kinds)[sites] == "exc"


@lru_cache(maxsize=None)
def _model_meta(model: str) -> dict:
    from neurosurrogate.surrogate.model import resolve_model_path

    return json.loads((resolve_model_path(model) / "model.json").read_text())


@lru_cache(maxsize=None)
def cell_table(model: str, cell: str | None) -> CellTable:
    """Synapse table of a population's cell.

    A model whose ``model.json`` holds the synapse table it was trained on (``synapses``, at the top
    level or in the model card: a list of {kind, weight_nS, region, dist_um}; multi-compartment
    cells, see :func:`neurosurrogate.train.loop.synapse_table`) supplies it; otherwise the table of
    ``cell`` (or of the model's cell) from :func:`neurosurrogate.biophys.cells.get_cell`: for
    ``hay-l5pc`` the sites placed on the morphology (``$NEUROSURROGATE_HAY_MORPHOLOGY``), so that
    region and distance selectors pick the same sites as with a model that stores its table.
    """
    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.hay import is_hay, synapse_table  # no NEURON import until a table is placed

    meta = _model_meta(model)
    name = cell or meta["encoding"]["cell_name"]
    syn = meta.get("synapses") or (meta.get("card") or {}).get("synapses")
    if not syn:
        spec = get_cell(name)
        if not is_hay(spec):
            return CellTable(name, tuple(s.kind for s in spec.synapses), tuple(s.weight_nS for s in spec.synapses))
        syn = synapse_table(spec)
    return CellTable(name, [s["kind"] for s in syn], [s["weight_nS"] for s in syn],
                     [s.get("region", "soma") for s in syn], [s.get("dist_um", 0.0) for s in syn])


def _pop_specs(cfg: NetworkConfig) -> tuple[PopulationSpec, ...]:
    return tuple(PopulationSpec(p.name, p.n, p.model, cell_table(p.model, p.cell).cell) for p in cfg.populations)


def _connect(cfg: NetworkConfig, pr: ProjectionConfig, rng: np.random.Generator, positions) -> dict:
    """Connections of one projection (local indices) plus optional per-connection overrides."""
    npre, npost = cfg.population(pr.pre).n, cfg.population(pr.post).n
    same = pr.pre == pr.post
    out: dict = {}
    if pr.rule == "fixed-probability":
        pre, post = conn.fixed_probability(npre, npost, pr.param("p"), rng, same_population=same,
                                           allow_autapses=pr.allow_autapses)
    elif pr.rule == "paper":
        pre, post, recip = conn.paper_rule(npre, pr.param("p"), rng, reciprocal_ratio=pr.param("reciprocal_ratio"))
        out["scale"] = np.where(recip, pr.reciprocal_scale, 1.0)
    elif pr.rule == "fixed-indegree":
        pre, post = conn.fixed_indegree(npre, npost, pr.param("k"), rng, same_population=same,
                                        allow_autapses=pr.allow_autapses)
    elif pr.rule == "distance":
        pre, post = conn.distance_dependent(positions(pr.pre), positions(pr.post), rng, p_max=pr.param("p_max"),
                                            scale_um=pr.param("scale_um"), profile=pr.param("profile"),
                                            same_population=same, allow_autapses=pr.allow_autapses)
    else:
        e = conn.load_edges(pr.param("path"), npre, npost)
        pre, post = e["pre"], e["post"]
        if e.get("weight_nS") is not None:
            out["weight_nS"] = np.asarray(e["weight_nS"], dtype=float)
        if e.get("delay_ms") is not None:
            out["delay_ms"] = np.asarray(e["delay_ms"], dtype=np.int64)
    out["pre"], out["post"] = np.asarray(pre, dtype=np.int64), np.asarray(post, dtype=np.int64)
    return out


def realise(cfg: NetworkConfig, seed: int | None = None) -> Circuit:
    """Draw one instance of the network (``seed`` overrides ``network.seed``)."""
    seed = cfg.seed if seed is None else int(seed)
    pops = _pop_specs(cfg)
    offsets = np.concatenate([[0], np.cumsum([p.n for p in pops])]).astype(np.int64)
    index = {p.name: i for i, p in enumerate(pops)}
    tables = {p.name: cell_table(p.model, p.cell) for p in cfg.populations}
    pos_cache: dict[str, np.ndarray] = {}

    def positions(name: str) -> np.ndarray:
        if name not in pos_cache:
            pc = cfg.population(name)
            pos_cache[name] = conn.random_positions(pc.n, stream(seed, f"positions:{name}"), pc.extent_um)
        return pos_cache[name]

    def scale(table: CellTable, sites: np.ndarray) -> np.ndarray:
        return np.where(table.is_exc(sites), cfg.exc_scale, cfg.inh_scale)

    syn = {k: [] for k in ("pre", "post", "channel", "weight_nS", "delay_ms", "U", "D_ms", "F_ms")}
    for pr in cfg.projections:
        rng = stream(seed, f"projection:{pr.name}")
        c = _connect(cfg, pr, rng, positions)
        n_conn = c["pre"].size
        table = tables[pr.post]
        where = f"[projections.{pr.name}] channel"
        sites = table.sites(pr.channel, where)
        lo, hi = pr.delay_ms
        delay = c.get("delay_ms", rng.integers(lo, hi + 1, size=n_conn))
        w = c.get("weight_nS", np.full(n_conn, pr.weight_nS)) * c.get("scale", 1.0)
        k = pr.contacts
        ch = rng.choice(sites, size=n_conn * k)
        syn["pre"].append(np.repeat(c["pre"], k) + offsets[index[pr.pre]])
        syn["post"].append(np.repeat(c["post"], k) + offsets[index[pr.post]])
        syn["channel"].append(ch)
        syn["weight_nS"].append(np.repeat(w, k) * scale(table, ch))
        syn["delay_ms"].append(np.repeat(delay, k))
        U, D, F = pr.stp if pr.stp is not None else STATIC_STP
        for key, val in (("U", U), ("D_ms", D), ("F_ms", F)):
            syn[key].append(np.full(n_conn * k, float(val)))

    ext = {k: [] for k in ("t", "cell", "channel", "w")}
    dur = float(cfg.duration_ms)
    for bg in cfg.background:
        rng = stream(seed, f"background:{bg.population}")
        table = tables[bg.population]
        n = cfg.population(bg.population).n
        cells = np.arange(n) + offsets[index[bg.population]]
        if bg.protocol == "paper":
            activity = rng.random(n) * (rng.random(n) >= bg.p_quiet)
            n_ms = int(np.floor(dur))
            rate_e = activity * bg.max_exc_rate_Hz
            rates = {"exc": rate_e, "inh": rate_e * 3.0 / 8.0}
        else:
            rates = {"exc": np.full(n, bg.exc_rate_Hz), "inh": np.full(n, bg.inh_rate_Hz)}
        for kind, wdef in (("exc", bg.exc_weight_nS), ("inh", bg.inh_weight_nS)):
            if not np.any(rates[kind] > 0):
                continue
            sites = table.sites(kind, f"[background.{bg.population}]")
            counts = rng.poisson(rates[kind] * dur / 1000.0)
            total = int(counts.sum())
            if bg.protocol == "paper":
                t = rng.integers(0, n_ms, size=total).astype(float)
            else:
                t = rng.uniform(0.0, dur, size=total)
            ch = rng.choice(sites, size=total)
            base = table.weights_nS[ch] if wdef is None else np.full(total, wdef)
            if bg.weight_cv > 0:
                s2 = np.log1p(bg.weight_cv ** 2)
                base = base * rng.lognormal(-0.5 * s2, np.sqrt(s2), size=total)
            ext["t"].append(t)
            ext["cell"].append(np.repeat(cells, counts))
            ext["channel"].append(ch)
            ext["w"].append(base * scale(table, ch))
    for st in cfg.stimuli:
        rng = stream(seed, f"stimulus:{st.name}")
        table = tables[st.population]
        n = cfg.population(st.population).n
        if st.cells is not None:
            local = np.asarray(st.cells, dtype=np.int64)
        else:
            local = np.sort(rng.choice(n, size=int(round(st.fraction * n)), replace=False))
        n_stim = local.size
        cells = local + offsets[index[st.population]]
        total = n_stim * st.events
        sites = table.sites(st.channel, f"[stimuli.{st.name}] channel")
        ext["t"].append(st.time_ms + rng.uniform(0.0, st.width_ms, size=total))
        ext["cell"].append(np.repeat(cells, st.events))
        ch = rng.choice(sites, size=total)
        ext["channel"].append(ch)
        ext["w"].append(np.full(total, st.weight_nS) * (scale(table, ch) if st.scaled else 1.0))

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    t = cat(ext["t"], np.float64)
    keep = t < dur
    circ = Circuit(
        populations=pops, duration_ms=int(cfg.duration_ms),
        pre=cat(syn["pre"], np.int64), post=cat(syn["post"], np.int64), channel=cat(syn["channel"], np.int64),
        weight_nS=cat(syn["weight_nS"], np.float64), delay_ms=cat(syn["delay_ms"], np.int64),
        U=cat(syn["U"], np.float64), D_ms=cat(syn["D_ms"], np.float64), F_ms=cat(syn["F_ms"], np.float64),
        ext_t_ms=t[keep], ext_cell=cat(ext["cell"], np.int64)[keep], ext_channel=cat(ext["channel"], np.int64)[keep],
        ext_weight_nS=cat(ext["w"], np.float64)[keep], record_v=np.asarray(cfg.record_v, dtype=np.int64),
        meta={"seed": seed},
    )
    return circ.validate()
