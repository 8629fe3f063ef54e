"""Every layer module against PyTorch: state_dict names, forward, backward, buffers, train/eval."""

import numpy as np
import pytest

import framework as fw
from framework import nn

torch = pytest.importorskip("torch")

DTYPES = [(torch.float64, fw.float64, 1e-9), (torch.float32, fw.float32, 1e-4)]


def build(name, *args, **kwargs):
    return getattr(torch.nn, name)(*args, **kwargs), getattr(nn, name)(*args, **kwargs)


def sync(t, f):
    assert list(f.state_dict()) == list(t.state_dict())
    for k, v in t.state_dict().items():
        assert tuple(f.state_dict()[k].shape) == tuple(v.shape), k
    f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    # And back: PyTorch accepts ours strictly (same keys, shapes and dtypes).
    t.load_state_dict({k: torch.tensor(np.array(v.numpy())) for k, v in f.state_dict().items()}, strict=True)


def close(a, b, tol):
    np.testing.assert_allclose(np.asarray(a.detach().numpy(), dtype=np.float64),
                               b.detach().numpy().astype(np.float64), rtol=tol, atol=tol)


def check(t, f, shape, dt, tol_scale=1.0, seed=0, positive=False, train=True, grad=True):
    tdt, fdt, tol = dt
    tol *= tol_scale
    t = t.to(tdt)
    f = f.to(fdt)
    sync(t, f)
    t.train(train)
    f.train(train)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if positive:
        x = np.abs(x) + 0.1
    tx = torch.tensor(x, dtype=tdt, requires_grad=grad)
    fx = fw.tensor(x, dtype=fdt, requires_grad=grad)
    to, fo = t(tx), f(fx)
    close(fo, to, tol)
    if grad:
        g = rng.standard_normal(tuple(to.shape))
        (to * torch.tensor(g, dtype=tdt)).sum().backward()
        (fo * fw.tensor(g, dtype=fdt)).sum().backward()
        close(fx.grad, tx.grad, tol)
        for tp, fp in zip(t.parameters(), f.parameters()):
            close(fp.grad, tp.grad, 10 * tol)
    for tb, fb in zip(t.buffers(), f.buffers()):
        close(fb, tb, tol)
    return t, f


