"""Seeded connectivity rules: which presynaptic cell contacts which postsynaptic cell.

Every rule returns two int64 arrays ``(pre, post)`` of equal length, one entry per
connection, with indices local to the two populations (``0 .. n_pre - 1`` and
``0 .. n_post - 1``), sorted by ``pre`` then ``post`` and free of duplicate pairs.
Weights, delays and channels are assigned later by the network builder.

``same_population=True`` means the presynaptic and postsynaptic cells are the
same population (``n_pre == n_post``, cell ``i`` on both sides is the same
neuron); autapses ``i -> i`` are then excluded unless ``allow_autapses=True``.

All random choices come from the ``np.random.Generator`` passed in, so a rule
called twice with generators seeded alike returns identical arrays.

Memory: the rules scale with the number of connections, not with
``n_pre * n_post``. :func:`fixed_probability` and :func:`paper_rule` use
geometric skipping over the flattened pair index (the gaps between successive
connected pairs of independent Bernoulli(p) trials are Geometric(p));
:func:`fixed_indegree` draws ``k`` partners per cell and redraws duplicates;
:func:`distance_dependent` needs every pair's probability and works through
blocks of presynaptic rows of at most ``_BLOCK_PAIRS`` pairs each.

Rules by config name (:data:`RULES`):

* ``"fixed-probability"``: :func:`fixed_probability`
* ``"paper"``: :func:`paper_rule` (Oláh, Pedersen & Rowan 2022)
* ``"fixed-indegree"``: :func:`fixed_indegree`
* ``"distance"``: :func:`distance_dependent` (positions from :func:`random_positions`)
* ``"file"``: :func:`load_edges`
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from pathlib import Path

import numpy as np

__all__ = [
    "ConnectivityError",
    "RULES",
    "rule_names",
    "fixed_probability",
    "paper_rule",
    "fixed_indegree",
    "random_positions",
    "distance_dependent",
    "load_edges",
]

#: Connectivity rule names as used in network configs.
RULES: tuple[str, ...] = ("fixed-probability", "paper", "fixed-indegree", "distance", "file")

#: Most (pre, post) pairs handled at once by block-wise rules (bounds temporary memory).
_BLOCK_PAIRS = 1 << 20

_PROFILES = ("gaussian", "exponential")
_EDGE_KEYS = ("pre", "post", "weight_nS", "delay_ms")


class ConnectivityError(ValueError):
    """A connectivity rule got an invalid argument or an edge file is malformed."""


def rule_names() -> tuple[str, ...]:
    """Names of the connectivity rules accepted in network configs (same as :data:`RULES`)."""
    return RULES


# ---------------------------------------------------------------------------
# argument checks


def _count(name: str, value, *, minimum: int = 0) -> int:
    """``value`` as a Python int >= ``minimum``; bools and non-integers are rejected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise ConnectivityError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ConnectivityError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not math.isfinite(value):
        raise ConnectivityError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _probability(name: str, value) -> float:
    p = _real(name, value)
    if not 0.0 <= p <= 1.0:
        raise ConnectivityError(f"{name} must be a probability in [0, 1], got {value!r}")
    return p


def _generator(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ConnectivityError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def _check_same_population(same_population: bool, n_pre: int, n_post: int) -> None:
    if same_population and n_pre != n_post:
        raise ConnectivityError(
            f"same_population=True needs n_pre == n_post (one population), got n_pre={n_pre}, n_post={n_post}"
        )


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)


def _sort_pairs(pre: np.ndarray, post: np.ndarray, n_post: int, *extra: np.ndarray):
    """Sort by pre then post (``post < n_post``); ``extra`` arrays follow the same permutation."""
    if pre.size and (int(pre.max()) + 1) * n_post < 2**62:
        order = np.argsort(pre * n_post + post, kind="stable")  # one key: faster than lexsort
    else:
        order = np.lexsort((post, pre))
    return (pre[order], post[order]) + tuple(e[order] for e in extra)


# ---------------------------------------------------------------------------
# sampling primitives


