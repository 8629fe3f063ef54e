"""Batch analysis throughput against pure pydicom decoding of the same files, in the same run.

    python -m benchmarks.dicom [--folder DIR] [--n 200] [--workers 2] [--out benchmarks/results/dicom.json]

Without --folder, writes 200 synthetic chest studies at full size (1500-3000 px, mixed transfer
syntaxes; seed 4) under datasets/chest_xray_synth/bench first. Reports images/s of
`apps.dicom_dx.analyze` (fresh database, default model, `workers` decoding processes), the share of
worker time spent decoding vs main-process inference, and the ratio of the whole analysis to the time
pydicom alone takes to read and decode the same files (dcmread + pixel_array, one process).
Target on 2 CPU cores: ratio ≤ 3.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks._report import emit  # noqa: E402


def pydicom_decode_seconds(files: list[Path]) -> float:
    import pydicom

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            ds = pydicom.dcmread(f)
            _ = ds.pixel_array
    return time.perf_counter() - t


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default="benchmarks/results/dicom.json")
    a = ap.parse_args(argv)

    from apps.dicom_dx.analyze import analyze, iter_inputs
    from apps.dicom_dx.inference import load_default_model

    folder = Path(a.folder) if a.folder else Path("datasets/chest_xray_synth/bench")
    if not a.folder and not (folder / "labels.csv").exists():
        from apps.dicom_dx.synth import generate

        generate(folder, a.n, seed=4, prevalence=0.25)
    files = list(iter_inputs([folder]))[: a.n]
    pred = load_default_model()
    # Warm the page cache and the model once so neither side pays first-touch costs.
    pydicom_decode_seconds(files[:4])
    ref = pydicom_decode_seconds(files)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        s = analyze(
            files, Path(tmp) / "bench.sqlite", predictor=pred, workers=a.workers, batch_size=a.batch_size
        )
        wall = time.perf_counter() - t
    worker = s.decode_seconds + s.infer_seconds
    sizes = []
    import pydicom

    for f in files[:50]:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        sizes.append(int(ds.Rows) * int(ds.Columns))
    out = {
        "benchmark": "dicom_dx analyze throughput vs pydicom decode",
        "files": len(files),
        "mean_megapixels": round(sum(sizes) / max(len(sizes), 1) / 1e6, 2),
        "workers": a.workers,
        "analyze_seconds": round(wall, 2),
        "analyze_images_per_s": round(len(files) / wall, 2),
        "pydicom_decode_seconds": round(ref, 2),
        "pydicom_images_per_s": round(len(files) / ref, 2),
        "ratio_analyze_to_pydicom_decode": round(wall / ref, 2),
        "target_ratio": 3.0,
        "decode_share": round(s.decode_seconds / worker, 3) if worker else None,
        "inference_share": round(s.infer_seconds / worker, 3) if worker else None,
        "decode_cpu_seconds": round(s.decode_seconds, 2),
        "inference_seconds": round(s.infer_seconds, 2),
        "accepted": s.accepted,
        "rejected": s.rejected,
        "errors": s.errors,
        "model_version": pred.version,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "note": "decode time (ours) includes the display pipeline, gate checks and resizing to the input",
    }
    emit(out, a.out)
    return out


if __name__ == "__main__":
    main()
