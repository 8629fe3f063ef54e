"""``fw.cuda``: device queries, synchronisation, memory statistics and seeding (``torch.cuda``).

Everything here works without CuPy: queries answer "no device" (``is_available() -> False``,
``device_count() -> 0``) and calls that need a device raise a RuntimeError saying why.

Memory statistics are those of CuPy's default memory pool (the allocator every framework tensor
uses): ``memory_allocated`` is the bytes held by live arrays, ``memory_reserved`` the bytes the pool
keeps from the driver. ``max_memory_allocated`` needs a peak that CuPy does not record, so the first
call into this module's statistics installs a thin allocator that reads the pool's usage after
every allocation (usage only grows at allocation time, so the peak is exact).
"""

from __future__ import annotations

import contextlib
import functools

from . import amp as _amp
from . import backend
from .dtypes import float16 as _float16

__all__ = ["is_available", "device_count", "current_device", "set_device", "device", "synchronize",
           "get_device_name", "get_device_capability", "get_device_properties", "memory_allocated",
           "max_memory_allocated", "memory_reserved", "max_memory_reserved", "mem_get_info",
           "reset_peak_memory_stats", "empty_cache", "manual_seed", "manual_seed_all", "Event",
           "Stream", "current_stream", "amp", "CUDAGraph", "graph", "graph_pool_handle",
           "is_current_stream_capturing"]


def is_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    return backend.cuda_available()


def device_count() -> int:
    if not is_available():
        return 0
    return int(backend._cupy.cuda.runtime.getDeviceCount())


def _cp():
    return backend.cupy_module()


def _index(device=None) -> int:
    if device is None:
        return current_device()
    if isinstance(device, int):
        return device
    d = backend.device(device)
    if d.type != "cuda":
        raise ValueError(f"expected a cuda device, got {d}")
    return d.index


def current_device() -> int:
    return int(_cp().cuda.runtime.getDevice())


def set_device(device) -> None:
    _cp().cuda.Device(_index(device)).use()


class device:
    """Context manager that makes ``device`` current, as ``torch.cuda.device``."""

    def __init__(self, device):
        self.idx = _index(device)
        self.prev = None

    def __enter__(self):
        self.prev = current_device()
        set_device(self.idx)
        return self

    def __exit__(self, *exc):
        set_device(self.prev)


def synchronize(device=None) -> None:
    """Wait for every kernel queued on ``device`` (default: the current one)."""
    cp = _cp()
    with cp.cuda.Device(_index(device)):
        cp.cuda.Device().synchronize()


def get_device_properties(device=None) -> dict:
    """The CUDA runtime's properties of the device (name, totalGlobalMem, major, minor, ...)."""
    props = _cp().cuda.runtime.getDeviceProperties(_index(device))
    # Strings come back as fixed-size C char arrays: keep what precedes the first NUL (the bytes
    # after it are whatever the buffer held).
    return {k: (v.split(b"\0", 1)[0].decode(errors="replace") if isinstance(v, bytes) else v)
            for k, v in props.items()}


def get_device_name(device=None) -> str:
    return get_device_properties(device)["name"]


def get_device_capability(device=None) -> tuple[int, int]:
    p = get_device_properties(device)
    return int(p["major"]), int(p["minor"])


# ---------------------------------------------------------------------------------------- memory

class _PeakTracker:
    """Wraps the default pool's ``malloc`` to record the peak of ``used_bytes`` per device."""

    def __init__(self):
        self.installed = False
        self.peak_used: dict[int, int] = {}
        self.peak_total: dict[int, int] = {}

    def install(self):
        if self.installed:
            return
        cp = _cp()
        pool = cp.get_default_memory_pool()

        def malloc(size):
            mem = pool.malloc(size)
            dev = mem.device_id
            used, total = pool.used_bytes(), pool.total_bytes()
            if used > self.peak_used.get(dev, 0):
                self.peak_used[dev] = used
            if total > self.peak_total.get(dev, 0):
                self.peak_total[dev] = total
            return mem

        cp.cuda.set_allocator(malloc)
        self.installed = True


