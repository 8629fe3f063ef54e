"""The CPU convolution's batch-parallel forward (framework/kernels/cpu/conv.py: _forward_batch_parallel):
groups of images on parallel threads give exactly what the same groups give one after another, on every
kernel path (Winograd with a cached weight, im2col strided and banded, few-row stems, depthwise,
pointwise) and with the epilogue (bias, residual, activation); the work really runs on two threads;
errors in a group reach the caller; in training the forward, both gradients and the work the forward keeps for
the weight gradient are split the same way; ``gemm.matmul`` splits large products into row blocks; and
``framework.set_num_threads`` switches all of this on and off at run time."""

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


TRAIN_CASES = {  # x shape, w shape, stride, padding, groups: what the forward keeps for the weight gradient
    "winograd43": ((4, 32, 24, 24), (40, 32, 3, 3), 1, 1, 1),
    "im2col-kept-stride2": ((4, 16, 32, 32), (24, 16, 3, 3), 2, 1, 1),
    "few-rows-stem": ((4, 3, 32, 32), (16, 3, 3, 3), 1, 1, 1),
    "pointwise": ((4, 64, 16, 16), (96, 64, 1, 1), 1, 0, 1),
    "depthwise": ((4, 24, 20, 20), (24, 1, 3, 3), 1, 1, 24),
    "grouped": ((4, 32, 16, 16), (32, 8, 3, 3), 1, 1, 4),
}


def _train(xa, wa, s, p, g):
    x, w = fw.tensor(xa, requires_grad=True), fw.tensor(wa, requires_grad=True)
    y = F.conv2d(x, w, stride=s, padding=p, groups=g)
    (y * y).sum().backward()
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy()


@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_training_runs_in_groups_and_matches_serial(name, two_threads, monkeypatch):
    """In training the forward, the input gradient and the weight gradient run over groups of images on
    the two threads; each group's weight gradient uses the work its forward kept; the results are those
    of the batch at once (up to the order of the sums) and PyTorch's."""
    xs, ws, s, p, g = TRAIN_CASES[name]
    xa = RNG.standard_normal(xs).astype(np.float32)
    wa = (RNG.standard_normal(ws) * 0.2).astype(np.float32)
    groups = []
    real_bw = C.conv2d_backward_weight

    def spy_bw(x, gy, *args, kept=None, **kwargs):
        if getattr(C._TLS, "batch_part", False):
            groups.append((threading.get_ident(), x.shape[0], sorted(kept or {})))
        return real_bw(x, gy, *args, kept=kept, **kwargs)

    spy_bw.__module__ = C.__name__  # (the Function hands the kept work only to the CPU kernel)
    monkeypatch.setattr(C, "conv2d_backward_weight", spy_bw)
    inputs = []
    real_bi = C.conv2d_backward_input

    def spy_bi(gy, *args, **kwargs):
        if getattr(C._TLS, "batch_part", False):
            inputs.append(gy.shape[0])
        return real_bi(gy, *args, **kwargs)

    monkeypatch.setattr(C, "conv2d_backward_input", spy_bi)
    par = _train(xa, wa, s, p, g)
    assert sorted(m for _, m, _ in groups) == [2, 2] and len({t for t, _, _ in groups}) == 2
    assert sorted(inputs) == [2, 2]
    kept = {k for _, _, ks in groups for k in ks}
    expect = {"winograd43": {"winograd43"}, "few-rows-stem": set(), "depthwise": set()}.get(name, {"im2col"})
    assert kept == expect
    monkeypatch.setattr(C, "_BATCH_PARALLEL", False)
    serial = _train(xa, wa, s, p, g)
    for a, b in zip(par, serial):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the gradients")
    tx = torch.tensor(xa, requires_grad=True)
    tw = torch.tensor(wa, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=s, padding=p, groups=g)
    (ty * ty).sum().backward()
    for a, b in zip(par, (ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy())):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * np.abs(b).max())


