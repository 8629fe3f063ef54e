"""Command line: ``python -m apps.perception {synth,cache,train,evaluate,demo,track}`` (``perception``)."""

from __future__ import annotations

import argparse
import json
import math
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
    try:
        v = [float(t) for t in s.split(",")]
    except ValueError:
        v = []
    if len(v) != 4 or not all(map(math.isfinite, v)):
        raise SystemExit(f"--line expects x0,y0,x1,y1 (four numbers, pixels), got {s!r}")
    return (v[0], v[1]), (v[2], v[3])


def _number(kind, lo=None, hi=None, lo_open=False):
    """An argparse type: ``kind`` (int or float) in [lo, hi] (``lo_open``: above lo), else a usage error."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo}, got {text}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi}, got {text}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _model_size(text: str) -> int:
    v = _number(int, 32)(text)
    if v % 32:  # the network halves the resolution five times and adds the FPN levels back together
        raise argparse.ArgumentTypeError(f"must be a multiple of 32 (the network's total stride), got {v}")
    return v


def _crop(text: str) -> int:
    return 0 if _number(int, 0)(text) == 0 else _model_size(text)


def _out_dir(path: str, flag: str = "--out") -> str:
    """``path`` as an output folder: an existing file there is an error, not a traceback later."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise SystemExit(f"error: {flag} {path!r} is a file, not a folder")
    return path


_FLIP_HELP = "also run the network on each frame mirrored and average the two (finer boxes, 2x model time)"


def _load(weights, device, conf=None, flip_test=False, rescore=True):
    """The detector, with damaged or mismatched weights reported in one line."""
    from framework.serialization import CheckpointError

    from . import load_model

    try:
        return load_model(weights, device=device, conf=conf, flip_test=flip_test, rescore=rescore)
    except CheckpointError as e:
        raise SystemExit(f"error: --weights: {e}") from None
    except RuntimeError as e:
        if not str(e).startswith("Error(s) in loading state_dict"):
            raise SystemExit(f"error: {e}") from None
        # load_state_dict: the card beside the weights describes another network
        first = str(e).split("\n\t")[1].strip() if "\n\t" in str(e) else str(e)
        raise SystemExit(
            f"error: --weights {weights!r} do not fit the network described by the model_card.json beside "
            f"them (width, classes): {first}"
        ) from None


def cmd_synth(a):
    from .synth import write_dataset, write_video

    if not a.out and not a.video:
        raise SystemExit("synth: give --out DIR (labelled frames) and/or --video clip.mp4")
    if a.out:
        _out_dir(a.out)
        if os.path.isdir(a.out) and os.listdir(a.out) and not a.overwrite:  # before the video is rendered
            raise SystemExit(f"error: --out {a.out!r} is not empty: choose a new folder, or add --overwrite "
                             "to replace a data set that synth wrote there")
    if a.video and os.path.isdir(a.video):
        raise SystemExit(f"error: --video {a.video!r} is a folder; give a file name such as clip.mp4")
    if a.video:
        try:
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
        except RuntimeError as e:  # no encoder for this container (e.g. a .txt name): one line
            raise SystemExit(f"perception synth: error: {e}") from None
        print(json.dumps(dict(video=a.video, frames=a.frames, seed=a.seed)))
    if a.out:
        print(json.dumps(write_dataset(a.out, a.n, a.seed, a.width, a.height, progress=_progress("synth"),
                                       overwrite=a.overwrite)))


def cmd_cache(a):
    from .data import build_cache

    _out_dir(a.out)
    print(json.dumps(build_cache(a.out, a.n, a.seed, a.size, a.width, a.height, progress=_progress("cache"))))


def _cache_size(root: str, default: int = 320) -> int:
    try:
        with open(os.path.join(root, "meta.json")) as f:
            return int(json.load(f).get("size", default))
    except (OSError, ValueError, TypeError):
        return default


