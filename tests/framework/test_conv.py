"""conv2d / conv_transpose2d against PyTorch (values and gradients), second derivatives, errors."""

import numpy as np
import pytest
from functional_oracle import check

import framework as fw
import framework.functional as F
import framework.nn  # noqa: F401  (fw.nn)
import framework.optim  # noqa: F401  (fw.optim)
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# (N, C, H, W, K, kh, kw, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 4, 9, 8, 6, 3, 3, 1, 1, 1, 1),
    (2, 4, 9, 8, 6, 3, 2, (2, 1), (0, 2), (1, 2), 2),
    (1, 6, 7, 7, 6, 3, 3, 2, 1, (2, 1), 6),  # depthwise
    (2, 5, 9, 7, 5, 3, 3, 1, 1, 1, 5),  # depthwise stride 1 (flat shifted slices)
    (1, 4, 8, 11, 4, 5, 3, 1, (1, 2), (2, 3), 4),  # depthwise stride 1, dilated, unequal padding
    (2, 3, 6, 6, 3, 3, 3, 1, 0, 1, 3),  # depthwise stride 1, no padding
    (3, 5, 70, 66, 5, 3, 3, 1, 1, 1, 5),  # depthwise stride 1: several chunks of planes, the last partial
    (2, 3, 7, 8, 3, 3, 3, 1, (3, 1), 1, 3),  # depthwise stride 1, padding past the kernel's reach
    (2, 3, 7, 6, 6, 3, 3, 1, 1, 1, 3),  # depthwise with multiplier 2
    (3, 4, 5, 6, 8, 1, 1, 1, 0, 1, 1),  # 1x1
    (3, 4, 5, 6, 8, 1, 1, 2, 1, 1, 2),  # strided 1x1 with padding, grouped
    (2, 3, 8, 8, 5, 2, 2, 3, 1, 1, 1),  # stride larger than kernel
    (1, 2, 10, 9, 3, 5, 3, (3, 2), (2, 1), (1, 3), 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_matches_torch(case, dtype, rng):
    n, c, h, w, k, kh, kw, s, p, d, g = case
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c // g, kh, kw))
    b = rng.standard_normal(k)
    check(
        lambda x, w, b: F.conv2d(x, w, b, s, p, d, g),
        lambda x, w, b: TF.conv2d(x, w, b, s, p, d, g),
        [x, wt, b],
        dtype=dtype,
    )


# Strided layers with rows of >= 24 outputs take the phase-grouped col2im for the input gradient.
WIDE_STRIDED = [
    (2, 3, 50, 53, 4, 3, 3, 2, 1, 1, 1),
    (1, 4, 61, 75, 6, 4, 5, (3, 2), (2, 1), 1, 2),  # uneven stride, kernel wider than the stride
    (1, 2, 49, 80, 3, 2, 2, 3, 0, 1, 1),  # kernel smaller than the stride: some rows get nothing
    (1, 2, 30, 100, 3, 5, 3, (2, 4), (0, 2), 1, 1),
]


@pytest.mark.parametrize("case", WIDE_STRIDED)
def test_conv2d_strided_input_gradient_matches_torch(case, rng):
    n, c, h, w, k, kh, kw, s, p, d, g = case
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c // g, kh, kw))
    check(lambda x, w: F.conv2d(x, w, None, s, p, d, g),
          lambda x, w: TF.conv2d(x, w, None, s, p, d, g), [x, wt])


@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), (2, 3), (5, 2)])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_string_padding(k, d, padding, rng):
    x = rng.standard_normal((2, 3, 9, 8))
    wt = rng.standard_normal((4, 3, k, k - 1 if k > 2 else k))
    y = check(
        lambda x, w: F.conv2d(x, w, None, 1, padding, d),
        lambda x, w: TF.conv2d(x, w, None, 1, padding, d),
        [x, wt],
    )
    if padding == "same":
        assert tuple(y[0].shape[2:]) == (9, 8)


def test_conv2d_unbatched_and_no_bias(rng):
    x = rng.standard_normal((3, 6, 6))
    wt = rng.standard_normal((2, 3, 3, 3))
    check(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1), [x, wt])