def test_small_layers_and_single_images_stay_whole(two_threads, monkeypatch):
    monkeypatch.setattr(C, "_PAR_MIN_MACS", 10**9)
    assert C._image_parts(np, 8, 10**8) is None  # below the work threshold
    monkeypatch.setattr(C, "_PAR_MIN_MACS", 1)
    assert C._image_parts(np, 1, 10**8) is None  # one image: nothing to split
    assert C._image_parts(np, 5, 10**8) == [(0, 2), (2, 5)]
    C._TLS.batch_part = True
    try:
        assert C._image_parts(np, 8, 10**8) is None  # already one of several parallel calls
    finally:
        C._TLS.batch_part = False


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


# ------------------------------------------------------------------------------- gemm, set_num_threads

from framework.kernels.cpu import gemm as G  # noqa: E402


@pytest.mark.parametrize(
    "shapes",
    [
        ((64, 48), (48, 80)),  # rows of a matrix
        ((5, 40, 24), (5, 24, 30)),  # a stack, split along it
        ((3, 40, 24), (3, 24, 30)),
        ((1, 40, 24), (1, 24, 30)),  # a stack of one: rows of each matrix
        ((64, 48), (80, 48)),  # (b transposed below: a strided operand)
    ],
)
def test_gemm_row_blocks_equal_the_product(shapes, two_threads, monkeypatch):
    monkeypatch.setattr(G, "PAR_MIN_MACS", 1)
    a = RNG.standard_normal(shapes[0]).astype(np.float32)
    b = RNG.standard_normal(shapes[1]).astype(np.float32)
    if a.shape[-1] != b.shape[-2]:
        b = b.T
    seen = set()
    real = np.matmul

    def spy(x, y, out=None):
        seen.add(threading.get_ident())
        return real(x, y, out=out)

    monkeypatch.setattr(G.np, "matmul", spy)
    got = G.matmul(a, b)
    monkeypatch.setattr(G.np, "matmul", real)
    np.testing.assert_allclose(got, a @ b, rtol=1e-6, atol=1e-6 * np.abs(a @ b).max())
    assert len(seen) == 2  # the caller and a pool thread each computed a block
    out = np.full(got.shape, np.nan, np.float32)
    assert G.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-6, atol=1e-6 * np.abs(a @ b).max())


def test_gemm_leaves_other_products_to_numpy(two_threads, monkeypatch):
    a = RNG.standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_array_equal(G.matmul(a, a.T), a @ a.T)  # small: one call
    monkeypatch.setattr(G, "PAR_MIN_MACS", 1)
    v = RNG.standard_normal(8).astype(np.float32)
    np.testing.assert_array_equal(G.matmul(a, v), a @ v)  # not two matrices
    with pytest.raises(ValueError):
        G.matmul(a, a)  # NumPy's own error for mismatched shapes


@pytest.fixture
def restore_threads():
    before = (C._THREADS, C._BATCH_PARALLEL)
    tp = pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401  (SciPy's own BLAS, which set_num_threads holds too, loaded first)

    blas = tp.threadpool_limits(limits=None, user_api="blas")  # (records the limits to restore)
    yield
    C._THREADS, C._BATCH_PARALLEL = before
    blas.restore_original_limits()
    P._POOL = None


def test_set_num_threads_switches_the_framework_threads(restore_threads):
    from threadpoolctl import threadpool_info

    fw.set_num_threads(2)
    assert fw.get_num_threads() == 2 and P.worthwhile() and C._BATCH_PARALLEL
    ours = [
        i
        for i in threadpool_info()
        if i["user_api"] == "blas" and ("/numpy" in i["filepath"] or "/scipy" in i["filepath"])
    ]
    assert ours and all(i["num_threads"] == 1 for i in ours)  # NumPy's and SciPy's BLAS stay out
    x = RNG.standard_normal((4, 16, 24, 24), dtype=np.float32)
    w = RNG.standard_normal((24, 16, 3, 3), dtype=np.float32)
    seen = []
    real = C.conv2d_forward
    C.conv2d_forward = lambda x, *a, **k: (seen.append(threading.get_ident()), real(x, *a, **k))[1]
    try:
        y2 = real(x, w, (1, 1), (1, 1), (1, 1), 1)
        fw.set_num_threads(1)
        assert fw.get_num_threads() == 1 and not P.worthwhile()
        y1 = real(x, w, (1, 1), (1, 1), (1, 1), 1)
    finally:
        C.conv2d_forward = real
    assert len(set(seen)) == 2 and len(seen) == 2  # two groups at 2 threads, none at 1
    np.testing.assert_allclose(y2, y1, rtol=1e-5, atol=1e-4)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="whole number >= 1"):
            fw.set_num_threads(bad)


