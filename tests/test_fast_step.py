"""The compiled fused GRU step (neurosurrogate.surrogate.fast) against PyTorch's arithmetic."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from neurosurrogate.surrogate import fast
from neurosurrogate.surrogate.base import build
from neurosurrogate.surrogate.model import SurrogateModel

needs_kernel = pytest.mark.skipif(fast.load_kernel() is None, reason="no C compiler: fused step unavailable")


def sparse_inputs(T: int, n: int, n_in: int, seed: int = 0, p: float = 0.03) -> torch.Tensor:
    """(T, n, n_in) synaptic-like features: mostly zeros, drive > 0 and onset fractions in [0, 1)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((T, n, n_in), np.float32)
    mask = rng.random((T, n, n_in // 2)) < p
    x[:, :, 0::2][mask] = rng.uniform(0.5, 3.0, mask.sum())
    x[:, :, 1::2][mask] = rng.random(mask.sum())
    return torch.from_numpy(x)


def run_steps(net, x: torch.Tensor, fused: bool, monkeypatch, full_state: bool = False):
    """(T, n, n_out) outputs of stepping through x (T, n, n_in), and the final h (or whole state)."""
    monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "1" if fused else "0")
    state = net.init_state(x.shape[1])
    ys = []
    with torch.no_grad():
        for k in range(x.shape[0]):
            y, state = net.step(x[k], state)
            ys.append(y)
    return torch.stack(ys), (state if full_state else state[0])


def with_trained_traces(net):
    """Give the trace parameters non-trivial values (they start as a plain GRU: mix = 0)."""
    if net.traces:
        with torch.no_grad():
            net.mix.normal_(0.0, 0.5)
            net.log_tau.add_(torch.randn_like(net.log_tau) * 0.3)
    return net


@needs_kernel
@pytest.mark.parametrize("n", [1, 4, 6, 13])  # partial and whole blocks of 6 cells
@pytest.mark.parametrize("hidden,layers,traces", [(64, 2, 0), (32, 3, 0), (16, 1, 0), (32, 2, 3), (16, 1, 1)])
def test_fused_step_equals_pytorch(n, hidden, layers, traces, monkeypatch):
    torch.manual_seed(n)
    net = with_trained_traces(build("gru", 40, 5, hidden=hidden, layers=layers, traces=traces).eval())
    x = sparse_inputs(60, n, 40, seed=n, p=0.2)
    y_f, st_f = run_steps(net, x, True, monkeypatch, full_state=True)
    assert net._fused is not None, "the fused kernel was not used"
    y_t, st_t = run_steps(net, x, False, monkeypatch, full_state=True)
    torch.testing.assert_close(y_f, y_t, atol=2e-5, rtol=1e-4)
    assert len(st_f) == len(st_t) == (2 if traces else 1)
    for a, b in zip(st_f, st_t):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    xs = x.transpose(0, 1)  # (n, T, n_in)
    for T in (37, 60):  # odd and even: the sequence kernel's final state ends in either buffer
        with torch.no_grad():
            y_seq_t, st_seq_t = net(xs[:, :T])  # nn.GRU (the switch is still off)
            monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "1")
            y_seq_f, st_seq_f = net(xs[:, :T])  # the sequence kernel
            monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "0")
        for y in (y_seq_t, y_seq_f):
            torch.testing.assert_close(y_f.transpose(0, 1)[:, :T], y, atol=2e-5, rtol=1e-4)
        for a, b in zip(st_seq_t, st_seq_f):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    for a, b in zip(st_seq_f, st_f):  # T = 60: the state after the whole input
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


@needs_kernel
def test_shipped_hay_model_fused_matches_pytorch(monkeypatch):
    """The shipped L5PC surrogate over 300 ms of sparse input: voltages agree to 1e-3 mV."""
    model = SurrogateModel.load("hay-l5pc")
    net = model.net.eval()
    x = sparse_inputs(300, 6, model.encoding.n_in, seed=3, p=0.02)
    y_f, _ = run_steps(net, x, True, monkeypatch)
    y_t, _ = run_steps(net, x, False, monkeypatch)
    dv_mV = (y_f[..., 0] - y_t[..., 0]).abs().max().item() * model.encoding.v_scale_mV
    assert dv_mV < 1e-3
    torch.testing.assert_close(y_f, y_t, atol=1e-4, rtol=1e-4)