def _bernoulli_indices(n_slots: int, p: float, rng: np.random.Generator, chunk: int | None = None) -> np.ndarray:
    """Sorted indices in ``0 .. n_slots - 1`` each kept independently with probability ``p``.

    Geometric skipping: the gaps between successive kept indices are
    i.i.d. Geometric(p) (support 1, 2, ...), so the work and memory are
    proportional to the number of kept indices, never to ``n_slots``.
    Chunks of gaps are drawn until the running position passes ``n_slots``
    (``chunk`` fixes the chunk size, for tests; by default the first chunk
    covers the expected count plus 6 sigma, so one chunk almost always suffices).
    The kept indices do not depend on the chunk size.
    """
    if n_slots <= 0 or p <= 0.0:
        return np.zeros(0, dtype=np.int64)
    if p >= 1.0:
        return np.arange(n_slots, dtype=np.int64)
    fixed = chunk
    mean = n_slots * p
    chunk = fixed or int(mean + 6.0 * math.sqrt(mean) + 16)
    parts = []
    last = -1  # index of the last kept slot so far
    while True:
        # gaps beyond n_slots all mean "past the end"; clipping keeps the cumsum from overflowing
        gaps = np.minimum(rng.geometric(p, size=chunk), n_slots + 1)
        idx = last + np.cumsum(gaps, dtype=np.int64)
        if idx[-1] >= n_slots:
            parts.append(idx[: np.searchsorted(idx, n_slots)])
            break
        parts.append(idx)
        last = int(idx[-1])
        # remaining slots shrink; draw about what is still expected, plus margin
        rest = (n_slots - 1 - last) * p
        chunk = fixed or int(rest + 6.0 * math.sqrt(rest) + 16)
    return np.concatenate(parts)


