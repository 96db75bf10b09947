"""Training loss of a surrogate.

With outputs ``y`` and targets ``z`` (see ``Encoding.targets``), per sample::

    L = voltage_weight * mean (y0 - z0)^2                  voltage (normalised)
      + spike_weight  * BCE(y1, z1; pos_weight)            a spike starts in this ms
      + offset_weight * mean_{z1=1} (sigmoid(y2) - z2)^2   sub-ms spike time
      + current_weight * mean (y[3:] - z[3:])^2            extra outputs (INa, IK), legacy form

or, with named groups of extra channels (``extra_groups``, see :func:`extra_groups`),
the last line becomes ``sum_g weight_g * mean (y[c_g] - z[c_g])^2`` over groups ``g``
of channels ``c_g`` (the mean is over the group's channels, samples and trials): the
soma currents ``ina``/``ik`` form the group ``currents`` (weight ``current_weight``),
the dendritic voltages ``v_dend{k}_mV`` the group ``v_dend``, and ``ica`` its own.
The extra targets are normalised (``Encoding.targets``), so a dendritic voltage error
of 20 mV costs as much as a soma voltage error of 20 mV at weight 1.

With ``spread_weight`` > 0 a term against shrinkage of the soma voltage is added::

    spread_weight * mean_b (sd_t(smooth(y0_b)) - sd_t(smooth(z0_b)))^2

where ``smooth`` is a moving average over ``spread_window_ms`` samples (1: none) and
``sd_t`` the standard deviation over the time of trial ``b`` in the batch (in training
one truncated-BPTT chunk, in validation the whole trial; a chunk not longer than the
window gets no such term). A model trained by the squared error alone predicts, where
it cannot tell which way the cell goes, the mean of the branches: its excursions come
out smaller than the cell's (a slope below 1 of prediction on truth). This term asks
for excursions as large as the cell's without saying where they must be.

With ``near_weight`` > 0 the soma-voltage term weighs the samples whose target lies above
``near_above`` (normalised, i.e. ``(near_threshold_mV - v_rest) / v_scale``) ``1 + near_weight``
times as much (the mean stays over all samples): the cell decides its spikes in the last mV
below threshold, where every surrogate's voltage sits 2-3 mV under the cell's (README, the
detailed cell, item 14), though those samples are a few per cent of all.

The spike term respects spikes that the voltage MSE alone under-weights (a
spike is 1-2 samples in hundreds), and the offset term gives spike times
below the 1 ms sampling step.

With ``spike_tolerance_ms`` = w > 0 the spike term tolerates timing errors up to w ms, one spike
per true spike: a true spike in bin t is scored by the largest logit within t - w .. t + w, and
that bin alone is excused from the negatives; every other bin, near a spike or not, is a negative.
A model whose spikes are all-or-none (``gru_soma``) otherwise pays for a spike one bin off twice,
as a miss and as a false spike, which teaches it not to fire where it is unsure of the bin; a
second spike within w ms of a true one is still false. (A first version excused every bin within
w ms of a true spike: the models it trained fired doublets there; README, the detailed cell,
item 13.) w = 0 is the plain binary cross-entropy.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: extra output name -> loss group (names not listed form a group of their own)
GROUP_OF = {"ina": "currents", "ik": "currents"}
#: name prefix of the auxiliary state outputs (``TrainConfig.targets`` "states")
STATE_PREFIX = "state_"


def group_name(output: str) -> str:
    """The loss group of an extra output name (``v_dend{k}_mV`` -> ``v_dend``, ``state_*`` -> ``states``)."""
    from neurosurrogate.surrogate.model import dend_row

    if dend_row(output) is not None:
        return "v_dend"
    if output.startswith(STATE_PREFIX):
        return "states"
    return GROUP_OF.get(output, output)


def extra_groups(names: Sequence[str], weights: dict[str, float]) -> list[tuple[str, list[int], float]]:
    """Loss groups of the extra outputs ``names`` (channels 3, 4, ...).

    Args:
        names: extra output names in channel order.
        weights: group name -> weight (>= 0); every group that occurs needs one.

    Returns:
        ``[(group, channels, weight), ...]`` in order of first occurrence.

    Raises:
        ValueError: a group has no weight, or a negative one.
    """
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        groups.setdefault(group_name(n), []).append(3 + i)
    out = []
    for g, ch in groups.items():
        if g not in weights:
            raise ValueError(f"no loss weight for the output group {g!r} (outputs {[names[c - 3] for c in ch]})")
        w = float(weights[g])
        if not w >= 0:
            raise ValueError(f"loss weight of {g!r} must be >= 0, got {weights[g]!r}")
        out.append((g, ch, w))
    return out


def surrogate_loss(y: Tensor, z: Tensor, spike_weight: float = 1.0, spike_pos_weight: float = 4.0,
                   offset_weight: float = 1.0, current_weight: float = 0.1,
                   groups: Sequence[tuple[str, Sequence[int], float]] | None = None,
                   voltage_weight: float = 1.0, spread_weight: float = 0.0,
                   spread_window_ms: int = 51, spike_tolerance_ms: int = 0, near_weight: float = 0.0,
                   near_above: float = float("inf")) -> tuple[Tensor, dict[str, float]]:
    """Loss and its parts.

    Args:
        y, z: (B, T, n_out) float outputs and targets.
        spike_weight, spike_pos_weight, offset_weight: spike terms (see the module doc).
        current_weight: weight of the extra channels in the legacy form (``groups`` None).
        groups: ``[(name, channels, weight), ...]`` from :func:`extra_groups`; replaces the
            legacy extra term. ``parts`` then has one entry per group name.
        voltage_weight: weight of the soma-voltage term (``parts['v']`` is the unweighted MSE).
        spread_weight, spread_window_ms: the anti-shrinkage term (module doc); ``parts['spread']``
            is its unweighted value (0 when the weight is 0 or T <= ``spread_window_ms``).
        spike_tolerance_ms: timing tolerance of the spike term, whole ms (module doc; 0: exact bins).
        near_weight, near_above: extra weight of the soma-voltage samples whose target is above
            ``near_above`` (normalised units; module doc); ``parts['v']`` stays the unweighted MSE.

    Returns:
        ``(total, parts)``: the scalar loss and a dict of float parts (``v``, ``spike``,
        ``offset``, ``current`` = the summed weighted extra term, ``spread``, and per group).
    """
    lv = F.mse_loss(y[..., 0], z[..., 0])
    lv_w = lv
    if near_weight > 0:
        w = 1.0 + near_weight * (z[..., 0] > near_above).to(y.dtype)
        lv_w = (w * (y[..., 0] - z[..., 0]) ** 2).mean()
    pw = torch.tensor(spike_pos_weight, dtype=y.dtype, device=y.device)
    ls = spike_loss(y[..., 1], z[..., 1], pw, spike_tolerance_ms)
    m = z[..., 1] > 0.5
    lo = ((torch.sigmoid(y[..., 2]) - z[..., 2]) ** 2)[m].mean() if m.any() else y.new_zeros(())
    parts: dict[str, float] = {}
    if groups is None:
        lc = F.mse_loss(y[..., 3:], z[..., 3:]) if y.shape[-1] > 3 else y.new_zeros(())
        total = voltage_weight * lv_w + spike_weight * ls + offset_weight * lo + current_weight * lc
    else:
        extra = y.new_zeros(())
        for name, ch, w in groups:
            idx = list(ch)
            lg = F.mse_loss(y[..., idx], z[..., idx])
            parts[name] = float(lg.detach())
            extra = extra + w * lg
        lc = extra
        total = voltage_weight * lv_w + spike_weight * ls + offset_weight * lo + extra
    use = spread_weight > 0 and y.shape[-2] > int(spread_window_ms)
    lsp = spread_loss(y[..., 0], z[..., 0], spread_window_ms) if use else y.new_zeros(())
    total = total + spread_weight * lsp
    return total, {**parts, "v": float(lv.detach()), "spike": float(ls.detach()), "offset": float(lo.detach()),
                   "current": float(lc.detach()), "spread": float(lsp.detach())}


def spike_loss(logit: Tensor, target: Tensor, pos_weight: Tensor, tolerance_ms: int = 0) -> Tensor:
    """Binary cross-entropy of the spike logits (B, T) against the spike onsets (B, T), with the
    timing tolerance of the module doc; mean over all bins."""
    if tolerance_ms <= 0:
        return F.binary_cross_entropy_with_logits(logit, target, pos_weight=pos_weight)
    w = int(tolerance_ms)
    best, at = F.max_pool1d(logit[:, None], 2 * w + 1, stride=1, padding=w, return_indices=True)
    pos = (target > 0.5).to(logit.dtype)
    # the bin that answers each true spike (the largest logit within w bins) is not a negative
    answers = torch.zeros_like(logit).scatter_add_(1, at[:, 0], pos) > 0
    terms = pos_weight * F.softplus(-best[:, 0]) * pos + F.softplus(logit) * ~answers
    return terms.mean()


def spread_loss(p: Tensor, t: Tensor, window: int = 51) -> Tensor:
    """Mean over trials of the squared difference of the standard deviations over time of
    the moving averages (``window`` samples, valid part only) of ``p`` and ``t``, (B, T) each."""
    window = int(window)
    if window < 1:
        raise ValueError(f"spread_window_ms must be >= 1, got {window}")
    if p.shape[-1] <= window:
        raise ValueError(f"the anti-shrinkage term needs more than spread_window_ms = {window} samples "
                         f"per chunk, got {p.shape[-1]}")
    if window > 1:
        p = F.avg_pool1d(p.unsqueeze(1), window, stride=1).squeeze(1)
        t = F.avg_pool1d(t.unsqueeze(1), window, stride=1).squeeze(1)
    return ((p.std(dim=-1) - t.std(dim=-1)) ** 2).mean()
