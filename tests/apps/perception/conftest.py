"""Shared fixtures: a tiny untrained detector saved as weights + model card, and a short drive clip."""

import json

import pytest


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A randomly initialised, narrow detector at input size 64 (fast; the pipeline is what is tested)."""
    import framework as fw
    from apps.perception.classes import CLASSES
    from apps.perception.model import CenterNet

    d = tmp_path_factory.mktemp("weights")
    fw.manual_seed(0)
    m = CenterNet(width=0.5)
    fw.save(m.state_dict(), str(d / "detector.safetensors"))
    (d / "model_card.json").write_text(
        json.dumps(dict(classes=list(CLASSES), input_size=64, default_conf=0.3, architecture=dict(width=0.5)))
    )
    return str(d / "detector.safetensors")


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    from apps.perception.synth import write_video

    p = tmp_path_factory.mktemp("clip") / "drive.mp4"
    write_video(str(p), 12, seed=1, width=160, height=120, fps=30.0, labels_json=str(p.with_suffix(".json")))
    return str(p)
