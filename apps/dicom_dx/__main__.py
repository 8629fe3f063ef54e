"""Command line: `python -m apps.dicom_dx {synth,train,evaluate,analyze,explain} ...` (also `dicom-dx`).

Exit codes: 0 success (also when some files of a batch are broken: they are recorded), 2 usage
error (bad arguments, missing input), 1 unexpected failure.
"""

from __future__ import annotations

import os

# One BLAS thread per process: the CPU backend runs many small matrix products, where BLAS threads
# only add contention (measured 20-50x slower training steps on a loaded 2-core machine).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

log = logging.getLogger("apps.dicom_dx")


def _tqdm_progress(desc: str, enabled: bool):
    if not enabled:
        return None, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None, lambda: None
    bar = tqdm(desc=desc, unit="img", file=sys.stderr)

    def cb(done, total, *_):
        bar.total = total
        bar.n = done
        bar.refresh()

    return cb, bar.close


def _read_card(path: str) -> dict:
    """A data set card (YAML) → dict; `path` inside it is relative to the repository root."""
    import yaml

    return yaml.safe_load(Path(path).read_text()) or {}


def cmd_synth(a) -> int:
    from apps.dicom_dx.synth import _check_only_synthetic, generate

    try:
        _check_only_synthetic(Path(a.out))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cb, close = _tqdm_progress("synth", not a.quiet)
    prev = a.prevalence if a.prevalence is not None else 0.2
    path = generate(
        a.out,
        a.n,
        seed=a.seed,
        prevalence=prev,
        negatives=a.negatives,
        size_range=(a.min_size, a.max_size),
        transfer_syntax=a.transfer_syntax,
        progress=cb,
    )
    close()
    print(json.dumps({"labels": str(path), "n": a.n, "negatives": a.negatives, "seed": a.seed}))
    return 0


def cmd_train(a) -> int:
    from apps.dicom_dx.train import ResumeError, TrainConfig, train

    data, val, extra = a.data, a.val, {}
    if data.endswith((".yaml", ".yml")):
        card = _read_card(data)
        extra = {"card": data, "name": card.get("name")}
        data = card["splits"]["train"]["path"]
        val = val or card["splits"].get("val", {}).get("path")
    if not Path(data).exists():
        print(f"error: training data not found: {data}", file=sys.stderr)
        return 2
    cfg = TrainConfig(
        data=data,
        val=val,
        out=a.out,
        size=a.size,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        seed=a.seed,
        sensitivity=a.sensitivity,
        device=a.device,
        workers=a.workers,
        resume=a.resume,
        cache=a.cache,
        max_train=a.max_train,
        extra=extra,
    )
    try:
        card = train(cfg)
    except ResumeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from apps.dicom_dx.evaluate import json_safe

    summary = {
        "model": str(Path(a.out) / "model.safetensors"),
        "val_macro_auroc": card["validation"]["macro_auroc"],
        "thresholds": card["thresholds"],
    }
    print(json.dumps(json_safe(summary), indent=1, allow_nan=False))
    return 0


def _predictor(a):
    from apps.dicom_dx.inference import load_default_model

    return load_default_model(a.model, device=getattr(a, "device", "cpu"))


def _overwrites_input(outputs, inputs) -> str | None:
    """The first output (flag, path) that would write over an input file or a DICOM file, as a message."""
    for flag, out in outputs:
        if not out or not Path(out).is_file():
            continue
        for src in inputs:
            if src and Path(src).exists() and Path(out).samefile(src):
                return f"error: {flag} {out} is one of the inputs: it would be overwritten"
        with open(out, "rb") as f:
            head = f.read(132)
        if head[128:132] == b"DICM":
            return f"error: {flag} {out} is a DICOM file: it would be overwritten"
    return None


def cmd_evaluate(a) -> int:
    from apps.dicom_dx.evaluate import evaluate

    if not Path(a.data).exists():
        print(f"error: data not found: {a.data}", file=sys.stderr)
        return 2
    problem = _overwrites_input([("--out", a.out), ("--plot", a.plot)], [a.data])
    if problem:
        print(problem, file=sys.stderr)
        return 2
    cb, close = _tqdm_progress("evaluate", not a.quiet)
    rep = evaluate(
        a.data, _predictor(a), out_json=a.out, plot=a.plot, workers=a.workers, limit=a.limit, progress=cb
    )
    close()
    short = {
        "macro_auroc": rep["macro_auroc"],
        "auroc": {f: v["auroc"] for f, v in rep["findings"].items()},
        "gate": {k: rep["gate"][k] for k in ("chest_rejected", "negatives_rejected")},
    }
    from apps.dicom_dx.evaluate import json_safe

    print(json.dumps(json_safe(short), indent=1, allow_nan=False))  # undefined AUROC: null, not NaN
    return 0


