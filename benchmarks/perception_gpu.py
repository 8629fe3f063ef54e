"""The committed detector on a CUDA GPU, batch 1: our kernels against PyTorch with cuDNN, same run.

    python -m benchmarks.perception_gpu [--sizes 320 480 640] [--reps 200] [--out FILE.json]

For each letterbox size: the network the detector runs (batch norms folded) on one random frame,
timed end to end the way the demo uses it -- host array in, both heads back on the host -- and
also device-only (input already on the GPU, CUDA-synchronised, no copy back). The reference is
the same network written with torch.nn, the same weights copied over, folded the same way, on
cuDNN (``cudnn.benchmark=True``, TF32 as each framework's default). Also the largest difference
between our GPU outputs and our CPU outputs. Median of ``--reps`` runs after warm-up.

Then the same with CUDA graphs on both sides: ours through the Detector (``cuda_graph=True``, its
default on CUDA: captured once per input shape, replayed per frame), PyTorch's through
``torch.cuda.graph``. ``*_graph_e2e_ms`` copies the frame in and both heads out, as above;
``*_graph_device_ms`` is the replay alone, synchronised.

Exit status 2 (after printing ``{"gpu": false, ...}``) without CuPy or a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks._report import emit


def _median_ms(fn, reps: int, warm: int = 20) -> float:
    import numpy as np

    from benchmarks.perception import _time

    return float(np.median(_time(fn, reps, warm=warm)))


def _measure(size, cpu_net, gpu_net, gdet, tnet, torch, reps) -> dict:
    import numpy as np

    import framework as fw

    x = np.random.default_rng(size).random((1, 3, size, size), dtype=np.float32)
    with fw.no_grad():
        ref = [t.numpy() for t in cpu_net(fw.from_numpy(x))]
        got = [t.cpu().numpy() for t in gpu_net(fw.tensor(x, device="cuda"))]
    diff = max(float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-12)) for g, r in zip(got, ref))
    xg = fw.tensor(x, device="cuda")

    def ours_e2e():
        with fw.no_grad():
            h, r = gpu_net(fw.from_numpy(x).to("cuda"))
            h.cpu().numpy(), r.cpu().numpy()

    def ours_dev():
        with fw.no_grad():
            gpu_net(xg)
        fw.cuda.synchronize()

    row = {"size": size, "max_rel_diff_gpu_vs_cpu": diff,
           "ours_e2e_ms": _median_ms(ours_e2e, reps), "ours_device_ms": _median_ms(ours_dev, reps)}
    row["ours_fps_e2e"] = 1e3 / row["ours_e2e_ms"]
    # the Detector's own path: the network captured once into a CUDA graph, then replayed
    got = gdet.forward(x)
    if gdet.graph_error is None:
        row["graph_max_rel_diff_vs_cpu"] = max(float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-12))
                                               for g, r in zip(got, ref))
        graph = gdet._graphs[x.shape][0]

        def graph_dev():
            graph.replay()
            fw.cuda.synchronize()

        row["ours_graph_e2e_ms"] = _median_ms(lambda: gdet.forward(x), reps)
        row["ours_graph_device_ms"] = _median_ms(graph_dev, reps)
        row["ours_graph_fps_e2e"] = 1e3 / row["ours_graph_e2e_ms"]
    else:
        row["graph_error"] = gdet.graph_error
    if tnet is not None:
        xt = torch.from_numpy(x).cuda()

        def t_e2e():
            with torch.no_grad():
                h, r = tnet(torch.from_numpy(x).cuda())
                h.cpu().numpy(), r.cpu().numpy()

        def t_dev():
            with torch.no_grad():
                tnet(xt)
            torch.cuda.synchronize()

        row["torch_e2e_ms"] = _median_ms(t_e2e, reps)
        row["torch_device_ms"] = _median_ms(t_dev, reps)
        row["speedup_e2e"] = row["torch_e2e_ms"] / row["ours_e2e_ms"]
        row["speedup_device"] = row["torch_device_ms"] / row["ours_device_ms"]
        try:  # PyTorch's own CUDA graph of the same network, as the like-for-like reference
            static = torch.from_numpy(x).cuda()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(3):
                    tnet(static)
            torch.cuda.current_stream().wait_stream(side)
            tg = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(tg):
                th, tr = tnet(static)

            def t_graph_e2e():
                static.copy_(torch.from_numpy(x))
                tg.replay()
                th.cpu().numpy(), tr.cpu().numpy()

            def t_graph_dev():
                tg.replay()
                torch.cuda.synchronize()

            row["torch_graph_e2e_ms"] = _median_ms(t_graph_e2e, reps)
            row["torch_graph_device_ms"] = _median_ms(t_graph_dev, reps)
        except Exception as e:  # (reported, not fatal: the eager reference stands)
            row["torch_graph_error"] = f"{type(e).__name__}: {e}"
        if "ours_graph_e2e_ms" in row and "torch_graph_e2e_ms" in row:  # like for like: graph and graph
            row["speedup_graph_e2e"] = row["torch_graph_e2e_ms"] / row["ours_graph_e2e_ms"]
            row["speedup_graph_device"] = row["torch_graph_device_ms"] / row["ours_graph_device_ms"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 480, 640])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    bad = [s for s in a.sizes if s <= 0 or s % 32]
    if bad:
        ap.error(f"--sizes must be positive multiples of 32, got {bad}")

    import framework as fw

    if not fw.cuda.is_available():
        print(json.dumps({"benchmark": "perception_gpu", "gpu": False,
                          "error": "no CUDA device with CuPy: nothing was measured"}))
        return 2
    from apps.perception import load_default_model
    from apps.perception.detector import Detector
    from benchmarks.perception import copy_to_torch, fuse_torch, torch_model

    det = load_default_model()
    cpu_net = det.net
    import copy

    gpu_net = copy.deepcopy(cpu_net).to("cuda")
    gdet = Detector(copy.deepcopy(det.model), size=max(a.sizes), device="cuda")
    fw.backends.cudnn.benchmark = True
    try:
        import torch

        tnet = None
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
            tm = torch_model(len(det.classes), det.card.get("architecture", {}).get("width", 1.0))
            copy_to_torch(det.model, tm)
            tnet = fuse_torch(tm.eval()).cuda()
    except ImportError:
        torch, tnet = None, None

    rows = []
    for size in a.sizes:
        rows.append(_measure(size, cpu_net, gpu_net, gdet, tnet, torch, a.reps))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    doc = {"benchmark": "perception_gpu", "gpu": True, "device": fw.cuda.get_device_name(),
           "torch": None if torch is None else torch.__version__, "reps": a.reps,
           "speedup": "t_torch / t_ours (>1: ours faster)", "target": "ours_graph_fps_e2e >= 300 at 320",
           "results": rows}
    emit(doc, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