def cmd_train(a):
    from .train import train

    if not os.path.exists(os.path.join(a.data, "images.npy")):
        raise SystemExit(
            f"error: --data {a.data!r} is not a training cache (no images.npy; make one with "
            "`python -m apps.perception cache`)"
        )
    if a.val and not os.path.exists(os.path.join(a.val, "images.npy")):
        raise SystemExit(f"error: --val {a.val!r} is not a cache (no images.npy)")
    _out_dir(a.out)
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
    from .train import _json_safe

    if not os.path.exists(a.data):
        raise SystemExit(f"error: --data {a.data!r}: no such file or folder")
    if a.save_json and os.path.exists(a.save_json):  # the data set's own files are never written over
        inside = os.path.isdir(a.data) and os.path.commonpath(
            [os.path.realpath(a.data), os.path.realpath(a.save_json)]) == os.path.realpath(a.data)
        if inside or os.path.samefile(a.save_json, a.data):
            raise SystemExit(f"error: --save-json {a.save_json!r} is an existing file of --data {a.data!r}: "
                             "write the detections elsewhere")
    det = _load(a.weights, a.device, flip_test=a.flip_test, rescore=not a.no_rescore)
    if det.rescorer is not None:
        print("boxes ranked by the rescorer's confidence (--no-rescore: by score x quality)", file=sys.stderr)
    if os.path.exists(os.path.join(a.data, "images.npy")):
        if a.kitti_difficulty:
            raise SystemExit("error: --kitti-difficulty applies to a KITTI folder, not to a training cache")
        cache_size = _cache_size(a.data, det.size)
        if cache_size != det.size:  # the frames were letterboxed when the cache was made
            print(
                f"note: the cache holds {cache_size} px frames and the model's input size is {det.size} px: "
                f"evaluated at {cache_size} px (make a cache with --size {det.size} to measure the model as "
                "deployed)",
                file=sys.stderr,
            )
        m = evaluate_cache(det.model, a.data, det.size, a.limit, a.device, a.save_json, a.flip_test,
                           rescorer=det.rescorer)
    else:
        m = evaluate_folder(det, a.data, a.save_json, a.limit, kitti_difficulty=a.kitti_difficulty)
    print(format_report(m), file=sys.stderr)
    m.pop("pr_curve", None)
    print(json.dumps(_json_safe(m), allow_nan=False))  # undefined metrics (no ground truth) are null


def cmd_rescorer(a):
    from . import rescore
    from .detector import DEFAULT_WEIGHTS
    from .evaluate import cache_samples, predict_cache
    from .metrics import evaluate
    from .train import _json_safe

    for root in a.data + ([a.val] if a.val else []):
        if not os.path.exists(os.path.join(root, "images.npy")):
            raise SystemExit(f"error: {root!r} is not a cache (python -m apps.perception cache)")
    if os.path.exists(a.out):
        raise SystemExit(f"error: --out {a.out!r} exists: choose another file or remove it")
    det = _load(a.weights, a.device, rescore=False)
    weights = a.weights or DEFAULT_WEIGHTS
    x, y, w, frames = rescore.collect(det.model, a.data, a.device)
    left_out = int((w == 0).sum())
    print(f"{frames} frames, {len(y)} boxes ({left_out} in ignore regions, left out)", file=sys.stderr)
    meta = {"input_size": det.size, "detector_sha256": rescore.sha256_file(weights),
            "data": [os.path.normpath(r) for r in a.data], "frames": frames, "boxes": int(len(y))}
    model = rescore.train(x, y, w, meta, hidden=a.hidden, steps=a.steps, seed=a.seed,
                          progress=lambda s, v: print(f"step {s} loss {v:.4f}", file=sys.stderr))
    out = {"frames": frames, "boxes": int(len(y))}
    if a.val:  # one pass of the network over the validation frames, ranked both ways
        gts = cache_samples(a.val)
        dets = predict_cache(det.model, a.val, device=a.device, features=True)
        rankings = (("score_x_quality", dets), ("rescorer", [model(d) for d in dets]))
        out["val"] = {k: {"mAP50": m["mAP50"], "mAP50_95": m["mAP50_95"]}
                      for k, m in ((k, evaluate(gts, ds)) for k, ds in rankings)}
        model.meta["val"] = json.dumps(_json_safe(out["val"]))
    model.save(a.out)
    print(json.dumps(_json_safe(out), allow_nan=False))


