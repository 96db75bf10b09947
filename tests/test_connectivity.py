"""Connectivity rules: statistics, structure, reproducibility and edge-file validation (pure numpy, fast)."""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest

from neurosurrogate.network.connectivity import (
    RULES,
    ConnectivityError,
    distance_dependent,
    fixed_indegree,
    fixed_probability,
    load_edges,
    paper_rule,
    random_positions,
    rule_names,
)


def within_4_sigma(count: float, n: float, p: float) -> bool:
    """Binomial(n, p) count within 4 standard deviations of its mean."""
    return abs(count - n * p) <= 4.0 * math.sqrt(n * p * (1.0 - p)) + 1e-9


def assert_canonical(pre, post, n_pre, n_post, *, no_autapses=False):
    """int64, equal length, in range, sorted by (pre, post), no duplicate pairs."""
    assert pre.dtype == np.int64 and post.dtype == np.int64
    assert pre.shape == post.shape and pre.ndim == 1
    if pre.size:
        assert pre.min() >= 0 and pre.max() < n_pre
        assert post.min() >= 0 and post.max() < n_post
        key = pre * n_post + post
        assert np.all(np.diff(key) > 0), "not strictly sorted by (pre, post): unsorted or duplicate pairs"
    if no_autapses:
        assert not np.any(pre == post)


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# fixed probability


@pytest.mark.parametrize("same_population", [False, True])
def test_fixed_probability_statistics(same_population):
    n, p = 400, 0.1
    pre, post = fixed_probability(n, n, p, rng(1), same_population=same_population)
    assert_canonical(pre, post, n, n, no_autapses=same_population)
    n_pairs = n * (n - 1) if same_population else n * n
    assert within_4_sigma(pre.size, n_pairs, p)
    # per-row out-degrees are Binomial(m, p): check their spread too (mean of variance estimate)
    m = n - 1 if same_population else n
    deg = np.bincount(pre, minlength=n)
    var = m * p * (1 - p)
    assert 0.75 * var < deg.var() < 1.3 * var
    # connections are spread over all columns, not bunched (columns also Binomial)
    col = np.bincount(post, minlength=n)
    assert 0.75 * var < col.var() < 1.3 * var


def test_fixed_probability_autapses_allowed_and_unequal_sizes():
    pre, post = fixed_probability(300, 300, 0.5, rng(2), same_population=True, allow_autapses=True)
    assert np.any(pre == post)
    assert within_4_sigma(np.sum(pre == post), 300, 0.5)
    pre, post = fixed_probability(50, 700, 0.2, rng(3))
    assert_canonical(pre, post, 50, 700)
    assert within_4_sigma(pre.size, 50 * 700, 0.2)


def test_fixed_probability_extremes():
    pre, post = fixed_probability(30, 40, 0.0, rng())
    assert pre.size == 0 and pre.dtype == np.int64
    pre, post = fixed_probability(30, 30, 1.0, rng(), same_population=True)
    assert pre.size == 30 * 29
    assert_canonical(pre, post, 30, 30, no_autapses=True)
    pre, post = fixed_probability(0, 10, 0.5, rng())
    assert pre.size == 0
    pre, post = fixed_probability(1, 1, 1.0, rng(), same_population=True)
    assert pre.size == 0


