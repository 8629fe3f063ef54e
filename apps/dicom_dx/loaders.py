"""Loaders for data sets a user may already have on disk, mapped onto our five findings.

Every loader returns a list of `Record`s: where the image is (a file path, or an in-memory array for
MedMNIST), a label vector over FINDINGS with NaN for "not annotated / uncertain and ignored", and a
group key (patient) so that splits never put one patient in two splits.

- synthetic: our generator's labels.csv (`synth.generate`).
- RSNA Pneumonia Detection Challenge: stage_2_train_labels.csv (patientId, x, y, width, height,
  Target) + stage_2_train_images/<patientId>.dcm. Target → opacity; other findings unknown.
- NIH ChestX-ray14: Data_Entry_2017.csv ("Image Index", "Finding Labels" joined by "|",
  "Patient ID", "View Position") + PNGs under images*/ (searched recursively).
- CheXpert: train.csv / valid.csv (Path, Frontal/Lateral, 14 observations with 1 / 0 / -1 =
  uncertain / blank = not mentioned). Uncertain policy: "ones", "zeros" or "ignore" (NaN)
  (Irvin et al., 2019, U-Ones / U-Zeros / U-Ignore).
- MedMNIST .npz: {split}_images, {split}_labels; ChestMNIST (14 NIH labels) and PneumoniaMNIST.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apps.dicom_dx.synth import FINDINGS

__all__ = [
    "Record",
    "load_synthetic",
    "load_rsna",
    "load_nih",
    "load_chexpert",
    "load_medmnist",
    "load_any",
    "split_records",
]


@dataclass
class Record:
    """One image. `labels`: float32 (5,) over FINDINGS, NaN = unknown; `frontal_chest`: 1 chest,
    0 gate negative; `image`: an in-memory (H, W) array in [0, 1] when there is no file."""

    path: Path | None
    labels: np.ndarray
    group: str
    frontal_chest: int = 1
    image: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _vec(**present) -> np.ndarray:
    v = np.full(len(FINDINGS), np.nan, np.float32)
    for k, val in present.items():
        v[FINDINGS.index(k)] = val
    return v


def load_synthetic(root: str | Path) -> list[Record]:
    """Our generator's folder (labels.csv next to chest/ and other/)."""
    root = Path(root)
    out = []
    with open(root / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            chest = int(row["frontal_chest"])
            labels = np.array([float(row[f]) if row[f] != "" else np.nan for f in FINDINGS], np.float32)
            out.append(
                Record(
                    path=root / row["file"],
                    labels=labels,
                    group=f"{row['seed']}:{row['index']}",
                    frontal_chest=chest,
                    extra={
                        "kind": row["kind"],
                        "metadata": row["metadata"],
                        "boxes": json.loads(row["boxes"] or "{}"),
                    },
                )
            )
    return out


def load_rsna(root: str | Path, images: str = "stage_2_train_images") -> list[Record]:
    """RSNA Pneumonia: one row per box (or one row with Target 0); several rows per patient."""
    root = Path(root)
    by_pid: dict[str, dict] = {}
    with open(root / "stage_2_train_labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            d = by_pid.setdefault(row["patientId"], {"target": 0, "boxes": []})
            if row.get("Target", "0") == "1":
                d["target"] = 1
                d["boxes"].append([float(row[k]) for k in ("x", "y", "width", "height")])
    out = []
    for pid, d in by_pid.items():
        path = root / images / f"{pid}.dcm"
        out.append(
            Record(path=path, labels=_vec(opacity=d["target"]), group=pid, extra={"boxes": d["boxes"]})
        )
    return out


_NIH = {
    "opacity": ("Consolidation", "Pneumonia", "Infiltration"),
    "nodule": ("Nodule", "Mass"),
    "effusion": ("Effusion",),
    "cardiomegaly": ("Cardiomegaly",),
    "pneumothorax": ("Pneumothorax",),
}


def load_nih(
    root: str | Path, csv_name: str = "Data_Entry_2017.csv", views: tuple[str, ...] = ("PA", "AP")
) -> list[Record]:
    """NIH ChestX-ray14. Labels are complete (a finding not listed is absent)."""
    root = Path(root)
    index = {p.name: p for p in root.rglob("*.png")}
    out = []
    with open(root / csv_name, newline="") as fh:
        for row in csv.DictReader(fh):
            if views and row.get("View Position", "PA") not in views:
                continue
            found = set(row["Finding Labels"].split("|"))
            labels = np.array([float(any(t in found for t in _NIH[f])) for f in FINDINGS], np.float32)
            path = index.get(row["Image Index"], root / "images" / row["Image Index"])
            out.append(Record(path=path, labels=labels, group=row["Patient ID"]))
    return out


_CHEXPERT = {
    "opacity": ("Consolidation", "Pneumonia", "Lung Opacity"),
    "nodule": ("Lung Lesion",),
    "effusion": ("Pleural Effusion",),
    "cardiomegaly": ("Cardiomegaly",),
    "pneumothorax": ("Pneumothorax",),
}


def load_chexpert(
    root: str | Path, csv_name: str = "train.csv", uncertain: str = "ignore", frontal_only: bool = True
) -> list[Record]:
    """CheXpert. `uncertain` ∈ {"ones", "zeros", "ignore"} maps the -1 labels to 1, 0 or NaN.
    A finding built from several observations is positive if any is positive, uncertain if none is
    positive and one is uncertain, else negative (blank = not mentioned = negative)."""
    if uncertain not in ("ones", "zeros", "ignore"):
        raise ValueError(f"uncertain policy must be ones, zeros or ignore, not {uncertain!r}")
    root = Path(root)
    u_val = {"ones": 1.0, "zeros": 0.0, "ignore": np.nan}[uncertain]
    out = []
    with open(root / csv_name, newline="") as fh:
        for row in csv.DictReader(fh):
            if frontal_only and row.get("Frontal/Lateral", "Frontal") != "Frontal":
                continue
            labels = []
            for f in FINDINGS:
                vals = [row.get(col, "") for col in _CHEXPERT[f]]
                nums = [float(v) for v in vals if v not in ("", None)]
                if any(v == 1.0 for v in nums):
                    labels.append(1.0)
                elif any(v == -1.0 for v in nums):
                    labels.append(u_val)
                else:
                    labels.append(0.0)
            rel = row["Path"]
            # Paths in the CSV start with the data set folder name ("CheXpert-v1.0-small/train/...").
            parts = Path(rel).parts
            path = root / Path(*parts[1:]) if len(parts) > 1 and not (root / rel).exists() else root / rel
            group = next((p for p in parts if p.startswith("patient")), rel)
            out.append(Record(path=path, labels=np.array(labels, np.float32), group=group))
    return out


_CHESTMNIST = [
    "atelectasis",
    "cardiomegaly",
    "effusion",
    "infiltration",
    "mass",
    "nodule",
    "pneumonia",
    "pneumothorax",
    "consolidation",
    "edema",
    "emphysema",
    "fibrosis",
    "pleural",
    "hernia",
]
_CHESTMNIST_MAP = {
    "opacity": ("infiltration", "pneumonia", "consolidation"),
    "nodule": ("mass", "nodule"),
    "effusion": ("effusion",),
    "cardiomegaly": ("cardiomegaly",),
    "pneumothorax": ("pneumothorax",),
}


def load_medmnist(path: str | Path, split: str = "train") -> list[Record]:
    """MedMNIST .npz (np.load with allow_pickle=False). ChestMNIST: labels (N, 14) in NIH order;
    PneumoniaMNIST: labels (N, 1), 1 = pneumonia → opacity. Images uint8 (N, H, W) → [0, 1]."""
    with np.load(path, allow_pickle=False) as z:
        images = z[f"{split}_images"]
        labels = z[f"{split}_labels"]
    if images.ndim == 4:  # (N, H, W, 3) colour variants: luminance
        images = images[..., :3] @ np.array([0.299, 0.587, 0.114])
    out = []
    for i in range(len(images)):
        lab = labels[i].reshape(-1)
        if lab.size == len(_CHESTMNIST):
            v = np.array(
                [float(any(lab[_CHESTMNIST.index(t)] for t in _CHESTMNIST_MAP[f])) for f in FINDINGS],
                np.float32,
            )
        elif lab.size == 1:
            v = _vec(opacity=float(lab[0]))
        else:
            raise ValueError(
                f"{Path(path).name}: labels of width {lab.size} are neither ChestMNIST nor PneumoniaMNIST"
            )
        out.append(
            Record(path=None, labels=v, group=f"{split}:{i}", image=images[i].astype(np.float32) / 255.0)
        )
    return out


def load_any(source: str | Path, **kw) -> list[Record]:
    """Recognise the format from the files present."""
    p = Path(source)
    if p.suffix == ".npz":
        return load_medmnist(p, **kw)
    if (p / "labels.csv").exists():
        return load_synthetic(p)
    if (p / "stage_2_train_labels.csv").exists():
        return load_rsna(p, **kw)
    if (p / "Data_Entry_2017.csv").exists():
        return load_nih(p, **kw)
    if (p / "train.csv").exists() or (p / "valid.csv").exists():
        return load_chexpert(p, **kw)
    raise ValueError(
        f"{p}: no known data set layout (labels.csv, stage_2_train_labels.csv, "
        "Data_Entry_2017.csv, train.csv or a MedMNIST .npz)"
    )


def split_records(
    records: list[Record], fractions: tuple[float, ...] = (0.85, 0.15), seed: int = 0
) -> list[list[Record]]:
    """Split by group (patient) with a seeded hash, so the split is stable as the data set grows."""
    import hashlib

    cuts = np.cumsum(fractions) / np.sum(fractions)
    out: list[list[Record]] = [[] for _ in fractions]
    for r in records:
        h = int(hashlib.sha256(f"{seed}:{r.group}".encode()).hexdigest()[:8], 16) / 16**8
        out[int(np.searchsorted(cuts, h, side="right").clip(0, len(fractions) - 1))].append(r)
    return out
