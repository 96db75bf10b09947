"""Streaming steppers (neurosurrogate.surrogate.stepper): the same steps as ``net.step``, the state kept."""

from __future__ import annotations

import pytest
import torch

from neurosurrogate.surrogate import fast
from neurosurrogate.surrogate.base import build
from neurosurrogate.surrogate.stepper import TorchStepper, make_stepper

from test_fast_step import needs_kernel, sparse_inputs, with_trained_traces


def steps_of_net(net, x, state=None):
    """(T, n, n_out) outputs and the final state of net.step over x (T, n, n_in)."""
    state = net.init_state(x.shape[1]) if state is None else state
    ys = []
    with torch.no_grad():
        for x_k in x:
            y, state = net.step(x_k, state)
            ys.append(y)
    return torch.stack(ys), state


def steps_of(stepper, x):
    return torch.stack([stepper.step(x_k).clone() for x_k in x])  # the output is the stepper's buffer


@needs_kernel
@pytest.mark.parametrize("n", [1, 6, 13])  # a partial, a whole and whole + partial blocks of 6 cells
@pytest.mark.parametrize("traces", [0, 3])
def test_fused_stepper_is_bit_identical_to_the_fused_step(n, traces, monkeypatch):
    monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "1")
    torch.manual_seed(n + traces)
    net = with_trained_traces(build("gru", 40, 5, hidden=32, layers=2, traces=traces).eval())
    x = sparse_inputs(41, n, 40, seed=n, p=0.2)  # odd length: the state ends in the other buffer
    y_net, st_net = steps_of_net(net, x)
    s = make_stepper(net, n)
    assert isinstance(s, fast.FusedStepper)
    y = steps_of(s, x)
    assert torch.equal(y, y_net)
    assert len(s.state) == len(st_net) == (2 if traces else 1)
    assert all(torch.equal(a, b) for a, b in zip(s.state, st_net))
    s.reset()  # back to rest: the same trajectory again
    assert torch.equal(steps_of(s, x), y_net)
    mid = tuple(t.clone() for t in steps_of_net(net, x[:20])[1])
    s.reset(mid)  # from a given state
    assert torch.equal(steps_of(s, x[20:]), y_net[20:])


@needs_kernel
def test_fused_stepper_takes_non_contiguous_inputs():
    torch.manual_seed(2)
    net = build("gru", 12, 4, hidden=16, layers=2, traces=2).eval()
    x = sparse_inputs(5, 3, 24, p=0.5)[:, :, ::2]  # (5, 3, 12) views with stride 2
    assert not x[0].is_contiguous()
    y_net, _ = steps_of_net(net, x.contiguous())
    assert torch.equal(steps_of(make_stepper(net, 3), x), y_net)


@needs_kernel
def test_fused_stepper_refuses_bad_input():
    net = build("gru", 10, 3, hidden=16, layers=1).eval()
    s = make_stepper(net, 4)
    with pytest.raises(ValueError, match=r"shape \(4, 10\)"):
        s.step(torch.zeros(3, 10))
    with pytest.raises(ValueError, match="float32"):
        s.step(torch.zeros(4, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match="state shapes"):
        s.reset(net.init_state(5))
    with pytest.raises(ValueError, match="batch must be >= 1"):
        fast.FusedStepper(net, 0)
    with pytest.raises(ValueError, match="plain GRU in eval mode"):
        fast.FusedStepper(net.train(), 4)


@pytest.mark.parametrize("why", ["disabled", "float64", "training", "architecture"])
def test_pytorch_stepper_where_the_kernel_does_not_apply(why, monkeypatch):
    """Where the fused step does not apply the stepper is the model's own step, with the same results."""
    monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "0" if why == "disabled" else "1")
    torch.manual_seed(5)
    arch = "tcn" if why == "architecture" else "gru"
    kw = dict(channels=8, levels=2) if arch == "tcn" else dict(hidden=16, layers=1, traces=2)
    net = build(arch, 10, 3, **kw).eval()
    dtype = torch.float64 if why == "float64" else torch.float32
    net = net.to(dtype)
    x = sparse_inputs(12, 3, 10, p=0.3).to(dtype)
    y_net, st_net = steps_of_net(net, x)
    if why == "training":
        net.train()  # no dropout configured: the same arithmetic, but not the kernel's business
    s = make_stepper(net, 3)
    assert isinstance(s, TorchStepper)
    torch.testing.assert_close(steps_of(s, x), y_net, atol=2e-5, rtol=1e-4)
    assert not s.step(x[0]).requires_grad  # no autograd graph is built, even with grad enabled
    with pytest.raises(ValueError, match="batch must be >= 1"):
        TorchStepper(net, 0)
