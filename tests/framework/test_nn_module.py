"""nn.Module: registration, traversal, modes, conversion, state dicts and hooks, against PyTorch."""

from collections import OrderedDict

import numpy as np
import pytest

import framework as fw
from framework import nn

torch = pytest.importorskip("torch")


def to_np_state(sd):
    return {k: v.detach().numpy() for k, v in sd.items()}


def to_torch_state(sd):
    return {k: torch.tensor(np.array(v.numpy())) for k, v in sd.items()}


def lib_tensor(lib, v):
    return torch.tensor(v) if lib is torch.nn else fw.tensor(v)


def make_net(lib, base):
    class Net(base):
        def __init__(self):
            super().__init__()
            self.block = Block_(lib)
            self.head = lib.Sequential(lib.Linear(4, 2), lib.ReLU())
            self.shared = self.head[0]  # the same module twice: listed once by parameters()
            self.alpha = (torch.nn.Parameter(torch.ones(2)) if lib is torch.nn
                          else nn.Parameter(fw.ones(2)))

        def forward(self, x):
            return self.head(self.block(x)) * self.alpha

    class Block_(base):
        def __init__(self, lib):
            super().__init__()
            self.fc = lib.Linear(3, 4)
            self.register_buffer("scale", lib_tensor(lib, [1.0, 2.0, 3.0, 4.0]))
            self.register_buffer("tmp", lib_tensor(lib, [0.0]), persistent=False)

        def forward(self, x):
            return self.fc(x) * self.scale

    return Net()


@pytest.fixture
def nets():
    return make_net(torch.nn, torch.nn.Module), make_net(nn, nn.Module)


def test_names_and_traversal_match_torch(nets):
    t, f = nets
    assert [n for n, _ in f.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in f.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in f.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in f.named_children()] == [n for n, _ in t.named_children()]
    assert list(f.state_dict().keys()) == list(t.state_dict().keys())
    assert [n for n, _ in f.named_parameters(prefix="m", recurse=True)] == [
        n for n, _ in t.named_parameters(prefix="m", recurse=True)]
    assert [n for n, _ in f.named_parameters(recurse=False)] == ["alpha"]
    assert len(list(f.parameters())) == len(list(t.parameters()))
    assert [n for n, _ in f.named_parameters(remove_duplicate=False)] == [
        n for n, _ in t.named_parameters(remove_duplicate=False)]
    assert all(isinstance(p, nn.Parameter) for p in f.parameters())
    assert not isinstance(f.block.scale, nn.Parameter)
    assert f.get_submodule("head.0") is f.shared
    assert f.get_parameter("head.0.bias") is f.shared.bias


def test_state_dict_roundtrip_both_ways(nets):
    t, f = nets
    res = f.load_state_dict(to_np_state(t.state_dict()))
    assert res.missing_keys == [] and res.unexpected_keys == []
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(f(fw.tensor(x)).detach().numpy(), t(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    t2 = make_net(torch.nn, torch.nn.Module)
    t2.load_state_dict(to_torch_state(f.state_dict()), strict=True)
    for k, v in t2.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), t.state_dict()[k].numpy())


def test_state_dict_shares_memory_and_keep_vars(nets):
    _, f = nets
    sd = f.state_dict()
    assert not sd["alpha"].requires_grad
    assert np.shares_memory(sd["alpha"].numpy(), f.alpha.data)
    assert f.state_dict(keep_vars=True)["alpha"] is f.alpha
    assert list(f.state_dict(prefix="net.").keys())[0].startswith("net.")


