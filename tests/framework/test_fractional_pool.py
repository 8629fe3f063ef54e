"""Fractional max pooling against PyTorch's with the same random samples: values, indices and gradients in
float64 and float32, by output size or ratio, batched or not; random windows when no samples are given."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for fractional max pooling")
RNG = np.random.default_rng(81)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "kw",
    [{"output_size": (5, 6)}, {"output_ratio": (0.5, 0.6)}, {"output_size": (9, 11)}, {"output_size": 4}],
)
def test_fractional_max_pool2d_matches_torch(dtype, kw):
    x = RNG.standard_normal((2, 3, 11, 13)).astype(dtype)
    samples = RNG.random((2, 3, 2)).astype(dtype)
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    f = fw.nn.FractionalMaxPool2d(3, return_indices=True, _random_samples=fw.tensor(samples), **kw)
    t = torch.nn.FractionalMaxPool2d(3, return_indices=True, _random_samples=torch.tensor(samples), **kw)
    (fo, fi), (to, ti) = f(fx), t(tx)
    np.testing.assert_array_equal(fo.detach().numpy(), to.detach().numpy())
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())
    w = RNG.standard_normal(tuple(to.shape)).astype(dtype)
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


def test_unbatched_input_and_random_windows():
    x = RNG.standard_normal((3, 10, 10))
    s = RNG.random((1, 3, 2))
    got = fw.nn.functional.fractional_max_pool2d(fw.tensor(x), 2, output_size=5, _random_samples=fw.tensor(s))
    want = torch.nn.functional.fractional_max_pool2d(
        torch.tensor(x), 2, output_size=5, _random_samples=torch.tensor(s)
    )
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    fw.manual_seed(0)
    a = fw.nn.functional.fractional_max_pool2d(fw.tensor(x[None]), 2, output_size=6, return_indices=True)[1]
    b = fw.nn.functional.fractional_max_pool2d(fw.tensor(x[None]), 2, output_size=6, return_indices=True)[1]
    assert not np.array_equal(a.numpy(), b.numpy())  # new windows each call
    with pytest.raises(ValueError, match="either an output size, or a pooling ratio"):
        fw.nn.FractionalMaxPool2d(2)
    with pytest.raises(ValueError, match="too large"):
        fw.nn.functional.fractional_max_pool2d(fw.tensor(x), 3, output_size=9)


@pytest.mark.parametrize(
    "kernel, out, ratio", [(2, (3, 4, 3), None), ((2, 3, 2), None, 0.5), (3, (2, 2, 3), None)]
)
def test_fractional_max_pool3d_matches_torch_for_the_same_samples(kernel, out, ratio):
    """Volumes: the same windows as PyTorch's for the same samples (sample 0 drives T, 1 H, 2 W), values,
    indices and the gradient (to each window's maximum)."""
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 8, 9))
    samples = np.random.default_rng(5).uniform(0, 1, (2, 3, 3))
    kw = dict(output_size=out, output_ratio=ratio, return_indices=True)
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fo, fi = fw.nn.functional.fractional_max_pool3d(fx, kernel, _random_samples=fw.tensor(samples), **kw)
    to, ti = torch.nn.functional.fractional_max_pool3d(
        tx, kernel, _random_samples=torch.tensor(samples), **kw
    )
    np.testing.assert_array_equal(fo.detach().numpy(), to.detach().numpy())
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())
    fo.sum().backward()
    to.sum().backward()
    np.testing.assert_array_equal(fx.grad.numpy(), tx.grad.numpy())
    m = fw.nn.FractionalMaxPool3d(
        kernel, output_size=out, output_ratio=ratio, _random_samples=fw.tensor(samples)
    )
    np.testing.assert_array_equal(m(fw.tensor(x)).numpy(), to.detach().numpy())
    assert (
        tuple(
            fw.nn.functional.fractional_max_pool3d(
                fw.tensor(x[0]), kernel, output_size=out or (3, 4, 4)
            ).shape
        )[0]
        == 3
    )
