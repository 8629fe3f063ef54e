"""The CPU convolution's batch-parallel forward (framework/kernels/cpu/conv.py: _forward_batch_parallel):
groups of images on parallel threads give exactly what the same groups give one after another, on every
kernel path (Winograd with a cached weight, im2col strided and banded, few-row stems, depthwise,
pointwise) and with the epilogue (bias, residual, activation); the work really runs on two threads;
errors in a group reach the caller; training forwards (which keep work for the backward) stay serial."""

import threading

import numpy as np
import pytest

import framework as fw
import framework.nn.functional as F
from framework.kernels.cpu import conv as C

RNG = np.random.default_rng(31)

CASES = {  # x shape, w shape, stride, padding, groups, cache_weight
    "winograd43-cached": ((3, 32, 40, 40), (48, 32, 3, 3), 1, 1, 1, True),
    "winograd": ((3, 32, 24, 24), (40, 32, 3, 3), 1, 1, 1, False),
    "im2col-stride2": ((3, 16, 64, 64), (32, 16, 3, 3), 2, 1, 1, False),
    "stem-4x4-s4-few-rows": ((3, 3, 96, 128), (16, 3, 4, 4), 4, 0, 1, False),
    "banded": ((2, 24, 120, 160), (40, 24, 3, 3), 2, 1, 1, False),
    "depthwise": ((3, 24, 60, 80), (24, 1, 3, 3), 1, 1, 24, False),
    "pointwise": ((3, 64, 30, 40), (96, 64, 1, 1), 1, 0, 1, False),
    "grouped": ((3, 32, 30, 30), (32, 8, 3, 3), 1, 1, 4, False),
}


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(C, "_THREADS", 2)
    monkeypatch.setattr(C, "_BATCH_PARALLEL", True)
    monkeypatch.setattr(C, "_PAR_MIN_MACS", 1)


def _conv(x, w, s, p, g, cache, **epi):
    return C.conv2d_forward(x, w, (s, s), (p, p), (1, 1), g, cache_weight=cache, **epi)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("epilogue", ["none", "bias-relu", "bias-residual-silu"])