def test_strict_load_errors_list_keys(nets):
    _, f = nets
    sd = to_np_state({k: torch.tensor(v.numpy()) for k, v in f.state_dict().items()})
    del sd["block.fc.bias"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(RuntimeError) as e:
        f.load_state_dict(sd)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "block.fc.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    res = f.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["block.fc.bias"] and res.unexpected_keys == ["extra.weight"]
    missing, unexpected = res  # a namedtuple, as in PyTorch
    assert missing == ["block.fc.bias"]
    sd2 = to_np_state({k: torch.tensor(v.numpy()) for k, v in f.state_dict().items()})
    sd2["block.fc.weight"] = np.zeros((2, 2), np.float32)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for block.fc.weight: copying a param "
                                               r"with shape \[2, 2\] from checkpoint, the shape in "
                                               r"current model is \[4, 3\]"):
            f.load_state_dict(sd2, strict=strict)


def test_load_state_dict_copies_in_place_and_casts():
    lin = nn.Linear(2, 2)
    w = lin.weight
    lin.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)})
    assert lin.weight is w and lin.weight.dtype == fw.float32
    np.testing.assert_array_equal(w.data, np.ones((2, 2)))
    lin.load_state_dict({"weight": fw.full((2, 2), 3.0), "bias": fw.zeros(2)}, assign=True)
    assert lin.weight is not w and isinstance(lin.weight, nn.Parameter) and lin.weight.requires_grad


def test_non_persistent_buffer_and_registration_errors():
    m = nn.Module()
    m.register_buffer("a", fw.zeros(2))
    m.register_buffer("b", fw.zeros(2), persistent=False)
    assert list(m.state_dict()) == ["a"]
    assert [n for n, _ in m.named_buffers()] == ["a", "b"]
    with pytest.raises(KeyError):
        m.register_buffer("x.y", fw.zeros(1))
    with pytest.raises(TypeError):
        m.register_parameter("p", fw.zeros(1))
    m.p = nn.Parameter(fw.zeros(1))
    with pytest.raises(TypeError):
        m.p = fw.zeros(1)
    m.p = None
    assert "p" in m._parameters and m.p is None and list(m.parameters()) == []
    m.a = fw.ones(2)  # re-assigning a buffer keeps it a buffer
    assert "a" in m._buffers
    m.child = nn.Linear(1, 1)
    del m.child
    assert "child" not in m._modules
    with pytest.raises(AttributeError):
        _ = m.missing