def test_training_a_network_on_two_threads_follows_the_serial_trajectory(two_threads, monkeypatch):
    """Three SGD steps of a conv-BN-ReLU network (stride-1 Winograd, strided im2col, stem, pointwise) on
    the framework's two threads reach the parameters one thread reaches, up to the order of the sums."""
    import framework.nn as nn

    def run(parallel):
        monkeypatch.setattr(C, "_BATCH_PARALLEL", parallel)
        fw.manual_seed(5)
        net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 48, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(48, 16, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 5),
        )
        opt = fw.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        rng = np.random.default_rng(8)
        for _ in range(3):
            x = fw.tensor(rng.standard_normal((6, 3, 20, 20)).astype(np.float32))
            y = fw.tensor(rng.integers(0, 5, 6))
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        return [p.detach().numpy().copy() for p in net.parameters()]

    calls = []
    real = C._run_parts
    monkeypatch.setattr(C, "_run_parts", lambda fn, parts: (calls.append(len(parts)), real(fn, parts))[1])
    par = run(True)
    assert calls and set(calls) == {2}  # the convolutions and their gradients did split
    n_par = len(calls)
    ser = run(False)
    assert len(calls) == n_par  # and serially they did not
    for a, b in zip(par, ser):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_set_num_threads_reaches_numpys_blas_without_threadpoolctl(restore_threads, monkeypatch):
    import sys

    from threadpoolctl import threadpool_info

    def numpy_blas():
        return [
            i["num_threads"]
            for i in threadpool_info()
            if "numpy" in i["filepath"] and i["user_api"] == "blas"
        ]

    if not numpy_blas():
        pytest.skip("this NumPy does not bundle OpenBLAS in numpy.libs")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=2, user_api="blas")
    assert numpy_blas() == [2]
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # (import fails: the C API fallback runs)
    fw.set_num_threads(2)
    monkeypatch.delitem(sys.modules, "threadpoolctl")
    assert numpy_blas() == [1]


ROW_BAND_CASES = {  # one image: x shape, w shape, stride, padding, dilation, groups
    "winograd43": ((1, 32, 40, 44), (48, 32, 3, 3), 1, 1, 1, 1),
    "winograd-short": ((1, 32, 17, 20), (40, 32, 3, 3), 1, 1, 1, 1),
    "im2col-stride2-odd": ((1, 16, 41, 37), (24, 16, 3, 3), 2, 1, 1, 1),
    "stride3": ((1, 16, 23, 23), (16, 16, 3, 3), 3, 1, 1, 1),
    "5x5-pad2-stride2": ((1, 16, 33, 35), (20, 16, 5, 5), 2, 2, 1, 1),
    "dilated": ((1, 8, 30, 30), (8, 8, 3, 3), 1, 2, 2, 1),
    "depthwise": ((1, 24, 30, 30), (24, 1, 3, 3), 1, 1, 1, 24),
    "patchify-4x4-s4": ((1, 3, 64, 64), (16, 3, 4, 4), 4, 0, 1, 1),
    "pointwise": ((1, 64, 30, 40), (96, 64, 1, 1), 1, 0, 1, 1),
}


