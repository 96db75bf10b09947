"""Fully connected feedback surrogate (Oláh, Pedersen & Rowan, eLife 2022: "MLP").

Same window features as :mod:`.linear` (last H inputs and own last H voltages)::

    f_t = [x_{t-H+1}, v_{t-H}, ..., x_t, v_{t-1}]
    h^1_t = ReLU(W_1 f_t + b_1)
    h^l_t = ReLU(W_l h^{l-1}_t + b_l),   l = 2..L    (L hidden layers of N units; default 3 x 128)
    y_t = W_o h^L_t + b_o,   v_t = y_t[0]            (fed back)

State: ``(x_buf (B, H, n_in), v_buf (B, H))``; teacher-forced ``forward``
computes the first layer for all steps as one ``conv1d``, free-running
``forward`` loops ``step``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate.architectures._layers import FilteredWindowSurrogate, check_positive
from neurosurrogate.surrogate.base import register


@register("mlp")
class MLPSurrogate(FilteredWindowSurrogate):
    """Deep ReLU network over the window of inputs and own past voltages.

    Args:
        n_in: input features per step.
        n_out: outputs per step (>= 3).
        history: window length H in steps (ms), default 64.
        hidden: units per hidden layer, default 128.
        layers: hidden layers, default 3.
        v_init: fed-back voltage at rest (normalised), default 0.0.
    """

    def __init__(
        self, n_in: int, n_out: int, history: int = 64, hidden: int = 128, layers: int = 3, v_init: float = 0.0
    ) -> None:
        check_positive(hidden=hidden, layers=layers)
        super().__init__(n_in, n_out, history, v_init, units=hidden, hidden=hidden, layers=layers)
        self.hidden, self.layers = int(hidden), int(layers)
        self.deep = nn.ModuleList(nn.Linear(self.hidden, self.hidden) for _ in range(self.layers - 1))
        self.head = nn.Linear(self.hidden, n_out)

    def _post(self, h: Tensor) -> Tensor:
        h = torch.relu(h)
        for lin in self.deep:
            h = torch.relu(lin(h))
        return self.head(h)

    def flops_per_step(self) -> int:
        N = self.hidden
        return self._filter_flops() + 2 * ((self.layers - 1) * N * N + N * self.n_out)