def test_train_eval_apply_requires_grad_zero_grad():
    m = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Dropout(), nn.Linear(3, 1)))
    assert m.training and all(x.training for x in m.modules())
    assert m.eval() is m and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Dropout", "Linear", "Sequential", "Sequential"]  # children first
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    m.requires_grad_(True)
    m(fw.ones(4, 2)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_dtype_keeps_integer_buffers_and_parameter_identity():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    w = m[0].weight
    m.double()
    assert m[0].weight is w and w.dtype == fw.float64 and isinstance(w, nn.Parameter)
    assert m[1].running_mean.dtype == fw.float64
    assert m[1].num_batches_tracked.dtype == fw.int64
    m.to(fw.float32)
    assert w.dtype == fw.float32
    m.half()
    assert w.dtype == fw.float16
    m.float().to("cpu").cpu()
    assert w.dtype == fw.float32
    with pytest.raises(TypeError):
        m.to(fw.int64)


def test_containers():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and s[0] is layers[0] and s[-1] is layers[2]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and sub[0] is layers[1]
    s.append(nn.Sigmoid())
    assert len(s) == 4 and list(s.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    del s[1]
    assert [type(x).__name__ for x in s] == ["Linear", "Linear", "Sigmoid"]
    assert list(s.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    od = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(od.state_dict()) == ["fc.weight", "fc.bias"] and od.act is od[1]
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    ml.append(nn.Linear(1, 2))
    ml.extend([nn.Identity()])
    assert len(ml) == 5 and ml[-2].out_features == 2 and len(list(ml.parameters())) == 8
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    md = nn.ModuleDict({"a": nn.Linear(1, 1), "b": nn.ReLU()})
    md["c"] = nn.Linear(1, 2)
    assert list(md.keys()) == ["a", "b", "c"] and "c" in md and len(md) == 3
    assert list(md.state_dict()) == ["a.weight", "a.bias", "c.weight", "c.bias"]
    x = fw.randn(2, 2)
    np.testing.assert_array_equal(nn.Identity(3, foo=1)(x).numpy(), x.numpy())
    pl = nn.ParameterList([fw.ones(2), nn.Parameter(fw.zeros(3))])
    pd = nn.ParameterDict({"a": fw.ones(1)})
    pd["b"] = nn.Parameter(fw.zeros(2))
    holder = nn.Module()
    holder.pl, holder.pd = pl, pd
    assert list(holder.state_dict()) == ["pl.0", "pl.1", "pd.a", "pd.b"]
    tp = torch.nn.Module()
    tp.pl = torch.nn.ParameterList([torch.ones(2), torch.zeros(3)])
    tp.pd = torch.nn.ParameterDict({"a": torch.ones(1), "b": torch.zeros(2)})
    assert list(tp.state_dict()) == list(holder.state_dict())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in holder.parameters())


def test_repr_matches_torch():
    pairs = [
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2, bias=False))),
         torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                             torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False)))),
        (nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), torch.nn.Conv2d(3, 8, 3, stride=2, padding=1,
                                                                              bias=False)),
        (nn.BatchNorm2d(8), torch.nn.BatchNorm2d(8)),
        (nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True),
         torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)),
        (nn.GRU(5, 7), torch.nn.GRU(5, 7)),
        (nn.Dropout(0.2), torch.nn.Dropout(0.2)),
        (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
        (nn.Embedding(10, 3, padding_idx=0), torch.nn.Embedding(10, 3, padding_idx=0)),
        (nn.LayerNorm(4), torch.nn.LayerNorm(4)),
        (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
        (nn.GELU(), torch.nn.GELU()),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
        (nn.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4)),
        (nn.AdaptiveAvgPool2d((1, 1)), torch.nn.AdaptiveAvgPool2d((1, 1))),
        (nn.Upsample(scale_factor=2, mode="nearest"), torch.nn.Upsample(scale_factor=2, mode="nearest")),
    ]
    for name, args, kwargs in [
        ("RNN", (3, 4), {"nonlinearity": "relu"}), ("Conv1d", (3, 4, 3), {"padding": "same"}),
        ("InstanceNorm2d", (3,), {}), ("PReLU", (), {}), ("Bilinear", (2, 3, 4), {}), ("ELU", (), {}),
        ("Hardtanh", (), {}), ("Softplus", (), {}), ("ZeroPad2d", (1,), {}), ("ConstantPad2d", (1, 2.0), {}),
        ("ReflectionPad2d", (1,), {}), ("PixelShuffle", (2,), {}), ("MaxPool1d", (2,), {}),
        ("AvgPool2d", (2,), {}), ("GLU", (), {}), ("ReLU6", (), {}), ("Dropout2d", (), {}),
        ("Upsample", (), {"size": (3, 4), "mode": "bilinear"}),
        ("ConvTranspose2d", (3, 4, 3), {"stride": 2, "output_padding": 1}), ("Embedding", (5, 3), {}),
        ("Unflatten", (1, (2, 3)), {}), ("RNNCell", (2, 3), {}), ("GRUCell", (2, 3), {"bias": False}),
        ("CosineSimilarity", (), {}), ("SmoothL1Loss", (), {}), ("CrossEntropyLoss", (), {}),
    ]:
        pairs.append((getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)))
    for f, t in pairs:
        assert repr(f) == repr(t)


# ----------------------------------------------------------------------------------- hooks


def test_forward_and_pre_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append((args[0].shape, out.shape)) or out + 1)
    x = fw.ones(3, 2)
    y = m(x)
    ref = fw.nn.functional.linear(x * 2, m.weight, m.bias) + 1
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy())
    assert calls == [((3, 2), (3, 2))]
    h1.remove()
    h2.remove()
    np.testing.assert_allclose(m(x).detach().numpy(),
                               fw.nn.functional.linear(x, m.weight, m.bias).detach().numpy())
    assert len(calls) == 1
    kw = []
    m.register_forward_pre_hook(lambda mod, args, kwargs: kw.append(kwargs) or None, with_kwargs=True)
    m.register_forward_hook(lambda mod, args, kwargs, out: None, with_kwargs=True)
    m(x)
    assert kw == [{}]


