"""Streaming steps of a surrogate replayed from a CUDA graph.

On a GPU one streaming ``step`` of the GRU surrogate is ~30 small kernels; launched one by one
from Python each costs several microseconds of host time, so a step of a few thousand cells takes
~250 µs however few FLOPs it does (measured on an H100: `benchmarks/l5pc_speed.py`). A CUDA graph
records the kernels of one step once and replays them with one launch. :class:`GraphStepper`
keeps the input, the state and the output in fixed device buffers (a graph reads and writes the
addresses it was recorded with): each :meth:`GraphStepper.step` copies the new input in, replays,
and leaves the new state in place.

    stepper = GraphStepper(model.net, batch=5000, device="cuda")
    for x_t in x:                      # (T, batch, n_in) on the device
        y = stepper.step(x_t)          # (batch, n_out); overwritten by the next step
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from neurosurrogate.surrogate.base import State, Surrogate


def enabled() -> bool:
    """False when ``NEUROSURROGATE_CUDA_GRAPH`` is ``0``/``false``/``no``/``off`` (default on)."""
    return os.environ.get("NEUROSURROGATE_CUDA_GRAPH", "1").strip().lower() not in ("0", "false", "no", "off")


class GraphStepper:
    """One step of ``net`` for ``batch`` cells captured as a CUDA graph.

    Args:
        net: a surrogate in eval mode (dropout would be frozen into the graph).
        batch: cells per step (fixed: a graph replays the shapes it was recorded with).
        device: a CUDA device (``"cuda"``, ``"cuda:1"``, a ``torch.device``).
        dtype: the state's and input's float type (default: the parameters').
        state: the starting state (default ``net.init_state(batch)``): copied, not kept.

    The output of :meth:`step` is a view of the graph's output buffer: read it (or clone it)
    before the next step.
    """

    def __init__(self, net: Surrogate, batch: int, device="cuda", dtype: torch.dtype | None = None,
                 state: State | None = None) -> None:
        dev = torch.device(device)
        if dev.type != "cuda":
            raise ValueError(f"GraphStepper: device must be a CUDA device, got {str(dev)!r}")
        if not torch.cuda.is_available():
            raise RuntimeError("GraphStepper: torch sees no CUDA device")
        if net.training:
            raise ValueError("GraphStepper: put the surrogate in eval mode first (net.eval())")
        if int(batch) < 1:
            raise ValueError(f"GraphStepper: batch must be >= 1 cells, got {batch}")
        ref = next(net.parameters())
        if ref.device != dev and not (ref.device.type == "cuda" and dev.index is None):
            raise ValueError(f"GraphStepper: the surrogate's parameters are on {ref.device}, not {dev}")
        dtype = dtype or ref.dtype
        self.net, self.batch, self.device, self.dtype = net, int(batch), ref.device, dtype
        self.x = torch.zeros(self.batch, net.n_in, device=self.device, dtype=dtype)
        self.state = tuple(torch.empty_like(s) for s in net.init_state(self.batch, self.device, dtype))
        self.reset(state)
        with torch.no_grad():
            side = torch.cuda.Stream(self.device)  # warm-up off the default stream, as capture needs
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):  # library handles and workspaces are made here, not in the graph
                    net.step(self.x, self.state)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                y, new = net.step(self.x, self.state)
                for old, s in zip(self.state, new):
                    old.copy_(s)
        self.y: Tensor = y

    def reset(self, state: State | None = None) -> None:
        """Start again from ``state`` (default: the model's rest, ``net.init_state``)."""
        if state is None:
            state = self.net.init_state(self.batch, self.device, self.dtype)
        if len(state) != len(self.state) or any(s.shape != t.shape for s, t in zip(state, self.state)):
            raise ValueError(f"GraphStepper.reset: state shapes {[tuple(s.shape) for s in state]} do not match "
                             f"{[tuple(s.shape) for s in self.state]}")
        with torch.no_grad():
            for old, s in zip(self.state, state):
                old.copy_(s)

    def step(self, x_t: Tensor) -> Tensor:
        """One 1 ms step. x_t: (batch, n_in) on the device; returns y (batch, n_out), a view of the
        graph's output buffer (valid until the next step)."""
        if x_t.shape != self.x.shape:
            raise ValueError(f"GraphStepper.step: input of shape {tuple(x_t.shape)}, expected {tuple(self.x.shape)}")
        self.x.copy_(x_t)
        self.graph.replay()
        return self.y