def cmd_demo(a, track=True):
    from .demo import format_summary, run
    from .mot import TrackWriter, frame_from_tracks, read_track_labels
    from .stream import SourceError

    line = _line(a.line)
    scoring = bool(getattr(a, "gt", None))  # score the tracks: every frame, in order, against the labels
    hyps, labels = {}, None
    if scoring:
        _score_classes(a.score_classes)  # mistakes in the options or the labels show before the video runs
        labels = read_track_labels(a.gt)
    det = _load(a.weights, a.device, a.conf, a.flip_test, rescore=False)  # (the demo shows scores)
    out = getattr(a, "save_tracks", None)
    _refuse_overwrite([("--save", a.save), ("--save-tracks", out)],
                      [("--source", a.source), ("--gt", getattr(a, "gt", None)), ("--save", a.save)])
    writer = TrackWriter(out, a.tracks_format) if out else None

    def on_frame(r):
        if scoring:
            hyps[r.index] = frame_from_tracks(r.tracks)
        if writer is not None:
            writer.write(r.index, r.tracks)

    try:
        s = run(
            a.source,
            det,
            track=track,
            headless=a.headless,
            save=a.save,
            realtime=not (a.every_frame or scoring),
            max_frames=a.max_frames,
            line=line,
            on_frame=on_frame if scoring or writer is not None else None,
            reconnect_timeout=a.reconnect_timeout,
            log=lambda m: print(m, file=sys.stderr),
            track_across_classes=a.across_classes,
            tracker_options=_tracker_options(a),
        )
    except SourceError as e:
        raise SystemExit(f"error: {e}") from None
    finally:
        if writer is not None:
            writer.close()
    print(format_summary(s))
    if scoring:
        s["tracking"] = _score_tracks(a, labels, hyps)
    if a.json:
        print(json.dumps(s))


def _refuse_overwrite(outputs, inputs) -> None:
    """An output file that is one of the inputs (or another output) is a usage error: the input would be
    destroyed while it is read."""
    for oflag, out in outputs:
        if not out or not os.path.exists(out):
            continue
        for iflag, other in inputs:
            if iflag != oflag and other and os.path.exists(other) and os.path.samefile(out, other):
                raise SystemExit(f"error: {oflag} {out!r} is the {iflag} file: it would be overwritten")


def _score_classes(text):
    """``--score-classes car,pedestrian`` -> class ids (None: all)."""
    from .classes import CLASSES, class_id

    if not text:
        return None
    ids = []
    for name in text.split(","):
        c = class_id(name)
        if not isinstance(c, int):
            raise SystemExit(f"error: --score-classes: {name.strip()!r} is not one of {', '.join(CLASSES)}")
        ids.append(c)
    return ids


def _tracker_options(a) -> dict:
    """The SORT arguments given on the command line (the others keep the tracker's defaults)."""
    return {k: getattr(a, k) for k in ("max_age", "min_hits", "coast") if getattr(a, k) is not None}


def _score_tracks(a, labels, hyps):
    from .mot import evaluate_tracking, format_tracking_report

    n = len(hyps)
    if sorted(hyps) != list(range(n)):
        missing = sorted(set(range(n)) - set(hyps))[:5]
        raise SystemExit(f"error: --gt: frames {missing} of the video were not processed")
    gt = labels.fit(n, truncate=a.max_frames is not None and n == a.max_frames)
    m = evaluate_tracking(gt, [hyps[k] for k in range(n)], a.iou, class_aware=not a.any_class,
                          scored=_score_classes(a.score_classes))
    print(format_tracking_report(m), file=sys.stderr)
    return m