class TwoIn(nn.Module):
    def __init__(self, lib):
        super().__init__()
        self.fc = lib.Linear(3, 2)

    def forward(self, a, b):
        return self.fc(a) * b, a.sum() * 2


class TwoInT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, a, b):
        return self.fc(a) * b, a.sum() * 2


@pytest.mark.parametrize("b_requires_grad", [True, False])
def test_full_backward_hook_matches_torch(b_requires_grad):
    t, f = TwoInT(), TwoIn(nn)
    f.load_state_dict(to_np_state(t.state_dict()))
    rec = {"t": [], "f": []}

    def hook(key, scale):
        def h(mod, gin, gout):
            rec[key].append((tuple(None if g is None else g.detach().numpy().copy() for g in gin),
                             tuple(g.detach().numpy().copy() for g in gout)))
            return tuple(None if g is None else g * scale for g in gin)
        return h

    t.register_full_backward_hook(hook("t", 3.0))
    f.register_full_backward_hook(hook("f", 3.0))
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    ta = torch.tensor(a, dtype=torch.float32, requires_grad=True)
    tb = torch.tensor(b, dtype=torch.float32, requires_grad=b_requires_grad)
    fa = fw.tensor(a, dtype=fw.float32, requires_grad=True)
    fb = fw.tensor(b, dtype=fw.float32, requires_grad=b_requires_grad)
    t1, t2 = t(ta, tb)
    f1, f2 = f(fa, fb)
    w = rng.standard_normal((4, 2))
    ((t1 * torch.tensor(w, dtype=torch.float32)).sum() + t2).backward()
    ((f1 * fw.tensor(w, dtype=fw.float32)).sum() + f2).backward()
    assert len(rec["t"]) == len(rec["f"]) == 1
    (tgin, tgout), (fgin, fgout) = rec["t"][0], rec["f"][0]
    assert len(tgin) == len(fgin) and len(tgout) == len(fgout)
    for x, y in zip(tgin + tgout, fgin + fgout):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)
    # The hook's replacement grad_input reached the leaves.
    np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-6)
    if b_requires_grad:
        np.testing.assert_allclose(fb.grad.numpy(), tb.grad.numpy(), rtol=1e-5, atol=1e-6)
    for tp, fp in zip(t.parameters(), f.parameters()):
        np.testing.assert_allclose(fp.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_full_backward_hook_without_input_grad_and_pre_hook():
    m = nn.Linear(3, 2)
    got = []
    m.register_full_backward_hook(lambda mod, gin, gout: got.append((gin, gout[0].shape)))
    m.register_full_backward_pre_hook(lambda mod, gout: (gout[0] * 0,))
    m(fw.ones(4, 3)).sum().backward()  # the input does not require grad
    assert got == [((None,), (4, 2))]
    assert float(m.weight.grad.abs().sum()) == 0  # the pre-hook zeroed grad_output


def test_hook_handle_as_context_manager():
    m = nn.Identity()
    seen = []
    with m.register_forward_hook(lambda *a: seen.append(1)):
        m(fw.ones(1))
    m(fw.ones(1))
    assert seen == [1]


def test_deepcopy_gives_independent_parameters():
    import copy

    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    m[0].weight.grad = fw.ones(3, 2)
    c = copy.deepcopy(m)
    assert isinstance(c[0].weight, nn.Parameter) and c[0].weight is not m[0].weight
    assert c[0].weight.requires_grad and c[0].weight.grad is not None
    c[0].weight.data[...] = 5.0
    assert float(m[0].weight.abs().max()) < 5.0
    assert list(c.state_dict()) == list(m.state_dict())
    c(fw.randn(4, 2)).sum().backward()
