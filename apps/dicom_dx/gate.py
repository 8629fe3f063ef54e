"""Input acceptance gate: is this a frontal chest radiograph at all?

Two stages, and a rejected input is reported with its reason and never with findings:
1. Metadata rules (DICOM attributes): Modality must be a projection radiograph (CR, DX; OT or empty
   leaves the decision to the image), Body Part Examined must be chest-like or empty, View
   Position must be frontal (PA/AP) or empty, one frame, grayscale, a plausible size and shape.
2. Image check: the model's "frontal chest" output (a head trained on chest radiographs against
   other anatomy and modalities) must reach the threshold stored in the model card. This catches
   unlabelled and wrongly labelled files (a knee tagged CHEST, a CT slice saved as OT, a photo).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from apps.dicom_dx.io import DicomImage, DicomMeta

__all__ = ["GateConfig", "GateDecision", "check_metadata", "check_image", "decide"]

_RADIOGRAPH = {"CR", "DX"}
_UNKNOWN_MODALITY = {"", "OT"}
_CHEST_WORDS = ("CHEST", "THORAX", "LUNG", "TORAX", "THORAX_PA")
_FRONTAL = {"", "PA", "AP"}


@dataclass(frozen=True)
class GateConfig:
    min_size: int = 256  # pixels, shorter side; chest radiographs are ≥ 1500 px in practice
    max_aspect: float = 1.6  # long side / short side
    image_threshold: float = 0.5  # on the model's frontal-chest probability (model card overrides)


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    reason: str  # "" when accepted
    stage: str  # "metadata", "image" or "" when accepted
    p_chest: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def check_metadata(meta: DicomMeta, config: GateConfig = GateConfig()) -> GateDecision | None:
    """A rejection if the attributes rule the input out, else None."""
    mod = meta.modality.upper()
    if mod not in _RADIOGRAPH and mod not in _UNKNOWN_MODALITY:
        return GateDecision(False, f"modality {mod} is not a projection radiograph (CR/DX)", "metadata")
    part = meta.body_part.upper()
    if part and not any(w in part for w in _CHEST_WORDS):
        return GateDecision(False, f"body part {part} is not the chest", "metadata")
    view = meta.view_position.upper()
    if view not in _FRONTAL:
        return GateDecision(False, f"view position {view} is not frontal (PA/AP)", "metadata")
    if meta.n_frames > 1:
        return GateDecision(
            False, f"multi-frame object ({meta.n_frames} frames), not a single radiograph", "metadata"
        )
    if meta.samples_per_pixel != 1 or meta.photometric.upper() not in ("MONOCHROME1", "MONOCHROME2"):
        return GateDecision(
            False, f"colour image ({meta.photometric}), radiographs are grayscale", "metadata"
        )
    return None


def check_image(image: DicomImage, config: GateConfig = GateConfig()) -> GateDecision | None:
    """Geometry of the decoded pixels (cheap, before the model)."""
    h, w = image.image.shape[:2]
    if image.is_color:
        return GateDecision(False, "colour image, radiographs are grayscale", "image")
    if min(h, w) < config.min_size:
        return GateDecision(False, f"image too small for a radiograph ({h}x{w} px)", "image")
    if max(h, w) / max(min(h, w), 1) > config.max_aspect:
        return GateDecision(
            False, f"aspect ratio {max(h, w) / min(h, w):.2f} is not that of a chest film", "image"
        )
    return None


def decide(image: DicomImage, p_chest: float | None, config: GateConfig = GateConfig()) -> GateDecision:
    """The whole gate. `p_chest` is the model's frontal-chest probability (None = not computed yet,
    e.g. when the metadata already rejected)."""
    for check in (check_metadata(image.meta, config), check_image(image, config)):
        if check is not None:
            return GateDecision(check.accepted, check.reason, check.stage, p_chest)
    if p_chest is not None and p_chest < config.image_threshold:
        return GateDecision(
            False,
            f"image does not look like a frontal chest radiograph "
            f"(p={p_chest:.3f} < {config.image_threshold:.3f})",
            "image",
            p_chest,
        )
    return GateDecision(True, "", "", p_chest)