def _set_threads(argv, apply: bool = True) -> None:
    """``--threads N`` (default 1) before NumPy loads: BLAS and the framework's convolution pool.

    For ``train`` and ``evaluate``, N >= 2 threads are the framework's own (BLAS keeps one): the
    convolutions and their gradients run over groups of a batch's images in parallel (measured on 2
    cores, a training step of the detector at batch 16, 256x256: 285 ms against 345 ms with two BLAS
    threads).
    One inference thread leaves the second core to capture and video encoding, and keeps the model time
    steady on a loaded machine (multi-threaded BLAS stalls when its threads are descheduled). With
    ``--flip-test`` the detector runs the frame and its mirror image as two calls at once on N threads
    (``framework.utils.parallel``) and BLAS keeps one: its own threads would take the cores the calls
    need (measured at 640x480 on 2 cores: 21 ms for the pair so, 29-33 ms as one batch of two with one
    or two BLAS threads). Variables already set in the environment win.
    """
    n = "1"
    if "--threads" in argv:
        i = argv.index("--threads")
        n = argv[i + 1] if i + 1 < len(argv) else ""
        if not (n.isdigit() and int(n) >= 1):
            raise SystemExit(f"perception: error: --threads needs a whole number >= 1, got {n!r}")
        del argv[i : i + 2]
    if not apply:  # NumPy is already loaded (called from Python): too late to take effect
        return
    # Batched work (training, evaluation, the flip test's pair) runs over groups of images on the
    # framework's N threads with BLAS on one (framework.set_num_threads); single frames gain more from
    # BLAS's own threads (detector at 640x480, 2 cores: 26-27 ms so, 32-35 ms on the framework's).
    command = next((v for v in argv if not v.startswith("-")), "")
    batched = "--flip-test" in argv or command in ("train", "evaluate")
    blas = "1" if batched and int(n) >= 2 else n
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(v, blas)
    os.environ.setdefault("FRAMEWORK_CONV_THREADS", n)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    _set_threads(argv, apply="numpy" not in sys.modules)
    p = argparse.ArgumentParser(
        prog="perception",
        description="Driving perception: detection and tracking. Global option: --threads N (default 1), "
        "set before NumPy loads: train, evaluate and --flip-test compute on the framework's N threads with "
        "BLAS on one; single frames (demo, track) give BLAS the N threads.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser(
        "synth", help="render synthetic road scenes (YOLO txt + COCO json) and/or a drive video"
    )
    s.add_argument("--out")
    s.add_argument("--n", type=_number(int, 1), default=100)
    s.add_argument("--seed", type=_number(int, 0), default=0)
    s.add_argument("--video")
    s.add_argument("--overwrite", action="store_true",
                   help="replace the data set synth wrote in --out before (a folder with anything else is "
                   "refused)")
    s.add_argument("--frames", type=_number(int, 1), default=300)
    s.add_argument("--fps", type=_number(float, 0, lo_open=True), default=30.0)
    s.add_argument("--width", type=_number(int, 32), default=640)
    s.add_argument("--height", type=_number(int, 32), default=480)
    s.set_defaults(fn=cmd_synth)

    c = sub.add_parser(
        "cache", help="render frames letterboxed to the model size into .npy arrays for training"
    )
    c.add_argument("--out", required=True)
    c.add_argument("--n", type=_number(int, 1), default=6000)
    c.add_argument("--seed", type=_number(int, 0), default=1001)
    c.add_argument("--size", type=_model_size, default=320, help="multiple of 32")
    c.add_argument("--width", type=_number(int, 32), default=640)
    c.add_argument("--height", type=_number(int, 32), default=480)
    c.set_defaults(fn=cmd_cache)

    t = sub.add_parser("train", help="train the detector on a cache")
    t.add_argument("--data", required=True)
    t.add_argument("--val")
    t.add_argument("--out", default="runs/perception")
    t.add_argument("--steps", type=_number(int, 1), default=3000)
    t.add_argument("--batch", type=_number(int, 1), default=32)
    t.add_argument("--lr", type=_number(float, 0, lo_open=True), default=3e-3)
    t.add_argument(
        "--size",
        type=_model_size,
        default=None,
        help="model input size, a multiple of 32 (default: the cache's)",
    )
    t.add_argument("--width", type=_number(float, 0, lo_open=True), default=1.0)
    t.add_argument("--seed", type=_number(int, 0), default=0)
    t.add_argument("--mosaic", type=_number(float, 0, 1), default=0.3)
    t.add_argument(
        "--crop", type=_crop, default=224, help="random training crops, a multiple of 32 (0 = whole frames)"
    )
    t.add_argument("--eval-every", type=_number(int, 1), default=500)
    t.add_argument("--val-images", type=_number(int, 1), default=300)
    t.add_argument(
        "--time-budget",
        type=_number(float, 0, lo_open=True),
        default=None,
        help="minutes; the cosine follows the clock and ends when the budget is spent",
    )
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.add_argument(
        "--workers",
        type=_number(int, 1),
        default=2,
        help="threads preparing batches (more feed a GPU; the batches do not depend on it)",
    )
    t.add_argument("--resume", action="store_true")
    t.add_argument(
        "--init",
        help="start from these weights (e.g. the committed detector) with a fresh optimizer and schedule",
    )
    t.add_argument(
        "--giou",
        type=_number(float, 0),
        default=0.0,
        help="weight of a 1 - GIoU box loss added to the L1 loss (0 = off)",
    )
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser(
        "evaluate", help="COCO-style mAP on a cache or a labelled folder (YOLO/COCO/KITTI/VOC)"
    )
    e.add_argument("--data", required=True)
    e.add_argument("--weights", default=None)
    e.add_argument("--limit", type=_number(int, 1), default=None)
    e.add_argument("--save-json", default=None)
    e.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    e.add_argument(
        "--kitti-difficulty",
        default=None,
        choices=["easy", "moderate", "hard"],
        help="KITTI data: count only the objects of this benchmark level (the others are ignore regions)",
    )
    e.add_argument("--flip-test", action="store_true", help=_FLIP_HELP)
    e.add_argument("--no-rescore", action="store_true",
                   help="rank boxes by score x quality instead of the model card's rescorer")
    e.set_defaults(fn=cmd_evaluate)

    q = sub.add_parser("rescorer", help="train a detector's box rescorer on its outputs on cached frames")
    q.add_argument("--data", required=True, nargs="+", help="caches (python -m apps.perception cache) not "
                   "used to train the detector")
    q.add_argument("--weights", default=None)
    q.add_argument("--val", default=None,
                   help="a cache to compare rankings on (rescorer against score x quality)")
    q.add_argument("--out", required=True, help="the rescorer file to write (.safetensors)")
    q.add_argument("--steps", type=_number(int, 1), default=6000)
    q.add_argument("--hidden", type=_number(int, 1), default=64)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    q.set_defaults(fn=cmd_rescorer)

    for name, helptext in (
        ("demo", "real-time detection + tracking on a camera, file, folder or stream"),
        ("track", "like demo; tracking is the point (ids, optional --line counts)"),
    ):
        d = sub.add_parser(name, help=helptext)
        d.add_argument("--source", default="0", help="camera index, video file, image folder or rtsp:// URL")
        d.add_argument("--weights", default=None)
        d.add_argument("--conf", type=_number(float, 0, 1), default=None)
        d.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        d.add_argument("--headless", action="store_true", help="no window")
        d.add_argument("--save", default=None, help="write the annotated video (.mp4 or .webm)")
        d.add_argument(
            "--every-frame", action="store_true", help="process every frame of a file (no pacing/drops)"
        )
        d.add_argument("--max-frames", type=_number(int, 1), default=None)
        d.add_argument("--flip-test", action="store_true", help=_FLIP_HELP)
        d.add_argument("--line", default=None, help="x0,y0,x1,y1: count tracks crossing this segment")
        d.add_argument(
            "--across-classes",
            action="store_true",
            help="a track continues through a change of class (car/truck flicker); its class is the vote",
        )
        # left out: the tracker's defaults (apps.perception.track.Sort)
        d.add_argument("--max-age", type=_number(int, 0), help="frames a track outlives its detections (8)")
        d.add_argument("--min-hits", type=_number(int, 0), help="detections before a track is shown (3)")
        d.add_argument(
            "--coast",
            type=_number(int, 0),
            help="frames a track is still shown on its predicted box after its last detection (0)",
        )
        d.add_argument(
            "--reconnect-timeout",
            type=_number(float, 0, lo_open=True),
            default=30.0,
            metavar="SECONDS",
            help="how long a lost camera or stream (or a stream not up yet at start) is retried (default 30)",
        )
        d.add_argument("--json", action="store_true", help="also print the summary as JSON")
        if name == "track":
            d.add_argument(
                "--gt",
                default=None,
                metavar="LABELS.json",
                help="score the tracks against this clip's labels: synth --video's JSON, KITTI tracking "
                "label_02 txt or MOTChallenge gt.txt; MOTA, IDF1, ID switches, ... (implies --every-frame)",
            )
            d.add_argument(
                "--iou", type=_number(float, 0, 1, lo_open=True), default=0.5, help="--gt: IoU of a hit (0.5)"
            )
            d.add_argument(
                "--any-class", action="store_true", help="--gt: a track may match an object of another class"
            )
            d.add_argument(
                "--save-tracks",
                default=None,
                metavar="FILE",
                help="write every frame's tracks to FILE as they come (--tracks-format: mot = MOTChallenge "
                "results, kitti = KITTI tracking)",
            )
            d.add_argument("--tracks-format", default="mot", choices=["mot", "kitti"])
            d.add_argument(
                "--score-classes",
                default=None,
                metavar="NAMES",
                help="--gt: score only these classes, comma-separated (labels that cover only some, such as "
                "MOTChallenge's pedestrians); tracks of the others are left out",
            )
        d.set_defaults(fn=cmd_demo)
    a = p.parse_args(argv)
    if getattr(a, "device", "cpu") != "cpu":
        from framework.backend import cupy_module

        try:  # before any work: no GPU is a one-line answer, not a traceback after the data is loaded
            cupy_module()
        except RuntimeError as e:
            raise SystemExit(f"perception {a.cmd}: error: --device {a.device}: {e}") from None
    try:
        a.fn(a)
    except KeyboardInterrupt:
        hint = (
            " (a checkpoint was saved: continue with the same command and --resume)"
            if a.cmd == "train"
            else ""
        )
        print(f"perception {a.cmd}: interrupted{hint}", file=sys.stderr)
        raise SystemExit(130) from None
    except (OSError, ValueError, FloatingPointError) as e:
        # a user's mistake or a damaged input (missing file, bad cache, damaged checkpoint): one line,
        # not a traceback; CheckpointError is a ValueError
        raise SystemExit(f"perception {a.cmd}: error: {e}") from None


if __name__ == "__main__":
    main()
