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
    cmd = card["retrain_command"]  # reproduces this run: its data, size and schedule
    assert f"--data {data}" in cmd and "--size 64" in cmd and "--batch 3" in cmd and "--crop 0" in cmd
    assert "--steps 2" in cmd  # the best validation came from the first run's 2-step schedule
    assert "--time-budget" not in cmd
    from apps.perception.train import _train_command

    # a run whose cosine followed a time budget is reproduced with that budget
    assert "--time-budget 90.0" in _train_command(480, dict(data="d", schedule_steps=9, time_budget_min=90.0))
    lines = [json.loads(x) for x in open(os.path.join(out, "log.jsonl"))]
    assert any(x.get("eval") for x in lines) and all(np.isfinite(x.get("loss", 0.0)) for x in lines)
    # --init: a new run starts from the checkpoint's EMA weights, not from a fresh initialisation
    out2 = str(tmp_path / "finetune")
    ema_w = fw.load(os.path.join(out, "last.safetensors"))["ema"]["stem.conv.weight"].numpy().copy()
    s = train(data, out2, steps=1, init=os.path.join(out, "last.safetensors"), giou=2.0,
              **dict(kw, val=None, log_every=1))
    card2 = fw.load(os.path.join(out2, "last.safetensors"))
    assert s["step"] == 1
    logged = [json.loads(x) for x in open(os.path.join(out2, "log.jsonl"))]
    assert 0.0 < logged[0]["giou"] < 2.0  # the box loss ran (1 - GIoU lies in [0, 2))
    # one AdamW step moves a weight by at most ~lr; a fresh init would differ by far more
    np.testing.assert_allclose(card2["model"]["stem.conv.weight"].numpy(), ema_w, atol=5e-2)
    # --init with a narrower model's weights widens them (the first evaluation matches the narrow one)
    out3 = str(tmp_path / "wider")
    s = train(data, out3, steps=1, init=os.path.join(out, "last.safetensors"), **dict(kw, width=0.75))
    wide = fw.load(os.path.join(out3, "last.safetensors"))["model"]
    assert wide["stem.conv.weight"].shape[0] == 12 and s["step"] == 1
    with pytest.raises(ValueError, match="--giou"):
        train(data, str(tmp_path / "x"), steps=1, giou=-1.0, **kw)
    with pytest.raises(ValueError, match="shrink"):  # wider weights into a narrower model
        train(data, str(tmp_path / "x"), steps=1, init=os.path.join(out3, "last.safetensors"), **kw)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        train(data, str(tmp_path / "x"), steps=1, init=str(tmp_path / "missing.safetensors"), **kw)


