"""Inter-op parallelism on the CPU: independent calls on the framework's threads.

    from framework.utils.parallel import parallel_map, num_threads
    outs = parallel_map(lambda x: net(x), [x0, x1])   # the two calls run at once on 2 cores

``parallel_map(fn, items)`` runs ``fn`` on each item, up to ``num_threads()`` at a time (the caller's
thread takes the first item), and returns the results in order; the first exception raised by a
call is raised here once every call has finished. Inside the calls the CPU convolutions do not fan
out further (no batch-parallel groups, no copy thread), so the threads are not oversubscribed.

It pays where NumPy does the work (its copies, ufuncs and BLAS release the GIL) and BLAS keeps one
thread of its own (``OPENBLAS_NUM_THREADS=1``): measured on 2 cores, the detector's flip-test pair at
640x480 took 21 ms as two parallel batch-1 forwards, 23 ms as one batch of two split layer by layer,
33 ms on one thread. Grad mode is per thread, as in PyTorch: a call that must not record a graph
enters ``framework.no_grad()`` itself. This is the counterpart of ``torch.jit.fork`` / ``wait``
without a compiler.

The framework's own large passes use the same threads: batch norm in training and ReLU split a batch of
at least ``PAR_MIN_VALUES`` values along its first axis (``row_parts``), as the convolutions split
their images. One parallel call runs at a time: a call made while another runs (from inside one of its
calls, or from a second thread) runs its items one after another on its caller's thread.

``num_threads()`` is FRAMEWORK_CONV_THREADS (else the BLAS thread setting, else the CPU count), the
same setting as the convolutions' own threads; ``worthwhile()`` says whether this process is set up for
parallel calls to pay.
"""

from __future__ import annotations

import os
import threading

__all__ = ["parallel_map", "num_threads", "worthwhile", "set_num_threads", "get_num_threads", "row_parts",
           "over_row_parts"]

# Below this many values a pass over an array (batch norm's, a ReLU's) stays on one thread: a hand-over
# to another thread costs 50-80 us on this project's 2-core VM. Measured there on two threads, split
# against whole (median ms): batch norm's forward on 32x16x64x64 (2.1M values) 2.8 against 4.4, ReLU
# forward + backward 2.1 against 2.6; on 32x32x32x32 (1.05M) no gain (1.10 against 1.06, 1.09 / 1.07).
PAR_MIN_VALUES = 1_500_000

_POOL = None
_POOL_PID = None
_POOL_LOCK = threading.Lock()


def num_threads() -> int:
    """The CPU threads the framework computes on (as ``torch.get_num_threads``; also ``get_num_threads``)."""
    from ..kernels.cpu import conv

    return conv._THREADS


get_num_threads = num_threads


