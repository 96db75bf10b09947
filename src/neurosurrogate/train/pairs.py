"""Paired trials: the same input with and without a few probe events, and the loss on their difference.

Trained on bombardment alone, a surrogate gets each synapse's effect tens of percent wrong (README, the
detailed cell, item 9): one event's share of a trial's squared error is tiny beside the error both
trials of a pair share (the slow wandering of the membrane that the model cannot place). A *pair* is a
trial and its sibling with single extra events at random synapses (``simulate --option probe_rate_Hz=R``:
trial ``i`` of that run holds exactly trial ``i`` of the run without the option, plus the probes). The
difference of the two responses is what the probes did in that context; the loss

    pair_weight * mean_{m, c} (d_pred - d_true)^2 / E_c,   d = y(sibling) - y(base)

over the soma voltage (clipped as trained) and the dendritic voltages ``c``, with ``E_c`` the mean of
``d_true^2`` over the masked samples of *all* training pairs (``Pairs.energy``; so the term is the
fraction of the probes' effect left unexplained, ~1 for a model that ignores them), puts the per-event
responses into what the model is rewarded for; the error both trials share cancels. (Normalising by the
batch's own ``sum d_true^2`` instead made the term explode in late chunks, where few samples are masked
and their differences are near 0.)

Where the pair's spikes part ways the difference stops being the probes' local effect (a shifted or
extra spike changes everything after it): the mask ``m`` keeps the samples before the first spike of
either trial without a partner within ``tol_ms`` in the other, and leaves out ``pre_ms`` before to
``post_ms`` after every spike of either (a partner a fraction of a ms off still moves the
after-hyperpolarisation).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from neurosurrogate.biophys.cells import cell_key
from neurosurrogate.data.dataset import Dataset
from neurosurrogate.inputs import PROBE_OPTION
from neurosurrogate.surrogate.model import dend_row


class PairError(ValueError):
    """Paired datasets that do not match their base."""


def _base_config(d: Dataset) -> dict:
    c = d.config
    opts = {k: v for k, v in (c.get("protocol_options") or {}).items() if k != PROBE_OPTION}
    return {"cell": cell_key(d.cell), "protocol": c.get("protocol"), "options": opts, "seed": c.get("seed"),
            "duration_ms": c.get("duration_ms"), "morphology_sha256": c.get("morphology_sha256")}


def find_pairs(datasets: list[Dataset]) -> list[tuple[int, int, int]]:
    """``[(base, probed, n), ...]``: dataset ``probed`` (generated with ``probe_rate_Hz``) pairs its first
    ``n`` trials with those of dataset ``base`` (the same run without the option).

    Raises:
        PairError: a probed dataset has no base among ``datasets``, or a trial's events are not its
            base trial's plus extra events.
    """
    out = []
    for j, d in enumerate(datasets):
        if PROBE_OPTION not in (d.config.get("protocol_options") or {}):
            continue
        key = _base_config(d)
        bases = [i for i, b in enumerate(datasets)
                 if i != j and PROBE_OPTION not in (b.config.get("protocol_options") or {}) and _base_config(b) == key]
        if not bases:
            raise PairError(f"{d.path} holds probe events ({PROBE_OPTION}) but no training dataset is its base "
                            f"(the same cell, protocol, options, duration and seed without {PROBE_OPTION})")
        i = bases[0]
        n = min(d.n_trials, datasets[i].n_trials)
        for k in range(n):  # cheap check that trial k really is base trial k plus probes
            eb, ep = datasets[i].events[k], d.events[k]
            if len(ep) < len(eb) or not np.isin(np.asarray(eb.t_ms), np.asarray(ep.t_ms)).all():
                raise PairError(f"trial {k} of {d.path} does not contain the events of trial {k} of "
                                f"{datasets[i].path}")
        out.append((i, j, n))
    return out


def pair_mask(spikes_a, spikes_b, T: int, tol_ms: float = 2.0, pre_ms: int = 1, post_ms: int = 10) -> np.ndarray:
    """(T,) bool: the samples where the difference of a pair is the probes' local effect (module doc)."""
    a, b = np.asarray(spikes_a, float), np.asarray(spikes_b, float)
    end = float(T)
    for x, y in ((a, b), (b, a)):
        for s in x:
            if y.size == 0 or np.min(np.abs(y - s)) > tol_ms:
                end = min(end, s)
                break
    m = np.arange(T) < (np.floor(end) - pre_ms if end < T else T)
    for s in np.r_[a, b]:
        k = int(np.floor(s))
        m[max(k - pre_ms, 0) : k + post_ms] = False
    return m