def test_fused_detector_matches_the_unfused_model(rng):
    from apps.perception.detector import Detector

    m = CenterNet(width=0.5)
    m.eval()
    for mod in m.modules():  # non-trivial running statistics, so the folding is really exercised
        if isinstance(mod, fw.nn.BatchNorm2d):
            c = mod.running_mean.numel()
            with fw.no_grad():
                mod.running_mean.copy_(fw.tensor(rng.standard_normal(c).astype(np.float32) * 0.1))
                mod.running_var.copy_(fw.tensor(rng.uniform(0.5, 2.0, c).astype(np.float32)))
    det = Detector(m, size=64)
    assert det.net is not m and "s1.bn.running_mean" in m.state_dict()
    assert not any(isinstance(x, fw.nn.BatchNorm2d) for x in det.net.modules())
    x = rng.random((2, 3, 64, 64)).astype(np.float32)
    heat, reg = det.forward(x)
    with fw.no_grad():
        h0, r0 = m(fw.from_numpy(x))
    np.testing.assert_allclose(heat, h0.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(reg, r0.numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="eval"):
        CenterNet(width=0.5).fuse()
    # The fused copy runs both heads as one convolution: not in its state dict, and rebuilt when a
    # head's parameters change after fusing (never stale).
    assert "head_weight" not in det.net.state_dict() and "hm.weight" in det.net.state_dict()
    with fw.no_grad():
        det.net.reg.bias.add_(0.5)
    heat2, reg2 = det.forward(x)
    np.testing.assert_allclose(heat2, heat, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reg2, reg + 0.5, rtol=1e-5, atol=1e-5)


def test_train_size_defaults_to_the_cache_size(tmp_path):
    from apps.perception.__main__ import _cache_size

    (tmp_path / "meta.json").write_text(json.dumps({"n": 2, "size": 480}))
    assert _cache_size(str(tmp_path)) == 480
    assert _cache_size(str(tmp_path / "missing")) == 320  # no meta: the documented default


@pytest.mark.parametrize("train_mode", [False, True])
def test_widened_model_computes_the_same_function(rng, train_mode):
    """Net2Net widening to width 1.5 keeps the outputs (batch norms in eval mode, and in training mode
    where they use the batch statistics), and the copies of a channel no longer share their weights."""
    from apps.perception.model import widen_state_dict

    narrow = CenterNet(width=1.0)
    with fw.no_grad():  # trained-looking statistics and affine parameters, not the fresh 0 / 1
        for name, b in narrow.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(fw.from_numpy(rng.normal(0, 0.2, b.shape).astype(np.float32)))
            elif name.endswith("running_var"):
                b.copy_(fw.from_numpy(rng.uniform(0.5, 2.0, b.shape).astype(np.float32)))
        for name, p in narrow.named_parameters():
            if name.endswith("bn.bias"):
                p.copy_(fw.from_numpy(rng.normal(0, 0.3, p.shape).astype(np.float32)))
    wide = CenterNet(width=1.5)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, seed=1))
    assert wide.stem.conv.weight.shape[0] == 24 and wide.dw.conv.weight.shape[0] == 48
    x = fw.from_numpy(rng.random((2, 3, 64, 64), dtype=np.float32))
    for m in (narrow, wide):
        m.train(train_mode)
    with fw.no_grad():
        (h0, r0), (h1, r1) = narrow(x), wide(x)
    np.testing.assert_allclose(h1.numpy(), h0.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(r1.numpy(), r0.numpy(), rtol=1e-4, atol=1e-4)
    w = wide.s1.conv.weight.numpy()  # input channel 16.. copies some channel below 16, split unequally
    assert not any(np.allclose(w[:, j], w[:, i]) for j in range(16, 24) for i in range(16))
    with pytest.raises(ValueError, match="shrink"):
        widen_state_dict(wide.state_dict(), CenterNet(width=1.0))


def test_batches_do_not_depend_on_the_number_of_workers_and_worker_errors_surface(tmp_path):
    """Each step's batch is the same whatever the number of loader threads, across epoch boundaries
    (the augmentation's randomness is a function of (seed, epoch, index), not of shared state), and a
    failing sample raises in the training loop instead of leaving it waiting for ever."""
    from apps.perception.data import CachedDataset, TrainDataset, build_cache
    from apps.perception.train import _batches

    data = str(tmp_path / "cache")
    build_cache(data, 5, seed=4, size=64, width=160, height=120)
    ds = TrainDataset(CachedDataset(data), 64, seed=1, mosaic_p=0.5, crop=48)
    runs = {w: list(_batches(ds, 2, 7, 0, 7, threads=w)) for w in (1, 3)}  # 2 steps an epoch: 3 epochs
    assert [s for s, *_ in runs[1]] == list(range(7))
    for (s1, x1, t1), (s3, x3, t3) in zip(runs[1], runs[3]):
        assert s1 == s3
        np.testing.assert_array_equal(x1, x3)
        for k in t1:
            np.testing.assert_array_equal(t1[k], t3[k])
    assert not np.array_equal(runs[1][0][1], runs[1][2][1])  # a new epoch: another order / augmentation

    class Broken(TrainDataset):
        def sample(self, i, epoch):
            if epoch == 1:
                raise OSError("unreadable frame")
            return super().sample(i, epoch)

    bad = Broken(CachedDataset(data), 64, seed=1, crop=48)
    with pytest.raises(RuntimeError, match="batch of step 2 failed.*unreadable frame"):
        for _ in _batches(bad, 2, 7, 0, 7, threads=2):
            pass
    with pytest.raises(ValueError, match="fewer than one batch"):
        next(_batches(ds, 8, 7, 0, 3))


def test_merged_caches_hold_every_frame_and_box_in_order(tmp_path):
    from apps.perception.data import CachedDataset, build_cache, merge_caches

    parts = [str(tmp_path / f"s{i}") for i in range(2)]
    for i, p in enumerate(parts):
        build_cache(p, 3 + i, seed=10 + i, size=64, width=160, height=120)
    meta = merge_caches(str(tmp_path / "all"), parts)
    assert meta["n"] == 7 and meta["seed"] == [10, 11] and meta["size"] == 64
    merged = CachedDataset(str(tmp_path / "all"))
    expected = [item for p in parts for item in (CachedDataset(p)[i] for i in range(len(CachedDataset(p))))]
    assert len(merged) == len(expected)
    for k, want in enumerate(expected):
        for got, exp in zip(merged[k], want):
            np.testing.assert_array_equal(got, exp)
    build_cache(str(tmp_path / "other"), 2, seed=3, size=96, width=160, height=120)
    with pytest.raises(ValueError, match="differ in size"):
        merge_caches(str(tmp_path / "bad"), [parts[0], str(tmp_path / "other")])