def test_fixed_probability_large_sparse_is_fast_and_not_dense():
    n, p = 20_000, 0.001
    tracemalloc.start()
    t0 = time.perf_counter()
    pre, post = fixed_probability(n, n, p, rng(4), same_population=True)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # a dense boolean n x n mask alone would be 400 MB; the result is ~400k pairs
    assert peak < 64e6, f"peak {peak / 1e6:.0f} MB suggests a dense allocation"
    assert elapsed < 3.0
    assert_canonical(pre, post, n, n, no_autapses=True)
    assert within_4_sigma(pre.size, n * (n - 1), p)
    # rows are hit uniformly: the first and second half of rows get similar counts
    assert within_4_sigma(np.sum(pre < n // 2), pre.size, 0.5)
    assert within_4_sigma(np.sum(post < n // 2), pre.size, 0.5)


# ---------------------------------------------------------------------------
# paper rule


def test_paper_rule_statistics_and_flags():
    n, p, ratio = 400, 0.1, 0.5
    pre, post, recip = paper_rule(n, p, rng(5), reciprocal_ratio=ratio)
    assert_canonical(pre, post, n, n, no_autapses=True)
    assert recip.dtype == bool and recip.shape == pre.shape
    n_pairs = n * (n - 1) // 2

    # classify unordered pairs from the edges
    lo, hi = np.minimum(pre, post), np.maximum(pre, post)
    pair_key, pair_count = np.unique(lo * n + hi, return_counts=True)
    n_uni = int(np.sum(pair_count == 1))
    n_rec = int(np.sum(pair_count == 2))
    assert n_uni + n_rec == pair_key.size
    assert within_4_sigma(n_uni, n_pairs, p)
    assert within_4_sigma(n_rec, n_pairs, ratio * p)

    # reciprocal flags are exactly the connections whose reverse exists
    keys = pre * n + post
    reverse_exists = np.isin(post * n + pre, keys)
    np.testing.assert_array_equal(recip, reverse_exists)
    assert recip.sum() == 2 * n_rec

    # unidirectional direction is 50/50
    uni = ~recip
    assert within_4_sigma(np.sum(pre[uni] < post[uni]), n_uni, 0.5)


def test_paper_rule_ratio_zero_and_limits():
    pre, post, recip = paper_rule(200, 0.2, rng(6), reciprocal_ratio=0.0)
    assert not recip.any()
    assert within_4_sigma(pre.size, 200 * 199 // 2, 0.2)
    # p * (1 + r) == 1 exactly: every pair is connected
    pre, post, recip = paper_rule(50, 0.5, rng(7), reciprocal_ratio=1.0)
    lo, hi = np.minimum(pre, post), np.maximum(pre, post)
    assert np.unique(lo * 50 + hi).size == 50 * 49 // 2
    with pytest.raises(ConnectivityError, match="reciprocal_ratio"):
        paper_rule(100, 0.7, rng(), reciprocal_ratio=0.5)
    with pytest.raises(ConnectivityError, match="reciprocal_ratio"):
        paper_rule(100, 0.1, rng(), reciprocal_ratio=-0.1)
    pre, post, recip = paper_rule(1, 0.5, rng())
    assert pre.size == 0 and recip.size == 0


def test_paper_rule_large_sparse():
    n, p = 20_000, 0.0005
    t0 = time.perf_counter()
    pre, post, recip = paper_rule(n, p, rng(8))
    assert time.perf_counter() - t0 < 3.0
    assert_canonical(pre, post, n, n, no_autapses=True)
    n_pairs = n * (n - 1) // 2
    assert within_4_sigma(recip.sum() // 2, n_pairs, 0.5 * p)
    assert within_4_sigma((~recip).sum(), n_pairs, p)


# ---------------------------------------------------------------------------
# fixed in-degree


@pytest.mark.parametrize(
    "n_pre, n_post, k, same",
    [
        (300, 300, 20, True),  # k <= m/2: draw and redraw duplicates
        (300, 300, 250, True),  # k > m/2: draw the excluded complement
        (300, 300, 299, True),  # every other cell
        (100, 500, 100, False),  # k == n_pre
        (1000, 50, 7, False),
    ],
)
def test_fixed_indegree_exact(n_pre, n_post, k, same):
    pre, post = fixed_indegree(n_pre, n_post, k, rng(9), same_population=same)
    assert_canonical(pre, post, n_pre, n_post, no_autapses=same)
    np.testing.assert_array_equal(np.bincount(post, minlength=n_post), np.full(n_post, k))


@pytest.mark.parametrize("k", [2, 4])  # rejection branch (k <= m/2) and complement branch (k > m/2)
def test_fixed_indegree_subsets_uniform(k):
    m, n_post = 5, 20_000
    pre, post = fixed_indegree(m, n_post, k, rng(10))
    order = np.lexsort((pre, post))  # group by postsynaptic cell
    chosen = pre[order].reshape(n_post, k)
    code = (1 << chosen).sum(axis=1)  # bitmask of each cell's partner set
    _, counts = np.unique(code, return_counts=True)
    n_subsets = math.comb(m, k)
    assert counts.size == n_subsets
    for c in counts:
        assert within_4_sigma(c, n_post, 1 / n_subsets)


def test_fixed_indegree_autapse_option_and_errors():
    pre, post = fixed_indegree(10, 10, 10, rng(), same_population=True, allow_autapses=True)
    assert np.sum(pre == post) == 10
    with pytest.raises(ConnectivityError, match="k=10 exceeds the 9 available"):
        fixed_indegree(10, 10, 10, rng(), same_population=True)
    with pytest.raises(ConnectivityError, match="k"):
        fixed_indegree(10, 20, 11, rng())
    with pytest.raises(ConnectivityError, match="n_pre == n_post"):
        fixed_indegree(10, 20, 3, rng(), same_population=True)
    pre, post = fixed_indegree(10, 20, 0, rng())
    assert pre.size == 0


def test_fixed_indegree_large_is_fast():
    t0 = time.perf_counter()
    pre, post = fixed_indegree(20_000, 20_000, 100, rng(11), same_population=True)
    assert time.perf_counter() - t0 < 3.0
    assert pre.size == 2_000_000
    assert_canonical(pre, post, 20_000, 20_000, no_autapses=True)


# ---------------------------------------------------------------------------
# reproducibility


RULE_CALLS = {
    "fixed_probability": lambda g: fixed_probability(200, 200, 0.1, g, same_population=True),
    "paper": lambda g: paper_rule(200, 0.1, g),
    "fixed_indegree": lambda g: fixed_indegree(200, 200, 15, g, same_population=True),
    "distance": lambda g: distance_dependent(
        random_positions(200, g), random_positions(150, g), g, p_max=0.6, scale_um=120.0
    ),
    "positions": lambda g: (random_positions(100, g),),
}


@pytest.mark.parametrize("name", sorted(RULE_CALLS))
def test_same_seed_reproduces_different_seed_differs(name):
    call = RULE_CALLS[name]
    a, b, c = call(rng(123)), call(rng(123)), call(rng(124))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(x.shape != z.shape or not np.array_equal(x, z) for x, z in zip(a, c))


def test_rule_names():
    assert RULES == ("fixed-probability", "paper", "fixed-indegree", "distance", "file")
    assert rule_names() == RULES


# ---------------------------------------------------------------------------
# positions and distance-dependent rule


def test_random_positions():
    pos = random_positions(1000, rng(12), extent_um=(300.0, 200.0, 0.0))
    assert pos.shape == (1000, 3) and pos.dtype == np.float64
    assert np.all(pos[:, 2] == 0.0)
    assert 0 <= pos[:, 0].min() and pos[:, 0].max() < 300 and pos[:, 1].max() < 200
    assert pos[:, 0].max() > 290 and pos[:, 1].max() > 190  # fills the box
    assert random_positions(5, rng()).shape == (5, 3)
    with pytest.raises(ConnectivityError, match="extent_um"):
        random_positions(10, rng(), extent_um=(100.0, -1.0, 0.0))
    with pytest.raises(ConnectivityError, match="extent_um"):
        random_positions(10, rng(), extent_um=(100.0, 100.0))
    with pytest.raises(ConnectivityError, match="rng"):
        random_positions(10, 42)


@pytest.mark.parametrize("profile", ["gaussian", "exponential"])
def test_distance_dependent_follows_profile(profile):
    g = rng(13)
    n = 2000  # 4e6 pairs: several row blocks
    pos = random_positions(n, g, extent_um=(600.0, 600.0, 0.0))
    p_max, scale = 0.8, 80.0
    pre, post = distance_dependent(pos, pos, g, p_max=p_max, scale_um=scale, profile=profile, same_population=True)
    assert_canonical(pre, post, n, n, no_autapses=True)

    # all pairs' distances and model probabilities (test only; 4e6 floats)
    d = np.sqrt(((pos[:, None, :2] - pos[None, :, :2]) ** 2).sum(-1))
    np.fill_diagonal(d, np.nan)
    prob = p_max * (np.exp(-(d**2) / (2 * scale**2)) if profile == "gaussian" else np.exp(-d / scale))
    d_conn = d[pre, post]
    edges = [0.0, 40.0, 80.0, 120.0, 200.0, 300.0]
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (d >= lo) & (d < hi)
        expected = prob[in_bin].sum()
        sd = math.sqrt((prob[in_bin] * (1 - prob[in_bin])).sum())
        observed = np.sum((d_conn >= lo) & (d_conn < hi))
        assert abs(observed - expected) <= 4 * sd + 1, (lo, hi, observed, expected, sd)
    # far pairs almost never connect under the Gaussian profile
    if profile == "gaussian":
        assert np.sum(d_conn > 5 * scale) <= 2


def test_distance_dependent_independent_of_block_size(monkeypatch):
    import neurosurrogate.network.connectivity as conn

    pos = random_positions(300, rng(15), extent_um=(400.0, 400.0, 50.0))
    kw = dict(p_max=0.7, scale_um=60.0, profile="exponential", same_population=True)
    ref = distance_dependent(pos, pos, rng(16), **kw)
    for block in (1, 1000, 7 * 300 + 5):  # one row per block, a few rows, ragged last block
        monkeypatch.setattr(conn, "_BLOCK_PAIRS", block)
        got = distance_dependent(pos, pos, rng(16), **kw)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    assert_canonical(*ref, 300, 300, no_autapses=True)


@pytest.mark.parametrize("p", [0.001, 0.3, 0.9])
def test_geometric_skipping_chunks_agree(p):
    from neurosurrogate.network.connectivity import _bernoulli_indices

    ref = _bernoulli_indices(50_000, p, rng(18))
    for chunk in (1, 7, 1000):
        np.testing.assert_array_equal(_bernoulli_indices(50_000, p, rng(18), chunk=chunk), ref)
    assert within_4_sigma(ref.size, 50_000, p)
    assert ref.size == 0 or (ref[0] >= 0 and ref[-1] < 50_000 and np.all(np.diff(ref) > 0))


def test_tiny_probabilities_do_not_overflow():
    pre, post = fixed_probability(20_000, 20_000, 1e-300, rng(17))
    assert pre.size == 0
    pre, post = fixed_probability(20_000, 20_000, 1e-12, rng(17))
    assert pre.size <= 1


def test_distance_dependent_bounded_memory_and_options():
    g = rng(14)
    n = 4000  # dense float64 n x n would be 128 MB
    pos = random_positions(n, g, extent_um=(2000.0, 2000.0, 100.0))
    tracemalloc.start()
    pre, post = distance_dependent(pos, pos, g, p_max=0.5, scale_um=50.0, same_population=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64e6, f"peak {peak / 1e6:.0f} MB"
    assert_canonical(pre, post, n, n, no_autapses=True)
    # p_max = 1 with autapses: every cell contacts itself (distance 0)
    pre, post = distance_dependent(pos[:50], pos[:50], g, p_max=1.0, scale_um=1.0, same_population=True,
                                   allow_autapses=True)
    assert np.sum(pre == post) == 50
    # two populations of different sizes
    pre, post = distance_dependent(pos[:30], pos[:70], g, p_max=1.0, scale_um=1e6)
    assert pre.size == 30 * 70
    with pytest.raises(ConnectivityError, match="profile"):
        distance_dependent(pos, pos, g, p_max=0.5, scale_um=50.0, profile="box")
    with pytest.raises(ConnectivityError, match="scale_um"):
        distance_dependent(pos, pos, g, p_max=0.5, scale_um=0.0)
    with pytest.raises(ConnectivityError, match="p_max"):
        distance_dependent(pos, pos, g, p_max=1.5, scale_um=10.0)
    with pytest.raises(ConnectivityError, match="pos_post"):
        distance_dependent(pos, pos[:, :2], g, p_max=0.5, scale_um=10.0)
    with pytest.raises(ConnectivityError, match="same_population"):
        distance_dependent(pos[:10], pos[10:20], g, p_max=0.5, scale_um=10.0, same_population=True)


def test_argument_errors_name_the_argument():
    with pytest.raises(ConnectivityError, match=r"p must be a probability"):
        fixed_probability(10, 10, 1.5, rng())
    with pytest.raises(ConnectivityError, match="n_pre"):
        fixed_probability(-1, 10, 0.5, rng())
    with pytest.raises(ConnectivityError, match="n_post"):
        fixed_probability(10, 2.5, 0.5, rng())
    with pytest.raises(ConnectivityError, match="rng"):
        fixed_probability(10, 10, 0.5, np.random.RandomState(0))
    with pytest.raises(ConnectivityError, match="n_pre == n_post"):
        fixed_probability(10, 11, 0.5, rng(), same_population=True)
    assert issubclass(ConnectivityError, ValueError)


# ---------------------------------------------------------------------------
# edge files


def _expected_edges():
    pre = np.array([0, 0, 1, 3, 4], dtype=np.int64)
    post = np.array([2, 5, 0, 3, 1], dtype=np.int64)
    w = np.array([0.5, 1.25, 2.0, 0.1, 3.0])
    d = np.array([1, 2, 3, 1, 5], dtype=np.int64)
    return pre, post, w, d


def test_load_dense_matrix_roundtrip(tmp_path):
    pre, post, w, _ = _expected_edges()
    mat = np.zeros((5, 6))
    mat[pre, post] = w
    np.savez(tmp_path / "w.npz", matrix=mat)
    out = load_edges(tmp_path / "w.npz", 5, 6)
    np.testing.assert_array_equal(out["pre"], pre)
    np.testing.assert_array_equal(out["post"], post)
    np.testing.assert_array_equal(out["weight_nS"], w)
    assert out["pre"].dtype == np.int64 and out["weight_nS"].dtype == np.float64
    assert "delay_ms" not in out

    # 0/1 and boolean matrices give connections only
    np.save(tmp_path / "a.npy", (mat > 0).astype(np.int8))
    np.save(tmp_path / "b.npy", mat > 0)
    for name in ("a.npy", "b.npy"):
        out = load_edges(str(tmp_path / name), 5, 6)
        assert set(out) == {"pre", "post"}
        np.testing.assert_array_equal(out["pre"], pre)
        np.testing.assert_array_equal(out["post"], post)


def test_load_edge_list_npz_roundtrip(tmp_path):
    pre, post, w, d = _expected_edges()
    perm = np.array([3, 0, 4, 2, 1])  # unsorted in the file; returned sorted
    np.savez(tmp_path / "e.npz", pre=pre[perm], post=post[perm], weight_nS=w[perm], delay_ms=d[perm])
    out = load_edges(tmp_path / "e.npz", 5, 6)
    for key, val in zip(("pre", "post", "weight_nS", "delay_ms"), (pre, post, w, d)):
        np.testing.assert_array_equal(out[key], val)
    assert out["delay_ms"].dtype == np.int64
    np.savez(tmp_path / "f.npz", pre=pre, post=post)
    assert set(load_edges(tmp_path / "f.npz", 5, 6)) == {"pre", "post"}


def test_load_edge_list_csv_roundtrip(tmp_path):
    pre, post, w, d = _expected_edges()
    lines = ["delay_ms, pre,post,weight_nS,note"] + [
        f"{d[i]},{pre[i]},{post[i]},{float(w[i])!r},0" for i in range(pre.size)[::-1]
    ]
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    out = load_edges(tmp_path / "e.csv", 5, 6)
    for key, val in zip(("pre", "post", "weight_nS", "delay_ms"), (pre, post, w, d)):
        np.testing.assert_array_equal(out[key], val)
    assert out["pre"].dtype == np.int64 and out["delay_ms"].dtype == np.int64
    (tmp_path / "min.csv").write_text("pre,post\n1,2\n")
    out = load_edges(tmp_path / "min.csv", 5, 6)
    assert set(out) == {"pre", "post"} and out["pre"].tolist() == [1] and out["post"].tolist() == [2]
    (tmp_path / "empty.csv").write_text("pre,post\n")
    out = load_edges(tmp_path / "empty.csv", 5, 6)
    assert out["pre"].size == 0 and out["pre"].dtype == np.int64


_OK = dict(pre=np.array([0, 1]), post=np.array([1, 2]))

#: (file name, content, regex the message must match); content: dict -> .npz arrays,
#: ndarray -> .npy, str -> text file.
BAD_FILES = [
    ("shape.npz", dict(matrix=np.ones((4, 6))), r"shape \(4, 6\), expected \(n_pre, n_post\) = \(5, 6\)"),
    ("shape.npy", np.ones(30), r"expected \(n_pre, n_post\)"),
    ("negw.npy", -np.eye(5, 6), r">= 0"),
    ("nanw.npz", dict(matrix=np.full((5, 6), np.nan)), r"finite"),
    ("keys.npz", dict(edges=np.zeros(3)), r"'matrix' array or 1-D 'pre' and 'post'"),
    ("range.npz", dict(pre=np.array([0, 5]), post=_OK["post"]), r"pre indices must be in 0\.\.4"),
    ("range2.npz", dict(pre=_OK["pre"], post=np.array([-1, 2])), r"post indices must be in 0\.\.5"),
    ("float.npz", dict(pre=np.array([0.5, 1.0]), post=_OK["post"]), r"pre must hold integers"),
    ("dup.npz", dict(pre=np.array([1, 0, 1]), post=np.array([2, 1, 2])), r"duplicate connection 1 -> 2"),
    ("len.npz", dict(pre=_OK["pre"], post=np.array([1, 2, 3])), r"post has 3 entries, expected 2"),
    ("w.npz", dict(_OK, weight_nS=np.array([1.0, -0.1])), r"weight_nS must be finite and >= 0"),
    ("winf.npz", dict(_OK, weight_nS=np.array([1.0, np.inf])), r"weight_nS must be finite"),
    ("d0.npz", dict(_OK, delay_ms=np.array([1, 0])), r"delay_ms must be whole ms >= 1"),
    ("dfrac.npz", dict(_OK, delay_ms=np.array([1.5, 2.0])), r"delay_ms must be whole ms >= 1"),
    ("nopost.csv", "pre,weight_nS\n0,1.0\n", r"header must contain pre and post"),
    ("text.csv", "pre,post\n0,x\n", r"could not read the CSV"),
    ("dup.csv", "pre,post\n0,1\n0,1\n", r"duplicate connection 0 -> 1"),
    ("range.csv", "pre,post\n0,6\n", r"post indices must be in 0\.\.5"),
    ("d.csv", "pre,post,delay_ms\n0,1,0.5\n", r"delay_ms must be whole ms"),
    ("edges.txt", "pre,post\n0,1\n", r"unsupported suffix '\.txt'; expected \.npz, \.npy or \.csv"),
]


@pytest.mark.parametrize("name, content, pattern", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_load_edges_validation_errors(tmp_path, name, content, pattern):
    path = tmp_path / name
    if isinstance(content, dict):
        np.savez(path, **content)
    elif isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    with pytest.raises(ConnectivityError, match=pattern) as info:
        load_edges(path, 5, 6)
    assert name in str(info.value), f"message for {name} does not name the file: {info.value}"


def test_load_edges_missing_file(tmp_path):
    with pytest.raises(ConnectivityError, match="does not exist"):
        load_edges(tmp_path / "missing.npz", 5, 6)
