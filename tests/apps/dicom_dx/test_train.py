"""Training on a tiny set: card contents, checkpoint every epoch, --resume continues the history."""

import json

import numpy as np

from apps.dicom_dx.model import load_model
from apps.dicom_dx.train import TrainConfig, _targets, train


def test_targets_mask_unknown_and_negatives():
    labels = np.array([[1, 0, np.nan, 0, 1], [np.nan] * 5], np.float32)
    t, w = _targets(labels, np.array([1, 0]))
    np.testing.assert_array_equal(w[0], [1, 1, 0, 1, 1, 1])
    np.testing.assert_array_equal(w[1], [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(t[:, -1], [1, 0])


def test_train_writes_card_and_resumes(tiny_synth, tmp_path):
    cfg = dict(
        data=str(tiny_synth),
        val=str(tiny_synth),
        out=str(tmp_path / "m"),
        size=32,
        batch_size=8,
        widths=(4, 8, 8, 8),
        workers=1,
        cache=str(tmp_path / "cache"),
    )
    card = train(TrainConfig(epochs=1, **cfg))
    assert set(card["thresholds"]) == {"opacity", "nodule", "effusion", "cardiomegaly", "pneumothorax"}
    assert card["preprocessing"]["size"] == 32 and len(card["history"]) == 1
    assert (tmp_path / "m" / "checkpoint.safetensors").exists()
    card2 = train(TrainConfig(epochs=2, resume=True, **cfg))
    assert [h["epoch"] for h in card2["history"]] == [1, 2]
    assert card2["history"][0] == json.loads(json.dumps(card["history"][0]))
    model, c = load_model(tmp_path / "m" / "model.safetensors")
    assert c["version"] == card2["version"] and sum(int(np.prod(p.shape)) for p in model.parameters()) > 0


def test_train_without_val_splits_by_patient(tiny_synth, tmp_path):
    cfg = TrainConfig(
        data=str(tiny_synth),
        out=str(tmp_path / "m"),
        size=32,
        batch_size=8,
        widths=(4, 8, 8, 8),
        workers=1,
        epochs=1,
        max_train=8,
    )
    card = train(cfg)
    assert card["data"]["n_train"] == 8 and card["data"]["n_val"] >= 1
    assert (tmp_path / "m" / "cache" / "val" / "images_32.npy").exists()
