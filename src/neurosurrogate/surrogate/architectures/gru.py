"""Stacked GRU surrogate without voltage feedback (the project's default).

    z_t = ReLU(W_in x_t + b_in)                      (input projection, H units)
    h^l_t = GRU^l(h^{l-1}_t, h^l_{t-1}),  l = 1..L   (h^0_t = z_t)
    y_t = W_out h^L_t + b_out                         (voltage, spike logit, offset, extras)

With ``dropout`` > 0, training drops units of z and of the output of every GRU layer but the last
(inverted dropout; a regulariser when data are scarce); streaming inference (eval mode) is unchanged.

The recurrent state is the only memory: the model never sees its own
voltage output, so errors cannot feed back and compound, and training on
long sequences with backpropagation through time teaches it to run free
from its resting state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate.base import State, Surrogate, register


@register("gru")
class GRUSurrogate(Surrogate):
    """Args: n_in, n_out; hidden (units per layer, default 64); layers (default 2); dropout
    (training-time dropout probability of the input projection and between GRU layers, default 0)."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 64, layers: int = 2, dropout: float = 0.0) -> None:
        extra = {"dropout": float(dropout)} if dropout else {}  # model files without it load unchanged
        super().__init__(n_in, n_out, hidden=hidden, layers=layers, **extra)
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got {hidden}, {layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.hidden, self.layers = hidden, layers
        self.inp = nn.Linear(n_in, hidden)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, n_out)

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        ref = self._ref()
        return (torch.zeros(self.layers, batch, self.hidden, device=device or ref.device, dtype=dtype or ref.dtype),)

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        # one GRU cell call per layer: the same arithmetic as nn.GRU on a sequence of length 1
        # without its per-call set-up (~30 % faster for one cell, ~10 % for tens of cells on CPU)
        z = self.drop(torch.relu(self.inp(x_t)))
        h = state[0]
        hs = []
        for layer in range(self.layers):
            if layer and self.training and self.gru.dropout:
                z = nn.functional.dropout(z, self.gru.dropout, training=True)
            z = torch.gru_cell(z, h[layer], getattr(self.gru, f"weight_ih_l{layer}"),
                               getattr(self.gru, f"weight_hh_l{layer}"), getattr(self.gru, f"bias_ih_l{layer}"),
                               getattr(self.gru, f"bias_hh_l{layer}"))
            hs.append(z)
        return self.head(z), (torch.stack(hs),)

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        z = self.drop(torch.relu(self.inp(x_seq)))
        out, h = self.gru(z, state[0])
        return self.head(out), (h,)

    def flops_per_step(self) -> int:
        H, L, n_in = self.hidden, self.layers, self.n_in
        gru = L * 3 * (H * H + H * H)  # input and recurrent matrices of 3 gates
        return 2 * (n_in * H + gru + H * self.n_out)