# (N, Cin, H, W, Cout, k, stride, padding, output_padding, groups, dilation)
TRANSPOSE_CASES = [
    (2, 4, 5, 6, 6, 3, 2, 1, 1, 1, 1),
    (1, 4, 4, 4, 4, 4, 2, 1, 0, 2, 1),
    (2, 3, 5, 5, 2, 3, 1, 0, 0, 1, 2),
    (1, 6, 3, 4, 6, 3, 3, 2, 2, 3, 1),
    (2, 2, 4, 3, 3, 2, 1, 0, 1, 1, 2),  # output_padding < dilation with stride 1
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_transpose2d_matches_torch(case, dtype, rng):
    n, ci, h, w, co, k, s, p, op, g, d = case
    x = rng.standard_normal((n, ci, h, w))
    wt = rng.standard_normal((ci, co // g, k, k))
    b = rng.standard_normal(co)
    check(
        lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, g, d),
        lambda x, w, b: TF.conv_transpose2d(x, w, b, s, p, op, g, d),
        [x, wt, b],
        dtype=dtype,
    )


def test_conv1d_and_unfold(rng):
    x = rng.standard_normal((2, 3, 11))
    wt = rng.standard_normal((4, 3, 3))
    check(lambda x, w: F.conv1d(x, w, None, 2, 1), lambda x, w: TF.conv1d(x, w, None, 2, 1), [x, wt])
    x = rng.standard_normal((2, 3, 6, 5))
    check(
        lambda x: F.unfold(x, (2, 3), padding=1, stride=(1, 2)),
        lambda x: TF.unfold(x, (2, 3), padding=1, stride=(1, 2)),
        [x],
    )


def _t(a, grad=True):
    return fw.tensor(a, dtype=fw.float64, requires_grad=grad)


@pytest.mark.parametrize("s,p,d,g", [(1, 1, 1, 1), (2, 0, 1, 2), (1, 1, 2, 1)])
def test_conv2d_gradcheck_and_gradgradcheck(s, p, d, g, rng):
    x = _t(rng.standard_normal((1, 2, 5, 4)))
    w = _t(rng.standard_normal((2, 2 // g, 2, 2)))
    b = _t(rng.standard_normal(2))
    f = lambda x, w, b: F.conv2d(x, w, b, s, p, d, g)
    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))


def test_conv_transpose2d_gradgradcheck(rng):
    x = _t(rng.standard_normal((1, 2, 3, 3)))
    w = _t(rng.standard_normal((2, 1, 2, 2)))
    f = lambda x, w: F.conv_transpose2d(x, w, None, 2, 0, 1)
    assert gradcheck(f, (x, w))
    assert gradgradcheck(f, (x, w))


def test_conv2d_double_backward_matches_torch(rng):
    """The gradient penalty ||d out / d x||^2 differentiated again, against PyTorch."""
    x = rng.standard_normal((2, 3, 6, 6))
    wt = rng.standard_normal((4, 3, 3, 3))

    def penalty(lib, conv):
        xs = lib.tensor(x, requires_grad=True)
        ws = lib.tensor(wt, requires_grad=True)
        y = conv(xs, ws, None, 2, 1)
        (gx,) = lib.autograd.grad((y * y).sum(), [xs], create_graph=True)
        (gx * gx).sum().backward()
        return xs.grad.numpy() if lib is fw else xs.grad.detach().numpy(), ws.grad.numpy() if lib is fw else (
            ws.grad.detach().numpy()
        )

    a, b = penalty(fw, F.conv2d), penalty(torch, TF.conv2d)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-9, atol=1e-9)


def test_conv2d_float32_stays_float32(rng):
    x = fw.tensor(rng.standard_normal((1, 2, 5, 5)).astype(np.float32), requires_grad=True)
    w = fw.tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.sum().backward()
    assert y.dtype == fw.float32 and x.grad.dtype == fw.float32 and w.grad.dtype == fw.float32


def test_conv2d_errors_name_op_and_shapes():
    x = fw.zeros(1, 4, 8, 8)
    w = fw.zeros(6, 3, 3, 3)
    with pytest.raises(RuntimeError, match=r"conv2d.*\[6, 3, 3, 3\].*\[1, 4, 8, 8\].*3 channels.*4 channels"):
        F.conv2d(x, w)
    with pytest.raises(RuntimeError, match=r"conv2d.*divisible by 4"):
        F.conv2d(x, fw.zeros(6, 1, 3, 3), groups=4)
    with pytest.raises(RuntimeError, match=r"conv2d.*too small"):
        F.conv2d(fw.zeros(1, 3, 2, 2), fw.zeros(2, 3, 3, 3))
    with pytest.raises(ValueError, match="same.*strided"):
        F.conv2d(fw.zeros(1, 3, 8, 8), fw.zeros(2, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(RuntimeError, match=r"conv2d.*bias.*\[2\]"):
        F.conv2d(fw.zeros(1, 3, 8, 8), fw.zeros(2, 3, 3, 3), fw.zeros(3))
    with pytest.raises(RuntimeError, match=r"conv2d.*4-D weight"):
        F.conv2d(x, fw.zeros(6, 4, 3))
    with pytest.raises(RuntimeError, match=r"conv_transpose2d.*channels"):
        F.conv_transpose2d(x, fw.zeros(3, 2, 3, 3))
    with pytest.raises(RuntimeError, match="output padding"):
        F.conv_transpose2d(x, fw.zeros(4, 2, 3, 3), stride=2, output_padding=2)


@pytest.mark.parametrize(
    "shape,k", [((6, 3, 32, 32), 3), ((2, 2, 64, 64), 3), ((6, 3, 32, 32), 1), ((2, 2, 64, 64), 1)]
)
def test_conv2d_image_chunking(shape, k, rng):
    """Large images run one per product, small ones several per product (with a partial last chunk)."""
    x = rng.standard_normal(shape)
    wt = rng.standard_normal((4, shape[1], k, k))
    p = k // 2
    check(lambda x, w: F.conv2d(x, w, None, 1, p), lambda x, w: TF.conv2d(x, w, None, 1, p), [x, wt])
    check(
        lambda x, w: F.conv2d(x, w, None, 2, p, 1, 1),
        lambda x, w: TF.conv2d(x, w, None, 2, p, 1, 1),
        [x, wt],
        dtype=np.float32,
    )


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_winograd_path(padding, dtype, rng):
    """3x3 stride-1 convolutions with >= 32 channels on >= 32x32 images take the Winograd kernels."""
    from framework.kernels.cpu import winograd

    x = rng.standard_normal((1, 32, 35, 34))
    wt = rng.standard_normal((32, 32, 3, 3)) * 0.1
    assert winograd.applicable(x.shape, wt.shape, (1, 1), (padding, padding), (1, 1), 1)
    check(
        lambda x, w: F.conv2d(x, w, None, 1, padding),
        lambda x, w: TF.conv2d(x, w, None, 1, padding),
        [x, wt],
        dtype=dtype,
        rtol=1e-9 if dtype == np.float64 else 1e-4,
        atol=1e-9 if dtype == np.float64 else 1e-4,
    )


def test_winograd_is_chosen_where_it_was_measured_faster():
    from framework.kernels.cpu import winograd

    def ok(c, k, hw):
        return winograd.applicable((1, c, hw, hw), (k, c, 3, 3), (1, 1), (1, 1), (1, 1), 1)

    assert ok(32, 32, 64) and ok(64, 128, 80) and ok(128, 128, 8)
    assert not ok(16, 16, 64)  # too few channels
    assert not ok(32, 64, 64)  # widening 32 channels: im2col measured faster
    assert not ok(64, 64, 12)  # small image, fewer than 128 channels
    assert not winograd.applicable((1, 64, 32, 32), (64, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1)


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 32, 35, 34), (3, 40, 13, 11), (1, 32, 75, 70)])
def test_conv2d_inference_winograd_f43_matches_torch(padding, shape, rng):
    """Without autograd, 3x3 stride-1 layers of >= 32 channels take F(4x4, 3x3): odd sizes (partial
    tiles), several images per chunk, and a large image cut into bands of tile rows (the last partial)
    against PyTorch, in float64 (exact up to rounding) and float32 (within 1e-4 of the output's scale)."""
    from framework.kernels.cpu import winograd43

    k = 48
    x = rng.standard_normal(shape)
    wt = rng.standard_normal((k, shape[1], 3, 3)) / np.sqrt(9 * shape[1])
    assert winograd43.applicable(x.shape, wt.shape, (1, 1), (padding, padding), (1, 1), 1)
    ho, wo = shape[2] + 2 * padding - 2, shape[3] + 2 * padding - 2
    if shape[0] == 1 and shape[2] > 64:
        assert len(winograd43._chunks(1, -(-ho // 4), -(-wo // 4))) >= 2
    ref = TF.conv2d(torch.tensor(x), torch.tensor(wt), padding=padding).numpy()
    calls = []
    real = winograd43.conv3x3_forward
    winograd43.conv3x3_forward = lambda *a: calls.append(1) or real(*a)
    try:
        with fw.no_grad():
            y64 = F.conv2d(fw.tensor(x), fw.tensor(wt), padding=padding).numpy()
            y32 = F.conv2d(fw.tensor(x.astype(np.float32)), fw.tensor(wt.astype(np.float32)),
                           padding=padding).numpy()
    finally:
        winograd43.conv3x3_forward = real
    assert len(calls) == 2
    assert y64.dtype == np.float64 and y32.dtype == np.float32 and y32.shape == ref.shape
    np.testing.assert_allclose(y64, ref, rtol=1e-10, atol=1e-10)
    assert np.abs(y32 - ref).max() <= 1e-4 * np.abs(ref).max()


def test_conv2d_f43_where_measured_faster_with_and_without_autograd(rng, monkeypatch):
    """F(4x4, 3x3) needs >= 32 channels in and out and >= 8x8 outputs. It runs the forward, both gradients
    (the weight gradient from the forward's kept input transform) and inference;
    FRAMEWORK_CONV_WINOGRAD43_TRAIN=0 keeps it to inference, with F(2x2, 3x3) under autograd."""
    from framework.kernels.cpu import conv as conv_kernels
    from framework.kernels.cpu import winograd, winograd43

    def ok(c, k, hw, stride=1, groups=1):
        return winograd43.applicable((1, c, hw, hw), (k, c // groups, 3, 3), (stride, stride), (1, 1), (1, 1),
                                     groups)

    assert ok(32, 32, 8) and ok(32, 64, 64) and ok(144, 144, 15)
    assert not ok(16, 32, 64) and not ok(32, 16, 64)  # few channels: im2col measured faster
    assert not ok(64, 64, 7) and not ok(64, 64, 64, stride=2) and not ok(64, 64, 64, groups=2)
    calls = []
    for mod in (winograd, winograd43):
        for name in ("conv3x3_forward", "conv3x3_backward_input", "conv3x3_backward_weight"):
            real = getattr(mod, name)
            monkeypatch.setattr(mod, name, lambda *a, _r=real, _n=f"{mod.__name__[-2:]}.{name[8:]}", **k:
                                calls.append(_n) or _r(*a, **k))
    x = fw.tensor(rng.standard_normal((1, 32, 16, 16)).astype(np.float32), requires_grad=True)
    w = fw.tensor((rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    assert set(calls) == {"43.forward", "43.backward_input", "43.backward_weight"}  # (input: a forward)
    calls.clear()
    with fw.no_grad():
        F.conv2d(x, w, padding=1)
    assert calls == ["43.forward"]
    calls.clear()
    monkeypatch.setattr(conv_kernels, "_WINOGRAD43_TRAIN", False)
    F.conv2d(x, w, padding=1).sum().backward()
    assert set(calls) == {"ad.forward", "ad.backward_input", "ad.backward_weight"}
    calls.clear()
    with fw.no_grad():
        F.conv2d(x, w, padding=1)
    assert calls == ["43.forward"]


@pytest.mark.parametrize("shape,pad", [((2, 32, 13, 17, 40), 1), ((3, 33, 9, 30, 35), 0),
                                       ((2, 32, 10, 11, 32), 2), ((1, 64, 70, 70, 48), 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_f43_training_gradients_against_torch(rng, shape, pad, dtype):
    """Forward, input and weight gradients through F(4x4, 3x3) (odd sizes: partial tiles at both edges;
    the 70x70 image is split into bands of tile rows), against PyTorch in float64: float64 to 1e-12 of
    the scale, float32 within F(4x4)'s rounding (about 1e-5 of the scale)."""
    n, c, h, wd, k = shape
    x = rng.standard_normal((n, c, h, wd))
    w = rng.standard_normal((k, c, 3, 3)) * 0.2
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = TF.conv2d(tx, tw, padding=pad)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    fx = fw.tensor(x.astype(dtype), requires_grad=True)
    fwt = fw.tensor(w.astype(dtype), requires_grad=True)
    y = F.conv2d(fx, fwt, padding=pad)
    y.backward(fw.tensor(g.astype(dtype)))
    tol = 1e-12 if dtype == np.float64 else 3e-5
    for ours, ref in ((y, ty), (fx.grad, tx.grad), (fwt.grad, tw.grad)):
        r = ref.detach().numpy()
        assert np.abs(ours.detach().numpy() - r).max() <= tol * np.abs(r).max()


def test_conv2d_float16_keeps_dtype(rng):
    x = rng.standard_normal((1, 32, 32, 32)).astype(np.float16)
    w = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float16)
    y = F.conv2d(fw.tensor(x), fw.tensor(w), padding=1)
    ref = TF.conv2d(torch.tensor(x, dtype=torch.float32), torch.tensor(w, dtype=torch.float32), padding=1)
    assert y.dtype == fw.float16
    np.testing.assert_allclose(y.numpy().astype(np.float32), ref.numpy(), rtol=2e-2, atol=2e-2)


def test_conv2d_winograd_backward_twice_with_retain_graph(rng):
    """The forward's kept transform serves the first backward; a retained second one recomputes it."""
    x = fw.tensor(rng.standard_normal((1, 32, 32, 32)).astype(np.float32), requires_grad=True)
    w = fw.tensor((rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.sum().backward(retain_graph=True)
    first = w.grad.numpy().copy()
    w.grad = None
    y.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), first, rtol=1e-5, atol=1e-5)
    tw = torch.tensor(w.detach().numpy(), requires_grad=True)
    TF.conv2d(torch.tensor(x.detach().numpy()), tw, padding=1).sum().backward()
    np.testing.assert_allclose(first, tw.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_conv2d_winograd_bands_of_a_large_image(rng):
    """A large image is transformed in bands of tile rows (odd sizes: partial last band and tiles)."""
    x = rng.standard_normal((1, 32, 67, 66))
    wt = rng.standard_normal((32, 32, 3, 3)) * 0.1
    check(lambda x, w: F.conv2d(x, w, None, 1, 1), lambda x, w: TF.conv2d(x, w, None, 1, 1), [x, wt])


@pytest.mark.parametrize(
    "groups,stride,dilation,hw,flat",
    [(1, 2, 1, 64, True), (2, 1, 2, 64, True), (1, 1, 1, 64, True), (1, 3, 1, 96, False)],
)
def test_conv2d_kept_patch_matrices_serve_the_weight_gradient(rng, groups, stride, dilation, hw, flat):
    """im2col's patch matrices from the forward (three chunks here, the last one partial; flat windows
    with garbage columns, or for stride 3 the direct taps) give the same weight gradient as rebuilding
    them; a retained second backward rebuilds them."""
    from framework.kernels.cpu import conv as cpu_conv

    x_np = rng.standard_normal((9, 16, hw, hw)).astype(np.float32)
    w_np = (rng.standard_normal((24, 16 // groups, 3, 3)) * 0.1).astype(np.float32)
    geom = dict(stride=stride, padding=dilation, dilation=dilation, groups=groups)
    keep = {}
    wo = cpu_conv.conv_out_size(hw, 3, stride, dilation, dilation)
    assert cpu_conv._flat_layout(3, 3, (stride,) * 2, (dilation,) * 2, (dilation,) * 2, wo, wo)[0] == flat
    cpu_conv.conv2d_forward(x_np, w_np, (stride,) * 2, (dilation,) * 2, (dilation,) * 2, groups, keep=keep)
    assert [c[:2] for c in keep["im2col"]][-1][1] == 9 and len(keep["im2col"]) > 1
    x = fw.tensor(x_np, requires_grad=True)
    w = fw.tensor(w_np, requires_grad=True)
    y = F.conv2d(x, w, **geom)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(fw.tensor(g), retain_graph=True)
    first = w.grad.numpy().copy()
    w.grad = None
    y.backward(fw.tensor(g))
    np.testing.assert_allclose(w.grad.numpy(), first, rtol=1e-5, atol=1e-5)
    tx, tw = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    TF.conv2d(tx, tw, **geom).backward(torch.tensor(g))
    np.testing.assert_allclose(first, tw.grad.numpy(), rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(x.grad.numpy() / 2, tx.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "n,c,hw,k,kernel,stride,padding,dilation,flat",
    [
        (3, 4, (70, 67), 6, 3, 2, 1, 1, True),  # odd sizes: the last phase rows and columns are partial
        (2, 3, (128, 128), 8, 4, 4, 0, 1, False),  # patchify stem (no overlap: the direct strided taps)
        (2, 5, (99, 101), 4, 5, (3, 2), (2, 1), 1, True),  # a 5x5 kernel, unequal strides and paddings
        (2, 6, (66, 72), 5, 1, 2, 0, 1, False),  # a strided 1x1 (no overlap: the direct strided taps)
        (2, 3, (64, 70), 4, 2, (1, 2), 0, 1, True),  # overlap in one direction only: no extra columns
        (5, 2, (64, 64), 3, 3, 2, 1, 1, True),  # several chunks of images, the last one partial
        (3, 8, (40, 37), 5, 3, 1, 1, 1, True),  # stride 1: one phase, the padded image (no Winograd: 37)
        (2, 4, (40, 70), 5, 3, 1, 2, 2, True),  # dilation 2: windows two rows / columns apart
        (2, 4, (41, 83), 5, 3, 2, 2, 2, True),  # dilation 2 at stride 2: every tap in phase (0, 0)
        (3, 8, (16, 16), 5, 3, 2, 1, 1, False),  # 8 output columns: the extra one would cost 1/8
    ],
)
def test_conv2d_flat_window_im2col_matches_torch(rng, dtype, n, c, hw, k, kernel, stride, padding, dilation,
                                                 flat):
    """Convolutions whose taps overlap build their patch matrices by flat windows over phase images,
    with rows computed as wide as the phases (garbage columns dropped); the others keep the direct
    strided taps. Forward, input and weight gradients against PyTorch, either way."""
    from framework.kernels.cpu import conv as cpu_conv

    s = (stride,) * 2 if isinstance(stride, int) else stride
    p = (padding,) * 2 if isinstance(padding, int) else padding
    ho = cpu_conv.conv_out_size(hw[0], kernel, s[0], p[0], dilation)
    wo = cpu_conv.conv_out_size(hw[1], kernel, s[1], p[1], dilation)
    assert cpu_conv._flat_layout(kernel, kernel, s, p, (dilation,) * 2, ho, wo)[0] == flat
    x = rng.standard_normal((n, c) + hw)
    w = rng.standard_normal((k, c, kernel, kernel)) * 0.2
    b = rng.standard_normal(k)
    check(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation),
          lambda x, w, b: TF.conv2d(x, w, b, stride, padding, dilation), [x, w, b], dtype=dtype)


@pytest.mark.parametrize(
    "n,c,hw,k,kernel,stride,padding,dilation,groups",
    [
        (2, 4, (9, 11), 6, 3, 2, 1, 1, 1),
        (2, 4, (12, 13), 6, 3, 2, 2, 2, 2),  # dilation 2 at stride 2: taps share phases
        (3, 3, (10, 9), 4, 3, (3, 2), (1, 0), (2, 1), 1),
        (2, 2, (11, 12), 3, 1, 2, 0, 1, 1),  # pixels no tap reaches: their gradient is zero
        (2, 2, (13, 13), 3, 2, 3, 1, 1, 1),  # stride 3 > kernel 2: gaps between the windows
        (1, 3, (8, 8), 2, 5, 1, 4, 1, 1),  # padding wider than the image's half
        (5, 4, (16, 16), 3, 3, 1, 1, 1, 1),
        (2, 3, (75, 70), 8, 3, 1, 1, 1, 1),  # 27 patch rows, one image per product: 1024-column pieces
    ],
)
def test_conv2d_input_gradient_geometries(rng, n, c, hw, k, kernel, stride, padding, dilation, groups):
    """Backward-data (col2im by phases over flat windows of zero-padded output rows) against PyTorch."""
    x = rng.standard_normal((n, c) + hw)
    w = rng.standard_normal((k, c // groups, kernel, kernel)) * 0.3
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check(lambda x, w: F.conv2d(x, w, **kw), lambda x, w: TF.conv2d(x, w, **kw), [x, w])
    check(lambda x, w: F.conv2d(x, w, **kw), lambda x, w: TF.conv2d(x, w, **kw), [x, w], dtype=np.float32)


def _matches_torch_with_nonfinite_input(x_np, w_np, rng, **geom):
    """conv2d forward, weight and input gradients (float64) against PyTorch, whose results stay finite
    because the non-finite pixels of x_np are read by no window."""
    x, w = fw.tensor(x_np, requires_grad=True), fw.tensor(w_np, requires_grad=True)
    y = F.conv2d(x, w, **geom)
    g = rng.standard_normal(y.shape)
    y.backward(fw.tensor(g))
    tx, tw = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    ty = TF.conv2d(tx, tw, **geom)
    ty.backward(torch.tensor(g))
    assert np.isfinite(ty.detach().numpy()).all() and np.isfinite(tw.grad.numpy()).all()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "hw,stride,dilation,unread",
    [
        ((36, 36), 2, 1, [(35, 35), (10, 35), (35, 3)]),  # the last row and column: past every window
        ((15, 101), 2, 3, [(4, 1), (2, 99)]),  # dilation 3 at stride 2: image column 1 sits in a phase
        # whose only tap starts one column in, so no output reads it
    ],
)
def test_conv2d_pixels_no_output_reads_stay_out_of_every_result(rng, hw, stride, dilation, unread):
    """Non-finite values in pixels that no window reads change nothing, as in PyTorch: the flat-window
    patches compute garbage columns over the phases, and those must never read such pixels (0 x inf
    would turn the weight gradient into NaN)."""
    from framework.kernels.cpu import conv as cpu_conv

    x_np = rng.standard_normal((2, 3) + hw)
    for r, c in unread:
        x_np[:, :, r, c] = np.inf
    x_np[1, :, unread[0][0], unread[0][1]] = np.nan
    w_np = rng.standard_normal((4, 3, 3, 3)) * 0.3
    ho = cpu_conv.conv_out_size(hw[0], 3, stride, 0, dilation)
    wo = cpu_conv.conv_out_size(hw[1], 3, stride, 0, dilation)
    assert cpu_conv._flat_layout(3, 3, (stride,) * 2, (0, 0), (dilation,) * 2, ho, wo)[0]
    _matches_torch_with_nonfinite_input(x_np, w_np, rng, stride=stride, dilation=dilation)


@pytest.mark.parametrize("groups,width", [(3, 9), (1, 40)])
def test_dilation_wider_than_the_output_keeps_unread_rows_out(rng, groups, width):
    """A dilation wider than the output leaves image rows that no window reads; inf there must not
    reach the weight gradient (flat patches' garbage columns, which run on into the next row, could
    read them): depthwise, and a full convolution wide enough for flat windows otherwise."""
    x_np = rng.standard_normal((2, 3, 12, width))
    # 2 output rows read rows {0, 5, 10} and {1, 6, 11}; the garbage columns of output row 1 run on into
    # the start of rows 2, 7 and 12 (the flat buffer's tail)
    x_np[:, :, 2, :] = np.inf
    w_np = rng.standard_normal((3, 3 // groups, 3, 3))
    geom = dict(padding=(0, 1), dilation=(5, 1), groups=groups)
    _matches_torch_with_nonfinite_input(x_np, w_np, rng, **geom)


def test_inference_reuses_the_winograd_weight_transform_only_while_the_weight_is_unchanged(rng):
    """Under no_grad the transformed weight (F(4x4, 3x3)'s) is cached; every way of changing the weight
    (a write through ``.data`` with no version bump, an optimizer step, replacing ``.data``) is seen.
    With autograd on, the training path's transform (F(4x4, 3x3)'s too) is recomputed every call."""
    from framework.kernels.cpu import winograd, winograd43

    x = fw.tensor(rng.standard_normal((1, 32, 20, 20)).astype(np.float32))
    w = fw.nn.Parameter(fw.tensor((rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)))
    geom = (tuple(x.shape), tuple(w.shape), (1, 1), (1, 1), (1, 1), 1)
    assert winograd.applicable(*geom) and winograd43.applicable(*geom)

    def conv_matching_torch():
        """Our no-grad convolution, checked against PyTorch's on the weight as it is now."""
        with fw.no_grad():
            y = F.conv2d(x, w, padding=1).numpy()
        ref = TF.conv2d(torch.tensor(x.numpy()), torch.tensor(w.detach().numpy()), padding=1).numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
        return y

    calls, train_calls = [], []
    real, real43 = winograd._weight_transform, winograd43.weight_transform

    def counting(xp, arr):
        train_calls.append(1)
        return real(xp, arr)

    def counting43(arr):
        calls.append(1)
        return real43(arr)

    winograd._weight_transform, winograd43.weight_transform = counting, counting43
    try:
        y1 = conv_matching_torch()
        with fw.no_grad():
            y2 = F.conv2d(x, w, padding=1).numpy()
        assert len(calls) == 1  # the second call found the transform
        np.testing.assert_array_equal(y1, y2)

        w.data[0, 0, 1, 1] += 1.0  # raw write: no version counter moves
        y3 = conv_matching_torch()
        assert len(calls) == 2
        assert not np.allclose(y3, y1)

        w.data = w.data * 2  # a new array
        conv_matching_torch()
        opt = fw.optim.SGD([w], lr=0.5)
        w.grad = fw.ones_like(w)
        opt.step()
        conv_matching_torch()
        assert len(calls) == 4 and not train_calls
        # with autograd on (training) nothing is cached: the weights change every step
        F.conv2d(x, w, padding=1)
        F.conv2d(x, w, padding=1)
        assert len(calls) == 6 and not train_calls
    finally:
        winograd._weight_transform, winograd43.weight_transform = real, real43


def test_winograd_weight_cache_is_bitwise_and_bounded(rng):
    from framework.kernels.cpu import winograd

    w = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)
    w[0, 0, 0, 0] = 0.0
    u = winograd.cached_weight_transform(w)
    assert winograd.cached_weight_transform(w) is u
    w[0, 0, 0, 0] = -0.0  # equal as floats, different bits: recomputed
    assert winograd.cached_weight_transform(w) is not u
    assert np.signbit(winograd._U_CACHE[id(w)][1][0, 0, 0, 0])
    key = id(w)
    del w  # the entry goes with its array
    assert key not in winograd._U_CACHE
    # an array dying while the lock is held (a garbage collection inside the locked code, in the same
    # thread) must not deadlock: its entry is dropped by the lock's next holder
    v = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)
    winograd.cached_weight_transform(v)
    key = id(v)
    with winograd._U_LOCK:
        del v
        assert key in winograd._U_CACHE
    winograd.cached_weight_transform(np.zeros((32, 32, 3, 3), np.float32))
    assert key not in winograd._U_CACHE
    old = winograd._U_CACHE_MAX_BYTES
    winograd._U_CACHE_MAX_BYTES = 1 << 20  # about two 64x64 entries
    try:
        ws = [rng.standard_normal((64, 64, 3, 3)).astype(np.float32) for _ in range(4)]
        for a in ws:
            winograd.cached_weight_transform(a)
        total = sum(e[1].nbytes + e[2].nbytes for e in winograd._U_CACHE.values())
        assert total <= winograd._U_CACHE_MAX_BYTES and id(ws[-1]) in winograd._U_CACHE
        assert id(ws[0]) not in winograd._U_CACHE  # least recently used first out
    finally:
        winograd._U_CACHE_MAX_BYTES = old