def set_num_threads(n: int) -> None:
    """Compute on ``n`` CPU threads (as ``torch.set_num_threads``), from now on in this process.

    n >= 2: the framework runs its large convolutions (forward, and in training both gradients) over
    groups of images on n threads of its own, and NumPy's BLAS keeps one thread: its own threads would
    spin on the cores the groups need. Measured on 2 cores, a training step of the detector (batch 16 at
    256x256) took 285 ms so against 345 ms with two BLAS threads. n == 1: one thread throughout.
    Environment variables set before NumPy loads (FRAMEWORK_CONV_THREADS with OPENBLAS_NUM_THREADS=1)
    give the same configuration from the start.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a whole number >= 1, got {n!r}")
    global _POOL
    from ..kernels.cpu import conv

    _set_blas_threads(1)
    with _POOL_LOCK:
        conv._THREADS = n
        conv._BATCH_PARALLEL = n >= 2
        if _POOL is not None:  # a pool of the old size: the next parallel call makes one of the new size
            _POOL.shutdown(wait=False)
            _POOL = None


def _set_blas_threads(n: int) -> None:
    """Hold the BLAS libraries of NumPy and SciPy to ``n`` threads (not those of other libraries loaded in
    the process, such as PyTorch's when it runs beside the framework as a reference): through
    threadpoolctl where it is installed, else through the thread setting of the OpenBLAS NumPy wheels
    bundle."""
    import numpy as np

    root = os.path.dirname(os.path.dirname(os.path.realpath(np.__file__)))  # site-packages
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return _set_bundled_openblas_threads(root, n)
    ours = tuple(os.path.join(root, d) for d in ("numpy", "scipy"))  # (numpy.libs, scipy.libs too)
    libs = [lc for lc in ThreadpoolController().lib_controllers if lc.user_api == "blas"]
    mine = [lc for lc in libs if os.path.realpath(lc.filepath).startswith(ours)
            or "scipy_openblas" in os.path.basename(lc.filepath)]
    for lc in mine or libs:
        lc.set_num_threads(n)


def _set_bundled_openblas_threads(root: str, n: int) -> None:
    """Without threadpoolctl: the OpenBLAS bundled in NumPy's wheel (numpy.libs), set through its C API."""
    import ctypes
    import glob

    for path in sorted(glob.glob(os.path.join(root, "numpy.libs", "*openblas*.so*"))):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                return
    raise RuntimeError("set_num_threads: cannot reach NumPy's BLAS to hold it to one thread; install "
                       "threadpoolctl (pip install threadpoolctl), or set OPENBLAS_NUM_THREADS=1 and "
                       "FRAMEWORK_CONV_THREADS before NumPy loads")


def row_parts(rows: int, values: int) -> list[tuple[int, int]] | None:
    """How to split a pass over an array of ``values`` numbers along its leading axis of ``rows``
    across the framework's threads: one ``(start, stop)`` range per thread, or None to run it whole
    (one thread, too little work, fewer than two rows, or already inside a parallel call)."""
    from ..kernels.cpu import conv

    threads = conv._fan_out_threads()
    if threads < 2 or rows < 2 or values < PAR_MIN_VALUES:
        return None
    parts = min(threads, rows)
    return [(i * rows // parts, (i + 1) * rows // parts) for i in range(parts)]


def over_row_parts(fn, rows: int, values: int) -> list:
    """[fn(start, stop)] over the ranges :func:`row_parts` gives, in parallel; [fn(0, rows)] where it gives
    none. A pass split so must be independent per row (per-range partial results are returned in order
    for the caller to combine)."""
    parts = row_parts(rows, values)
    if parts is None:
        return [fn(0, rows)]
    return parallel_map(lambda r: fn(*r), parts)


def worthwhile() -> bool:
    """Whether parallel calls pay in this process: two or more framework threads and BLAS held to one
    (FRAMEWORK_CONV_THREADS >= 2 with OPENBLAS_NUM_THREADS or OMP_NUM_THREADS = 1, set before NumPy
    loads). With BLAS's own threads on the same cores they contend: the flip-test pair took 32 ms in
    parallel against 29 ms as one batch, on 2 cores with two BLAS threads."""
    from ..kernels.cpu import conv

    return conv._BATCH_PARALLEL


class _Workers:
    """The framework's worker threads: each waits on a lock of its own and is handed its calls
    directly, so a hand-over is two lock releases (a ThreadPoolExecutor's futures, queue and
    condition variables measured 80 us a call on this project's 2-core VM against 47 us here; the rest
    is the OS waking a thread). One parallel call at a time: a second caller, from another thread
    or from inside a call, runs its items itself (see :func:`parallel_map`)."""

    def __init__(self, n: int):
        self.busy = threading.Lock()
        self.threads = []
        for i in range(n):
            go, done = threading.Lock(), threading.Lock()
            go.acquire()
            done.acquire()
            slot = {"go": go, "done": done, "jobs": None}
            t = threading.Thread(target=self._loop, args=(slot,), name=f"fw-parallel_{i}", daemon=True)
            t.start()
            slot["thread"] = t
            self.threads.append(slot)

    @staticmethod
    def _loop(slot):
        while True:
            slot["go"].acquire()
            if slot["jobs"] is None:  # shut down
                return
            fn, jobs, results, errors = slot["jobs"]
            for i, item in jobs:
                try:
                    results[i] = _serial_kernels(fn, item)
                except BaseException as e:  # noqa: BLE001 - re-raised by the caller
                    errors.append((i, e))
            slot["jobs"] = None
            slot["done"].release()

    def shutdown(self, wait: bool = False) -> None:
        """End the threads (after a parallel call in progress); ``wait``: until they have exited."""
        with self.busy:
            for slot in self.threads:
                slot["jobs"] = None
                slot["go"].release()
        if wait:
            for slot in self.threads:
                if slot["thread"] is not threading.current_thread():
                    slot["thread"].join()


def _pool() -> _Workers:
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():  # (re)created after a fork: threads do not survive it
            _POOL = _Workers(max(1, num_threads() - 1))
            _POOL_PID = os.getpid()
        return _POOL


def _serial_kernels(fn, item):
    """fn(item) with the CPU convolutions' own fan-out off in this thread."""
    from ..kernels.cpu import conv

    before = getattr(conv._TLS, "batch_part", False)
    conv._TLS.batch_part = True
    try:
        return fn(item)
    finally:
        conv._TLS.batch_part = before


def parallel_map(fn, items, threads: int | None = None) -> list:
    """[fn(item) for item in items], up to ``threads`` (default :func:`num_threads`) calls at a time."""
    items = list(items)
    threads = num_threads() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"parallel_map: threads must be >= 1, got {threads}")
    if threads == 1 or len(items) <= 1:
        return [fn(item) for item in items]
    pool = _pool()
    if not pool.busy.acquire(blocking=False):  # another parallel call is running: this one runs serially
        return [_serial_kernels(fn, item) for item in items]
    results: list = [None] * len(items)
    errors: list = []
    try:
        k = min(threads, len(pool.threads) + 1)
        # the caller takes items 0, k, 2k, ...; worker j the items j + 1, j + 1 + k, ...
        started = []
        for j, slot in enumerate(pool.threads[: k - 1]):
            jobs = [(i, items[i]) for i in range(j + 1, len(items), k)]
            if jobs:
                slot["jobs"] = (fn, jobs, results, errors)
                slot["go"].release()
                started.append(slot)
        try:
            for i in range(0, len(items), k):
                try:
                    results[i] = _serial_kernels(fn, items[i])
                except BaseException as e:  # noqa: BLE001 - re-raised below, after the other calls finish
                    errors.append((i, e))
        finally:
            for slot in started:  # (also on an interrupt: a worker is never handed new calls mid-call)
                slot["done"].acquire()
    finally:
        pool.busy.release()
    if errors:
        raise min(errors, key=lambda t: t[0])[1]
    return results