_tracker = _PeakTracker()


def _pool():
    cp = _cp()
    _tracker.install()
    return cp.get_default_memory_pool()


def memory_allocated(device=None) -> int:
    """Bytes held by live CuPy arrays on ``device`` (CuPy's default pool)."""
    pool = _pool()
    with _cp().cuda.Device(_index(device)):
        return int(pool.used_bytes())


def memory_reserved(device=None) -> int:
    """Bytes the pool holds from the driver on ``device`` (live + cached)."""
    pool = _pool()
    with _cp().cuda.Device(_index(device)):
        return int(pool.total_bytes())


def max_memory_allocated(device=None) -> int:
    """Peak of ``memory_allocated`` since the first statistics call or the last reset."""
    idx = _index(device)
    return max(_tracker.peak_used.get(idx, 0), memory_allocated(idx))


def max_memory_reserved(device=None) -> int:
    idx = _index(device)
    return max(_tracker.peak_total.get(idx, 0), memory_reserved(idx))


def mem_get_info(device=None) -> tuple[int, int]:
    """(free, total) bytes of device memory, from the driver."""
    cp = _cp()
    with cp.cuda.Device(_index(device)):
        free, total = cp.cuda.runtime.memGetInfo()
    return int(free), int(total)


def reset_peak_memory_stats(device=None) -> None:
    idx = _index(device)
    _tracker.peak_used[idx] = memory_allocated(idx)
    _tracker.peak_total[idx] = memory_reserved(idx)


def empty_cache() -> None:
    """Return the pool's cached, unused blocks to the driver (a no-op without CUDA)."""
    if not is_available():
        return
    cp = backend._cupy
    cp.get_default_memory_pool().free_all_blocks()
    cp.get_default_pinned_memory_pool().free_all_blocks()


# --------------------------------------------------------------------------------------- seeding

def manual_seed(seed: int) -> None:
    """Seed CuPy's generator on the current device; silently a no-op without CUDA, like PyTorch."""
    if is_available():
        backend._cupy.random.seed(int(seed))


def manual_seed_all(seed: int) -> None:
    if not is_available():
        return
    cp = backend._cupy
    for i in range(device_count()):
        with cp.cuda.Device(i):
            cp.random.seed(int(seed))


# ----------------------------------------------------------------------------- events, streams

def Event(enable_timing: bool = False):  # noqa: N802 - PyTorch's name
    """A CUDA event (``record()``, ``synchronize()``; ``fw.cuda.elapsed_ms(a, b)`` gives the time)."""
    return _cp().cuda.Event(disable_timing=not enable_timing)


def elapsed_ms(start, end) -> float:
    return float(_cp().cuda.get_elapsed_time(start, end))


def Stream(device=None, priority: int = 0):  # noqa: N802 - PyTorch's name
    cp = _cp()
    with cp.cuda.Device(_index(device)):
        return cp.cuda.Stream(non_blocking=True, priority=priority)


def current_stream(device=None):
    return _cp().cuda.get_current_stream()


def is_current_stream_capturing() -> bool:
    """True while the current stream is being captured into a CUDA graph (False without CUDA)."""
    if not is_available():
        return False
    return bool(backend._cupy.cuda.get_current_stream().is_capturing())


# ------------------------------------------------------------------------------------ CUDA graphs

def graph_pool_handle():
    """A fresh memory pool that several :class:`CUDAGraph` captures can share (``capture_begin(pool=)``)."""
    return _cp().cuda.MemoryPool()


