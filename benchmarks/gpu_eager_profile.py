"""Where the detector's eager CUDA forward spends its host time (batch 1; no CUDA graph).

    python -m benchmarks.gpu_eager_profile [--size 320] [--frames 100] [--top 20]

At batch 1 the eager forward is Python issuing one launch after another, so its time is the host's:
this prints the median wall time of a synchronised forward and cProfile's heaviest functions over
``--frames`` forwards, to find what an eager layer costs beyond its launch. (The Detector replays a CUDA
graph by default; see ``benchmarks.perception_gpu`` for the graph and PyTorch's figures.)
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import pstats
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--top", type=int, default=20)
    a = ap.parse_args(argv)
    if a.size <= 0 or a.size % 32 or a.frames < 1:
        ap.error("--size must be a positive multiple of 32 and --frames at least 1")

    import framework as fw

    if not fw.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_eager_profile", "gpu": False,
                          "error": "no CUDA device with CuPy: nothing was measured"}))
        return 2
    from apps.perception import load_default_model

    net = copy.deepcopy(load_default_model().net).to("cuda")
    x = fw.tensor(np.random.default_rng(0).standard_normal((1, 3, a.size, a.size)).astype(np.float32),
                  device="cuda")
    with fw.no_grad():
        for _ in range(30):  # (kernels compiled and tuned)
            net(x)
        fw.cuda.synchronize()
        times = []
        for _ in range(a.frames):
            t0 = time.perf_counter()
            net(x)
            fw.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(a.frames):
            net(x)
        fw.cuda.synchronize()
        prof.disable()
    print(json.dumps({"benchmark": "gpu_eager_profile", "gpu": True, "device": fw.cuda.get_device_name(),
                      "size": a.size, "frames": a.frames,
                      "eager_forward_ms_median": round(1e3 * float(np.median(times)), 3)}))
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
