"""conv2d_bias_act: act(conv2d + bias + residual) against PyTorch on every CPU kernel path, bit-for-bit
against the same operations done one by one, its gradients, its errors; and the banded im2col forward
against the unbanded one."""

import numpy as np
import pytest

import framework as fw
import framework.functional as F
from framework.kernels.cpu import conv as C

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# (N, C, H, W, K, k, stride, padding, groups): one case per path of the CPU forward
PATHS = {
    "pointwise (one product per image)": (2, 8, 9, 7, 6, 1, 1, 0, 1),
    "3x3 im2col, flat windows": (2, 4, 9, 8, 6, 3, 1, 1, 1),
    "3x3 im2col, bands of rows (large image)": (1, 24, 72, 96, 12, 3, 1, 1, 1),
    "3x3 stride 2, bands of rows": (2, 32, 80, 100, 8, 3, 2, 1, 1),
    "patchify stem, few rows": (2, 3, 16, 20, 8, 4, 4, 0, 1),
    "3x3 Winograd F(4x4, 3x3)": (2, 32, 12, 10, 32, 3, 1, 1, 1),
    "depthwise stride 1, chunks across images": (3, 5, 70, 66, 5, 3, 1, 1, 5),
    "depthwise stride 2": (2, 6, 9, 9, 6, 3, 2, 1, 6),
    "grouped": (2, 4, 9, 8, 6, 3, 1, 1, 2),
}
ACTS = {None: lambda t: t, "relu": torch.relu, "silu": TF.silu}


