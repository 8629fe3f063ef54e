"""Perception speed: the demo pipeline end to end, headless, on a synthetic 640x480 clip at 30 FPS,
and the model alone against the same network run by PyTorch CPU (weights copied; names match).

    python -m benchmarks.perception [--frames 300] [--threads 1] [--size N] [--flip-test] [--out FILE.json]

Prints JSON: end-to-end FPS (best of ``--repeats`` runs, every run listed: the machine is shared),
capture-to-display latency p50/p95, dropped frames, per-stage ms (median and mean), model ms (ours,
PyTorch) and their ratio, and the targets. ``--threads`` (default 1) pins the inference threads of
both frameworks; on the issue's 2 cores the second core runs capture and decoding. On a CUDA machine
with CuPy it adds batch-1 model throughput on the GPU. ``--size N`` runs the committed network at
another letterbox size (the network is fully convolutional; speed does not depend on the weights).
Frames go in by rectangular letterbox (``Detector.rect``), so a 640x480 frame at size 640 runs the
network on 640x480, and the model comparison uses that same input shape (``model_input_hw``).
``--flip-test`` runs the detector in its flip-test mode (each frame and its mirror image, outputs
averaged): the model comparison then times the detector's flip forward (with two threads, the two views
at once; the merge included) against PyTorch's network on the batch of two.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

from benchmarks import _blas
from benchmarks._report import emit


def torch_model(num_classes: int = 6, width: float = 1.0, neck: int = 48, head: int = 32):
    """The detector of :mod:`apps.perception.model` written with torch.nn, same parameter names."""
    import math

    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF

    class ConvBNAct(tnn.Module):
        def __init__(self, cin, cout, k=3, stride=1, groups=1, act=True):
            super().__init__()
            self.conv = tnn.Conv2d(
                cin, cout, k, stride=stride, padding=0 if k == stride else k // 2, groups=groups, bias=False
            )
            self.bn = tnn.BatchNorm2d(cout)
            self.act = act

        def forward(self, x):
            x = self.bn(self.conv(x))
            return tF.relu(x) if self.act else x

    class CenterNet(tnn.Module):
        def __init__(self):
            super().__init__()
            c = [max(8, int(round(v * width))) for v in (16, 24, 40, 64, 96)]
            n, h = max(8, int(round(neck * width))), max(8, int(round(head * width)))
            self.stem = ConvBNAct(3, c[0], 4, 4)
            self.s1 = ConvBNAct(c[0], c[1], 3)
            self.s2 = tnn.Sequential(ConvBNAct(c[1], c[2], 3, 2), ConvBNAct(c[2], c[2], 3))
            self.s3 = tnn.Sequential(ConvBNAct(c[2], c[3], 3, 2), ConvBNAct(c[3], c[3], 3))
            self.s4 = tnn.Sequential(ConvBNAct(c[3], c[4], 3, 2), ConvBNAct(c[4], c[4], 3))
            self.lat4 = ConvBNAct(c[4], n, 1)
            self.lat3 = ConvBNAct(c[3], n, 1)
            self.lat2 = ConvBNAct(c[2], n, 1)
            self.fuse3 = ConvBNAct(n, n, 3)
            self.fuse2 = ConvBNAct(n, h, 3)
            self.lat1 = ConvBNAct(c[1], h, 1)
            self.dw = ConvBNAct(h, h, 3, groups=h)
            self.hm = tnn.Conv2d(h, num_classes, 1)
            self.reg = tnn.Conv2d(h, 4, 1)
            with torch.no_grad():
                self.hm.bias.fill_(-math.log(9.0))

        def forward(self, x):
            up = lambda t: tF.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
            x1 = self.s1(self.stem(x))
            x2 = self.s2(x1)
            x3 = self.s3(x2)
            x4 = self.s4(x3)
            p = self.fuse3(self.lat3(x3) + up(self.lat4(x4)))
            p = self.fuse2(self.lat2(x2) + up(p))
            p = self.dw(self.lat1(x1) + up(p))
            return self.hm(p), self.reg(p)

    return CenterNet()


def copy_to_torch(fw_model, t_model) -> None:
    """Copy every parameter and buffer by name (raises on a missing or mis-shaped name)."""
    import numpy as np
    import torch

    src = fw_model.state_dict()
    dst = t_model.state_dict()
    missing = set(dst) ^ set(src)
    if missing:
        raise KeyError(f"state dict names differ: {sorted(missing)[:6]}")
    t_model.load_state_dict({k: torch.from_numpy(np.array(src[k].numpy())) for k in dst})


def fuse_torch(t_model):
    """A copy of the PyTorch detector (eval) with every batch norm folded into its convolution."""
    import copy

    import torch

    m = copy.deepcopy(t_model).eval()
    for mod in m.modules():
        if hasattr(mod, "conv") and isinstance(getattr(mod, "bn", None), torch.nn.BatchNorm2d):
            mod.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(mod.conv, mod.bn)
            mod.bn = torch.nn.Identity()
    return m


def _time(fn, n: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def _time_interleaved(fns: dict, n: int, rounds: int = 6) -> dict:
    """Milliseconds per call of each of ``fns``, timed in alternating rounds of about n / rounds calls,
    so that a slow spell of a shared machine falls on every contender alike."""
    out = {k: [] for k in fns}
    for fn in fns.values():
        _time(fn, 0)
    per = max(1, n // rounds)
    for _ in range(rounds):
        for k, fn in fns.items():
            out[k] += _time(fn, per, warm=1)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="inference threads (BLAS, conv pool, PyTorch)")
    ap.add_argument("--model-reps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--size", type=int, default=None,
                    help="letterbox size (default: the committed model's input size); a multiple of 32")
    ap.add_argument("--flip-test", action="store_true",
                    help="the detector's flip-test mode (frame and mirror averaged: twice the model's work)")
    _blas.add_argument(ap)
    a = ap.parse_args(argv)
    if a.size is not None and (a.size <= 0 or a.size % 32):
        ap.error(f"--size must be a positive multiple of 32, got {a.size}")
    _blas.choose(sys.argv if argv is None else argv)
    # (the flip test's pair of images runs on the framework's own threads, BLAS on one: see
    # apps/perception/__main__.py, _set_threads)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(v, "1" if a.flip_test else str(a.threads))
    os.environ.setdefault("FRAMEWORK_CONV_THREADS", str(a.threads))

    import numpy as np

    import framework as fw
    from apps.perception import load_default_model
    from apps.perception.demo import run
    from apps.perception.synth import write_video

    det = load_default_model(rescore=False)  # as the demo runs it
    if (a.size is not None and a.size != det.size) or a.flip_test:
        from apps.perception.detector import Detector

        det = Detector(det.model, size=a.size or det.size, conf=det.conf, classes=det.classes, card=det.card,
                       flip_test=a.flip_test)
    size = det.size
    tmp = tempfile.mkdtemp(prefix="perception-bench-")
    clip = os.path.join(tmp, "clip.mp4")
    write_video(clip, a.frames, seed=7, width=640, height=480, fps=30.0)

    # 1) the demo pipeline, paced like a 30 FPS camera: drops and latency are what a user sees. The machine
    #    is shared, so the run is repeated and every run is reported; "best" is the run with the highest FPS.
    runs = [run(clip, det, track=True, headless=True, save=None, realtime=True) for _ in range(a.repeats)]
    s = max(runs, key=lambda r: r["fps"])
    # 2) the same frames without pacing (throughput when the source is never the bottleneck)
    s_all = run(clip, det, track=True, headless=True, save=None, realtime=False)

    # 3) the model alone, batch 1, ours vs PyTorch with the same weights, on the input the pipeline
    #    feeds it for the clip's 640x480 frames (rectangular letterbox: 640x480 at size 640)
    in_h, in_w = det.input_shape((480, 640))
    x = np.random.default_rng(0).random((1, 3, in_h, in_w), dtype=np.float32)
    if a.flip_test:  # the batch the flip test runs: the frame and its mirror image
        x = np.ascontiguousarray(np.concatenate([x, x[..., ::-1]]))
    xt = fw.from_numpy(x)

    def ours():  # what the detector runs: batch norms folded into the convolutions
        with fw.no_grad():
            det.net(xt)

    if a.flip_test:  # the detector's own flip forward: both views (in parallel where set up), merged

        def ours():  # noqa: F811
            det.forward(x[:1])

    contenders = {"ours": ours}
    max_diff = None
    try:
        import torch

        torch.set_num_threads(a.threads)
        tm = torch_model(len(det.classes), det.card.get("architecture", {}).get("width", 1.0))
        copy_to_torch(det.model, tm)
        tm.eval()
        xx = torch.from_numpy(x)
        # the like-for-like reference: PyTorch with the same folding (torch.nn.utils.fusion)
        tf = fuse_torch(tm)  # (a folded copy)
        with torch.no_grad():
            h_t, r_t = tm(xx)
            h_f, _ = tf(xx)
            with fw.no_grad():
                h_o, r_o = det.net(xt)
        max_diff = float(max(np.abs(h_t.numpy() - h_o.numpy()).max(), np.abs(r_t.numpy() - r_o.numpy()).max(),
                             np.abs(h_f.numpy() - h_o.numpy()).max()))

        def ref():
            with torch.no_grad():
                tm(xx)

        def ref_fused():
            with torch.no_grad():
                tf(xx)

        contenders.update(torch=ref, torch_fused=ref_fused)
    except ImportError:
        pass
    times = _time_interleaved(contenders, a.model_reps)
    ours_ms = times["ours"]
    result = dict(
        benchmark="perception",
        input_size=size,
        flip_test=a.flip_test,
        model_batch=int(x.shape[0]),
        model_input_hw=[in_h, in_w],
        clip="640x480 synthetic drive, 30 FPS",
        frames=a.frames,
        threads=a.threads,
        load_average_1min=os.getloadavg()[0],
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        blas=_blas.info(),
        e2e_realtime=dict(
            fps=s["fps"],
            latency_ms_p50=s["latency_ms_p50"],
            latency_ms_p95=s["latency_ms_p95"],
            captured=s["captured"],
            processed=s["frames"],
            dropped=s["dropped"],
            stage_ms_p50=s["stage_ms"],
            stage_ms_mean=s["stage_ms_mean"],
        ),
        e2e_realtime_all_runs=[
            dict(
                fps=r["fps"],
                latency_ms_p50=r["latency_ms_p50"],
                latency_ms_p95=r["latency_ms_p95"],
                dropped=r["dropped"],
            )
            for r in runs
        ],
        e2e_every_frame=dict(
            fps=s_all["fps"],
            latency_ms_p50=s_all["latency_ms_p50"],
            latency_ms_p95=s_all["latency_ms_p95"],
            stage_ms_p50=s_all["stage_ms"],
            stage_ms_mean=s_all["stage_ms_mean"],
        ),
        model_ms_ours=dict(p50=float(np.median(ours_ms)), mean=float(np.mean(ours_ms))),
    )
    if max_diff is not None:
        torch_ms, torch_fused_ms = times["torch"], times["torch_fused"]
        result["model_ms_torch"] = dict(p50=float(np.median(torch_ms)), mean=float(np.mean(torch_ms)))
        result["model_ms_torch_fused"] = dict(
            p50=float(np.median(torch_fused_ms)), mean=float(np.mean(torch_fused_ms))
        )
        result["model_ratio_ours_over_torch"] = round(
            result["model_ms_ours"]["p50"] / result["model_ms_torch"]["p50"], 3
        )
        result["model_ratio_ours_over_torch_fused"] = round(
            result["model_ms_ours"]["p50"] / result["model_ms_torch_fused"]["p50"], 3
        )
        result["max_abs_output_diff_vs_torch"] = max_diff
    else:
        result["model_ms_torch"] = None
    if fw.cuda.is_available():
        xg = xt.to("cuda")
        det.model.to("cuda")

        def gpu():
            with fw.no_grad():
                h, _ = det.model(xg)
                h.numpy() if hasattr(h, "numpy") else None

        g = _time(gpu, 100, warm=10)
        result["gpu_model_fps_batch1"] = round(1e3 / float(np.median(g)), 1)
    result["targets"] = dict(e2e_fps=">= 30", latency_ms_p95="<= 50", model_ratio="<= 1.0", gpu_fps=">= 300")
    result["meets"] = dict(
        e2e_fps=result["e2e_realtime"]["fps"] >= 29.5,
        latency_p95=result["e2e_realtime"]["latency_ms_p95"] <= 50,
        # judged against PyTorch running the same fused network (the stricter comparison)
        model_ratio=(result.get("model_ratio_ours_over_torch_fused") or 99) <= 1.0,
    )
    emit(result, a.out)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
