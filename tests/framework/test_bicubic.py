"""Bicubic interpolation against PyTorch: up- and downscaling, sizes and scale factors, align_corners both
ways, gradients, nn.Upsample(mode='bicubic'), and the errors."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for interpolation")
RNG = np.random.default_rng(71)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "kw",
    [
        {"size": (7, 9)},
        {"size": (3, 4)},
        {"scale_factor": 2.5},
        {"scale_factor": (0.5, 1.7)},
        {"size": (5, 6)},
    ],
)
def test_bicubic_matches_torch_with_gradients(align_corners, kw):
    x = RNG.standard_normal((2, 3, 5, 6))
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fo = fw.nn.functional.interpolate(fx, mode="bicubic", align_corners=align_corners, **kw)
    to = torch.nn.functional.interpolate(tx, mode="bicubic", align_corners=align_corners, **kw)
    assert tuple(fo.shape) == tuple(to.shape)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12, atol=1e-12)
    w = RNG.standard_normal(tuple(to.shape))
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_bicubic_upsample_module_and_errors():
    x = RNG.standard_normal((1, 1, 4, 4))
    got = fw.nn.Upsample(scale_factor=2, mode="bicubic", align_corners=False)(fw.tensor(x)).numpy()
    want = torch.nn.Upsample(scale_factor=2, mode="bicubic", align_corners=False)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    ramp = np.tile(np.arange(6.0), (1, 1, 6, 1))  # a linear ramp is reproduced exactly away from the edges
    up = fw.nn.functional.interpolate(
        fw.tensor(ramp), size=(6, 11), mode="bicubic", align_corners=True
    ).numpy()
    np.testing.assert_allclose(up[0, 0, 3, 2:-2], np.linspace(0, 5, 11)[2:-2], atol=1e-12)
    with pytest.raises(ValueError, match="mode 'bicubic' expects 4-D input"):
        fw.nn.functional.interpolate(fw.ones(1, 1, 4), size=8, mode="bicubic")
