"""Every kernel launch the Python loaders make matches the compiled kernel's signature.

The loaders run on the CPU against a stand-in for CuPy (NumPy arrays with a ``data.ptr``) whose
kernels only record their launches; the recorded launches are then checked against the PTX that
NVRTC produces for the same name expressions: number and width of the arguments, block size within
the kernel's ``.maxntid``, dynamic shared memory opted in when above 48 KiB, grid limits. A wrong
argument list would otherwise only show on a GPU, as a crash or as garbage.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from framework import backend
from framework.kernels.cuda import _loader
from framework.kernels.cuda import conv as cconv
from framework.kernels.cuda import norm as cnorm
from framework.kernels.cuda import pool as cpool

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper beside this file
from cuda_nvrtc_util import NVRTC, compile_ptx, entry_params  # noqa: E402

pytestmark = pytest.mark.skipif(NVRTC is None, reason="libnvrtc not found (pip install nvidia-cuda-nvrtc)")


class FakeArray(np.ndarray):
    """A NumPy array that answers ``a.data.ptr`` like a CuPy array."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _fa(a):
    return np.asarray(a).view(FakeArray)


def _fake_cupy():
    cp = types.SimpleNamespace()
    cp.ndarray = FakeArray
    cp.float32, cp.float16, cp.int16 = np.float32, np.float16, np.int16
    cp.empty = lambda shape, dtype=np.float32: _fa(np.empty(shape, dtype))
    cp.zeros = lambda shape, dtype=np.float32: _fa(np.zeros(shape, dtype))
    cp.full = lambda shape, v, dtype=np.float32: _fa(np.full(shape, v, dtype))
    cp.empty_like = lambda a: _fa(np.empty_like(np.asarray(a)))
    cp.ascontiguousarray = lambda a, dtype=None: _fa(np.ascontiguousarray(a, dtype))
    cp.sqrt = np.sqrt
    cp.maximum = np.maximum
    cp.exp = np.exp
    return cp


class Launches:
    def __init__(self):
        self.calls = []  # (file, name, max_shared, grid, block, args, smem)

    def get_function(self, filename, name, max_shared=0):
        def fn(grid, block, args, shared_mem=0):
            self.calls.append((filename, name, max_shared, grid, block, args, shared_mem))

        return fn


@pytest.fixture
def launches(monkeypatch):
    rec = Launches()
    fake = _fake_cupy()
    monkeypatch.setattr(backend, "cupy_module", lambda: fake)
    monkeypatch.setattr(_loader, "get_function", rec.get_function)
    monkeypatch.setattr(_loader, "device_key", lambda: (0, 90))
    monkeypatch.setattr(_loader, "sm_count", lambda: 132)
    monkeypatch.setattr(cconv, "_plans", {})  # plans hold the recording functions of one test
    return rec


def _width(arg) -> int:
    if isinstance(arg, np.ndarray):
        return 64  # a device pointer
    if isinstance(arg, np.generic):
        return arg.dtype.itemsize * 8
    raise AssertionError(f"untyped kernel argument {arg!r} ({type(arg).__name__}): pass a NumPy scalar")


def _verify(calls):
    by_file = {}
    for f, name, *_ in calls:
        by_file.setdefault(f, set()).add(name)
    sigs = {}
    for f, names in by_file.items():
        lowered, ptx = compile_ptx(f, sorted(names), "compute_90")
        entries = entry_params(ptx)
        for n in names:
            sigs[n] = entries[lowered[n]]
    for _f, name, max_shared, grid, block, args, smem in calls:
        sig = sigs[name]
        assert [_width(a) for a in args] == sig["params"], f"{name}: arguments do not match the kernel"
        threads = int(np.prod(block))
        assert threads <= (sig["maxntid"] or 1024), f"{name}: {threads} threads > launch bounds"
        assert len(grid) <= 3 and all(1 <= g for g in grid) and all(g <= 65535 for g in grid[1:])
        if smem > 48 * 1024:
            assert max_shared >= smem, f"{name}: {smem} B of dynamic smem without the opt-in"
        assert smem <= 227 * 1024


