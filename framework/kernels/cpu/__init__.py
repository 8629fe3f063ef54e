"""NumPy kernels (written against ``xp``, so they also run on CuPy arrays where no CUDA kernel exists).

Importing this package tunes glibc's allocator for large temporaries: without it, every
multi-megabyte array is a fresh ``mmap`` whose pages fault in again on first touch, which costs more
than the arithmetic on virtual machines (measured: a 0.4 ms convolution took 2.5 ms). Raising the
mmap threshold and the trim threshold keeps freed blocks in the heap for reuse. Set
``FRAMEWORK_NO_MALLOPT=1`` to leave the allocator alone.
"""

from __future__ import annotations

import os
import sys


def _tune_allocator() -> None:
    if not sys.platform.startswith("linux") or os.environ.get("FRAMEWORK_NO_MALLOPT"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's largest allowed value
        libc.mallopt(m_trim_threshold, 512 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


_tune_allocator()