@needs_kernel
def test_fused_weights_follow_parameter_updates(monkeypatch):
    """An optimiser step or load_state_dict after a fused step must not leave stale weights."""
    torch.manual_seed(0)
    net = build("gru", 20, 4, hidden=16, layers=2).eval()
    x = sparse_inputs(5, 2, 20, p=0.5)
    run_steps(net, x, True, monkeypatch)
    with torch.no_grad():
        net.head.bias.add_(1.0)
    y_f, _ = run_steps(net, x, True, monkeypatch)
    y_t, _ = run_steps(net, x, False, monkeypatch)
    torch.testing.assert_close(y_f, y_t, atol=2e-5, rtol=1e-4)
    other = build("gru", 20, 4, hidden=16, layers=2)
    net.load_state_dict(other.state_dict())
    y_f, _ = run_steps(net, x, True, monkeypatch)
    y_t, _ = run_steps(net, x, False, monkeypatch)
    torch.testing.assert_close(y_f, y_t, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("traces", [1, 4])
def test_traces_sequence_equals_steps_and_carries_state(traces, monkeypatch):
    """The FFT form of the traces over a sequence = the recursion of step; chunks chain exactly."""
    monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "0")
    torch.manual_seed(1)
    net = with_trained_traces(build("gru", 30, 4, hidden=16, layers=2, traces=traces).eval())
    x = sparse_inputs(80, 3, 30, p=0.2).transpose(0, 1)  # (B, T, n_in)
    with torch.no_grad():
        y_seq, (h, s) = net(x)
        y_a, st = net(x[:, :37])
        y_b, (h2, s2) = net(x[:, 37:], st)
        y_step, (h3, s3) = run_steps(net, x.transpose(0, 1), False, monkeypatch, full_state=True)
    assert s.shape == (traces, 3, 16)
    torch.testing.assert_close(torch.cat([y_a, y_b], 1), y_seq, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(y_step.transpose(0, 1), y_seq, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(s2, s, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(s3, s, atol=1e-5, rtol=1e-4)


def test_traces_learn_and_leave_rest_at_zero():
    """Gradients reach the time constants and mixing weights; no input keeps the zero state."""
    torch.manual_seed(2)
    net = build("gru", 30, 4, hidden=16, layers=1, traces=2)
    x = sparse_inputs(50, 4, 30, p=0.2).transpose(0, 1)
    y, _ = net(x)
    y.pow(2).mean().backward()
    assert net.mix.grad.abs().sum() > 0
    with_trained_traces(net)
    y, _ = net(x)
    net.zero_grad()
    y.pow(2).mean().backward()
    assert net.log_tau.grad.abs().sum() > 0
    with torch.no_grad():
        _, (h, s) = net(torch.zeros(2, 20, 30))
    assert torch.count_nonzero(s) == 0
    with pytest.raises(ValueError, match="traces"):
        build("gru", 30, 4, traces=-1)


def test_slow_normalised_traces(monkeypatch):
    """trace_tau_max_ms sets the slowest initial time constant; trace_norm mixes the traces as leaky
    means ((1 - a_k) mix_k), in PyTorch and in the fused kernel alike; both survive a rebuild."""
    torch.manual_seed(4)
    net = with_trained_traces(build("gru", 30, 4, hidden=16, layers=2, traces=3, trace_tau_max_ms=1000.0,
                                    trace_norm=True).eval())
    plain = build("gru", 30, 4, hidden=16, layers=2, traces=3).eval()
    assert float(plain.log_tau.detach().exp()[-1, 0]) == pytest.approx(60.0, rel=1e-5)
    a = torch.exp(-1.0 / net.log_tau.exp())
    torch.testing.assert_close(net.trace_mix(), (1 - a) * net.mix)
    torch.testing.assert_close(plain.trace_mix(), plain.mix)
    assert net.config["trace_tau_max_ms"] == 1000.0 and net.config["trace_norm"] is True
    assert "trace_norm" not in plain.config and "trace_tau_max_ms" not in plain.config  # old files unchanged
    twin = build("gru", 30, 4, **net.config).eval()
    twin.load_state_dict(net.state_dict())
    x = sparse_inputs(120, 3, 30, p=0.3)
    y_t, st_t = run_steps(net, x, False, monkeypatch, full_state=True)
    with torch.no_grad():
        y_seq, _ = twin(x.transpose(0, 1))
    torch.testing.assert_close(y_seq, y_t.transpose(0, 1), atol=1e-5, rtol=1e-4)
    if fast.load_kernel() is not None:
        y_f, st_f = run_steps(net, x, True, monkeypatch, full_state=True)
        torch.testing.assert_close(y_f, y_t, atol=2e-5, rtol=1e-4)
    with torch.no_grad():  # with these weights the slow trace matters: plain mixing changes the output
        net.trace_norm = False
        y_plain, _ = run_steps(net, x, False, monkeypatch, full_state=True)
    assert (y_plain - y_t).abs().max() > 1e-3
    for bad, match in ((dict(trace_tau_max_ms=1.0), "trace_tau_max_ms"), (dict(trace_norm="yes"), "trace_norm")):
        with pytest.raises(ValueError, match=match):
            build("gru", 30, 4, traces=2, **bad)


def test_pytorch_path_where_the_kernel_does_not_apply(monkeypatch):
    """Training mode, autograd, float64 and unsupported widths step with PyTorch (gradients flow)."""
    monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "1")
    net = build("gru", 10, 3, hidden=16, layers=1)
    x = torch.rand(2, 10)
    y, _ = net.step(x, net.init_state(2))  # training mode, grad enabled
    y.sum().backward()
    assert net.inp.weight.grad is not None and net._fused is None
    net.eval()
    y, _ = net.step(x, net.init_state(2))  # eval, grad enabled
    assert y.requires_grad and net._fused is None
    odd = build("gru", 10, 3, hidden=20, layers=1).eval()  # 3H not a multiple of the kernel's tile
    assert not fast.supported(20)
    with torch.no_grad():
        odd.step(x, odd.init_state(2))
        net.double().step(x.double(), net.init_state(2, dtype=torch.float64))
    assert odd._fused is None and net._fused is None


def test_missing_compiler_falls_back_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    monkeypatch.setenv("NEUROSURROGATE_CACHE", str(tmp_path))
    with pytest.raises(fast.KernelBuildError, match="no-such-compiler-xyz"):
        fast.build_kernel()
    monkeypatch.setattr(fast, "_LIB", None)
    monkeypatch.setattr(fast, "_FAILED", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fast.load_kernel() is None
        assert fast.load_kernel() is None  # reported once
    assert sum("using PyTorch" in str(w.message) for w in caught) == 1
    net = build("gru", 10, 3, hidden=16, layers=1).eval()
    with torch.no_grad():
        y, _ = net.step(torch.rand(2, 10), net.init_state(2))
    assert torch.isfinite(y).all() and net._fused is None


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "off")
    assert fast.load_kernel() is None and not fast.enabled()


@needs_kernel
def test_kernel_cache_key_changes_with_the_source_and_the_options(monkeypatch, tmp_path):
    cc = fast._compiler()
    src = tmp_path / "gru_step.c"
    text = fast.SOURCE.read_text()
    src.write_text(text)
    monkeypatch.setattr(fast, "SOURCE", src)
    key = fast.kernel_key(cc)
    src.write_text(text + "\n/* changed */\n")
    assert fast.kernel_key(cc) != key
    src.write_text(text)
    assert fast.kernel_key(cc) == key
    monkeypatch.setattr(fast, "compile_flags", lambda: ["-O2", "-fPIC"])  # other options: another build
    assert fast.kernel_key(cc) != key


def test_compile_flags_ask_for_512_bit_vectors_only_where_the_cpu_has_them(monkeypatch):
    monkeypatch.setattr(fast, "_cpu_flags", lambda: "flags : fpu sse2 avx2 fma")
    assert "-march=native" in fast.compile_flags() and not any("vector-width" in f for f in fast.compile_flags())
    monkeypatch.setattr(fast, "_cpu_flags", lambda: "flags : fpu sse2 avx2 avx512f avx512bw")
    assert "-mprefer-vector-width=512" in fast.compile_flags()


@needs_kernel
def test_fused_step_takes_non_contiguous_inputs(monkeypatch):
    torch.manual_seed(4)
    net = build("gru", 12, 4, hidden=16, layers=2, traces=2).eval()
    x = sparse_inputs(1, 5, 24, p=0.5)[0][:, ::2]  # (5, 12) view with stride 2
    assert not x.is_contiguous()
    with torch.no_grad():
        monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "1")
        y_f, _ = net.step(x, net.init_state(5))
        monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", "0")
        y_t, _ = net.step(x, net.init_state(5))
    assert net._fused is not None
    torch.testing.assert_close(y_f, y_t, atol=2e-5, rtol=1e-4)


@needs_kernel
def test_copies_and_pickles_leave_the_kernel_cache_behind(monkeypatch):
    import copy
    import pickle

    net = build("gru", 12, 4, hidden=16, layers=1).eval()
    x = sparse_inputs(3, 2, 12, p=0.5)
    y, _ = run_steps(net, x, True, monkeypatch)
    assert net._fused is not None
    for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert other._fused is None
        y2, _ = run_steps(other, x, True, monkeypatch)
        torch.testing.assert_close(y2, y)
        assert other._fused is not None and other._fused is not net._fused


@needs_kernel
def test_fused_step_saturates_like_pytorch(monkeypatch):
    """Huge inputs drive every gate into saturation (exp overflows to inf inside the sigmoid): the
    kernel, compiled with -ffast-math, must still give PyTorch's finite answer, not inf or NaN."""
    torch.manual_seed(5)
    net = build("gru", 20, 4, hidden=16, layers=2, traces=2).eval()
    x = sparse_inputs(20, 7, 20, p=0.5) * 1e4
    y_f, st_f = run_steps(net, x, True, monkeypatch, full_state=True)
    y_t, st_t = run_steps(net, x, False, monkeypatch, full_state=True)
    assert torch.isfinite(y_f).all() and torch.isfinite(st_f[0]).all()
    torch.testing.assert_close(y_f, y_t, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(st_f[0], st_t[0], atol=1e-4, rtol=1e-4)
