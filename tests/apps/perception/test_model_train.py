"""The detector against the same network in PyTorch (weights copied by name), and a short training run
with checkpoint, resume and model card."""

import json
import os

import numpy as np
import pytest

import framework as fw
from apps.perception.model import CenterNet


def test_forward_shapes():
    m = CenterNet(width=0.5).eval()
    with fw.no_grad():
        h, r = m(fw.from_numpy(np.zeros((2, 3, 96, 64), np.float32)))
    assert tuple(h.shape) == (2, 6, 24, 16) and tuple(r.shape) == (2, 4, 24, 16)


def test_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    from benchmarks.perception import copy_to_torch, torch_model

    fw.manual_seed(1)
    m = CenterNet(width=0.5)
    # non-trivial BatchNorm statistics, so the comparison covers eval-mode normalisation
    sd = {}
    for k, v in m.state_dict().items():
        a = np.array(v.numpy())
        if k.endswith("running_var"):
            a = rng.uniform(0.5, 2.0, a.shape).astype(np.float32)
        elif k.endswith("running_mean") or k.endswith("bn.bias"):
            a = rng.normal(0, 0.3, a.shape).astype(np.float32)
        sd[k] = fw.from_numpy(a)
    m.load_state_dict(sd)
    t = torch_model(width=0.5)
    copy_to_torch(m, t)
    x = rng.random((2, 3, 64, 96), dtype=np.float32)
    for train in (False, True):
        m.train(train)
        t.train(train)
        with fw.no_grad():
            h, r = m(fw.from_numpy(x))
        with torch.no_grad():
            ht, rt = t(torch.from_numpy(x))
        np.testing.assert_allclose(h.numpy(), ht.numpy(), atol=2e-4, rtol=1e-4)
        np.testing.assert_allclose(r.numpy(), rt.numpy(), atol=2e-4, rtol=1e-4)


def test_train_resume_and_card(tmp_path):
    from apps.perception.data import build_cache
    from apps.perception.train import train

    data = str(tmp_path / "cache")
    build_cache(data, 6, seed=3, size=64, width=160, height=120)
    out = str(tmp_path / "run")
    kw = dict(val=data, batch=3, size=64, width=0.5, eval_every=2, val_images=6, crop=None, progress=False)
    s = train(data, out, steps=2, **kw)
    assert s["step"] == 2 and os.path.exists(os.path.join(out, "last.safetensors"))
    first = fw.load(os.path.join(out, "last.safetensors"))["model"]["stem.conv.weight"].numpy().copy()
    s = train(data, out, steps=3, resume=True, **kw)
    assert s["step"] == 3
    after = fw.load(os.path.join(out, "last.safetensors"))["model"]["stem.conv.weight"].numpy()
    assert not np.allclose(first, after)  # it trained on from the checkpoint
    card = json.load(open(os.path.join(out, "model_card.json")))
    assert card["input_size"] == 64 and len(card["classes"]) == 6 and "mAP50_95" in card["metrics"]
    lines = [json.loads(x) for x in open(os.path.join(out, "log.jsonl"))]
    assert any(x.get("eval") for x in lines) and all(np.isfinite(x.get("loss", 0.0)) for x in lines)
