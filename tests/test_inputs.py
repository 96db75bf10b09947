"""Event tables: validation (every error path), generators, files, binning."""

from __future__ import annotations

import numpy as np
import pytest

from neurosurrogate.inputs import (
    EventTable,
    EventTableError,
    bin_events,
    draw_weights,
    mixed_protocol_events,
    paper_protocol_events,
    poisson_events,
    protocol_events,
    uniform_events,
)


def test_unsorted_table_is_sorted_stably():
    ev = EventTable([3.0, 1.0, 2.0, 1.0], [0, 1, 0, 0], [1.0, 2.0, 3.0, 4.0])
    assert ev.t_ms.tolist() == [1.0, 1.0, 2.0, 3.0]
    assert ev.synapse.tolist() == [1, 0, 0, 0]
    assert ev.weight_nS.tolist() == [2.0, 4.0, 3.0, 1.0]


@pytest.mark.parametrize(
    "t, s, w, field, row",
    [
        ([0.0, -1.0], [0, 0], [1.0, 1.0], "t_ms", 1),
        ([0.0, np.nan], [0, 0], [1.0, 1.0], "t_ms", 1),
        ([np.inf], [0], [1.0], "t_ms", 0),
        ([0.0, 1.0], [0, 0], [1.0, -2.0], "weight_nS", 1),
        ([0.0, 1.0], [0, 0], [np.nan, 1.0], "weight_nS", 0),
        ([0.0, 1.0], [0, -1], [1.0, 1.0], "synapse", 1),
        ([0.0, 1.0], [0, 0.5], [1.0, 1.0], "synapse", 1),
    ],
)
def test_bad_values_name_field_and_row(t, s, w, field, row):
    with pytest.raises(EventTableError) as e:
        EventTable(t, s, w)
    assert f"'{field}'" in str(e.value) and f"row {row}" in str(e.value)


def test_shape_errors():
    with pytest.raises(EventTableError, match="equal length"):
        EventTable([0.0, 1.0], [0], [1.0, 1.0])
    with pytest.raises(EventTableError, match="1-D"):
        EventTable(np.zeros((2, 2)), [0, 0], [1.0, 1.0])
    with pytest.raises(EventTableError, match="numbers"):
        EventTable(["a"], [0], [1.0])
    with pytest.raises(EventTableError, match="'synapse': expected integer synapse indices, got dtype <U1"):
        EventTable([0.0], ["a"], [1.0])  # not "could not convert string to float"
    with pytest.raises(EventTableError, match=r"'synapse', row 0: 1\.5 is not an integer index"):
        EventTable([0.0], np.array([1.5]), [1.0])  # the value, not numpy's repr of it


def test_unknown_synapse_index():
    ev = EventTable([0.0, 1.0, 2.0], [0, 1, 5], [1.0, 1.0, 1.0])
    with pytest.raises(EventTableError, match=r"'synapse', row 2: index 5 .*0\.\.1"):
        ev.check_synapses(2)


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_file_round_trip(tmp_path, suffix):
    ev = poisson_events([300.0, 100.0], [2.5, 8.0], 500, np.random.default_rng(0), weight_cv=0.4)
    p = ev.save(tmp_path / f"ev{suffix}")
    back = EventTable.load(p)
    for k in ("t_ms", "synapse", "weight_nS"):
        assert np.array_equal(getattr(back, k), getattr(ev, k))


def test_file_errors(tmp_path):
    with pytest.raises(EventTableError, match="does not exist"):
        EventTable.load(tmp_path / "missing.npz")
    with pytest.raises(EventTableError, match="suffix"):
        EventTable.empty().save(tmp_path / "x.txt")
    np.savez(tmp_path / "bad.npz", t_ms=[1.0], synapse=[0])
    with pytest.raises(EventTableError, match="missing array"):
        EventTable.load(tmp_path / "bad.npz")
    (tmp_path / "bad.csv").write_text("time,synapse,weight_nS\n1,0,1\n")
    with pytest.raises(EventTableError, match="t_ms"):
        EventTable.load(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("t_ms,synapse,weight_nS\n1,0,1\nabc,0,1\n")
    with pytest.raises(EventTableError, match="'t_ms', row 1"):
        EventTable.load(tmp_path / "bad2.csv")
    (tmp_path / "bad3.csv").write_text("t_ms,synapse,weight_nS\n1,0.5,1\n")
    with pytest.raises(EventTableError, match="'synapse', row 0"):
        EventTable.load(tmp_path / "bad3.csv")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(EventTableError, match="NPZ"):
        EventTable.load(tmp_path / "garbage.npz")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EventTableError, match="empty"):
        EventTable.load(tmp_path / "empty.csv")


