"""Chest-radiograph findings from DICOM: reader, synthetic studies, training, batch analysis, Grad-CAM.

Public API (what the dashboard and scripts call; names are imported lazily, so `import apps.dicom_dx`
is cheap). `explain`, `analyze` and `evaluate` share their names with their modules, so import them from
there (`from apps.dicom_dx.analyze import analyze`): a package attribute would be replaced by the module
as soon as the module is imported.

    read_dicom(source, *, frame=0, voi_index=0, window=None) -> DicomImage
        source: path, bytes or binary stream. DicomImage.image float32 (H, W) in [0, 1] after the
        display pipeline (or (H, W, 3) RGB), .gray, .values (modality values), .meta (DicomMeta:
        modality, body_part, view_position, photometric, pixel_spacing, UIDs; .public() without
        PHI), .window. Raises DicomReadError subclasses with .reason (e.g. "truncated",
        "non_image:SR", "not_dicom").
    read_header(source) -> DicomMeta
    load_default_model(weights=None, device="cpu") -> Predictor
        The committed model (assets/model.safetensors + model_card.json); .card, .version,
        .thresholds, .size.
    model_card() -> dict                       the committed model card
    predict(image_or_source, predictor=None) -> Prediction
        .accepted, .gate (GateDecision: accepted, reason, stage, p_chest), .probabilities,
        .findings (finding -> bool at the card's thresholds), .no_finding, .as_dict().
    explain.explain(image_or_source, predictor=None, findings=None) -> dict[str, ndarray (H, W) in [0, 1]]
        Grad-CAM per finding at the image's size.
    overlay(gray, heat, alpha=0.45, max_side=1024) -> ndarray (h, w, 3) uint8 RGB
    analyze.analyze(inputs, out, *, predictor=None, csv_path=None, json_path=None, heatmaps=None, workers=2,
            batch_size=16, include_phi=False, progress=None, limit=None) -> AnalyzeSummary
        progress(done: int, total: int, row: dict) after each instance; results in SQLite table
        `results` (see analyze.SCHEMA_COLUMNS); resumable.
    open_db(path) -> sqlite3.Connection
    read_results(path, model_version=None) -> list[dict]    rows of the results table, file order
    apply_window(values, Window(center, width, function)) -> ndarray in [0, 1]   (re-windowing in a viewer)
    write_text_sr(source, prediction, out) / write_secondary_capture(source, rgb, out) -> Path
        results back to PACS as DICOM (carry the source's patient/study modules by design)
    evaluate.evaluate(data, predictor=None, *, out_json=None, plot=None, workers=2, limit=None,
                      progress=None) -> dict
    generate(out, n, seed=0, *, prevalence=0.2, negatives=0, size_range=(1500, 3000), ...) -> Path
        writes DICOM files and labels.csv
    sample_files() -> list[Path]               small bundled sample DICOMs (chest and negatives)
    FINDINGS       ("opacity", "nodule", "effusion", "cardiomegaly", "pneumothorax")
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "read_dicom": "io",
    "read_header": "io",
    "DicomImage": "io",
    "DicomMeta": "io",
    "DicomReadError": "io",
    "load_default_model": "inference",
    "predict": "inference",
    "Predictor": "inference",
    "Prediction": "inference",
    "overlay": "explain",
    "gradcam": "explain",
    "open_db": "analyze",
    "AnalyzeSummary": "analyze",
    "generate": "synth",
    "FINDINGS": "synth",
    "GateDecision": "gate",
    "read_results": "analyze",
    "apply_window": "pipeline",
    "Window": "pipeline",
    "write_text_sr": "report",
    "write_secondary_capture": "report",
}
__all__ = [*_EXPORTS, "model_card", "sample_files"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"apps.dicom_dx.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'apps.dicom_dx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def model_card() -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "assets" / "model_card.json").read_text())


def sample_files() -> list:
    from pathlib import Path

    return sorted((Path(__file__).parent / "assets" / "samples").glob("*.dcm"))
