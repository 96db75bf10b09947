"""Training loss of a surrogate.

With outputs ``y`` and targets ``z`` (see ``Encoding.targets``), per sample::

    L = mean (y0 - z0)^2                                   voltage (normalised)
      + spike_weight  * BCE(y1, z1; pos_weight)            a spike starts in this ms
      + offset_weight * mean_{z1=1} (sigmoid(y2) - z2)^2   sub-ms spike time
      + current_weight * mean (y[3:] - z[3:])^2            INa, IK (if learned)

The spike term respects spikes that the voltage MSE alone under-weights (a
spike is 1-2 samples in hundreds), and the offset term gives spike times
below the 1 ms sampling step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def surrogate_loss(y: Tensor, z: Tensor, spike_weight: float = 1.0, spike_pos_weight: float = 4.0,
                   offset_weight: float = 1.0, current_weight: float = 0.1) -> tuple[Tensor, dict[str, float]]:
    """Loss and its parts. y, z: (B, T, n_out) float."""
    lv = F.mse_loss(y[..., 0], z[..., 0])
    pw = torch.tensor(spike_pos_weight, dtype=y.dtype, device=y.device)
    ls = F.binary_cross_entropy_with_logits(y[..., 1], z[..., 1], pos_weight=pw)
    m = z[..., 1] > 0.5
    lo = ((torch.sigmoid(y[..., 2]) - z[..., 2]) ** 2)[m].mean() if m.any() else y.new_zeros(())
    lc = F.mse_loss(y[..., 3:], z[..., 3:]) if y.shape[-1] > 3 else y.new_zeros(())
    total = lv + spike_weight * ls + offset_weight * lo + current_weight * lc
    return total, {"v": float(lv.detach()), "spike": float(ls.detach()), "offset": float(lo.detach()),
                   "current": float(lc.detach())}