def test_poisson_rate_and_seed():
    rng = np.random.default_rng(1)
    ev = poisson_events([200.0, 50.0], [2.5, 8.0], 100_000, rng)
    n0, n1 = (ev.synapse == 0).sum(), (ev.synapse == 1).sum()
    assert abs(n0 - 20000) < 5 * np.sqrt(20000) and abs(n1 - 5000) < 5 * np.sqrt(5000)
    a = poisson_events([200.0], [2.5], 1000, np.random.default_rng(7))
    b = poisson_events([200.0], [2.5], 1000, np.random.default_rng(7))
    assert np.array_equal(a.t_ms, b.t_ms)
    with pytest.raises(ValueError, match="rates_Hz"):
        poisson_events([-1.0], [2.5], 1000, rng)
    with pytest.raises(ValueError, match="duration_ms"):
        poisson_events([1.0], [2.5], 0, rng)


def test_uniform_counts():
    ev = uniform_events([5, 3], [2.5, 8.0], 100, np.random.default_rng(0))
    assert (ev.synapse == 0).sum() == 5 and (ev.synapse == 1).sum() == 3
    with pytest.raises(ValueError, match="counts"):
        uniform_events([1.5], [2.5], 100, np.random.default_rng(0))


def test_paper_protocol():
    kinds, w = ["exc", "inh"], [2.5, 8.0]
    ev = paper_protocol_events(kinds, w, 20_000, np.random.default_rng(0), activity_scale=1.0, p_quiet=0.0)
    assert np.all(ev.t_ms == np.round(ev.t_ms)), "events on integer ms"
    ne, ni = (ev.synapse == 0).sum(), (ev.synapse == 1).sum()
    assert abs(ne / ni - 8 / 3) < 0.15
    assert abs(ne - 600 * 20) < 5 * np.sqrt(600 * 20)
    quiet = [len(paper_protocol_events(kinds, w, 100, np.random.default_rng(i), p_quiet=0.3)) == 0
             for i in range(400)]
    assert 0.2 < np.mean(quiet) < 0.4
    assert np.all(ev.weight_nS == 2.5 * (ev.synapse == 0) + 8.0 * (ev.synapse == 1))


def test_weights_lognormal_mean_and_cv():
    w = draw_weights(np.full(200_000, 2.5), np.random.default_rng(0), cv=0.5)
    assert abs(w.mean() - 2.5) < 0.01 and abs(w.std() / w.mean() - 0.5) < 0.01 and (w > 0).all()
    with pytest.raises(ValueError, match="weight_cv"):
        draw_weights(np.ones(3), np.random.default_rng(0), cv=-1)