class CUDAGraph:
    """A captured sequence of GPU work that replays with one launch, as ``torch.cuda.CUDAGraph``.

    Between ``capture_begin()`` and ``capture_end()`` (or inside ``with fw.cuda.graph(g):``) kernels are
    recorded, not run, on a private side stream. ``replay()`` then runs all of them on the current
    stream for the cost of one launch -- what a small network at batch 1 needs, where Python and
    launch overhead, not the GPU, set the time.

    The captured work reads and writes fixed addresses: feed new data by copying into the tensors the
    capture read (``static_input.copy_(x)``), and read the tensors it produced, which the next replay
    overwrites. Memory allocated during capture comes from a pool private to the graph (or the one
    passed as ``pool``), so nothing outside the graph is ever handed those blocks.

    What cannot be captured: anything that waits for the GPU or copies between host and device
    (``.item()``, ``.cpu()``, ``.numpy()``, a host array to the device); matrix products that CuPy
    hands to cuBLAS (``matmul``, ``linear``, ``bmm``, ``einsum``: CuPy refuses cuBLAS calls while a
    stream is captured; the convolutions are this framework's own kernels and capture); and code
    that has not yet run eagerly once with the same shapes (the first run compiles kernels and the
    autotuner times them; during a capture the autotuner takes its cached or default choice without
    timing). Such work makes the capture raise a RuntimeError, and the graph stays empty.
    """

    def __init__(self):
        self._graph = None
        self._pool = None
        self._stream = None
        self._ctx = None

    def capture_begin(self, pool=None) -> None:
        if self._ctx is not None:
            raise RuntimeError("CUDAGraph.capture_begin: a capture is already under way")
        if self._graph is not None:
            raise RuntimeError("CUDAGraph.capture_begin: this graph already holds a capture (reset() first)")
        cp = _cp()
        self._pool = pool if pool is not None else cp.cuda.MemoryPool()
        self._stream = cp.cuda.Stream(non_blocking=True)
        ctx = contextlib.ExitStack()
        ctx.enter_context(self._stream)
        ctx.enter_context(cp.cuda.using_allocator(self._pool.malloc))
        try:
            self._stream.begin_capture()
        except BaseException:
            ctx.close()
            raise
        self._ctx = ctx

    def capture_end(self) -> None:
        if self._ctx is None:
            raise RuntimeError("CUDAGraph.capture_end: no capture under way (capture_begin first)")
        ctx, self._ctx = self._ctx, None
        try:
            graph = self._stream.end_capture()
        except Exception as e:
            raise RuntimeError(f"CUDAGraph: the capture failed ({e}); work that waits for the GPU or "
                               "copies between host and device cannot be captured") from e
        finally:
            ctx.close()
        graph.upload(self._stream)
        self._stream.synchronize()
        self._graph = graph

    def replay(self) -> None:
        """Run the captured work on the current stream."""
        if self._graph is None:
            raise RuntimeError("CUDAGraph.replay: nothing captured (capture_begin/capture_end first)")
        self._graph.launch(stream=_cp().cuda.get_current_stream())

    def reset(self) -> None:
        """Drop the capture (and its private memory, once no tensor from the capture is left)."""
        if self._ctx is not None:
            raise RuntimeError("CUDAGraph.reset: a capture is under way")
        self._graph = None
        self._pool = None

    def pool(self):
        """The memory pool the capture allocated from (pass it to another capture to share it)."""
        return self._pool


@contextlib.contextmanager
def graph(cuda_graph: CUDAGraph, pool=None):
    """``with fw.cuda.graph(g): ...`` captures the block into ``g``, as ``torch.cuda.graph``. When the
    block raises, the capture is ended and dropped, and the block's error is the one that propagates."""
    cuda_graph.capture_begin(pool=pool)
    try:
        yield cuda_graph
    except BaseException:
        with contextlib.suppress(Exception):
            cuda_graph.capture_end()
        cuda_graph._graph = None
        raise
    cuda_graph.capture_end()


class amp:  # noqa: N801 - ``torch.cuda.amp``'s spelling
    """``fw.cuda.amp.autocast(...)`` / ``fw.cuda.amp.GradScaler(...)``: the CUDA shorthands PyTorch kept."""

    @staticmethod
    def autocast(enabled: bool = True, dtype=_float16, cache_enabled: bool = True):
        return _amp.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    GradScaler = functools.partial(_amp.GradScaler, "cuda")
