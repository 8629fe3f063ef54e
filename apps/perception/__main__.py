"""Command line: ``python -m apps.perception {synth,cache,train,evaluate,demo,track}`` (``perception``)."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _progress(desc):
    from tqdm import tqdm

    bar = {}

    def cb(k, n):
        if "b" not in bar:
            bar["b"] = tqdm(total=n, desc=desc, dynamic_ncols=True)
        bar["b"].update(1)
        if k == n:
            bar["b"].close()

    return cb


def _line(s: str | None):
    if not s:
        return None
    v = [float(t) for t in s.split(",")]
    if len(v) != 4:
        raise SystemExit("--line expects x0,y0,x1,y1 (pixels)")
    return (v[0], v[1]), (v[2], v[3])


def cmd_synth(a):
    from .synth import write_dataset, write_video

    if a.video:
        write_video(
            a.video,
            a.frames,
            a.seed,
            a.width,
            a.height,
            a.fps,
            labels_json=os.path.splitext(a.video)[0] + "_labels.json",
            progress=_progress("render"),
        )
        print(json.dumps(dict(video=a.video, frames=a.frames, seed=a.seed)))
    if a.out:
        print(json.dumps(write_dataset(a.out, a.n, a.seed, a.width, a.height, progress=_progress("synth"))))
    if not a.out and not a.video:
        raise SystemExit("synth: give --out DIR (labelled frames) and/or --video clip.mp4")


def cmd_cache(a):
    from .data import build_cache

    print(json.dumps(build_cache(a.out, a.n, a.seed, a.size, a.width, a.height, progress=_progress("cache"))))


def _cache_size(root: str, default: int = 320) -> int:
    try:
        with open(os.path.join(root, "meta.json")) as f:
            return int(json.load(f).get("size", default))
    except (OSError, ValueError, TypeError):
        return default


def cmd_train(a):
    from .train import train

    if a.size is None:
        a.size = _cache_size(a.data)
    st = train(
        a.data,
        a.out,
        val=a.val,
        steps=a.steps,
        batch=a.batch,
        lr=a.lr,
        size=a.size,
        width=a.width,
        seed=a.seed,
        device=a.device,
        resume=a.resume,
        eval_every=a.eval_every,
        val_images=a.val_images,
        mosaic=a.mosaic,
        time_budget_min=a.time_budget,
        crop=a.crop or None,
        init=a.init,
        giou=a.giou,
        workers=a.workers,
    )
    print(json.dumps(st))


def cmd_evaluate(a):
    from .evaluate import evaluate_cache, evaluate_folder, format_report

    if os.path.exists(os.path.join(a.data, "images.npy")):
        from . import load_model

        det = load_model(a.weights, device=a.device)
        m = evaluate_cache(det.model, a.data, det.size, a.limit, a.device, a.save_json)
    else:
        from . import load_model

        m = evaluate_folder(load_model(a.weights, device=a.device), a.data, a.save_json, a.limit)
    print(format_report(m), file=sys.stderr)
    m.pop("pr_curve", None)
    print(json.dumps(m))


def cmd_demo(a, track=True):
    from . import load_model
    from .demo import format_summary, run
    from .stream import SourceError

    det = load_model(a.weights, device=a.device, conf=a.conf)
    try:
        s = run(
            a.source,
            det,
            track=track,
            headless=a.headless,
            save=a.save,
            realtime=not a.every_frame,
            max_frames=a.max_frames,
            line=_line(a.line),
            log=lambda m: print(m, file=sys.stderr),
        )
    except SourceError as e:
        raise SystemExit(f"error: {e}") from None
    print(format_summary(s))
    if a.json:
        print(json.dumps(s))


def _set_threads(argv) -> None:
    """``--threads N`` (default 1) before NumPy loads: BLAS and the framework's convolution pool.

    One inference thread leaves the second core to capture and video encoding, and keeps the model time
    steady on a loaded machine (multi-threaded BLAS stalls when its threads are descheduled). Variables
    already set in the environment win.
    """
    n = "1"
    if "--threads" in argv:
        i = argv.index("--threads")
        n = argv[i + 1] if i + 1 < len(argv) else n
        del argv[i : i + 2]
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FRAMEWORK_CONV_THREADS"):
        os.environ.setdefault(v, n)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "numpy" not in sys.modules:
        _set_threads(argv)
    elif "--threads" in argv:
        i = argv.index("--threads")
        del argv[i : i + 2]
    p = argparse.ArgumentParser(
        prog="perception",
        description="Driving perception: detection and tracking. Global option: --threads N (default 1) "
        "for BLAS and the framework's convolutions, set before NumPy loads.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser(
        "synth", help="render synthetic road scenes (YOLO txt + COCO json) and/or a drive video"
    )
    s.add_argument("--out")
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--video")
    s.add_argument("--frames", type=int, default=300)
    s.add_argument("--fps", type=float, default=30.0)
    s.add_argument("--width", type=int, default=640)
    s.add_argument("--height", type=int, default=480)
    s.set_defaults(fn=cmd_synth)

    c = sub.add_parser(
        "cache", help="render frames letterboxed to the model size into .npy arrays for training"
    )
    c.add_argument("--out", required=True)
    c.add_argument("--n", type=int, default=6000)
    c.add_argument("--seed", type=int, default=1001)
    c.add_argument("--size", type=int, default=320)
    c.add_argument("--width", type=int, default=640)
    c.add_argument("--height", type=int, default=480)
    c.set_defaults(fn=cmd_cache)

    t = sub.add_parser("train", help="train the detector on a cache")
    t.add_argument("--data", required=True)
    t.add_argument("--val")
    t.add_argument("--out", default="runs/perception")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--size", type=int, default=None, help="model input size (default: the cache's size)")
    t.add_argument("--width", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--mosaic", type=float, default=0.3)
    t.add_argument("--crop", type=int, default=224, help="random training crops (0 = whole frames)")
    t.add_argument("--eval-every", type=int, default=500)
    t.add_argument("--val-images", type=int, default=300)
    t.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="minutes; the cosine follows the clock and ends when the budget is spent",
    )
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.add_argument(
        "--workers",
        type=int,
        default=2,
        help="threads preparing batches (more feed a GPU; the batches do not depend on it)",
    )
    t.add_argument("--resume", action="store_true")
    t.add_argument(
        "--init",
        help="start from these weights (e.g. the committed detector) with a fresh optimizer and schedule",
    )
    t.add_argument(
        "--giou", type=float, default=0.0, help="weight of a 1 - GIoU box loss added to the L1 loss (0 = off)"
    )
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser(
        "evaluate", help="COCO-style mAP on a cache or a labelled folder (YOLO/COCO/KITTI/VOC)"
    )
    e.add_argument("--data", required=True)
    e.add_argument("--weights", default=None)
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--save-json", default=None)
    e.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    e.set_defaults(fn=cmd_evaluate)

    for name, helptext in (
        ("demo", "real-time detection + tracking on a camera, file, folder or stream"),
        ("track", "like demo; tracking is the point (ids, optional --line counts)"),
    ):
        d = sub.add_parser(name, help=helptext)
        d.add_argument("--source", default="0", help="camera index, video file, image folder or rtsp:// URL")
        d.add_argument("--weights", default=None)
        d.add_argument("--conf", type=float, default=None)
        d.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        d.add_argument("--headless", action="store_true", help="no window")
        d.add_argument("--save", default=None, help="write the annotated video (.mp4 or .webm)")
        d.add_argument(
            "--every-frame", action="store_true", help="process every frame of a file (no pacing/drops)"
        )
        d.add_argument("--max-frames", type=int, default=None)
        d.add_argument("--line", default=None, help="x0,y0,x1,y1: count tracks crossing this segment")
        d.add_argument("--json", action="store_true", help="also print the summary as JSON")
        d.set_defaults(fn=cmd_demo)
    a = p.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