@pytest.mark.parametrize("name", list(ROW_BAND_CASES))
@pytest.mark.parametrize("cache", [False, True])
def test_one_image_in_row_bands_equals_the_whole(name, cache, two_threads, monkeypatch):
    """One image: bands of output rows on the two threads (each band reading the rows above and below it
    that its outputs need, with the layer's own padding) give the whole layer's output."""
    monkeypatch.setattr(C, "_ROWS_PAR_MIN_MACS", 1)
    monkeypatch.setattr(C, "_BAND_MIN_ROWS", 2)
    xs, ws, s, p, d, g = ROW_BAND_CASES[name]
    x = RNG.standard_normal(xs).astype(np.float32)
    w = (RNG.standard_normal(ws) * 0.2).astype(np.float32)
    b = RNG.standard_normal(ws[0]).astype(np.float32)
    geom = ((s, s), (p, p), (d, d), g)
    bands = []
    real = C._run_parts
    monkeypatch.setattr(C, "_run_parts", lambda fn, parts: (bands.append(list(parts)), real(fn, parts))[1])
    out = C.conv2d_forward(x, w, *geom, cache_weight=cache, bias=b, activation="relu")
    assert len(bands) == 1 and len(bands[0]) == 2  # split in two bands
    monkeypatch.setattr(C, "_BATCH_PARALLEL", False)
    whole = C.conv2d_forward(x, w, *geom, cache_weight=cache, bias=b, activation="relu")
    np.testing.assert_allclose(out, whole, rtol=1e-5, atol=2e-5 * np.abs(whole).max())
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    ref = torch.relu(
        torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), s, p, d, g)
    )
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-4, atol=1e-4 * np.abs(whole).max())


def test_row_bands_only_for_one_large_image_without_residual(two_threads, monkeypatch):
    monkeypatch.setattr(C, "_ROWS_PAR_MIN_MACS", 1000)
    assert C._row_bands(np, 1, 64, 999) is None  # small
    assert C._row_bands(np, 2, 64, 10**6) is None  # several images: groups of images instead
    assert C._row_bands(np, 1, 63, 10**6) is None  # fewer than two bands of _BAND_MIN_ROWS rows
    assert C._row_bands(np, 1, 64, 10**6) == [(0, 32), (32, 64)]
    monkeypatch.setattr(C, "_BATCH_PARALLEL", False)
    assert C._row_bands(np, 1, 64, 10**6) is None  # the framework's threads off
    monkeypatch.setattr(C, "_BATCH_PARALLEL", True)
    monkeypatch.setattr(C, "_ROWS_PAR_MIN_MACS", 1)
    calls = []
    monkeypatch.setattr(C, "_forward_row_bands", lambda *a, **k: calls.append(1))
    x = RNG.standard_normal((1, 8, 70, 20)).astype(np.float32)
    w = RNG.standard_normal((8, 8, 3, 3)).astype(np.float32)
    res = RNG.standard_normal((1, 8, 70, 20)).astype(np.float32)
    C.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1, residual=res)  # a residual: whole
    assert calls == []
    C.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
    C.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1, keep={})  # training: from more work
    assert calls == [1]
    monkeypatch.setattr(C, "_ROWS_TRAIN_MIN_MACS", 1)
    C.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1, keep={})  # (see the next test)
    assert calls == [1, 1]


def _train_dilated(xa, wa, s, p, d, g):
    x, w = fw.tensor(xa, requires_grad=True), fw.tensor(wa, requires_grad=True)
    y = F.conv2d(x, w, stride=s, padding=p, dilation=d, groups=g)
    (y * y).sum().backward()
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy()