LAYERS = [
    ("Linear", (5, 3), {}, (4, 5)),
    ("Linear", (5, 3), {"bias": False}, (2, 4, 5)),
    ("Conv2d", (3, 4, 3), {"stride": 2, "padding": 1}, (2, 3, 9, 9)),
    ("Conv2d", (4, 6, 3), {"padding": "same", "dilation": 2, "groups": 2}, (2, 4, 7, 8)),
    ("Conv2d", (4, 4, 3), {"groups": 4, "padding": 1, "bias": False}, (1, 4, 6, 6)),
    ("Conv2d", (3, 2, (2, 3)), {"padding": "same"}, (1, 3, 6, 7)),
    ("Conv2d", (3, 2, 3), {"padding": 1, "padding_mode": "reflect"}, (1, 3, 6, 7)),
    ("Conv2d", (3, 2, 3), {"padding": (1, 2), "padding_mode": "circular"}, (1, 3, 6, 7)),
    ("Conv2d", (3, 2, 3), {"padding": "same", "padding_mode": "replicate"}, (1, 3, 6, 7)),
    ("ConvTranspose2d", (4, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 4, 5, 5)),
    ("ConvTranspose2d", (4, 6, 2), {"stride": 2, "groups": 2, "bias": False}, (1, 4, 3, 4)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 6)),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (1, 2, 7, 7)),
    ("AvgPool2d", (2,), {}, (2, 3, 6, 6)),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}, (1, 2, 7, 7)),
    ("AdaptiveAvgPool2d", ((1, 1),), {}, (2, 3, 5, 5)),
    ("AdaptiveAvgPool2d", (3,), {}, (1, 2, 7, 8)),
    ("Upsample", (), {"scale_factor": 2, "mode": "nearest"}, (1, 2, 3, 4)),
    ("Upsample", (), {"size": (5, 7), "mode": "bilinear", "align_corners": False}, (1, 2, 3, 4)),
    ("Upsample", (), {"scale_factor": 2, "mode": "bilinear", "align_corners": True}, (1, 2, 3, 4)),
    ("GroupNorm", (2, 4), {}, (2, 4, 3, 3)),
    ("GroupNorm", (4, 4), {"affine": False}, (2, 4, 5)),
    ("LayerNorm", (6,), {}, (3, 6)),
    ("LayerNorm", ((3, 4),), {"elementwise_affine": True, "bias": False}, (2, 3, 4)),
    ("ReLU", (), {}, (3, 5)),
    ("LeakyReLU", (0.2,), {}, (3, 5)),
    ("GELU", (), {}, (3, 5)),
    ("GELU", (), {"approximate": "tanh"}, (3, 5)),
    ("SiLU", (), {}, (3, 5)),
    ("Sigmoid", (), {}, (3, 5)),
    ("Tanh", (), {}, (3, 5)),
    ("Softmax", (), {"dim": 1}, (3, 5)),
    ("LogSoftmax", (), {"dim": -1}, (3, 5)),
    ("Flatten", (), {}, (2, 3, 4)),
    ("Unflatten", (1, (2, 3)), {}, (4, 6)),
    ("Identity", (), {}, (2, 2)),
    ("ReLU6", (), {}, (3, 5)),
    ("ELU", (0.5,), {}, (3, 5)),
    ("SELU", (), {}, (3, 5)),
    ("Hardswish", (), {}, (3, 5)),
    ("Hardsigmoid", (), {}, (3, 5)),
    ("Hardtanh", (-0.5, 0.7), {}, (3, 5)),
    ("Mish", (), {}, (3, 5)),
    ("Softplus", (2.0, 5.0), {}, (3, 5)),
    ("Softsign", (), {}, (3, 5)),
    ("LogSigmoid", (), {}, (3, 5)),
    ("GLU", (), {"dim": 1}, (3, 6)),
    ("PReLU", (), {}, (3, 5)),
    ("PReLU", (4,), {"init": 0.1}, (2, 4, 3, 3)),
    ("Conv1d", (3, 4, 3), {"stride": 2, "padding": 1}, (2, 3, 11)),
    ("Conv1d", (4, 4, 3), {"padding": "same", "groups": 2, "padding_mode": "reflect"}, (2, 4, 9)),
    ("MaxPool1d", (3,), {"stride": 2}, (2, 3, 9)),
    ("AvgPool1d", (2,), {}, (2, 3, 8)),
    ("InstanceNorm2d", (3,), {}, (2, 3, 4, 4)),
    ("InstanceNorm2d", (3,), {"affine": True}, (2, 3, 4, 4)),
    ("ZeroPad2d", ((1, 2, 0, 3),), {}, (1, 2, 3, 3)),
    ("ConstantPad2d", (2, 1.5), {}, (1, 2, 3, 3)),
    ("ReflectionPad2d", (1,), {}, (1, 2, 3, 3)),
    ("ReplicationPad2d", ((2, 1, 1, 0),), {}, (1, 2, 3, 3)),
    ("PixelShuffle", (2,), {}, (1, 8, 3, 3)),
    ("Dropout2d", (), {}, (2, 3, 4, 4)),  # compared in eval mode below (identity)
]


@pytest.mark.parametrize("spec", LAYERS, ids=lambda s: f"{s[0]}{s[1]}{s[2]}")
@pytest.mark.parametrize("dt", DTYPES, ids=["f64", "f32"])
def test_layer_matches_torch(spec, dt):
    name, args, kwargs, shape = spec
    torch.manual_seed(0)
    t, f = build(name, *args, **kwargs)
    # PyTorch's float64 hardsigmoid backward multiplies by a single-precision 1/6 (error ~3e-8).
    scale = 100.0 if name in ("Hardsigmoid", "Hardswish") else 1.0
    check(t, f, shape, dt, tol_scale=scale, train=not name.startswith("Dropout"))


@pytest.mark.parametrize("name,args,shapes", [
    ("Bilinear", (3, 4, 5), [(6, 3), (6, 4)]),
    ("CosineSimilarity", (), [(4, 5), (4, 5)]),
    ("PairwiseDistance", (), [(4, 5), (4, 5)]),
])
@pytest.mark.parametrize("dt", DTYPES, ids=["f64", "f32"])
def test_two_input_modules(name, args, shapes, dt):
    tdt, fdt, tol = dt
    torch.manual_seed(0)
    t, f = build(name, *args)
    t, f = t.to(tdt), f.to(fdt)
    sync(t, f)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in shapes]
    txs = [torch.tensor(x, dtype=tdt, requires_grad=True) for x in xs]
    fxs = [fw.tensor(x, dtype=fdt, requires_grad=True) for x in xs]
    to, fo = t(*txs), f(*fxs)
    close(fo, to, tol)
    to.sum().backward()
    fo.sum().backward()
    for a, b in zip(fxs, txs):
        close(a.grad, b.grad, tol)
    for tp, fp in zip(t.parameters(), f.parameters()):
        close(fp.grad, tp.grad, 10 * tol)


