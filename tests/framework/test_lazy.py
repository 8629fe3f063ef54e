"""Lazy layers: the input size is taken from the first input (batched or not) or from a state dict; the module
becomes the real class with the real shapes and the same Parameter objects; its state dict then loads from
PyTorch's real layer and gives PyTorch's outputs."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for lazy layers")
RNG = np.random.default_rng(41)

CASES = [
    ("LazyLinear", (5,), {}, (3, 7), "Linear"),
    ("LazyConv1d", (4, 3), {"padding": 1}, (2, 6, 9), "Conv1d"),
    ("LazyConv2d", (8, 3), {"groups": 2, "stride": 2}, (2, 6, 9, 9), "Conv2d"),
    ("LazyConv2d", (4, 3), {}, (6, 9, 9), "Conv2d"),  # unbatched
    ("LazyConv3d", (4, 2), {}, (1, 3, 4, 5, 6), "Conv3d"),
    ("LazyConvTranspose2d", (4, 3), {"stride": 2}, (2, 6, 5, 5), "ConvTranspose2d"),
    ("LazyConvTranspose1d", (4, 3), {"groups": 2}, (2, 6, 7), "ConvTranspose1d"),
    ("LazyBatchNorm1d", (), {}, (8, 5), "BatchNorm1d"),
    ("LazyBatchNorm2d", (), {}, (4, 3, 5, 5), "BatchNorm2d"),
    ("LazyInstanceNorm2d", (), {"affine": True}, (2, 3, 5, 5), "InstanceNorm2d"),
]


@pytest.mark.parametrize("name,args,kwargs,shape,real", CASES, ids=[f"{c[0]}-{len(c[3])}d" for c in CASES])
def test_lazy_layers_become_the_real_layer(name, args, kwargs, shape, real):
    f = getattr(fw.nn, name)(*args, **kwargs).double()
    t = getattr(torch.nn, name)(*args, **kwargs).double()
    assert f.has_uninitialized_params()
    params = {n: p for n, p in f.named_parameters()}
    x = RNG.standard_normal(shape)
    f(fw.tensor(x))
    t(torch.tensor(x))
    assert type(f) is getattr(fw.nn, real) and type(t) is getattr(torch.nn, real)
    assert not hasattr(f, "has_uninitialized_params") or not f.has_uninitialized_params()
    assert {k: tuple(v.shape) for k, v in f.state_dict().items()} == {
        k: tuple(v.shape) for k, v in t.state_dict().items()}
    for n, p in f.named_parameters():
        assert p is params[n]  # the same objects, materialised in place
    f.load_state_dict({k: fw.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    f.eval()
    t.eval()
    np.testing.assert_allclose(f(fw.tensor(x)).detach().numpy(), t(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_unbatched_inputs_give_the_channels():
    # (PyTorch's lazy instance norms read dimension 1 even of an unbatched input, and then fail)
    norm = fw.nn.LazyInstanceNorm2d(affine=True)
    norm(fw.ones(3, 5, 5))
    assert norm.num_features == 3 and tuple(norm.weight.shape) == (3,)
    conv = fw.nn.LazyConv1d(2, 3)
    conv(fw.ones(4, 9))
    assert conv.in_channels == 4


def test_a_lazy_layer_sized_by_a_state_dict_and_trained():
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
    f = fw.nn.Sequential(fw.nn.LazyLinear(4), fw.nn.ReLU(), fw.nn.LazyLinear(2)).double()
    f.load_state_dict({k: fw.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    assert type(f[0]) is fw.nn.Linear and f[0].in_features == 6 and f[2].in_features == 4
    opt = fw.optim.SGD(f.parameters(), lr=0.1)
    topt = torch.optim.SGD(t.parameters(), lr=0.1)
    x = RNG.standard_normal((5, 6))
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        (f(fw.tensor(x)) ** 2).sum().backward()
        (t(torch.tensor(x)) ** 2).sum().backward()
        opt.step()
        topt.step()
    np.testing.assert_allclose(f[0].weight.detach().numpy(), t[0].weight.detach().numpy(), rtol=1e-10)
    lazy = fw.nn.LazyLinear(3)
    missing, _ = lazy.load_state_dict({}, strict=False)
    assert sorted(missing) == ["bias", "weight"] and lazy.has_uninitialized_params()
    with pytest.raises(ValueError, match="the first call needs the input"):
        fw.nn.LazyLinear(3)()