@pytest.mark.parametrize("name", list(ROW_BAND_CASES))
def test_training_one_image_in_row_bands_matches_the_whole_and_torch(name, two_threads, monkeypatch):
    """Training on one image: the forward runs in bands of output rows, each band keeping its own work;
    the weight gradient sums the bands' (from that work) and the input gradient sums the bands' over the
    rows they share. Output and both gradients equal the whole layer's and PyTorch's."""
    monkeypatch.setattr(C, "_ROWS_TRAIN_MIN_MACS", 1)
    monkeypatch.setattr(C, "_BAND_MIN_ROWS", 2)
    xs, ws, s, p, d, g = ROW_BAND_CASES[name]
    xa = RNG.standard_normal(xs).astype(np.float32)
    wa = (RNG.standard_normal(ws) * 0.2).astype(np.float32)
    seen = {"weight": [], "input": []}
    real_bw, real_bi = C.conv2d_backward_weight, C.conv2d_backward_input

    def spy_bw(x, gy, *args, kept=None, **kwargs):
        if getattr(C._TLS, "batch_part", False):
            seen["weight"].append((x.shape[2], kept is not None))
        return real_bw(x, gy, *args, kept=kept, **kwargs)

    def spy_bi(gy, w, x_shape, *args, **kwargs):
        if getattr(C._TLS, "batch_part", False):
            seen["input"].append(x_shape[2])
        return real_bi(gy, w, x_shape, *args, **kwargs)

    spy_bw.__module__ = C.__name__  # (the Function hands the kept work only to the CPU kernel)
    monkeypatch.setattr(C, "conv2d_backward_weight", spy_bw)
    monkeypatch.setattr(C, "conv2d_backward_input", spy_bi)
    par = _train_dilated(xa, wa, s, p, d, g)
    # two bands each way, each reading fewer input rows than the image, the weight's from kept work
    assert len(seen["weight"]) == 2 and all(kept for _, kept in seen["weight"])
    assert len(seen["input"]) == 2 and all(rows < xs[2] for rows in seen["input"])
    assert all(rows < xs[2] for rows, _ in seen["weight"])
    monkeypatch.setattr(C, "_BATCH_PARALLEL", False)
    whole = _train_dilated(xa, wa, s, p, d, g)
    for a, b in zip(par, whole):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-5 * np.abs(b).max())
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the gradients")
    tx = torch.tensor(xa, requires_grad=True)
    tw = torch.tensor(wa, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=s, padding=p, dilation=d, groups=g)
    (ty * ty).sum().backward()
    for a, b in zip(par, (ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy())):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * np.abs(b).max())


def test_row_band_gradients_equal_the_whole_over_random_geometries(two_threads, monkeypatch):
    """Forty random one-image layers (kernel 1-5, stride 1-3, padding 0-2, dilation 1-2, odd heights,
    bands down to 2 rows): the banded input and weight gradients equal the whole layer's, for any output
    gradient (the band decomposition is exact, not only for the loss above)."""
    monkeypatch.setattr(C, "_ROWS_TRAIN_MIN_MACS", 1)
    monkeypatch.setattr(C, "_BAND_MIN_ROWS", 2)
    rng = np.random.default_rng(7)
    done = 0
    while done < 40:
        k, s, p, d = (
            int(rng.integers(1, 6)),
            int(rng.integers(1, 4)),
            int(rng.integers(0, 3)),
            int(rng.integers(1, 3)),
        )
        h, wd, c, n_out = (
            int(rng.integers(6, 30)),
            int(rng.integers(4, 12)),
            int(rng.integers(1, 5)),
            int(rng.integers(1, 5)),
        )
        if p >= k * d or h + 2 * p < d * (k - 1) + 1 or wd + 2 * p < d * (k - 1) + 1:
            continue
        geom = ((s, s), (p, p), (d, d), 1)
        x = rng.standard_normal((1, c, h, wd))
        w = rng.standard_normal((n_out, c, k, k))
        ho = C.conv_out_size(h, k, s, p, d)
        if ho < 4:
            continue
        gy = rng.standard_normal((1, n_out, ho, C.conv_out_size(wd, k, s, p, d)))
        banded = (
            C.conv2d_backward_input(gy, w, x.shape, *geom),
            C.conv2d_backward_weight(x, gy, w.shape, *geom),
        )
        monkeypatch.setattr(C, "_BATCH_PARALLEL", False)
        whole = (
            C.conv2d_backward_input(gy, w, x.shape, *geom),
            C.conv2d_backward_weight(x, gy, w.shape, *geom),
        )
        monkeypatch.setattr(C, "_BATCH_PARALLEL", True)
        for a, b in zip(banded, whole):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=str((k, s, p, d, h, wd)))
        done += 1
