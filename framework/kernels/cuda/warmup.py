"""Compile every CUDA kernel of the framework ahead of time, in parallel.

    python -m framework.kernels.cuda.warmup [--jobs N] [--filter TEXT]

Each kernel configuration is a template instantiation that CuPy compiles with NVRTC on first use
(about a second each; the convolution alone has ~90). A first training run would pay for them one
by one, on one core. This compiles them all in ``--jobs`` processes; CuPy keeps the binaries in its
on-disk cache (``CUPY_CACHE_DIR``), so later processes load them instead of compiling. Run it once
after installing on a GPU machine, or at the start of a batch job.

Prints one line per failure and a JSON summary; exit status 1 when any kernel failed to build,
2 without CuPy or a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def kernel_names(cc: int) -> list[tuple[str, str]]:
    """(file, name expression) of every kernel the loaders can ask for on compute capability ``cc``."""
    from . import conv, norm, pool

    out = []
    for mod in (conv, pool, norm):
        for filename, names in mod.all_kernel_names().items():
            out += [(filename, n) for n in names if cc >= 80 or "fw_conv_mma" not in n]
    return out


def _compile(item: tuple[str, str]) -> tuple[str, str, float, str | None]:
    from . import _loader

    t0 = time.perf_counter()
    try:
        _loader.get_function(*item)
        err = None
    except Exception as e:  # reported to the caller with the kernel's name
        err = f"{type(e).__name__}: {str(e)[-2000:]}"
    return item[0], item[1], time.perf_counter() - t0, err


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compiler processes")
    ap.add_argument("--filter", default="", help="only kernels whose name contains this text")
    a = ap.parse_args(argv)
    if a.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {a.jobs}")
    from . import _loader

    try:
        cc = _loader.device_key()[1]
    except Exception as e:  # no CuPy, or no device: say so, no traceback
        print(f"nothing compiled: {e}", file=sys.stderr)
        return 2
    items = [it for it in kernel_names(cc) if a.filter in it[1]]
    t0 = time.perf_counter()
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=mp.get_context("spawn")) as pool:
        results = list(pool.map(_compile, items))
    failed = [r for r in results if r[3] is not None]
    for f, n, _, err in failed:
        print(f"FAILED {f}:{n}\n{err}\n", file=sys.stderr)
    print(json.dumps({"kernels": len(items), "failed": len(failed), "jobs": a.jobs,
                      "compute_capability": cc, "wall_s": round(time.perf_counter() - t0, 1),
                      "slowest_s": round(max((r[2] for r in results), default=0.0), 2)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