@dataclass
class Pairs:
    """Pairs of a training set's trials (global trial indices)."""

    partner: np.ndarray  # (n_trials,) int: the other trial of the pair, -1 for none
    base: np.ndarray  # (n_pairs,) base trial indices
    probed: np.ndarray  # (n_pairs,) sibling trial indices
    mask: torch.Tensor  # (n_pairs, T) bool
    energy: torch.Tensor | None = None  # (n_channels,) mean true squared difference per masked sample

    def set_energy(self, z: torch.Tensor, channels) -> None:
        """``energy`` from the targets ``z`` (n_trials, T, n_out) of the whole training set."""
        ch = list(channels)
        d = z[self.probed][..., ch] - z[self.base][..., ch]
        m = self.mask.unsqueeze(-1).to(d.dtype)
        n = float(self.mask.sum())
        e = (d ** 2 * m).sum(dim=(0, 1)) / max(n, 1.0)
        if n == 0 or not bool((e > 0).all()):
            raise PairError("the paired trials' compared outputs do not differ where they are compared "
                            "(no masked samples, or probes without effect)")
        self.energy = e

    def __len__(self) -> int:
        return int(self.base.size)

    def with_partners(self, idx: np.ndarray) -> np.ndarray:
        """``idx`` followed by the partners of its trials that it lacks (order kept, no duplicates)."""
        idx = np.asarray(idx)
        extra = self.partner[idx]
        extra = extra[(extra >= 0) & ~np.isin(extra, idx)]
        return np.r_[idx, np.unique(extra)].astype(np.int64)

    def in_batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions in ``idx`` of the base and sibling of every pair it holds, and the pairs' rows."""
        pos = np.full(self.partner.size, -1, dtype=np.int64)
        pos[np.asarray(idx)] = np.arange(len(idx))
        rows = np.flatnonzero((pos[self.base] >= 0) & (pos[self.probed] >= 0))
        return pos[self.base[rows]], pos[self.probed[rows]], rows


def pair_channels(enc) -> tuple[list[str], list[int]]:
    """The outputs the pair loss compares: the soma voltage and every dendritic voltage of the encoding
    ``enc`` (names, channels of the output tensor)."""
    dend = [(n, 3 + i) for i, n in enumerate(enc.extra_names) if dend_row(n) is not None]
    return ["v_mV"] + [n for n, _ in dend], [0] + [c for _, c in dend]


def make_pairs(datasets: list[Dataset], T: int) -> Pairs | None:
    """The pairs among ``datasets`` (concatenated in order, as ``train.loop.to_tensors``); None if none."""
    found = find_pairs(datasets)
    if not found:
        return None
    start = np.cumsum([0] + [d.n_trials for d in datasets])
    n_all = int(start[-1])
    partner = np.full(n_all, -1, dtype=np.int64)
    base, probed, masks = [], [], []
    for i, j, n in found:
        for k in range(n):
            gb, gp = int(start[i] + k), int(start[j] + k)
            if partner[gb] >= 0:
                raise PairError(f"trial {k} of {datasets[i].path} is the base of two probed datasets")
            partner[gb], partner[gp] = gp, gb
            base.append(gb)
            probed.append(gp)
            masks.append(pair_mask(datasets[i].spike_times_ms[k], datasets[j].spike_times_ms[k], T))
    return Pairs(partner, np.asarray(base), np.asarray(probed), torch.from_numpy(np.stack(masks)))


def pair_loss(y: Tensor, z: Tensor, pb, pp, mask: Tensor, channels, energy: Tensor) -> Tensor:
    """The normalised difference loss (module doc) of the pairs at batch positions ``pb`` (base) and
    ``pp`` (sibling); ``mask`` (n, T) bool; ``channels`` the output channels compared; ``energy`` their
    normalisers (``Pairs.energy``). 0 without pairs or masked samples."""
    n = float(mask.sum()) if len(pb) else 0.0
    if n == 0:
        return y.new_zeros(())
    ch = list(channels)
    d_pred = y[pp][..., ch] - y[pb][..., ch]
    d_true = z[pp][..., ch] - z[pb][..., ch]
    m = mask.to(y.device).unsqueeze(-1).to(y.dtype)
    return ((d_pred - d_true) ** 2 * m / energy.to(y.device)).sum() / (n * len(ch))


def pair_script_parser(doc: str, *extra: tuple[str, str]) -> argparse.ArgumentParser:
    """The command line of the scripts that score models on paired trials (``scripts/hay_pair_response.py``,
    ``scripts/hay_probe_consistency.py``): ``--model`` (repeatable), ``--base``, ``--probed``, the
    script's own required ``extra`` options as (flag, help) pairs, and ``--out``; the description is
    the first paragraph of ``doc``, the rest of it the epilog (usage)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="model folder (repeatable)")
    ap.add_argument("--base", required=True, help="dataset without probes (.h5)")
    ap.add_argument("--probed", required=True, help="the same run with --option probe_rate_Hz=R (.h5)")
    for flag, help_ in extra:
        ap.add_argument(flag, required=True, help=help_)
    ap.add_argument("--out", required=True, help="JSON file to write")
    return ap
