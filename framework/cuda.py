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

import functools

from . import amp as _amp
from . import backend
from .dtypes import float16 as _float16

__all__ = ["is_available", "device_count", "current_device", "set_device", "device", "synchronize",
           "get_device_name", "get_device_capability", "get_device_properties", "memory_allocated",
           "max_memory_allocated", "memory_reserved", "max_memory_reserved", "mem_get_info",
           "reset_peak_memory_stats", "empty_cache", "manual_seed", "manual_seed_all", "Event",
           "Stream", "current_stream", "amp"]


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


class amp:  # noqa: N801 - ``torch.cuda.amp``'s spelling
    """``fw.cuda.amp.autocast(...)`` / ``fw.cuda.amp.GradScaler(...)``: the CUDA shorthands PyTorch kept."""

    @staticmethod
    def autocast(enabled: bool = True, dtype=_float16, cache_enabled: bool = True):
        return _amp.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    GradScaler = functools.partial(_amp.GradScaler, "cuda")
