"""Our CUDA convolutions against cuDNN (through PyTorch, ``cudnn.benchmark=True``), same run.

    python -m benchmarks.gpu_conv [--reps 20] [--shapes all|quick] [--out FILE.json]

Prints one JSON document. For each shape (N, C, H=W, K, kernel, stride, pad) and each precision
(fp32 exact, tf32, fp16): our forward and forward+backward times (ms, median of ``reps`` runs after
warm-up, timed with CUDA events on random data), cuDNN's, and ``speedup = t_cudnn / t_ours`` (>= 1
means ours is faster); then the geometric mean of the speedups per precision. Forward+backward is
forward, backward-data and backward-filter (PyTorch: ``y.backward(gy)`` with both inputs requiring
grad). Also a ResNet-18-sized training step (batch 32, 224x224) and a batch-1 detector-like
forward at 320x320, ours against PyTorch, when ``framework.nn`` provides the layers.

Exit status: 0 after a run; **2 without a usable GPU** (CuPy missing or no device), after printing
``{"error": ..., "gpu": false}`` -- so scripts can tell "nothing was measured" from a result.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

SHAPES = [  # (N, C, H=W, K, kernel, stride, pad), from issue 3
    (32, 3, 224, 64, 7, 2, 3), (32, 64, 56, 64, 3, 1, 1), (32, 128, 28, 128, 3, 1, 1),
    (32, 256, 14, 256, 3, 1, 1), (32, 512, 7, 512, 3, 1, 1), (32, 256, 14, 1024, 1, 1, 0),
    (1, 64, 80, 64, 3, 1, 1), (8, 32, 160, 64, 3, 2, 1),
]
SMALL_BATCH = [(1, 64, 80, 64, 3, 1, 1), (8, 32, 160, 64, 3, 2, 1)]
PRECISIONS = ("fp32", "tf32", "fp16")


def _no_gpu(reason: str) -> int:
    print(json.dumps({"benchmark": "gpu_conv", "gpu": False, "error": reason}, indent=2))
    return 2


def _median_ms(run, sync_event, reps: int, warmup: int = 3) -> float:
    """Median time of ``run()`` in ms; ``sync_event()`` returns a fresh (start, end, elapsed) trio."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(reps):
        start, end, elapsed = sync_event()
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(elapsed(start, end))
    times.sort()
    return times[len(times) // 2]


def _geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def _cp_events(cp):
    return lambda: (cp.cuda.Event(), cp.cuda.Event(), cp.cuda.get_elapsed_time)


def _torch_events(torch):
    return lambda: (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True),
                    lambda a, b: a.elapsed_time(b))


def bench_one(shape, prec, reps, cp, torch):
    """One row: our and cuDNN's forward and forward+backward times for ``shape`` in ``prec``."""
    from framework.kernels.cuda import conv as cconv

    n, c, hw, k, ks, st, pad = shape
    dtype = "float16" if prec == "fp16" else "float32"
    rs = cp.random.RandomState(0)
    x = rs.standard_normal((n, c, hw, hw), dtype=cp.float32).astype(dtype)
    w = (rs.standard_normal((k, c, ks, ks), dtype=cp.float32) / math.sqrt(c * ks * ks)).astype(dtype)
    args = ((st, st), (pad, pad), (1, 1), 1)
    y = cconv.conv2d_forward(x, w, *args)
    gy = rs.standard_normal(y.shape, dtype=cp.float32).astype(dtype)

    def ours_fwd():
        cconv.conv2d_forward(x, w, *args)

    def ours_fb():
        cconv.conv2d_forward(x, w, *args)
        cconv.conv2d_backward_input(gy, w, x.shape, *args)
        cconv.conv2d_backward_weight(x, gy, w.shape, *args)

    row = {"shape": list(shape), "precision": prec,
           "ours_fwd_ms": _median_ms(ours_fwd, _cp_events(cp), reps),
           "ours_fwd_bwd_ms": _median_ms(ours_fb, _cp_events(cp), reps)}
    if torch is None:
        return row
    tx = torch.as_tensor(x, device="cuda").requires_grad_(True)
    tw = torch.as_tensor(w, device="cuda").requires_grad_(True)
    tgy = torch.as_tensor(gy, device="cuda")
    conv2d = torch.nn.functional.conv2d

    def t_fwd():
        with torch.no_grad():
            conv2d(tx, tw, None, st, pad)

    def t_fb():
        conv2d(tx, tw, None, st, pad).backward(tgy)

    cp.cuda.Device().synchronize()
    torch.cuda.synchronize()
    row["cudnn_fwd_ms"] = _median_ms(t_fwd, _torch_events(torch), reps)
    row["cudnn_fwd_bwd_ms"] = _median_ms(t_fb, _torch_events(torch), reps)
    row["speedup_fwd"] = row["cudnn_fwd_ms"] / row["ours_fwd_ms"]
    row["speedup_fwd_bwd"] = row["cudnn_fwd_bwd_ms"] / row["ours_fwd_bwd_ms"]
    return row