def test_mixed_protocol_and_dispatch():
    evs = [mixed_protocol_events(["exc", "inh"], [2.5, 8.0], 2000, np.random.default_rng(i)) for i in range(50)]
    counts = np.array([len(e) for e in evs])
    assert counts.max() > 10 * max(np.median(counts[counts > 0]) / 10, 1)
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_events("nope", ["exc"], [1.0], 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown option"):
        protocol_events("poisson", ["exc"], [1.0], 10, np.random.default_rng(0), bogus=1)
    for proto, known in (("mixed", "p_volleys"), ("paper", "max_exc_rate_Hz")):  # named, with the known ones
        with pytest.raises(ValueError, match=rf"unknown option\(s\) for protocol '{proto}': \['bogus'\]; known: .*{known}"):
            protocol_events(proto, ["exc"], [1.0], 10, np.random.default_rng(0), bogus=1)
    with pytest.raises(ValueError, match="hay-l5pc only"):
        protocol_events("mixed", ["exc"], [1.0], 10, np.random.default_rng(0), volley_max_dist_um=100.0)


def test_mixed_protocol_volleys():
    """Volleys are off by default (earlier datasets' trials unchanged: p_volleys = 0 draws nothing);
    on, they put 3-20 distinct excitatory synapses within 1 ms, and bad ranges are rejected."""
    kinds = ["exc"] * 30 + ["inh"] * 10
    w = [2.5] * 30 + [8.0] * 10
    for i in range(5):
        a = mixed_protocol_events(kinds, w, 2000, np.random.default_rng([1, i]), exc_rate_range_Hz=(400, 9000))
        b = mixed_protocol_events(kinds, w, 2000, np.random.default_rng([1, i]), exc_rate_range_Hz=(400, 9000),
                                  p_volleys=0.0)
        assert np.array_equal(a.t_ms, b.t_ms) and np.array_equal(a.weight_nS, b.weight_nS)
    quiet = dict(exc_rate_range_Hz=(1.0, 1.0), ei_ratio_range=(1.0, 1.0), p_quiet=0.0, p_volleys=1.0,
                 volley_rate_range_Hz=(5.0, 5.0), volley_size_range=(6, 6), volley_jitter_ms=0.5)
    ev = mixed_protocol_events(kinds, w, 2000, np.random.default_rng(3), **quiet)
    t, syn = ev.t_ms, ev.synapse
    starts = [k for k in range(len(t)) if k == 0 or t[k] - t[k - 1] > 5.0]  # volleys ~200 ms apart
    groups = [np.arange(s, e) for s, e in zip(starts, starts[1:] + [len(t)])]
    big = [g for g in groups if g.size >= 6]
    assert len(big) >= 3
    for g in big:
        v = g[:6]
        assert np.ptp(t[v]) <= 0.5 and len(set(syn[v].tolist())) == 6 and np.all(syn[v] < 30)
    with pytest.raises(ValueError, match="volleys"):
        mixed_protocol_events(kinds, w, 2000, np.random.default_rng(3), **{**quiet, "volley_size_range": (5, 2)})
    # restricted to chosen excitatory sites (the proximal ones a circuit's connections use)
    near = list(range(10, 18))
    ev = mixed_protocol_events(kinds, w, 2000, np.random.default_rng(3), **quiet, volley_synapses=near)
    t, syn = ev.t_ms, ev.synapse
    starts = [k for k in range(len(t)) if k == 0 or t[k] - t[k - 1] > 5.0]
    big = [np.arange(s, e)[:6] for s, e in zip(starts, starts[1:] + [len(t)]) if e - s >= 6]
    assert len(big) >= 3 and all(set(syn[g].tolist()) <= set(near) for g in big)
    with pytest.raises(ValueError, match="volley_synapses"):
        mixed_protocol_events(kinds, w, 2000, np.random.default_rng(3), **quiet, volley_synapses=[5, 35])


def test_bin_events_keeps_sub_ms_timing():
    ev = EventTable([0.0, 0.25, 0.75, 3.5, 9.99], [0, 0, 1, 0, 1], [1.0, 2.0, 4.0, 1.0, 1.0])
    drive, off = bin_events(ev, 2, 10)
    assert drive.shape == (10, 2)
    assert drive[0, 0] == 3.0 and drive[0, 1] == 4.0 and drive[3, 0] == 1.0
    assert np.isclose(off[0, 0], 2.0 * 0.25) and np.isclose(off[0, 1], 4.0 * 0.75)
    assert np.isclose(off[3, 0] / drive[3, 0], 0.5)
    assert np.isclose(drive.sum(), ev.weight_nS.sum())


def test_parse_synapses_reads_indices_or_names_the_problem():
    from neurosurrogate.inputs import parse_synapses

    assert parse_synapses("") is None and parse_synapses("  ", 5) is None
    assert parse_synapses("0, 3,4", 5) == [0, 3, 4] and parse_synapses("7") == [7]
    with pytest.raises(ValueError, match="--synapses: expected comma-separated whole numbers"):
        parse_synapses("1,a")
    with pytest.raises(ValueError, match=r"--synapses: indices must lie in 0\.\.4"):
        parse_synapses("0,5", 5)
    with pytest.raises(ValueError, match="indices must lie"):
        parse_synapses("-1", 5)