def _case(case, rng, dtype):
    n, c, h, w, k, kk, s, p, g = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((k, c // g, kk, kk)) / np.sqrt(c // g * kk * kk)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    ref = TF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b), s, p, 1, g)
    r = rng.standard_normal(tuple(ref.shape)).astype(dtype)
    return x, wt, b, r, ref, (s, p, 1, g)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("act", [None, "relu", "silu"])
def test_fused_forward_matches_torch_on_every_path(path, act, rng):
    x, wt, b, r, ref, geo = _case(PATHS[path], rng, np.float32)
    for bias in (b, None):
        for res in (r, None):
            want = ref if bias is not None else ref - torch.from_numpy(b).reshape(1, -1, 1, 1)
            want = ACTS[act](want + (torch.from_numpy(res) if res is not None else 0)).numpy()
            with fw.no_grad():
                got = F.conv2d_bias_act(fw.tensor(x), fw.tensor(wt),
                                        None if bias is None else fw.tensor(bias), *geo, activation=act,
                                        residual=None if res is None else fw.tensor(res)).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(),
                                       err_msg=f"{path}, act={act}, bias={bias is not None}, "
                                               f"residual={res is not None}")


@pytest.mark.parametrize("path", list(PATHS))
def test_fused_relu_is_bit_for_bit_the_ops_one_by_one(path, rng):
    """The epilogue does the same float operations in the same order as conv2d, + residual, relu."""
    x, wt, b, r, _, geo = _case(PATHS[path], rng, np.float32)
    xt, wtt, bt, rt = (fw.tensor(a) for a in (x, wt, b, r))
    with fw.no_grad():
        apart = F.relu(F.conv2d(xt, wtt, bt, *geo) + rt).numpy()
        fused = F.conv2d_bias_act(xt, wtt, bt, *geo, activation="relu", residual=rt).numpy()
        plain = F.conv2d_bias_act(xt, wtt, bt, *geo).numpy()
        conv = F.conv2d(xt, wtt, bt, *geo).numpy()
    assert np.array_equal(fused, apart), path
    assert np.array_equal(plain, conv), path


def test_fused_float64_and_unbatched(rng):
    x, wt, b, r, ref, geo = _case((1, 4, 9, 8, 6, 3, 1, 1, 1), rng, np.float64)
    with fw.no_grad():
        got = F.conv2d_bias_act(fw.tensor(x[0]), fw.tensor(wt), fw.tensor(b), *geo, activation="relu",
                                residual=fw.tensor(r[0]))
    assert got.dtype == fw.float64 and tuple(got.shape) == tuple(ref.shape[1:])
    np.testing.assert_allclose(got.numpy(), torch.relu(ref + torch.from_numpy(r))[0].numpy(), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("act", [None, "relu", "silu"])
def test_fused_gradients_match_torch(act, rng):
    """With autograd on it is conv2d, the residual sum and the activation, each with its gradient."""
    x, wt, b, r, _, geo = _case((2, 4, 9, 8, 6, 3, 1, 1, 1), rng, np.float64)
    ours = [fw.tensor(a, requires_grad=True) for a in (x, wt, b, r)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, wt, b, r)]
    y = F.conv2d_bias_act(*ours[:3], *geo, activation=act, residual=ours[3])
    yt = ACTS[act](TF.conv2d(*theirs[:3], *geo) + theirs[3])
    g = rng.standard_normal(tuple(yt.shape))
    y.backward(fw.tensor(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    for a, t, name in zip(ours, theirs, ("input", "weight", "bias", "residual")):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-9, err_msg=name)


def test_fused_errors_name_the_problem(rng):
    x, wt, b, r, _, geo = _case((1, 4, 9, 8, 6, 3, 1, 1, 1), rng, np.float32)
    xt, wtt, bt = fw.tensor(x), fw.tensor(wt), fw.tensor(b)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        F.conv2d_bias_act(xt, wtt, bt, *geo, activation="gelu")
    with fw.no_grad(), pytest.raises(RuntimeError, match=r"residual of size \[1, 6, 9, 9\] does not match"):
        F.conv2d_bias_act(xt, wtt, bt, *geo, residual=fw.zeros(1, 6, 9, 9))
    with pytest.raises(RuntimeError, match="residual of size .* does not match"):  # the autograd route too
        F.conv2d_bias_act(xt, wtt.requires_grad_(), bt, *geo, residual=fw.zeros(1, 6, 9, 9))
    wrong = "residual is framework.float64 on cpu, the input framework.float32"
    with fw.no_grad(), pytest.raises(RuntimeError, match=wrong):
        F.conv2d_bias_act(xt, fw.tensor(wt), bt, *geo, residual=fw.tensor(r.astype(np.float64)))
    with pytest.raises(TypeError, match="residual must be a Tensor"):
        F.conv2d_bias_act(xt, fw.tensor(wt), bt, *geo, residual=r)
    with pytest.raises(RuntimeError, match="expected bias of size"):
        F.conv2d_bias_act(xt, fw.tensor(wt), fw.zeros(5), *geo)


@pytest.mark.parametrize("case", [(1, 24, 72, 96, 12, 3, 1, 1), (2, 32, 80, 100, 8, 3, 2, 1),
                                  (1, 16, 80, 96, 8, 5, 2, 2)])
def test_banded_forward_equals_the_whole_image_forward(case, rng, monkeypatch):
    """Large images are lowered in bands of output rows; the result is the one-product forward's."""
    n, c, h, w, k, kk, s, p = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, kk, kk)).astype(np.float32)
    geo = ((s, s), (p, p), (1, 1), 1)
    assert c * kk * kk * h * w * 4 / s ** 2 > C._BAND_MIN_BYTES  # (the case is large enough to band)
    banded = C.conv2d_forward(x, wt, *geo)
    monkeypatch.setattr(C, "_BAND_MIN_BYTES", 1 << 40)
    whole = C.conv2d_forward(x, wt, *geo)
    np.testing.assert_allclose(banded, whole, rtol=1e-5, atol=1e-5 * np.abs(whole).max())
    ref = TF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), None, s, p).numpy()
    np.testing.assert_allclose(banded, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("f43", [True, False])
def test_winograd_training_forward_epilogue(rng, monkeypatch, f43):
    """The training forward (F(4x4, 3x3), or F(2x2, 3x3) with FRAMEWORK_CONV_WINOGRAD43_TRAIN=0), which
    keeps its input transform for the weight gradient, applies the epilogue band by band as well."""
    monkeypatch.setattr(C, "_WINOGRAD43_TRAIN", f43)
    x = rng.standard_normal((2, 32, 40, 36)).astype(np.float32)
    wt = rng.standard_normal((40, 32, 3, 3)).astype(np.float32) / 17
    b = rng.standard_normal(40).astype(np.float32)
    r = rng.standard_normal((2, 40, 40, 36)).astype(np.float32)
    geo = ((1, 1), (1, 1), (1, 1), 1)
    assert C._winograd_kind(x, x.shape, wt.shape, *geo) is (C.winograd43 if f43 else C.winograd)
    kept = {}
    got = C.conv2d_forward(x, wt, *geo, keep=kept, bias=b, activation="relu", residual=r)
    assert list(kept) == ["winograd43" if f43 else "winograd"]
    want = np.maximum(C.conv2d_forward(x, wt, *geo) + b.reshape(-1, 1, 1) + r, 0)
    assert np.array_equal(got, want)


def test_fused_under_autocast_runs_in_the_autocast_dtype(rng):
    """conv2d_bias_act has conv2d's autocast policy: inputs, residual included, cast to the lower dtype."""
    x, wt, b, r, ref, geo = _case((1, 4, 9, 8, 6, 3, 1, 1, 1), rng, np.float32)
    with fw.no_grad(), fw.autocast("cpu", dtype=fw.float16):
        y = F.conv2d_bias_act(fw.tensor(x), fw.tensor(wt), fw.tensor(b), *geo, activation="relu",
                              residual=fw.tensor(r))
    assert y.dtype == fw.float16
    want = torch.relu(ref + torch.from_numpy(r)).numpy()
    np.testing.assert_allclose(y.numpy().astype(np.float32), want, rtol=2e-2, atol=2e-2 * np.abs(want).max())


@pytest.mark.parametrize("grad", [False, True])
def test_fused_same_padding_with_an_even_kernel(grad, rng):
    """padding='same' with an even kernel pads one extra row and column at the bottom right, as conv2d."""
    x = rng.standard_normal((2, 3, 9, 8))
    wt = rng.standard_normal((4, 3, 4, 2))
    b = rng.standard_normal(4)
    r = rng.standard_normal((2, 4, 9, 8))
    tx, tw, tb, tr = (torch.from_numpy(a) for a in (x, wt, b, r))
    want = torch.relu(TF.conv2d(tx, tw, tb, padding="same") + tr).numpy()
    xt = fw.tensor(x, requires_grad=grad)
    with fw.enable_grad() if grad else fw.no_grad():
        got = F.conv2d_bias_act(xt, fw.tensor(wt), fw.tensor(b), padding="same", activation="relu",
                                residual=fw.tensor(r))
    assert got.requires_grad == grad
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10, atol=1e-10)
