"""Matrix products on the framework's CPU threads.

With the framework computing on n >= 2 threads of its own (``framework.set_num_threads``), NumPy's BLAS
keeps one thread, so a large product that is not already one of several parallel calls would run on
one core. :func:`matmul` splits such a product into row blocks of its output, one per thread: each
block is an ordinary single-threaded BLAS product written into its rows of ``out``, so the result is the
product's, block for block. Stacks of matrices (ndim 3, same stack size) are split along the stack.
Anything else, small products, and calls inside a parallel call go to ``np.matmul`` as they are.
"""

from __future__ import annotations

import numpy as np

# the rule for fanning out (conv imports this module too: its functions are looked up at call time)
from . import conv as _conv

__all__ = ["matmul", "xp_matmul"]

# Below this many multiply-adds a product is not split: handing half to another thread costs more than it
# saves. Measured on 2 cores, whole on one thread against split: 64x256 @ 256x256 (4.2M) 0.09 ms against
# 0.15, 256x256 @ 256x256 (16.8M) 0.34 against 0.31, 256x512 @ 512x256 (34M) 0.68 against 0.50,
# 512x1024 @ 1024x1024 11.3 against 5.8 (two BLAS threads: 5.9).
PAR_MIN_MACS = 24_000_000


def xp_matmul(xp, a, b, out=None):
    """a @ b for either array module: NumPy's through :func:`matmul`, CuPy's as it is."""
    return matmul(a, b, out) if xp is np else xp.matmul(a, b, out=out)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)``, its row blocks (or stacked matrices) on the framework's threads."""
    threads = _conv._fan_out_threads()
    if threads < 2 or a.ndim != b.ndim or a.ndim not in (2, 3) or a.dtype != b.dtype:
        return np.matmul(a, b, out=out)
    if a.ndim == 3 and a.shape[0] != b.shape[0]:
        return np.matmul(a, b, out=out)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    stack = a.shape[0] if a.ndim == 3 else 1
    if stack * m * k * n < PAR_MIN_MACS or b.shape[-2] != k:
        return np.matmul(a, b, out=out)
    shape = a.shape[:-1] + (n,)
    if out is None:
        out = np.empty(shape, dtype=a.dtype)
    elif out.shape != shape:
        return np.matmul(a, b, out=out)  # (NumPy's own error)
    along = stack if a.ndim == 3 and stack >= threads else m  # split the stack when it is deep enough
    parts = min(threads, along)
    if parts < 2:
        return np.matmul(a, b, out=out)
    bounds = [(i * along // parts, (i + 1) * along // parts) for i in range(parts)]
    if a.ndim == 3 and along == stack:
        def block(r):
            np.matmul(a[r[0]:r[1]], b[r[0]:r[1]], out=out[r[0]:r[1]])
    else:
        def block(r):
            np.matmul(a[..., r[0]:r[1], :], b, out=out[..., r[0]:r[1], :])

    _conv._run_parts(block, bounds)
    return out