def test_dropout2d_drops_whole_channels():
    fw.manual_seed(0)
    d = nn.Dropout2d(0.5)
    y = d(fw.ones(8, 16, 3, 3)).numpy()
    per_plane = y.reshape(8 * 16, 9)
    assert set(np.unique(per_plane.std(1))) == {0.0}
    assert 0.3 < (per_plane[:, 0] == 0).mean() < 0.7


def test_conv_transpose_output_size():
    torch.manual_seed(0)
    t, f = build("ConvTranspose2d", 2, 3, 3, stride=2, padding=1)
    sync(t, f)
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    to = t(torch.tensor(x), output_size=[8, 8])
    fo = f(fw.tensor(x), output_size=[8, 8])
    assert tuple(fo.shape) == (1, 3, 8, 8)
    close(fo, to, 1e-5)
    with pytest.raises(ValueError):
        f(fw.tensor(x), output_size=[12, 12])


@pytest.mark.parametrize("dt", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("cfg", [
    ("BatchNorm1d", (4,), {}, (6, 4)),
    ("BatchNorm1d", (4,), {"momentum": None}, (5, 4, 3)),
    ("BatchNorm2d", (3,), {}, (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), {"affine": False, "momentum": 0.3}, (2, 3, 4, 4)),
    ("BatchNorm2d", (3,), {"track_running_stats": False}, (2, 3, 4, 4)),
    ("BatchNorm2d", (3,), {"bias": False}, (2, 3, 4, 4)),
], ids=lambda c: f"{c[0]}{c[2]}")
def test_batchnorm_train_eval_and_running_stats(cfg, dt):
    name, args, kwargs, shape = cfg
    torch.manual_seed(0)
    t, f = build(name, *args, **kwargs)
    # Three training steps (running stats and num_batches_tracked follow), then evaluation.
    for seed in range(3):
        t, f = check(t, f, shape, dt, seed=seed, train=True)
        assert list(f.state_dict()) == list(t.state_dict())
    if f.num_batches_tracked is not None:
        assert int(f.num_batches_tracked.item()) == int(t.num_batches_tracked.item()) == 3
    check(t, f, shape, dt, seed=7, train=False)


def test_batchnorm_eval_uses_running_stats_and_loads_from_torch():
    t = torch.nn.BatchNorm2d(2)
    with torch.no_grad():
        t.running_mean.copy_(torch.tensor([1.0, -2.0]))
        t.running_var.copy_(torch.tensor([4.0, 0.25]))
        t.weight.copy_(torch.tensor([2.0, 3.0]))
        t.num_batches_tracked.fill_(17)
    f = nn.BatchNorm2d(2)
    f.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    assert int(f.num_batches_tracked.item()) == 17 and f.num_batches_tracked.dtype == fw.int64
    f.eval()
    x = np.ones((1, 2, 2, 2), np.float32)
    y = f(fw.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y[0, :, 0, 0], [2 * (1 - 1) / np.sqrt(4 + 1e-5), 3 * 3 / np.sqrt(0.25 + 1e-5)],
                               rtol=1e-5)


def test_dropout_train_eval():
    fw.manual_seed(0)
    d = nn.Dropout(0.3)
    x = fw.ones(200, 100)
    y = d(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


@pytest.mark.parametrize("dt", DTYPES, ids=["f64", "f32"])
def test_embedding(dt):
    tdt, fdt, tol = dt
    torch.manual_seed(0)
    t, f = build("Embedding", 10, 4, padding_idx=1)
    t, f = t.to(tdt), f.to(fdt)
    sync(t, f)
    idx = np.array([[1, 2, 3], [3, 1, 9]])
    to, fo = t(torch.tensor(idx)), f(fw.tensor(idx))
    close(fo, to, tol)
    g = np.random.default_rng(0).standard_normal(tuple(to.shape))
    (to * torch.tensor(g, dtype=tdt)).sum().backward()
    (fo * fw.tensor(g, dtype=fdt)).sum().backward()
    close(f.weight.grad, t.weight.grad, tol)
    assert float(f.weight.grad[1].abs().sum()) == 0
    fresh = nn.Embedding(5, 3, padding_idx=0)
    assert float(fresh.weight[0].abs().sum()) == 0
    pre = nn.Embedding.from_pretrained(fw.ones(3, 2))
    assert not pre.weight.requires_grad and tuple(pre(fw.tensor([0, 2])).shape) == (2, 2)


LOSSES = [
    ("CrossEntropyLoss", {}, "class"),
    ("CrossEntropyLoss", {"weight": [1.0, 2.0, 0.5, 1.0], "ignore_index": 2, "label_smoothing": 0.1},
     "class"),
    ("CrossEntropyLoss", {"reduction": "sum"}, "prob"),
    ("NLLLoss", {"reduction": "none"}, "class"),
    ("BCELoss", {}, "binary_prob"),
    ("BCEWithLogitsLoss", {"pos_weight": [1.0, 3.0, 0.5, 2.0]}, "binary"),
    ("MSELoss", {}, "real"),
    ("L1Loss", {"reduction": "sum"}, "real"),
    ("SmoothL1Loss", {"beta": 0.5}, "real"),
    ("HuberLoss", {"delta": 0.7}, "real"),
    ("KLDivLoss", {"reduction": "batchmean"}, "kl"),
    ("KLDivLoss", {"reduction": "sum", "log_target": True}, "kl_log"),
]


@pytest.mark.parametrize("spec", LOSSES, ids=lambda s: f"{s[0]}{s[1]}")
@pytest.mark.parametrize("dt", DTYPES, ids=["f64", "f32"])
def test_losses(spec, dt):
    name, kwargs, kind = spec
    tdt, fdt, tol = dt
    tkw = {k: torch.tensor(v, dtype=tdt) if isinstance(v, list) else v for k, v in kwargs.items()}
    fkw = {k: fw.tensor(v, dtype=fdt) if isinstance(v, list) else v for k, v in kwargs.items()}
    t, f = getattr(torch.nn, name)(**tkw), getattr(nn, name)(**fkw)
    assert list(f.state_dict()) == list(t.state_dict())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    if kind == "class":
        y = rng.integers(0, 4, 6)
        ty, fy = torch.tensor(y), fw.tensor(y)
    elif kind == "prob":
        y = rng.random((6, 4))
        y /= y.sum(1, keepdims=True)
        ty, fy = torch.tensor(y, dtype=tdt), fw.tensor(y, dtype=fdt)
    elif kind in ("binary", "binary_prob"):
        y = (rng.random((6, 4)) > 0.5).astype(float)
        ty, fy = torch.tensor(y, dtype=tdt), fw.tensor(y, dtype=fdt)
        if kind == "binary_prob":
            x = 1 / (1 + np.exp(-x))
    elif kind in ("kl", "kl_log"):
        y = rng.random((6, 4))
        y /= y.sum(1, keepdims=True)
        if kind == "kl_log":
            y = np.log(y)
        ty, fy = torch.tensor(y, dtype=tdt), fw.tensor(y, dtype=fdt)
    else:
        y = rng.standard_normal((6, 4))
        ty, fy = torch.tensor(y, dtype=tdt), fw.tensor(y, dtype=fdt)
    if name in ("NLLLoss", "KLDivLoss"):
        x = x - np.log(np.exp(x).sum(1, keepdims=True))
    tx = torch.tensor(x, dtype=tdt, requires_grad=True)
    fx = fw.tensor(x, dtype=fdt, requires_grad=True)
    to, fo = t(tx, ty), f(fx, fy)
    close(fo, to, tol)
    to.sum().backward()
    fo.sum().backward()
    close(fx.grad, tx.grad, tol)


def test_softmax_default_dim_and_module_dtype_conversion():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    close(nn.Softmax()(fw.tensor(x)), torch.nn.Softmax(dim=0)(torch.tensor(x)), 1e-12)
    m = nn.Conv2d(2, 2, 1).double()
    assert m.weight.dtype == fw.float64 and m(fw.randn(1, 2, 2, 2, dtype=fw.float64)).dtype == fw.float64


@pytest.mark.parametrize("name,args", [
    ("Linear", (64, 32)), ("Conv2d", (16, 8, 3)), ("ConvTranspose2d", (16, 8, 3)), ("Embedding", (50, 16)),
    ("LSTM", (8, 16)), ("GRU", (8, 16)), ("MultiheadAttention", (16, 4)), ("BatchNorm2d", (8,)),
    ("LayerNorm", (8,)), ("GroupNorm", (2, 8)),
])
def test_default_init_matches_torch_distribution(name, args):
    """Same distribution per parameter: a two-sample Kolmogorov-Smirnov test against PyTorch's draws,
    pooled over several instances (seeded, so the outcome is fixed)."""
    stats = pytest.importorskip("scipy.stats")
    torch.manual_seed(0)
    fw.manual_seed(0)
    pools: dict = {}
    for _ in range(20):
        t, f = build(name, *args)
        for (n, tp), (m, fp) in zip(t.named_parameters(), f.named_parameters()):
            assert n == m
            a, b = pools.setdefault(n, ([], []))
            a.append(fp.detach().numpy().ravel())
            b.append(tp.detach().numpy().ravel())
    for n, (a, b) in pools.items():
        a, b = np.concatenate(a), np.concatenate(b)
        if np.ptp(b) == 0:
            np.testing.assert_array_equal(a, b)
            continue
        assert stats.ks_2samp(a, b).pvalue > 1e-3, n