def test_parallel_groups_equal_serial_groups(name, epilogue, two_threads, monkeypatch):
    xs, ws, s, p, g, cache = CASES[name]
    x = RNG.standard_normal(xs, dtype=np.float32)
    w = (RNG.standard_normal(ws, dtype=np.float32) * 0.2).astype(np.float32)
    epi = {}
    if epilogue != "none":
        epi["bias"] = RNG.standard_normal(ws[0], dtype=np.float32)
        epi["activation"] = "relu" if epilogue == "bias-relu" else "silu"
    n = xs[0]
    bounds = [(i * n // 2, (i + 1) * n // 2) for i in range(2)]
    if "residual" in epilogue:
        ho = (xs[2] + 2 * p - ws[2]) // s + 1
        wo = (xs[3] + 2 * p - ws[3]) // s + 1
        epi["residual"] = RNG.standard_normal((n, ws[0], ho, wo), dtype=np.float32)
    out = _conv(x, w, s, p, g, cache, **epi)
    monkeypatch.setattr(C, "_THREADS", 1)
    serial = np.concatenate(
        [
            _conv(
                x[b0:b1],
                w,
                s,
                p,
                g,
                cache,
                **{k: (v[b0:b1] if k == "residual" else v) for k, v in epi.items()},
            )
            for b0, b1 in bounds
        ]
    )
    np.testing.assert_array_equal(out, serial)
    whole = _conv(x, w, s, p, g, cache, **epi)  # (the batch at once: equal up to the products' rounding)
    np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-5 * np.abs(whole).max())


def test_groups_run_on_two_threads_without_nesting(two_threads, monkeypatch):
    seen = []
    real = C.conv2d_forward

    def spy(x, *args, **kwargs):
        if getattr(C._TLS, "batch_part", False):
            seen.append((threading.get_ident(), x.shape[0]))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(C, "conv2d_forward", spy)
    x = RNG.standard_normal((5, 16, 32, 32), dtype=np.float32)
    w = RNG.standard_normal((24, 16, 3, 3), dtype=np.float32)
    C.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
    assert sorted(m for _, m in seen) == [2, 3]  # two groups, neither split again
    assert len({t for t, _ in seen}) == 2


def test_error_in_a_group_reaches_the_caller(two_threads):
    x = RNG.standard_normal((4, 8, 16, 16), dtype=np.float32)
    w = RNG.standard_normal((8, 8, 3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="unknown activation"):
        C.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1, activation="gelu")


def test_training_forward_stays_serial_and_gradients_hold(two_threads, monkeypatch):
    calls = []
    real = C._forward_batch_parallel

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(C, "_forward_batch_parallel", spy)
    xa = RNG.standard_normal((4, 8, 16, 16)).astype(np.float32)
    wa = RNG.standard_normal((8, 8, 3, 3)).astype(np.float32)
    x, w = fw.tensor(xa, requires_grad=True), fw.tensor(wa, requires_grad=True)
    y = F.conv2d(x, w, padding=1)  # keeps its patches for the backward: serial
    (y * y).sum().backward()
    assert calls == []
    with fw.no_grad():  # inference: in parallel, the same values (up to the kernels' rounding)
        yi = F.conv2d(fw.tensor(xa), fw.tensor(wa), padding=1).numpy()
    np.testing.assert_allclose(yi, y.detach().numpy(), rtol=1e-5, atol=1e-4)
    assert calls == [1]


@pytest.mark.parametrize(
    "env,on",
    [
        ({"FRAMEWORK_CONV_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"}, True),
        ({"FRAMEWORK_CONV_THREADS": "4", "OMP_NUM_THREADS": "1"}, True),
        ({"FRAMEWORK_CONV_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}, False),  # BLAS threads would contend
        ({"FRAMEWORK_CONV_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}, False),
        ({"OPENBLAS_NUM_THREADS": "1"}, False),  # not asked for
    ],
)
def test_batch_parallel_only_where_it_pays(env, on, monkeypatch):
    for v in ("FRAMEWORK_CONV_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(v, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert C._batch_parallel_default() is on


# ------------------------------------------------------------------------- framework.utils.parallel

from framework.utils import parallel as P  # noqa: E402


def test_parallel_map_order_threads_and_serial_kernels(monkeypatch):
    monkeypatch.setattr(C, "_THREADS", 2)
    seen = []

    def fn(i):
        seen.append((threading.get_ident(), getattr(C._TLS, "batch_part", False)))
        x = RNG.standard_normal((1, 8, 16, 16), dtype=np.float32) * 0 + i
        return float(
            C.conv2d_forward(x, np.ones((1, 8, 1, 1), np.float32), (1, 1), (0, 0), (1, 1), 1)[0, 0, 0, 0]
        )

    assert P.parallel_map(fn, range(5)) == [8.0 * i for i in range(5)]
    assert len({t for t, _ in seen}) == 2  # the caller and one pool thread
    assert all(flag for _, flag in seen)  # the convolutions inside do not fan out again
    assert getattr(C._TLS, "batch_part", False) is False  # (restored in the caller's thread)
    assert P.parallel_map(fn, [3], threads=4) == [24.0]
    assert P.parallel_map(lambda v: v + 1, [1, 2, 3], threads=1) == [2, 3, 4]


def test_parallel_map_raises_the_first_error_after_all_calls(monkeypatch):
    monkeypatch.setattr(C, "_THREADS", 2)
    done = []

    def fn(i):
        done.append(i)
        if i in (1, 2):
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 1"):
        P.parallel_map(fn, range(4))
    assert sorted(done) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="threads must be >= 1"):
        P.parallel_map(fn, [0], threads=0)


def test_grad_mode_is_per_thread(monkeypatch):
    """As in PyTorch, a worker thread starts with grad enabled: calls enter no_grad themselves."""
    monkeypatch.setattr(C, "_THREADS", 2)
    with fw.no_grad():
        modes = P.parallel_map(lambda _: fw.is_grad_enabled(), range(2))
    assert modes == [False, True]


def test_worthwhile_follows_the_batch_parallel_rule(monkeypatch):
    monkeypatch.setattr(C, "_BATCH_PARALLEL", True)
    assert P.worthwhile()
    monkeypatch.setattr(C, "_BATCH_PARALLEL", False)
    assert not P.worthwhile()
