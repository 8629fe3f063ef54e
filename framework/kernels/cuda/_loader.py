"""Compile-once loading of the ``.cu`` files with ``cupy.RawModule``, launch helpers, and the
per-shape autotune cache.

Kernels are C++ templates; each configuration is compiled on first use through a CuPy *name
expression* (``"fw_conv_mma<float,0,128,64,16,2,2,4,true,true>"``) and kept for the process
(CuPy also caches the binary on disk, so a second process does not recompile).

Importing this module does not need CuPy; every function that touches the GPU asks
``backend.cupy_module()``, which raises a clear error when CUDA is unavailable.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ... import backend

KERNEL_DIR = Path(__file__).resolve().parent
CU_FILES = ("conv_igemm.cu", "depthwise.cu", "pool.cu", "norm.cu")

# No -std flag: the sources need only C++11 (device lambdas, static_assert) and NVRTC's default
# dialect covers that, so nothing can clash with options CuPy adds itself. CuPy's default
# -ftz=true is kept: the fp32 tests allow for flushed denormals.
_OPTIONS: tuple = ()

_lock = threading.Lock()
_functions: dict[tuple, object] = {}


def source(filename: str) -> str:
    """The file's text with ``#include "common.cuh"`` expanded in place.

    Expanding (rather than passing -I) makes the header part of the text CuPy hashes for its
    on-disk kernel cache, so editing the header can never leave a stale binary behind.
    """
    text = (KERNEL_DIR / filename).read_text()
    return text.replace('#include "common.cuh"', (KERNEL_DIR / "common.cuh").read_text())


def cxx_type(dtype) -> str:
    """The C++ element type for a NumPy dtype (half is stored as its 16 raw bits)."""
    dt = np.dtype(dtype)
    if dt == np.float32:
        return "float"
    if dt == np.float16:
        return "fw_half"
    raise TypeError(f"our CUDA kernels take float32 or float16 arrays, got {dt}")


_cc: dict[int, int] = {}


def device_id() -> int:
    """Index of the current CUDA device (the runtime call, cheaper than building a Device)."""
    return backend.cupy_module().cuda.runtime.getDevice()


def device_key():
    """(device index, compute capability as an int like 90) of the current CUDA device."""
    dev = device_id()
    cc = _cc.get(dev)
    if cc is None:
        cc = _cc[dev] = int(backend.cupy_module().cuda.Device(dev).compute_capability)
    return dev, cc


def get_function(filename: str, name_expression: str, max_shared: int = 0):
    """The compiled kernel ``name_expression`` from ``filename`` on the current device (cached)."""
    key = (filename, name_expression, device_id())
    fn = _functions.get(key)
    if fn is None:
        cp = backend.cupy_module()
        with _lock:
            fn = _functions.get(key)
            if fn is None:
                mod = cp.RawModule(code=source(filename), options=_OPTIONS,
                                   name_expressions=(name_expression,))
                fn = mod.get_function(name_expression)
                if max_shared > 48 * 1024:  # opt in to more than the default 48 KiB
                    fn.max_dynamic_shared_size_bytes = int(max_shared)
                _functions[key] = fn
    return fn


def launch(fn, grid, block, args, shared_mem: int = 0) -> None:
    fn(tuple(int(g) for g in grid), tuple(int(b) for b in block), tuple(args), shared_mem=int(shared_mem))


NULL = np.uint64(0)  # a null pointer argument (bias=None, residual=None, ...)


def ptr_or_null(a):
    return NULL if a is None else a


def i32(*values):
    return tuple(np.int32(v) for v in values)


_sms: dict[int, int] = {}


def sm_count() -> int:
    """Number of SMs of the current device (cached: the runtime query is not free)."""
    dev = device_id()
    n = _sms.get(dev)
    if n is None:
        cp = backend.cupy_module()
        n = _sms[dev] = int(cp.cuda.runtime.getDeviceProperties(dev)["multiProcessorCount"])
    return n


def elementwise_grid(total: int, block: int = 256) -> tuple[int, int]:
    """(grid, block) for grid-stride loops: enough blocks to fill the device a few times over."""
    blocks = max(1, min((total + block - 1) // block, sm_count() * 32))
    return blocks, block


# ----------------------------------------------------------------------------------- autotuning

class Autotuner:
    """Chooses a kernel configuration per problem key, like ``cudnn.benchmark``.

    ``choose(key, candidates, run)``: when ``fw.backends.cudnn.benchmark`` is on, each candidate is
    run (``run(candidate)``) ``warmup + reps`` times on the caller's real arrays, timed with CUDA
    events, and the fastest median wins; the choice is cached per key for the process. When the
    flag is off the first candidate (the heuristic's pick) is used without timing. Candidates that
    fail to compile or launch are skipped (and reported if all fail).
    """

    def __init__(self, warmup: int = 1, reps: int = 3):
        self.cache: dict = {}
        self.warmup, self.reps = warmup, reps

    def choose(self, key, candidates, run):
        from ... import backends

        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if not backends.cudnn.benchmark or len(candidates) == 1:
            return candidates[0]
        cp = backend.cupy_module()
        if cp.cuda.get_current_stream().is_capturing():  # timing would wait for the GPU: not capturable
            return candidates[0]
        best, best_t, errors = None, float("inf"), []
        for cand in candidates:
            try:
                for _ in range(self.warmup):
                    run(cand)
                times = []
                for _ in range(self.reps):
                    a, b = cp.cuda.Event(), cp.cuda.Event()
                    a.record()
                    run(cand)
                    b.record()
                    b.synchronize()
                    times.append(cp.cuda.get_elapsed_time(a, b))
                t = sorted(times)[len(times) // 2]
            except Exception as e:  # a configuration this device cannot run: try the next one
                errors.append(f"{cand}: {e}")
                continue
            if t < best_t:
                best, best_t = cand, t
        if best is None:
            raise RuntimeError("every kernel configuration failed:\n" + "\n".join(errors))
        self.cache[key] = best
        return best

    def clear(self) -> None:
        self.cache.clear()


tuner = Autotuner()


def nvcc_command(cu_file: str, arch: str, out: str) -> list[str]:
    """The nvcc command line the tests use to compile-check a .cu file for ``arch`` (e.g. sm_90)."""
    return ["nvcc", "-std=c++17", f"-arch={arch}", "--cubin", "-DFW_INSTANTIATE_FOR_NVCC_CHECK",
            f"-I{KERNEL_DIR}", str(KERNEL_DIR / cu_file), "-o", out]


def cache_info() -> dict:
    """What has been compiled and tuned so far (for debugging and benchmarks)."""
    return {"compiled": sorted(f"{f}:{n}@{d}" for f, n, d in _functions),
            "tuned": {repr(k): repr(v) for k, v in tuner.cache.items()},
            "cupy_cache_dir": os.environ.get("CUPY_CACHE_DIR", "~/.cupy/kernel_cache")}
