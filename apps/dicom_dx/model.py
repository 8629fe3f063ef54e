"""The classifier: a compact ResNet (He et al., 2016) built with the framework.

Input (N, 1, S, S) standardised grayscale (see data.preprocess); output (N, 6) logits: the five
findings (sigmoid, multi-label) and a "frontal chest radiograph" logit used by the input gate.
"no finding" is derived: no finding reaches its threshold.

Layout for S = 128: two 3×3/2 stem convolutions → 32², a residual block, then two stages (3×3/2
conv + a basic residual block) to 16² and 8²; global average pooling; a linear layer. `features`
(the last stage, 8×8) is the layer Grad-CAM explains.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

import framework as fw
import framework.nn as nn
import framework.nn.functional as F
from apps.dicom_dx.synth import FINDINGS

__all__ = ["OUTPUTS", "BasicBlock", "ChestNet", "build_model", "save_model", "load_model", "json_safe"]

OUTPUTS = (*FINDINGS, "frontal_chest")


class BasicBlock(nn.Module):
    """x + conv-bn-relu-conv-bn(x), then ReLU."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class ChestNet(nn.Module):
    """widths: channels after the two stem convolutions and of the three stages."""

    def __init__(
        self,
        widths: tuple[int, int, int, int] = (16, 24, 48, 96),
        n_outputs: int = len(OUTPUTS),
        dropout: float = 0.0,
    ):
        super().__init__()
        w0, w1, w2, w3 = widths
        # Two strided convolutions bring S² to (S/4)² cheaply: full-resolution layers dominate the
        # cost of an im2col CPU backend.
        self.stem = nn.Sequential(_down(1, w0), _down(w0, w1))
        self.stage1 = BasicBlock(w1)
        self.stage2 = nn.Sequential(_down(w1, w2), BasicBlock(w2))
        self.features = nn.Sequential(_down(w2, w3), BasicBlock(w3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(w3, n_outputs)

    def forward(self, x):
        x = self.features(self.stage2(self.stage1(self.stem(x))))
        return self.head(self.drop(self.pool(x).flatten(1)))


def build_model(config: dict | None = None) -> ChestNet:
    cfg = dict(config or {})
    return ChestNet(widths=tuple(cfg.get("widths", (16, 24, 48, 96))), dropout=float(cfg.get("dropout", 0.0)))


def json_safe(o):
    """A copy of `o` that strict JSON (RFC 8259) can hold: an undefined metric (NaN, ±inf, e.g. an
    AUROC without positives) becomes null instead of the bare NaN that strict parsers refuse; NumPy
    scalars become Python numbers."""
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def save_model(model: ChestNet, card: dict, weights: str | Path, card_path: str | Path | None = None) -> None:
    """Weights as safetensors (framework.save), the model card as strict JSON next to them (undefined
    metrics as null)."""
    weights = Path(weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    fw.save(model.state_dict(), str(weights))
    card_path = Path(card_path) if card_path else weights.with_name("model_card.json")
    card_path.write_text(json.dumps(json_safe(card), indent=2, sort_keys=False, allow_nan=False) + "\n")


def load_model(weights: str | Path, card_path: str | Path | None = None) -> tuple[ChestNet, dict]:
    weights = Path(weights)
    card_path = Path(card_path) if card_path else weights.with_name("model_card.json")
    card = json.loads(card_path.read_text())
    model = build_model(card.get("architecture", {}))
    model.load_state_dict(fw.load(str(weights)))
    model.eval()
    return model, card
