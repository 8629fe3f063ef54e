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

from benchmarks._report import emit

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


def _problem(shape, prec, cp):
    """Random x, w (fan-in scaled) and an upstream gradient for one benchmark shape and precision."""
    from framework.kernels.cuda import conv as cconv

    n, c, hw, k, ks, st, pad = shape
    dtype = "float16" if prec == "fp16" else "float32"
    rs = cp.random.RandomState(0)
    x = rs.standard_normal((n, c, hw, hw), dtype=cp.float32).astype(dtype)
    w = (rs.standard_normal((k, c, ks, ks), dtype=cp.float32) / math.sqrt(c * ks * ks)).astype(dtype)
    args = ((st, st), (pad, pad), (1, 1), 1)
    y = cconv.conv2d_forward(x, w, *args)
    gy = rs.standard_normal(y.shape, dtype=cp.float32).astype(dtype)
    return x, w, gy, args


def bench_one(shape, prec, reps, cp, torch):
    """One row: our and cuDNN's forward and forward+backward times for ``shape`` in ``prec``."""
    from framework.kernels.cuda import conv as cconv

    n, c, hw, k, ks, st, pad = shape
    x, w, gy, args = _problem(shape, prec, cp)

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


def _med_ms(r) -> tuple[float, float]:
    """(host ms, device ms) medians of a cupyx.profiler.benchmark result."""
    cpu, gpu = sorted(r.cpu_times), sorted(r.gpu_times[0])
    return float(cpu[len(cpu) // 2] * 1e3), float(gpu[len(gpu) // 2] * 1e3)


def _kernel_ms(mode, a, b, out, geo, cfg, phases, cbench):
    from framework.kernels.cuda import conv as cconv

    def run():
        for ph in phases:
            cconv._run_igemm(mode, a, b, out, geo, cfg, phase=ph)

    return _med_ms(cbench(run, n_repeat=20, n_warmup=2))[1]


def _breakdown_one(shape, prec, cp, cbench):
    from framework.kernels.cuda import _loader as L
    from framework.kernels.cuda import conv as cconv

    n, c, hw, k, ks, st, pad = shape
    x, w, gy, args = _problem(shape, prec, cp)
    dtype = x.dtype
    flops = 2.0 * gy.size * c * ks * ks
    row = {"shape": list(shape), "precision": prec}
    calls = {"fwd": lambda: cconv.conv2d_forward(x, w, *args),
             "bwd_data": lambda: cconv.conv2d_backward_input(gy, w, x.shape, *args),
             "bwd_filter": lambda: cconv.conv2d_backward_weight(x, gy, w.shape, *args)}
    for name, fn in calls.items():
        row[name + "_call_cpu_ms"], row[name + "_call_gpu_ms"] = _med_ms(cbench(fn, n_repeat=20, n_warmup=3))
    geo = cconv._geometry(x.shape, w.shape, *args)
    kind = cconv._math(x.dtype, L.device_key()[1])
    pad_c = cconv.padded_channels(c, 1, x.dtype.itemsize) if kind != "ffma" else 0
    for mode in (0, 1, 2):
        g = geo
        if mode == 0:
            a, b = cconv.gemm_operands(0, cp, x, w, 1, pad_c=pad_c)
            if pad_c and pad_c != c:
                g = (n, pad_c) + geo[2:]
            out = cp.empty(gy.shape, dtype)
        elif mode == 1:
            a, b = cconv.gemm_operands(1, cp, gy, w, 1)
            out = cp.empty(x.shape, dtype)
        else:
            a, b = cconv.gemm_operands(2, cp, (gy, x), None, 1)
            out = cp.empty(w.shape, dtype)
        phases = cconv.bwd_data_phases(geo) if mode == 1 else [None]
        m, ng, _ = cconv._gemm_dims(mode, x.shape, w.shape, gy.shape[2:], 1)
        best = None
        for cfg in cconv.candidate_configs(kind, m, ng, 1, L.sm_count()):
            try:
                t = _kernel_ms(mode, a, b, out, g, cfg, phases, cbench)
            except Exception as e:  # report, try the next
                row[f"mode{mode}_error"] = str(e)[:200]
                continue
            if best is None or t < best[0]:
                best = (t, cfg)
        if best:
            row[f"mode{mode}_kernel_ms"] = best[0]
            row[f"mode{mode}_tflops"] = flops / best[0] / 1e9
            row[f"mode{mode}_cfg"] = str(best[1])
    return row


def breakdown(shapes, cp, fw):
    """Where the time goes, per shape and precision: each public call's host (CPU) and device (GPU)
    time, and each implicit-GEMM kernel alone on prepared operands, for every tile configuration
    (the best one reported, with its TFLOP/s). A call whose GPU time is far above its kernels' is
    paying for layout passes; one whose CPU time exceeds its GPU time is launch-bound."""
    from cupyx.profiler import benchmark as cbench

    rows = []
    for prec in PRECISIONS:
        fw.backends.cudnn.allow_tf32 = prec == "tf32"
        fw.backends.cudnn.benchmark = True
        for shape in shapes:
            rows.append(_breakdown_one(shape, prec, cp, cbench))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def resnet18(nn, num_classes: int = 1000):
    """ResNet-18 built from ``nn`` (``framework.nn`` or ``torch.nn``: the same code builds both)."""

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.down is None else self.down(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + idt)

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def detector(nn, num_outputs: int = 85):
    """A small single-stage detector body (conv-BN-SiLU stages, stride 32) built from ``nn``."""
    def cbs(cin, cout, k, s):
        return [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU()]

    layers = cbs(3, 16, 3, 2) + cbs(16, 32, 3, 2) + cbs(32, 32, 3, 1) + cbs(32, 64, 3, 2)
    layers += cbs(64, 64, 3, 1) + cbs(64, 128, 3, 2) + cbs(128, 128, 3, 1) + cbs(128, 256, 3, 2)
    layers += cbs(256, 128, 1, 1) + [nn.Conv2d(128, num_outputs, 1)]
    return nn.Sequential(*layers)


def train_step_fn(model, opt, x, target, cross_entropy):
    def step():
        opt.zero_grad()
        loss = cross_entropy(model(x), target)
        loss.backward()
        opt.step()
    return step


def bench_models(cp, torch, fw, reps, batch=32, size=224, det_size=320):
    """Our ResNet-18 training step and batch-1 detector forward against PyTorch's, same run."""
    import numpy as np

    from framework import nn, optim

    out = {}
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    t0 = rng.integers(0, 1000, batch)
    d0 = rng.standard_normal((1, 3, det_size, det_size)).astype(np.float32)
    fw.backends.cudnn.allow_tf32 = True
    model = resnet18(nn).to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = train_step_fn(model, opt, fw.tensor(x0, device="cuda"), fw.tensor(t0, device="cuda"),
                         nn.functional.cross_entropy)
    out["resnet18_train_step_ms_ours"] = _median_ms(step, _cp_events(cp), max(5, reps // 4))
    det = detector(nn).to("cuda").eval()
    dx = fw.tensor(d0, device="cuda")

    def det_fwd():
        with fw.no_grad():
            det(dx)

    out["detector_b1_320_fwd_ms_ours"] = _median_ms(det_fwd, _cp_events(cp), reps)
    if torch is not None:
        torch.backends.cudnn.allow_tf32 = True
        tm = resnet18(torch.nn).cuda()
        topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
        tstep = train_step_fn(tm, topt, torch.tensor(x0, device="cuda"), torch.tensor(t0, device="cuda"),
                              torch.nn.functional.cross_entropy)
        out["resnet18_train_step_ms_torch"] = _median_ms(tstep, _torch_events(torch), max(5, reps // 4))
        tdet = detector(torch.nn).cuda().eval()
        tdx = torch.tensor(d0, device="cuda")

        def tdet_fwd():
            with torch.no_grad():
                tdet(tdx)

        out["detector_b1_320_fwd_ms_torch"] = _median_ms(tdet_fwd, _torch_events(torch), reps)
        out["resnet18_speedup"] = out["resnet18_train_step_ms_torch"] / out["resnet18_train_step_ms_ours"]
        out["detector_speedup"] = out["detector_b1_320_fwd_ms_torch"] / out["detector_b1_320_fwd_ms_ours"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--shapes", choices=["all", "quick"], default="all")
    ap.add_argument("--out", default=None, help="also write the JSON to this file")
    ap.add_argument("--no-models", action="store_true", help="skip the ResNet-18 and detector figures")
    ap.add_argument("--breakdown", action="store_true",
                    help="instead: host/device time of each call and each kernel alone (see breakdown())")
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
    if a.breakdown:
        emit({"benchmark": "gpu_conv_breakdown", "device": fw.cuda.get_device_name(),
              "rows": breakdown(shapes, cp, fw)}, a.out)
        return 0
    t0 = time.time()
    rows, summary = bench_shapes(shapes, a.reps, cp, torch, fw)
    doc = {
        "benchmark": "gpu_conv", "gpu": True, "device": fw.cuda.get_device_name(),
        "capability": list(fw.cuda.get_device_capability()), "cupy": cp.__version__,
        "torch": None if torch is None else torch.__version__,
        "cudnn": None if torch is None else torch.backends.cudnn.version(),
        "reference_note": torch_note, "reps": a.reps, "speedup": "t_cudnn / t_ours (>1: ours faster)",
        "results": rows, "summary": summary,
        "wall_s": round(time.time() - t0, 1),
    }
    if not a.no_models:
        try:
            doc["models"] = bench_models(cp, torch, fw, a.reps)
        except Exception as e:  # report, keep the kernel figures
            doc["models"] = {"error": f"{type(e).__name__}: {e}"}
    emit(doc, a.out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
