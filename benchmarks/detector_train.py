"""CPU training-step speed of the perception detector relative to PyTorch, same run, same threads.

    python -m benchmarks.detector_train [--threads 1 2] [--batch 16] [--crop 256] [--repeat R] [--out PATH]

One SGD step (forward, a loss on both heads, backward, update) of the committed detector's architecture
(``apps.perception.model.CenterNet``, width 1.5) on a batch of random crops, against the same network
written with torch.nn (``benchmarks.perception.torch_model``) from the same weights. Each figure is a
ratio ``torch_time / our_time`` (above 1: ours faster), timed as ``benchmarks.cpu`` times its figures
(alternating blocks; with several threads a rest and 50 ms of untimed calls before each). With several
threads the framework is measured both ways it can use them: its own threads (``framework.set_num_threads``:
groups of images, BLAS on one) and NumPy's BLAS threads. ``apps.perception``'s ``--threads N train``
uses the first. Writes ``benchmarks/results/detector_train.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import _blas
from benchmarks import cpu as bc  # (sets the BLAS environment before NumPy loads)
from benchmarks._report import emit


def _pair(batch: int, crop: int, repeat: int) -> dict:
    import numpy as np
    import torch

    from apps.perception.model import CenterNet
    from benchmarks.perception import torch_model

    torch.manual_seed(0)
    x = np.random.default_rng(0).random((batch, 3, crop, crop), dtype=np.float32)

    def loss(lib, out):  # both heads, so that every parameter is in the graph
        heat, reg = out
        return lib.sigmoid(heat).mean() + (reg * reg).mean()

    return bc.step_pair(torch_model(6, 1.5), CenterNet(num_classes=6, width=1.5), x, loss, "SGD",
                        dict(lr=1e-3, momentum=0.9), repeat, warmup=1, min_sample_s=0.0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256, help="square training crops (a multiple of 32)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "detector_train.json"))
    _blas.add_argument(ap)
    args = ap.parse_args(argv)
    if args.crop % 32 or args.crop <= 0 or args.batch < 1:
        raise SystemExit("--crop must be a positive multiple of 32 and --batch >= 1")
    runs = []
    for run in bc.thread_runs(args.threads):
        print(f"[benchmarks.detector_train] threads={run['threads']} ({run['strategy']}) ...",
              file=sys.stderr, flush=True)
        runs.append({**run, "train_step": _pair(args.batch, args.crop, args.repeat)})
    command = "python -m benchmarks.detector_train " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"benchmark": "detector_train",
              "unit": "ratio torch_time / framework_time (>1: framework faster)", "command": command,
              "batch": args.batch, "crop": args.crop, "repeat": args.repeat, "machine": bc.machine_info(),
              "runs": runs, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    emit(result, args.out, indent=2)
    return result


if __name__ == "__main__":
    main()
