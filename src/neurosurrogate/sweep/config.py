"""Sweep configuration: which network, which parameters, how many repeats.

Example ``sweep.toml``::

    network = "paper_circuit.toml"      # network config (relative to this file)

    [sweep]
    mode = "grid"                       # grid | random
    repeats = 4                         # network instances (new seeds) per setting
    seed = 0                            # base seed: instance seeds derive from (seed, setting, repeat)
    chunk_size = 250                    # instances simulated together in one batch

    [sweep.grid]                        # any dotted field of the network config
    "network.exc_scale" = { start = 0.75, stop = 1.25, num = 5 }
    "projections.recurrent.p" = [0.05, 0.075, 0.1]

    # mode = "random": [sweep.random] n = 100 and, per parameter, [low, high] (uniform)

    [report]
    x = "network.exc_scale"             # heat-map axes
    y = "projections.recurrent.p"
    [[report.compare]]                  # two-sample t-tests between named settings
    name = "Rett vs control"
    a = { "network.exc_scale" = 0.75, "projections.recurrent.p" = 0.05 }
    b = { "network.exc_scale" = 1.0, "projections.recurrent.p" = 0.075 }

Every run is one row: ``run`` (index), ``setting``, ``repeat``, ``seed``, the
parameter values, then the measures.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurosurrogate.data.io import read_toml
from neurosurrogate.network.config import ConfigError, NetworkConfig, load_network_config

__all__ = ["Run", "SweepConfig", "load_sweep_config"]


@dataclass(frozen=True)
class Run:
    """One network simulation of a sweep."""

    run: int
    setting: int
    repeat: int
    seed: int
    values: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class SweepConfig:
    network: NetworkConfig
    params: tuple[str, ...]
    settings: tuple[tuple[float, ...], ...]
    repeats: int = 1
    seed: int = 0
    chunk_size: int = 250
    report_x: str | None = None
    report_y: str | None = None
    compare: tuple[dict, ...] = ()
    raw: dict = field(default_factory=dict)

    def runs(self) -> list[Run]:
        """Every run, in order (setting-major, then repeat)."""
        out = []
        for s, vals in enumerate(self.settings):
            for r in range(self.repeats):
                seed = int(np.random.SeedSequence([self.seed, s, r]).generate_state(1)[0])
                out.append(Run(s * self.repeats + r, s, r, seed, tuple(zip(self.params, vals))))
        return out

    def fingerprint(self) -> str:
        """Hash of everything that determines the results (to refuse resuming another sweep): the
        sweep and network configs and the content of every surrogate model they use (a model is named,
        e.g. ``hay-l5pc``, and the same name can hold other weights after an update)."""
        models = {p.model: model_digest(p.model) for p in self.network.populations}
        blob = json.dumps({"sweep": self.raw, "network": self.network.raw, "models": models}, sort_keys=True,
                          default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_digest(name_or_path: str) -> str:
    """sha256 of a surrogate model folder's files (name and bytes, sorted); '' if it cannot be resolved
    (the network config reports that itself)."""
    from neurosurrogate.surrogate.model import ModelError, resolve_model_path

    try:
        folder = resolve_model_path(name_or_path)
    except ModelError:
        return ""
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".pt"):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _values(key: str, spec: Any) -> list[float]:
    if isinstance(spec, dict):
        extra = set(spec) - {"start", "stop", "num"}
        if extra or not {"start", "stop", "num"} <= set(spec):
            raise ConfigError(f"[sweep.grid] {key!r}: expected a list or {{start, stop, num}}, got {spec!r}")
        num = spec["num"]
        if not isinstance(num, int) or num < 1:
            raise ConfigError(f"[sweep.grid] {key!r}: num must be a whole number >= 1, got {num!r}")
        return [float(x) for x in np.linspace(float(spec["start"]), float(spec["stop"]), num)]
    if isinstance(spec, list) and spec and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in spec):
        return [float(x) for x in spec]
    raise ConfigError(f"[sweep.grid] {key!r}: expected a non-empty list of numbers or {{start, stop, num}}, got {spec!r}")


def _check_param(net: NetworkConfig, key: str, value: float, where: str) -> None:
    try:
        net.with_values({key: value})
    except ConfigError as exc:
        raise ConfigError(f"[{where}] parameter {key!r} = {value}: {exc}") from None


def sweep_from_dict(d: dict, base_dir: str | Path = ".") -> SweepConfig:
    base_dir = Path(base_dir)
    if not isinstance(d, dict):
        raise ConfigError("a sweep config must be a TOML table")
    unknown = set(d) - {"network", "sweep", "report"}
    if unknown:
        raise ConfigError(f"sweep config: unknown top-level key(s) {sorted(unknown)}; allowed: network, sweep, report")
    if not isinstance(d.get("network"), str):
        raise ConfigError("sweep config: 'network' must name the network config file")
    npath = Path(d["network"])
    net = load_network_config(npath if npath.is_absolute() else base_dir / npath)
    sw = d.get("sweep", {})
    if not isinstance(sw, dict):
        raise ConfigError("[sweep] must be a table")
    allowed = {"mode", "repeats", "seed", "chunk_size", "grid", "random"}
    if set(sw) - allowed:
        raise ConfigError(f"[sweep] unknown key(s) {sorted(set(sw) - allowed)}; allowed: {sorted(allowed)}")
    mode = sw.get("mode", "grid")
    for key, lo in (("repeats", 1), ("seed", 0), ("chunk_size", 1)):
        v = sw.get(key, {"repeats": 1, "seed": 0, "chunk_size": 250}[key])
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ConfigError(f"[sweep] {key}: expected a whole number >= {lo}, got {v!r}")
    repeats, seed, chunk = sw.get("repeats", 1), sw.get("seed", 0), sw.get("chunk_size", 250)
    if mode == "grid":
        grid = sw.get("grid", {})
        if not isinstance(grid, dict):
            raise ConfigError("[sweep.grid] must be a table of parameter = values")
        params = tuple(grid)
        axes = [_values(k, grid[k]) for k in params]
        settings = tuple(itertools.product(*axes)) if params else ((),)
    elif mode == "random":
        rnd = dict(sw.get("random", {}))
        n = rnd.pop("n", None)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"[sweep.random] n: expected a whole number >= 1 of samples, got {n!r}")
        params = tuple(rnd)
        for k, v in rnd.items():
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and v[0] <= v[1]):
                raise ConfigError(f"[sweep.random] {k!r}: expected [low, high] with low <= high, got {v!r}")
        rng = np.random.default_rng([seed, 7919])
        lows = np.asarray([rnd[k][0] for k in params], dtype=float)
        highs = np.asarray([rnd[k][1] for k in params], dtype=float)
        settings = tuple(tuple(float(x) for x in row) for row in rng.uniform(lows, highs, size=(n, len(params))))
    else:
        raise ConfigError(f"[sweep] mode: expected 'grid' or 'random', got {mode!r}")
    for k in params:
        example = settings[0][params.index(k)]
        _check_param(net, k, example, f"sweep.{mode}")
        # also the extremes of the parameter, so a bad value fails now rather than mid-sweep
        vals = [s[params.index(k)] for s in settings]
        for v in (min(vals), max(vals)):
            _check_param(net, k, v, f"sweep.{mode}")
    rep = d.get("report", {})
    if not isinstance(rep, dict) or set(rep) - {"x", "y", "compare"}:
        raise ConfigError("[report] allows x, y and [[report.compare]] only")
    for axis in ("x", "y"):
        if axis in rep and rep[axis] not in params:
            raise ConfigError(f"[report] {axis}: {rep[axis]!r} is not a swept parameter ({list(params)})")
    compare = []
    for i, c in enumerate(rep.get("compare", [])):
        if not isinstance(c, dict) or not {"a", "b"} <= set(c) or set(c) - {"a", "b", "name"}:
            raise ConfigError(f"[[report.compare]] #{i}: expected name, a = {{...}}, b = {{...}}")
        for side in ("a", "b"):
            bad = set(c[side]) - set(params)
            if bad:
                raise ConfigError(f"[[report.compare]] #{i} {side}: {sorted(bad)} are not swept parameters")
        compare.append({"name": c.get("name", f"comparison {i}"), "a": dict(c["a"]), "b": dict(c["b"])})
    return SweepConfig(net, params, tuple(tuple(s) for s in settings), repeats, seed, chunk, rep.get("x"), rep.get("y"),
                       tuple(compare), d)


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep TOML file."""
    path = Path(path)
    d = read_toml(path, "sweep config", ConfigError)
    return sweep_from_dict(d, path.parent)

