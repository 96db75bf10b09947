"""Linear-nonlinear feedback surrogate (Oláh, Pedersen & Rowan, eLife 2022: "linear-nonlinear").

Same window features as :mod:`.linear` (last H inputs and own last H voltages)::

    f_t = [x_{t-H+1}, v_{t-H}, ..., x_t, v_{t-1}]
    h_t = tanh(W1 f_t + b1)                          (a few units, default 8)
    y_t = W2 h_t + b2,   v_t = y_t[0]                (fed back)

i.e. a small bank of linear filters followed by a static nonlinearity.
State: ``(x_buf (B, H, n_in), v_buf (B, H))``; teacher-forced ``forward`` is
one ``conv1d``, free-running ``forward`` loops ``step``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate.architectures._layers import FilteredWindowSurrogate, check_positive
from neurosurrogate.surrogate.base import register


@register("nonlinear")
class NonlinearSurrogate(FilteredWindowSurrogate):
    """Linear filters over the window, then a static tanh nonlinearity and a linear readout.

    Args:
        n_in: input features per step.
        n_out: outputs per step (>= 3).
        history: window length H in steps (ms), default 64.
        width: number of filters / nonlinear units, default 8.
        v_init: fed-back voltage at rest (normalised), default 0.0.
    """

    def __init__(self, n_in: int, n_out: int, history: int = 64, width: int = 8, v_init: float = 0.0) -> None:
        check_positive(width=width)
        super().__init__(n_in, n_out, history, v_init, units=width, width=width)
        self.width = int(width)
        self.out = nn.Linear(self.width, n_out)

    def _post(self, h: Tensor) -> Tensor:
        return self.out(torch.tanh(h))

    def flops_per_step(self) -> int:
        return self._filter_flops() + 2 * self.width * self.n_out