def _arr(shape, dtype, seed=0):
    return _fa(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("tf32", [True, False])
def test_conv_launches_match_kernel_signatures(launches, dtype, tf32):
    from framework import backends

    old = backends.cudnn.allow_tf32
    backends.cudnn.allow_tf32 = tf32
    try:
        cases = [((2, 16, 9, 9), (24, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1),   # vector loaders
                 ((1, 3, 15, 15), (8, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1),    # scalar loaders
                 ((8, 64, 14, 14), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1),  # split-K filter
                 ((2, 8, 9, 9), (8, 1, 3, 3), (2, 2), (1, 1), (1, 1), 8)]      # depthwise
        for xs, ws, st, pad, dil, g in cases:
            x, w = _arr(xs, dtype), _arr(ws, dtype, 1)
            y = cconv.conv2d_forward(x, w, st, pad, dil, g, bias=_arr(ws[0], dtype), activation="relu")
            cconv.conv2d_forward(x, w, st, pad, dil, g, residual=_fa(np.zeros(y.shape, dtype)))
            cconv.conv2d_backward_input(_fa(np.ones(y.shape, dtype)), w, xs, st, pad, dil, g)
            cconv.conv2d_backward_weight(x, _fa(np.ones(y.shape, dtype)), ws, st, pad, dil, g)
    finally:
        backends.cudnn.allow_tf32 = old
    names = {c[1] for c in launches.calls}
    assert any("fw_splitk_reduce" in n for n in names), "the split-K case did not split"
    assert any("fw_dw_" in n for n in names) and any("fw_nchw_to_nhwc" in n for n in names)
    _verify(launches.calls)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_pool_and_norm_launches_match_kernel_signatures(launches, dtype):
    x = _arr((2, 3, 9, 8), dtype)
    geom = ((3, 3), (2, 2), (1, 1), (1, 1), True)
    y, argpos = cpool.max_pool2d_forward(x, *geom)
    assert argpos.dtype == np.int16
    cpool.max_pool2d_backward(_fa(np.ones(y.shape, dtype)), argpos, x.shape, *geom)
    ga = ((3, 3), (2, 2), (1, 1), False, True, None)
    y = cpool.avg_pool2d_forward(x, *ga)
    cpool.avg_pool2d_backward(_fa(np.ones(y.shape, dtype)), x.shape, *ga)
    c = 3
    rm, rv = _fa(np.zeros(c, np.float32)), _fa(np.ones(c, np.float32))
    w, b = _arr(c, np.float32), _arr(c, np.float32)
    for training in (True, False):
        # The statistics come back from the (recording) kernels uninitialised: only launches count.
        with np.errstate(all="ignore"):
            y, mean, invstd = cnorm.batch_norm_forward(x, w, b, rm, rv, training, 0.1, 1e-5, "relu")
        cnorm.batch_norm_backward(_fa(np.ones(x.shape, dtype)), x, w, mean, invstd, training)
    _verify(launches.calls)


def test_tensor_core_build_failure_falls_back_to_ffma(launches, monkeypatch):
    real = launches.get_function

    def failing(filename, name, max_shared=0):
        if name.startswith("fw_conv_mma"):
            raise RuntimeError("simulated NVRTC failure")
        return real(filename, name, max_shared)

    monkeypatch.setattr(_loader, "get_function", failing)
    monkeypatch.setattr(cconv, "_broken", set())
    x, w = _arr((2, 16, 9, 9), np.float16), _arr((24, 16, 3, 3), np.float16, 1)
    with pytest.warns(RuntimeWarning, match="f16 tensor-core kernels failed"):
        cconv.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
    cconv.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)  # no second warning, straight to FFMA
    assert [c[1].split("<")[0] for c in launches.calls].count("fw_conv_ffma") == 2
    _verify(launches.calls)