def cmd_analyze(a) -> int:
    from apps.dicom_dx.analyze import analyze, iter_inputs

    try:
        for _ in iter_inputs(a.inputs):
            break
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # the results database is reopened to resume, so --out may exist; never as one of the studies
    problem = _overwrites_input([("--out", a.out), ("--csv", a.csv), ("--json", a.json)], a.inputs)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    cb, close = _tqdm_progress("analyze", not a.quiet)
    try:
        s = analyze(
            a.inputs,
            a.out,
            predictor=_predictor(a),
            csv_path=a.csv,
            json_path=a.json,
            heatmaps=a.heatmaps,
            workers=a.workers,
            batch_size=a.batch_size,
            include_phi=a.include_phi,
            progress=cb,
            limit=a.limit,
        )
    except KeyboardInterrupt:
        close()
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    close()
    print(json.dumps(s.as_dict(), indent=1))
    return 0


def cmd_explain(a) -> int:
    from apps.dicom_dx.deid import safe_path_label
    from apps.dicom_dx.explain import explain, write_overlays
    from apps.dicom_dx.inference import predict
    from apps.dicom_dx.io import DicomReadError, read_dicom

    if not Path(a.input).is_file():
        print(f"error: no such file: {a.input}", file=sys.stderr)
        return 2
    pred = _predictor(a)
    label = Path(a.input).name if a.include_phi else safe_path_label(a.input)
    try:
        img = read_dicom(a.input)
    except DicomReadError as e:
        print(json.dumps({"file": label, "error": e.reason}))
        return 0
    res = predict(img, pred)
    out = {"file": label, **res.as_dict()}
    if res.accepted:
        findings = a.findings or [f for f, v in res.findings.items() if v] or list(res.findings)
        maps = explain(img, pred, findings)
        stem = Path(a.input).stem if a.include_phi else label.rsplit(".", 1)[0]
        out["heatmaps"] = [str(p) for p in write_overlays(img, maps, a.out, stem)]
    print(json.dumps(out, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dicom-dx", description="Chest radiograph findings from DICOM.")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="write synthetic chest radiographs (and gate negatives) as DICOM")
    s.add_argument("--out", required=True)
    s.add_argument("--n", type=int, required=True, help="chest radiographs")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--negatives", type=int, default=0, help="other anatomy / modalities for the gate")
    s.add_argument("--prevalence", type=float, default=None, help="per finding (default 0.2)")
    s.add_argument("--min-size", type=int, default=1500)
    s.add_argument("--max-size", type=int, default=3000)
    s.add_argument("--transfer-syntax", default=None, help="force one transfer syntax UID")
    s.set_defaults(func=cmd_synth)

    t = sub.add_parser("train", help="train a model from a data set folder or card")
    t.add_argument("--data", required=True, help="data set folder or datasets/*.yaml card")
    t.add_argument("--val", default=None)
    t.add_argument("--out", required=True)
    t.add_argument("--size", type=int, default=160)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--sensitivity", type=float, default=0.9, help="per-finding operating sensitivity")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--cache", default=None, help="folder for the decoded-once image cache")
    t.add_argument("--max-train", type=int, default=None)
    t.add_argument("--resume", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="AUROC, sensitivity/specificity, calibration, gate rates")
    e.add_argument("--data", required=True)
    e.add_argument("--model", default=None, help="model.safetensors (default: the committed model)")
    e.add_argument("--out", default=None, help="JSON report")
    e.add_argument("--plot", default=None, help="reliability diagram PNG")
    e.add_argument("--workers", type=int, default=2)
    e.add_argument("--limit", type=int, default=None)
    e.set_defaults(func=cmd_evaluate)

    an = sub.add_parser("analyze", help="batch analysis into SQLite (resumable)")
    an.add_argument("inputs", nargs="+", help="folders, files or DICOMDIRs")
    an.add_argument("--out", required=True, help="results.sqlite")
    an.add_argument("--csv", default=None)
    an.add_argument("--json", default=None)
    an.add_argument("--heatmaps", default=None, help="folder for Grad-CAM overlays of positive findings")
    an.add_argument("--model", default=None)
    an.add_argument("--workers", type=int, default=2, help="decoding processes")
    an.add_argument("--batch-size", type=int, default=16)
    an.add_argument("--limit", type=int, default=None)
    an.add_argument("--include-phi", action="store_true", help="store real UIDs, patient ID/name, file paths")
    an.set_defaults(func=cmd_analyze)

    x = sub.add_parser("explain", help="Grad-CAM overlays per finding for one file")
    x.add_argument("input")
    x.add_argument("--out", required=True, help="folder for PNG overlays")
    x.add_argument("--findings", nargs="*", default=None)
    x.add_argument("--model", default=None)
    x.add_argument("--include-phi", action="store_true")
    x.set_defaults(func=cmd_explain)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pydicom").setLevel(logging.ERROR)  # its warnings may quote element values
    try:
        return int(a.func(a) or 0)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
