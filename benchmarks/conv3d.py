"""CPU speed of the framework's 3-D convolution relative to PyTorch, measured in the same run.

    python -m benchmarks.conv3d [--threads N] [--repeat R] [--quick] [--blas-core native|inherit] [--out PATH]

Prints one JSON document and writes it (with machine information) to
``benchmarks/results/conv3d.json``. Every figure is a ratio ``torch_time / our_time`` (above 1: the
framework is faster) of forward + backward (input, weight and bias gradients) of ``F.conv3d`` on the
layer shapes of a radiology 3-D CNN (stem, encoder blocks, strided downsampling, a 1x1x1 projection,
an anisotropic in-plane kernel), and their geometric mean. Timing as in ``benchmarks.cpu``: medians of
``repeat`` samples, ours and PyTorch's alternating so that load from other processes affects both alike,
with ``cpu_time_ratio`` the same ratio in process CPU time.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# benchmarks.cpu sets the thread variables and the OpenBLAS kernels from sys.argv before NumPy loads.
from benchmarks import _blas
from benchmarks._report import emit
from benchmarks.cpu import _figure, _set_threads, conv_pair, geomeans, machine_info

# isort: split
import numpy as np

SHAPES = [  # (N, C, (D, H, W), K, kernel, stride, padding)
    (2, 1, (64, 64, 64), 16, (3, 3, 3), 1, 1),
    (2, 16, (32, 32, 32), 32, (3, 3, 3), 1, 1),
    (2, 32, (32, 32, 32), 64, (3, 3, 3), 2, 1),
    (2, 64, (16, 16, 16), 64, (3, 3, 3), 1, 1),
    (2, 64, (16, 16, 16), 128, (1, 1, 1), 1, 0),
    (2, 16, (32, 64, 64), 32, (1, 3, 3), 1, (0, 1, 1)),
]


def _case(shape, rng, repeat):
    n, c, sp, k, ks, s, p = shape
    x = rng.standard_normal((n, c) + sp, dtype=np.float32)
    w = (rng.standard_normal((k, c) + ks) / math.sqrt(c * math.prod(ks))).astype(np.float32)
    b = rng.standard_normal(k, dtype=np.float32)
    times, errs = conv_pair("conv3d", x, w, b, rng, repeat, stride=s, padding=p)
    return _figure(times, shape=dict(N=n, C=c, DHW=list(sp), K=k, kernel=list(ks), stride=s,
                                     pad=list(p) if isinstance(p, tuple) else p), **errs)


def bench_conv3d(repeat: int, shapes=SHAPES) -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for shape in shapes:
        print(f"[benchmarks.conv3d] {shape} ...", file=sys.stderr, flush=True)
        rows.append(_case(shape, rng, repeat))
    return geomeans(rows)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both frameworks (default: all cores)")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per figure (median reported)")
    ap.add_argument("--quick", action="store_true", help="3 repeats (a smoke test, noisy figures)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "conv3d.json"))
    _blas.add_argument(ap)
    args = ap.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    repeat = 3 if args.quick else args.repeat
    limiter, how = _set_threads(threads)
    figures = {"conv3d": bench_conv3d(repeat)}
    if limiter is not None:
        limiter.restore_original_limits()
    result = {"benchmark": "conv3d", "unit": "ratio torch_time / framework_time (>1: framework faster)",
              "command": "python -m benchmarks.conv3d " + " ".join(sys.argv[1:] if argv is None else argv),
              "repeat": repeat, "threads": threads, "thread_control": how, "machine": machine_info(),
              "figures": figures, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    emit(result, args.out, indent=2)
    return result


if __name__ == "__main__":
    main()