def bench_shapes(shapes, reps, cp, torch, fw):
    rows = []
    for prec in PRECISIONS:
        fw.backends.cudnn.allow_tf32 = prec == "tf32"
        fw.backends.cudnn.benchmark = True
        if torch is not None:
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = prec == "tf32"
        for shape in shapes:
            row = bench_one(shape, prec, reps, cp, torch)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    summary = {}
    for prec in PRECISIONS:
        r = [x for x in rows if x["precision"] == prec]
        summary[prec] = {
            "geomean_speedup_fwd": _geomean([x.get("speedup_fwd") for x in r]),
            "geomean_speedup_fwd_bwd": _geomean([x.get("speedup_fwd_bwd") for x in r]),
            "small_batch_speedup_fwd_bwd": [x.get("speedup_fwd_bwd") for x in r
                                            if tuple(x["shape"]) in SMALL_BATCH],
        }
    return rows, summary


def bench_models(cp, torch, fw, reps):
    """ResNet-18-sized training step and a batch-1 detector forward, if framework.nn has the layers."""
    try:
        from framework import nn
        needed = ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AdaptiveAvgPool2d", "Linear", "Sequential")
        missing = [n for n in needed if not hasattr(nn, n)]
        if missing:
            return {"skipped": f"framework.nn lacks {missing}"}
    except ImportError as e:
        return {"skipped": f"framework.nn unavailable: {e}"}
    return {"skipped": "model-level benchmarks are not implemented yet (kernel-level figures above)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--shapes", choices=["all", "quick"], default="all")
    ap.add_argument("--out", default=None, help="also write the JSON to this file")
    a = ap.parse_args(argv)
    if a.reps < 20:
        print("note: fewer than 20 repetitions; figures are less stable", file=sys.stderr)

    import framework as fw
    from framework import backend

    if backend._cupy is None:
        return _no_gpu("CuPy is not installed: nothing was measured (pip install '.[gpu]' on a CUDA machine)")
    if not backend.cuda_available():
        return _no_gpu("CuPy is installed but no CUDA device is visible: nothing was measured")
    cp = backend._cupy
    try:
        import torch

        torch_note = None if torch.cuda.is_available() else "PyTorch has no CUDA: no cuDNN reference"
        if torch_note:
            torch = None
    except ImportError:
        torch, torch_note = None, "PyTorch is not installed: no cuDNN reference"

    shapes = SHAPES if a.shapes == "all" else SHAPES[1:2] + SMALL_BATCH
    t0 = time.time()
    rows, summary = bench_shapes(shapes, a.reps, cp, torch, fw)
    doc = {
        "benchmark": "gpu_conv", "gpu": True, "device": fw.cuda.get_device_name(),
        "capability": list(fw.cuda.get_device_capability()), "cupy": cp.__version__,
        "torch": None if torch is None else torch.__version__,
        "cudnn": None if torch is None else torch.backends.cudnn.version(),
        "reference_note": torch_note, "reps": a.reps, "speedup": "t_cudnn / t_ours (>1: ours faster)",
        "results": rows, "summary": summary, "models": bench_models(cp, torch, fw, a.reps),
        "wall_s": round(time.time() - t0, 1),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