def _distinct_per_row(n_rows: int, k: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """(n_rows, k) array; each row a uniformly random k-subset of ``0 .. m - 1``, sorted.

    For ``k <= m / 2``: draw ``k`` values per row with replacement, then redraw
    only the duplicate entries until every row is distinct. The procedure is
    symmetric in the ``m`` labels, so each row's final set is uniform over all
    k-subsets; each redraw round collides with probability below 1/2, so the
    number of rounds is logarithmic. For ``k > m / 2`` the complement
    (``m - k`` excluded values per row) is drawn that way instead; the result
    then has at least half of the ``n_rows * m`` entries anyway.
    """
    if k == 0 or n_rows == 0:
        return np.zeros((n_rows, k), dtype=np.int64)
    if k == m:
        return np.broadcast_to(np.arange(m, dtype=np.int64), (n_rows, m)).copy()
    if 2 * k > m:
        excluded = _distinct_per_row(n_rows, m - k, m, rng)
        keep = np.ones((n_rows, m), dtype=bool)
        keep[np.arange(n_rows)[:, None], excluded] = False
        return np.nonzero(keep)[1].reshape(n_rows, k).astype(np.int64)
    vals = np.sort(rng.integers(0, m, size=(n_rows, k), dtype=np.int64), axis=1)
    while True:
        dup = np.zeros((n_rows, k), dtype=bool)
        dup[:, 1:] = vals[:, 1:] == vals[:, :-1]
        n_dup = int(dup.sum())
        if n_dup == 0:
            return vals
        vals[dup] = rng.integers(0, m, size=n_dup, dtype=np.int64)
        vals.sort(axis=1)


# ---------------------------------------------------------------------------
# rules


def fixed_probability(
    n_pre: int,
    n_post: int,
    p: float,
    rng: np.random.Generator,
    *,
    same_population: bool = False,
    allow_autapses: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Connect each ordered pair (pre, post) independently with probability ``p``.

    Args:
        n_pre, n_post: population sizes (cells).
        p: connection probability per ordered pair, in [0, 1].
        rng: source of every random choice.
        same_population: pre and post are the same population (needs ``n_pre == n_post``).
        allow_autapses: with ``same_population``, also allow ``i -> i``.

    Returns:
        ``(pre, post)`` int64 arrays, sorted by pre then post, no duplicates.
        Each presynaptic row's out-degree is Binomial(available partners, p).
        Memory and time scale with the number of connections (geometric skipping).
    """
    n_pre = _count("n_pre", n_pre)
    n_post = _count("n_post", n_post)
    p = _probability("p", p)
    rng = _generator(rng)
    _check_same_population(same_population, n_pre, n_post)
    skip_self = same_population and not allow_autapses
    m = n_post - 1 if skip_self else n_post  # partners available per presynaptic row
    if m <= 0:
        return _empty()
    idx = _bernoulli_indices(n_pre * m, p, rng)
    pre = idx // m
    post = idx - pre * m
    if skip_self:
        post += post >= pre  # column j >= i in the (n-1)-wide row stands for cell j + 1
    return pre, post


def paper_rule(
    n: int,
    p: float,
    rng: np.random.Generator,
    reciprocal_ratio: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recurrent connectivity with over-represented reciprocal pairs (Oláh, Pedersen & Rowan 2022).

    Within one population of ``n`` cells (no autapses), each unordered pair
    ``{i, j}`` independently gets:

    * a unidirectional connection with probability ``p`` (``i -> j`` or ``j -> i``, 50/50),
    * a reciprocal pair ``i -> j`` and ``j -> i`` with probability ``reciprocal_ratio * p``,
    * nothing otherwise.

    Args:
        n: population size (cells).
        p: unidirectional probability per unordered pair.
        rng: source of every random choice.
        reciprocal_ratio: reciprocal probability relative to ``p`` (>= 0);
            needs ``p * (1 + reciprocal_ratio) <= 1``.

    Returns:
        ``(pre, post, reciprocal)``: int64 index arrays sorted by pre then post,
        and a bool array marking connections that belong to a reciprocal pair
        (the network builder makes those 1.5x stronger).
    """
    n = _count("n", n)
    p = _probability("p", p)
    r = _real("reciprocal_ratio", reciprocal_ratio)
    rng = _generator(rng)
    if r < 0.0:
        raise ConnectivityError(f"reciprocal_ratio must be >= 0, got {reciprocal_ratio!r}")
    q = p * (1.0 + r)  # probability that a pair is connected at all
    if q > 1.0 + 1e-12:
        raise ConnectivityError(
            f"paper rule needs p * (1 + reciprocal_ratio) <= 1, got p={p!r}, "
            f"reciprocal_ratio={reciprocal_ratio!r} (total {q:.6g})"
        )
    q = min(q, 1.0)
    n_pairs = n * (n - 1) // 2
    k = _bernoulli_indices(n_pairs, q, rng)
    # unordered pair index k -> (i, j), i < j, row-major over the upper triangle:
    # row i holds pairs start[i] .. start[i] + n - i - 2
    i_rows = np.arange(n, dtype=np.int64)
    start = i_rows * n - i_rows * (i_rows + 1) // 2
    i = np.searchsorted(start, k, side="right") - 1
    j = k - start[i] + i + 1
    u = rng.random(k.size)
    recip = u < r / (1.0 + r)
    flip = rng.random(k.size) < 0.5  # direction of unidirectional pairs
    uni = ~recip
    src = np.where(flip, j, i)[uni]
    dst = np.where(flip, i, j)[uni]
    ri, rj = i[recip], j[recip]
    pre = np.concatenate([src, ri, rj])
    post = np.concatenate([dst, rj, ri])
    flags = np.concatenate([np.zeros(src.size, dtype=bool), np.ones(2 * ri.size, dtype=bool)])
    return _sort_pairs(pre.astype(np.int64), post.astype(np.int64), n, flags)


def fixed_indegree(
    n_pre: int,
    n_post: int,
    k: int,
    rng: np.random.Generator,
    *,
    same_population: bool = False,
    allow_autapses: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Give every postsynaptic cell exactly ``k`` distinct presynaptic partners.

    The partners of each postsynaptic cell are a uniformly random k-subset of
    the available presynaptic cells (all ``n_pre``, or ``n_pre - 1`` when
    autapses are excluded), independently across postsynaptic cells.

    Args:
        n_pre, n_post: population sizes (cells).
        k: in-degree (connections per postsynaptic cell).
        rng: source of every random choice.
        same_population: pre and post are the same population (needs ``n_pre == n_post``).
        allow_autapses: with ``same_population``, also allow ``i -> i``.

    Returns:
        ``(pre, post)`` int64 arrays sorted by pre then post, ``n_post * k`` connections.
    """
    n_pre = _count("n_pre", n_pre)
    n_post = _count("n_post", n_post)
    k = _count("k", k)
    rng = _generator(rng)
    _check_same_population(same_population, n_pre, n_post)
    skip_self = same_population and not allow_autapses
    m = n_pre - 1 if skip_self else n_pre
    if n_post > 0 and k > m:
        raise ConnectivityError(
            f"k={k} exceeds the {m} available presynaptic partners per cell "
            f"(n_pre={n_pre}{', autapses excluded' if skip_self else ''})"
        )
    choice = _distinct_per_row(n_post, k, max(m, 0), rng)
    post = np.repeat(np.arange(n_post, dtype=np.int64), k)
    pre = choice.reshape(-1)
    if skip_self:
        pre = pre + (pre >= post)
    return _sort_pairs(pre, post, n_post)


def random_positions(
    n: int,
    rng: np.random.Generator,
    extent_um: tuple[float, float, float] = (500.0, 500.0, 0.0),
) -> np.ndarray:
    """Cell positions drawn uniformly in the box ``[0, x) × [0, y) × [0, z)`` (µm).

    Args:
        n: number of cells.
        rng: source of every random choice.
        extent_um: box size (x, y, z) in µm, each finite and >= 0; a zero
            extent pins that coordinate to 0 (``z = 0`` gives a flat layer).

    Returns:
        (n, 3) float64 positions in µm.
    """
    n = _count("n", n)
    rng = _generator(rng)
    try:
        ext = np.asarray(extent_um, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConnectivityError(f"extent_um must be three numbers (x, y, z) in µm, got {extent_um!r}") from None
    if ext.shape != (3,) or not np.all(np.isfinite(ext)) or np.any(ext < 0):
        raise ConnectivityError(
            f"extent_um must be three finite numbers >= 0 (x, y, z) in µm, got {extent_um!r}"
        )
    return rng.random((n, 3)) * ext


def _positions(name: str, pos) -> np.ndarray:
    try:
        a = np.asarray(pos, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConnectivityError(f"{name} must be an (n, 3) array of positions in µm") from None
    if a.ndim != 2 or not 1 <= a.shape[1] <= 3:
        raise ConnectivityError(f"{name} must be an (n, 3) array of positions in µm, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ConnectivityError(f"{name} must contain finite positions (µm)")
    return a


def distance_dependent(
    pos_pre: np.ndarray,
    pos_post: np.ndarray,
    rng: np.random.Generator,
    *,
    p_max: float,
    scale_um: float,
    profile: str = "gaussian",
    same_population: bool = False,
    allow_autapses: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Connect each ordered pair independently with a probability falling with distance.

    With ``d`` the Euclidean distance (µm) between the two cells::

        gaussian:     P(d) = p_max * exp(-d² / (2 scale_um²))
        exponential:  P(d) = p_max * exp(-d / scale_um)

    Args:
        pos_pre, pos_post: (n_pre, D) and (n_post, D) positions in µm (D = 1..3,
            the same for both; usually 3 from :func:`random_positions`).
        rng: source of every random choice.
        p_max: probability at zero distance, in [0, 1].
        scale_um: length scale in µm (> 0): the Gaussian sigma or the exponential decay length.
        profile: ``"gaussian"`` or ``"exponential"``.
        same_population: pre and post are the same cells (``pos_pre`` and ``pos_post`` identical).
        allow_autapses: with ``same_population``, also allow ``i -> i``.

    Returns:
        ``(pre, post)`` int64 arrays sorted by pre then post, no duplicates.
        Pairs are processed in blocks of presynaptic rows (at most ``_BLOCK_PAIRS``
        pairs per block), so temporary memory stays bounded for any network size;
        time grows with ``n_pre * n_post``. Uniform draws are taken row-major,
        so the result does not depend on the block size.
    """
    a = _positions("pos_pre", pos_pre)
    b = _positions("pos_post", pos_post)
    rng = _generator(rng)
    if a.shape[1] != b.shape[1]:
        raise ConnectivityError(
            f"pos_pre and pos_post must have the same number of coordinates, got {a.shape[1]} and {b.shape[1]}"
        )
    p_max = _probability("p_max", p_max)
    scale = _real("scale_um", scale_um)
    if scale <= 0.0:
        raise ConnectivityError(f"scale_um must be > 0 (µm), got {scale_um!r}")
    if profile not in _PROFILES:
        raise ConnectivityError(f"profile must be one of {_PROFILES}, got {profile!r}")
    n_pre, n_post = a.shape[0], b.shape[0]
    _check_same_population(same_population, n_pre, n_post)
    if same_population and not np.array_equal(a, b):
        raise ConnectivityError("same_population=True needs pos_pre and pos_post to be the same positions")
    skip_self = same_population and not allow_autapses
    if n_pre == 0 or n_post == 0:
        return _empty()
    rows = max(1, _BLOCK_PAIRS // n_post)
    pres, posts = [], []
    for r0 in range(0, n_pre, rows):
        r1 = min(n_pre, r0 + rows)
        d2 = np.zeros((r1 - r0, n_post))
        for c in range(a.shape[1]):  # 1..3 coordinates
            diff = a[r0:r1, c, None] - b[None, :, c]
            d2 += diff * diff
        if profile == "gaussian":
            d2 *= -0.5 / (scale * scale)
        else:
            np.sqrt(d2, out=d2)
            d2 *= -1.0 / scale
        prob = np.exp(d2, out=d2)
        prob *= p_max
        hit = rng.random(prob.shape) < prob
        if skip_self:
            local = np.arange(r1 - r0)
            hit[local, r0 + local] = False
        i, j = np.nonzero(hit)
        pres.append(i.astype(np.int64) + r0)
        posts.append(j.astype(np.int64))
    return np.concatenate(pres), np.concatenate(posts)


# ---------------------------------------------------------------------------
# edge files


def _whole(name: str, path: Path, arr: np.ndarray) -> np.ndarray:
    """1-D integer-valued array as int64 (integer dtype, or floats with whole values)."""
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise ConnectivityError(f"{path}: {name} must hold integers, got dtype {arr.dtype} with non-integer values")


def _validate_edges(path: Path, cols: dict, n_pre: int, n_post: int) -> dict:
    """Check edge-list columns and return them as typed arrays sorted by pre then post."""
    for name in ("pre", "post"):
        if name not in cols:
            raise ConnectivityError(
                f"{path}: missing column {name!r}; expected pre, post and optional weight_nS, delay_ms"
            )
    arrays = {}
    for name, val in cols.items():
        a = np.asarray(val)
        if a.ndim != 1:
            raise ConnectivityError(f"{path}: {name} must be a 1-D array, got shape {a.shape}")
        if a.dtype.kind not in "biuf":
            raise ConnectivityError(f"{path}: {name} must be numeric, got dtype {a.dtype}")
        arrays[name] = a
    n = arrays["pre"].size
    for name, a in arrays.items():
        if a.size != n:
            raise ConnectivityError(f"{path}: {name} has {a.size} entries, expected {n} (as many as pre)")
    out = {}
    for name, size in (("pre", n_pre), ("post", n_post)):
        idx = _whole(name, path, arrays[name])
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            arg = "n_pre" if name == "pre" else "n_post"
            raise ConnectivityError(
                f"{path}: {name} indices must be in 0..{size - 1} ({arg}={size}), "
                f"got range {idx.min()}..{idx.max()}"
            )
        out[name] = idx
    if "weight_nS" in arrays:
        w = arrays["weight_nS"].astype(np.float64)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ConnectivityError(f"{path}: weight_nS must be finite and >= 0 (nS)")
        out["weight_nS"] = w
    if "delay_ms" in arrays:
        d = arrays["delay_ms"]
        if d.dtype.kind == "f" and not np.all(np.isfinite(d)):
            raise ConnectivityError(f"{path}: delay_ms must be whole ms >= 1, got non-finite values")
        if d.dtype.kind not in "iu" and not np.all(d == np.round(d)):
            raise ConnectivityError(f"{path}: delay_ms must be whole ms >= 1, got fractional values")
        d = d.astype(np.int64)
        if np.any(d < 1):
            raise ConnectivityError(f"{path}: delay_ms must be whole ms >= 1, got minimum {d.min()}")
        out["delay_ms"] = d
    order = np.lexsort((out["post"], out["pre"]))
    out = {key: v[order] for key, v in out.items()}
    same = (out["pre"][1:] == out["pre"][:-1]) & (out["post"][1:] == out["post"][:-1])
    if np.any(same):
        at = int(np.argmax(same))
        raise ConnectivityError(
            f"{path}: duplicate connection {out['pre'][at]} -> {out['post'][at]} "
            f"({int(same.sum())} duplicate rows); each (pre, post) pair may appear once"
        )
    return out


def _from_matrix(path: Path, mat: np.ndarray, n_pre: int, n_post: int) -> dict:
    if mat.shape != (n_pre, n_post):
        raise ConnectivityError(
            f"{path}: connection matrix has shape {mat.shape}, expected (n_pre, n_post) = ({n_pre}, {n_post})"
        )
    if mat.dtype.kind not in "biuf":
        raise ConnectivityError(f"{path}: connection matrix must be numeric or boolean, got dtype {mat.dtype}")
    if mat.dtype.kind == "f" and not np.all(np.isfinite(mat)):
        raise ConnectivityError(f"{path}: connection matrix must be finite (weights in nS)")
    if mat.dtype.kind != "b" and np.any(mat < 0):
        raise ConnectivityError(f"{path}: connection matrix entries must be >= 0 (weights in nS)")
    pre, post = np.nonzero(mat)
    out = {"pre": pre.astype(np.int64), "post": post.astype(np.int64)}
    values = mat[pre, post]
    if mat.dtype.kind != "b" and np.any(values != 1):
        out["weight_nS"] = values.astype(np.float64)
    return out


def _read_csv(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    names = [h.strip() for h in header.strip().split(",")]
    if not {"pre", "post"} <= set(names):
        raise ConnectivityError(
            f"{path}: CSV header must contain pre and post (optional weight_nS, delay_ms), got {header.strip()!r}"
        )
    wanted = [name for name in _EDGE_KEYS if name in names]
    usecols = [names.index(name) for name in wanted]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a header-only file is an empty edge list
            data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=usecols, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise ConnectivityError(f"{path}: could not read the CSV as numbers ({err})") from None
    return {name: data[:, c] for c, name in enumerate(wanted)}


def load_edges(path, n_pre: int, n_post: int) -> dict:
    """Read explicit connections from a file and validate them.

    Accepted formats:

    * ``.npy``: a dense (n_pre, n_post) matrix; ``.npz``: the same under key ``matrix``.
      Nonzero entries are connections; unless the matrix is boolean or only
      0/1, the entries are returned as ``weight_nS``.
    * ``.npz`` with 1-D arrays ``pre``, ``post`` and optional ``weight_nS``, ``delay_ms``.
    * ``.csv`` with a header row containing ``pre,post`` and optional
      ``weight_nS,delay_ms`` (other columns are ignored).

    Args:
        path: file path (str or Path).
        n_pre, n_post: sizes of the presynaptic and postsynaptic populations (cells).

    Returns:
        dict with ``pre``, ``post`` (int64, sorted by pre then post) and, when
        present, ``weight_nS`` (float64, nS, finite >= 0) and ``delay_ms``
        (int64, whole ms >= 1), all in the same order.

    Raises:
        ConnectivityError: missing or unsupported file, wrong matrix shape,
            missing columns, out-of-range or non-integer indices, duplicate
            pairs, negative/non-finite weights, delays that are not whole ms >= 1.
    """
    path = Path(path)
    n_pre = _count("n_pre", n_pre)
    n_post = _count("n_post", n_post)
    if not path.is_file():
        raise ConnectivityError(f"edge file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            mat = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ConnectivityError(f"{path}: not a plain numeric .npy array ({err})") from None
        return _from_matrix(path, mat, n_pre, n_post)
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {key: z[key] for key in z.files}
        except ValueError as err:
            raise ConnectivityError(f"{path}: not a plain numeric .npz archive ({err})") from None
        if "matrix" in data:
            return _from_matrix(path, data["matrix"], n_pre, n_post)
        if "pre" in data and "post" in data:
            cols = {key: data[key] for key in _EDGE_KEYS if key in data}
            return _validate_edges(path, cols, n_pre, n_post)
        raise ConnectivityError(
            f"{path}: .npz must hold a 'matrix' array or 1-D 'pre' and 'post' arrays, got keys {sorted(data)}"
        )
    if suffix == ".csv":
        return _validate_edges(path, _read_csv(path), n_pre, n_post)
    raise ConnectivityError(
        f"edge file {path} has unsupported suffix {path.suffix!r}; expected .npz, .npy or .csv"
    )
