"""Functional operations of neural networks, as ``torch.nn.functional`` (also ``framework.nn.functional``).

Names, argument names, defaults and semantics follow PyTorch. Every operation is differentiable, and
its backward is itself written with differentiable operations, so gradients of gradients work
(``create_graph=True``); the convolution's backward is a pair of Functions (backward-data and
backward-weight) whose own backwards are convolutions again.

Array-level kernels live in ``framework.kernels`` (NumPy on the CPU; CUDA kernels for CuPy arrays when
available). Shapes use PyTorch's letters: N batch, C channels, H/W height/width, L sequence length.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import ops
from .autograd import Function, is_grad_enabled, no_grad
from .backend import get_array_module
from .kernels import kernel
from .kernels.cpu.conv import _ACTIVATIONS as _CONV_ACTIVATIONS
from .ops.basic import Mask
from .tensor import Tensor

__all__ = [
    # linear and convolution
    "linear", "bilinear", "conv2d", "conv2d_bias_act", "conv_transpose2d", "conv1d", "unfold", "fold",
    "conv3d", "conv_transpose1d", "conv_transpose3d",
    # pooling and resampling
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "max_pool1d",
    "max_pool3d", "avg_pool3d", "adaptive_avg_pool3d", "adaptive_max_pool3d",
    "avg_pool1d", "adaptive_avg_pool1d", "interpolate", "upsample", "pad", "pixel_shuffle",
    "pixel_unshuffle", "channel_shuffle", "grid_sample", "affine_grid",
    # normalisation and dropout
    "batch_norm", "layer_norm", "rms_norm", "group_norm", "instance_norm", "local_response_norm", "dropout",
    "dropout2d", "alpha_dropout", "normalize",
    # activations
    "relu", "relu6", "leaky_relu", "prelu", "threshold", "elu", "celu", "selu", "gelu", "silu", "mish",
    "sigmoid", "tanh", "hardtanh",
    "hardsigmoid", "hardswish", "softplus", "logsigmoid", "softsign", "softmax", "softmin", "log_softmax",
    "glu", "erf",
    # embeddings and similarity
    "embedding", "embedding_bag", "one_hot", "dropout1d", "dropout3d", "hardshrink",
    "softshrink", "tanhshrink", "rrelu", "lp_pool1d", "lp_pool2d", "lp_pool3d", "max_unpool1d",
    "max_unpool2d", "max_unpool3d", "adaptive_max_pool1d", "feature_alpha_dropout", "fractional_max_pool2d",
    "gumbel_softmax", "cosine_similarity", "pairwise_distance", "pdist",
    "scaled_dot_product_attention",
    # losses
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss",
    "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "sigmoid_focal_loss", "margin_ranking_loss",
    "hinge_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss", "cosine_embedding_loss",
    "triplet_margin_loss", "multi_margin_loss", "poisson_nll_loss", "gaussian_nll_loss",
    "multilabel_margin_loss", "triplet_margin_with_distance_loss", "ctc_loss",
    # in-place activations and the *_with_indices forms, as torch.nn.functional names them
    "relu_", "elu_", "selu_", "celu_", "leaky_relu_", "hardtanh_", "threshold_", "rrelu_",
    "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
    "adaptive_max_pool3d_with_indices",
    "fractional_max_pool2d_with_indices", "fractional_max_pool3d", "fractional_max_pool3d_with_indices",
    "upsample_nearest", "upsample_bilinear",
]


# ============================================================================= helpers


def _pair(v, name="argument"):
    if isinstance(v, numbers.Integral):
        return (int(v), int(v))
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return (v[0], v[0])
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v}")
    return v


def _ntuple(v, n: int, name="argument"):
    """An int or a sequence of n ints (or of one, repeated) as an n-tuple."""
    if isinstance(v, numbers.Integral):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {v}")
    return v


def _shape(t):
    return list(t.shape)


def _float_dtype_check(name, *ts):
    dts = {t.data.dtype for t in ts if isinstance(t, Tensor)}
    if len(dts) > 1:
        names = ", ".join(str(d) for d in sorted(dts, key=str))
        raise RuntimeError(f"{name}: expected all inputs to have the same dtype, got {names}")


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{name}: {reduction!r} is not a valid value for reduction "
                     "(use 'none', 'mean' or 'sum')")


def _legacy_reduction(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else ("mean" if size_average else "sum")


def _as_tensor_like(v, ref: Tensor) -> Tensor:
    if isinstance(v, Tensor):
        return v
    xp = get_array_module(ref.data)
    return Tensor(xp.asarray(v, dtype=ref.data.dtype))


# ============================================================================= linear


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b. input (*, in_features), weight (out_features, in_features), bias (out_features)."""
    if input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(f"linear: mat1 and mat2 shapes cannot be multiplied (input {_shape(input)}, "
                           f"weight {_shape(weight)}: in_features {input.shape[-1]} != {weight.shape[-1]})")
    lead = input.shape[:-1]
    x = input.reshape(-1, input.shape[-1]) if input.ndim != 2 else input
    y = ops.matmul(x, weight.t() if weight.ndim == 2 else weight)
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, y.shape[-1]) if input.ndim != 2 else y


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y_k = x1^T A_k x2 + b_k; weight (out, in1, in2)."""
    t = ops.matmul(input1.unsqueeze(-2).unsqueeze(-3), weight)  # (*, out, 1, in2)
    y = (t.squeeze(-2) * input2.unsqueeze(-2)).sum(-1)
    return y + bias if bias is not None else y


# ============================================================================= convolution


class _Conv2d(Function):
    """y = conv(x, w) (+ b). Backward: ConvBackwardData and ConvBackwardWeight (both differentiable)."""

    saves_inputs = (0, 1)

    def forward(self, x, w, b):
        # The bias goes into the kernels' epilogue (no extra pass over the output); so do the
        # activation and residual of conv2d_bias_act, which runs this forward without a graph.
        epi = dict(bias=b, activation=getattr(self, "activation", None),
                   residual=getattr(self, "residual", None))
        fn = kernel("conv", "conv2d_forward", x)
        if fn.__module__ == _CUDA_CONV:
            return fn(x, w, self.stride, self.padding, self.dilation, self.groups, **epi)
        if getattr(self, "keep_transform", False):
            # The CPU kernels can hand work from the forward (Winograd's input transform, im2col's
            # patch matrices) to the weight gradient instead of recomputing it.
            self.kept = {}
            return fn(x, w, self.stride, self.padding, self.dilation, self.groups, keep=self.kept, **epi)
        # without autograd (inference) the weights stay fixed: their transforms may be cached
        return fn(x, w, self.stride, self.padding, self.dilation, self.groups,
                  cache_weight=not is_grad_enabled(), **epi)

    def backward(self, gy):
        x, w = self.saved_tensors
        geom = _geom(self)
        gx = gw = gb = None
        if gy.shape[2:] != self.out_hw:  # (cannot happen from the public API; defensive)
            raise RuntimeError("conv2d backward: gradient shape mismatch")
        if self.needs_input_grad[0]:
            gx = _ConvBackwardData(x_shape=tuple(x.shape), **geom)(gy, w)
        if self.needs_input_grad[1]:
            gw = _ConvBackwardWeight(w_shape=tuple(w.shape), kept=getattr(self, "kept", None), **geom)(x, gy)
            self.kept = None  # used once; a second backward (retain_graph) recomputes
        if self.needs_input_grad[2]:
            gb = _channel_sum(gy)
        return gx, gw, gb


def _per_channel_sum(a: np.ndarray) -> np.ndarray:
    """a (N, C, ...) summed over every axis but 1, as one einsum (3-4x faster than NumPy's reduction
    over non-adjacent axes, with the same float32 accuracy measured)."""
    return np.einsum("ncl->c", a.reshape(a.shape[0], a.shape[1], -1))


def _channel_sum(g: Tensor) -> Tensor:
    """g (N, C, H, W) summed over (0, 2, 3); without a graph, on NumPy, by _per_channel_sum."""
    a = g.data
    if not is_grad_enabled() and isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64):
        return Tensor(_per_channel_sum(a))
    return g.sum((0, 2, 3))


_CPU_CONV = "framework.kernels.cpu.conv"
_CUDA_CONV = "framework.kernels.cuda.conv"


def _geom(fn):
    return {"stride": fn.stride, "padding": fn.padding, "dilation": fn.dilation, "groups": fn.groups}


def _conv_raw(x, w, b=None, **geom):
    """The _Conv2d Function on Tensors with resolved geometry."""
    (sh, sw), (ph, pw), (dh, dw) = geom["stride"], geom["padding"], geom["dilation"]
    h = (x.shape[2] + 2 * ph - dh * (w.shape[2] - 1) - 1) // sh + 1
    wd = (x.shape[3] + 2 * pw - dw * (w.shape[3] - 1) - 1) // sw + 1
    return _Conv2d(out_hw=(h, wd), **geom)(x, w, b)


class _ConvBackwardData(Function):
    """gx = conv^T(gy, w): the gradient of a convolution with respect to its input (and the forward of
    a transposed convolution). Bilinear in (gy, w)."""

    def forward(self, gy, w):
        return kernel("conv", "conv2d_backward_input", gy)(gy, w, self.x_shape, self.stride, self.padding,
                                                             self.dilation, self.groups)

    def backward(self, ggx):
        gy, w = self.inputs
        geom = _geom(self)
        g_gy = g_w = None
        if self.needs_input_grad[0]:
            g_gy = _conv_raw(ggx, w, **geom)
            if g_gy.shape != gy.shape:  # output_padding >= stride (allowed when < dilation)
                g_gy = g_gy[:, :, :gy.shape[2], :gy.shape[3]]
        if self.needs_input_grad[1]:
            g_w = _ConvBackwardWeight(w_shape=tuple(w.shape), **geom)(ggx, gy)
        return g_gy, g_w


class _ConvBackwardWeight(Function):
    """gw = gy ⋆ x: the gradient of a convolution with respect to its weight. Bilinear in (x, gy)."""

    def forward(self, x, gy):
        fn = kernel("conv", "conv2d_backward_weight", x)
        kept = getattr(self, "kept", None)
        if kept and fn.__module__ == _CPU_CONV:
            return fn(x, gy, self.w_shape, self.stride, self.padding, self.dilation, self.groups, kept=kept)
        return fn(x, gy, self.w_shape, self.stride, self.padding, self.dilation, self.groups)

    def backward(self, ggw):
        x, gy = self.inputs
        geom = _geom(self)
        g_x = g_gy = None
        if self.needs_input_grad[0]:
            g_x = _ConvBackwardData(x_shape=tuple(x.shape), **geom)(gy, ggw)
        if self.needs_input_grad[1]:
            g_gy = _conv_raw(x, ggw, **geom)
            if g_gy.shape != gy.shape:
                g_gy = g_gy[:, :, :gy.shape[2], :gy.shape[3]]
        return g_x, g_gy


def _check_conv(name, input, weight, bias, groups, transposed=False, nd=2):
    taps = ", ".join(("kD", "kH", "kW")[3 - nd:])
    if weight.ndim != nd + 2:
        raise RuntimeError(f"{name}: expected a {nd + 2}-D weight (out_channels, in_channels/groups, "
                           f"{taps}), got weight of size {_shape(weight)}")
    if input.ndim != nd + 2:
        raise RuntimeError(f"{name}: expected {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, got "
                           f"input of size {_shape(input)}")
    if groups < 1:
        raise RuntimeError(f"{name}: non-positive groups is not supported (groups={groups})")
    c = input.shape[1]
    if not transposed:
        if weight.shape[0] % groups:
            raise RuntimeError(f"{name}: given groups={groups}, expected weight to be divisible by {groups} "
                               f"at dimension 0, but got weight of size {_shape(weight)}")
        if weight.shape[1] * groups != c:
            raise RuntimeError(f"{name}: given groups={groups}, weight of size {_shape(weight)}, expected "
                               f"input{_shape(input)} to have {weight.shape[1] * groups} channels, but got "
                               f"{c} channels instead")
        out_c = weight.shape[0]
    else:
        if weight.shape[0] != c or c % groups:
            raise RuntimeError(f"{name}: given transposed=1, weight of size {_shape(weight)}, expected "
                               f"input{_shape(input)} to have {weight.shape[0]} channels, but got {c} "
                               f"channels instead (groups={groups})")
        out_c = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (out_c,):
        raise RuntimeError(f"{name}: expected bias of size [{out_c}], got {_shape(bias)}")
    _float_dtype_check(name, input, weight, bias)


def _conv_geometry(name, input: Tensor, weight: Tensor, stride, padding, dilation, nd: int):
    """A convolution's argument rules: (input, possibly padded for an odd 'same'), stride, padding,
    dilation as nd-tuples, and the output size, or the error naming what is wrong."""
    stride, dilation = _ntuple(stride, nd, "stride"), _ntuple(dilation, nd, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            totals = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
            extra = [t % 2 for t in totals]  # the odd one goes after, as PyTorch
            if any(extra):
                input = pad(input, tuple(v for e in reversed(extra) for v in (0, e)))
            padding = tuple(t // 2 for t in totals)
        else:
            raise ValueError(f"{name}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
    else:
        padding = _ntuple(padding, nd, "padding")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise RuntimeError(f"{name}: stride and dilation must be positive and padding non-negative, got "
                           f"stride={stride}, padding={padding}, dilation={dilation}")
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                for n, k, s, p, d in zip(input.shape[2:], weight.shape[2:], stride, padding, dilation))
    if min(out) < 1:
        raise RuntimeError(f"{name}: calculated output size ({'x'.join(map(str, out))}) is too small for "
                           f"input {_shape(input)}, weight {_shape(weight)}, padding={padding}, "
                           f"dilation={dilation}")
    return input, stride, padding, dilation, out


def _conv2d_geometry(input: Tensor, weight: Tensor, stride, padding, dilation):
    return _conv_geometry("conv2d", input, weight, stride, padding, dilation, 2)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    input (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in/groups, kH, kW); bias (C_out);
    padding an int, a pair, ``'valid'`` (none) or ``'same'`` (output size = input size, stride 1;
    an odd total padding puts the extra row/column at the bottom/right, as PyTorch).
    Returns (N, C_out, H_out, W_out), H_out = (H + 2*padding - dilation*(kH - 1) - 1) // stride + 1.
    """
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    _check_conv("conv2d", input, weight, bias, groups)
    input, stride, padding, dilation, out_hw = _conv2d_geometry(input, weight, stride, padding, dilation)
    keep = weight.requires_grad and is_grad_enabled()
    y = _Conv2d(stride=stride, padding=padding, dilation=dilation, groups=groups, out_hw=out_hw,
                keep_transform=keep)(input, weight, bias)
    return y.squeeze(0) if unbatched else y


def conv2d_bias_act(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                    dilation=1, groups: int = 1, activation: str | None = None,
                    residual: Tensor | None = None) -> Tensor:
    """``act(conv2d(input, weight, bias, stride, padding, dilation, groups) + residual)``, act one of
    None, ``"relu"``, ``"silu"``: the conv-BN-activation block once the batch norm is folded into the
    convolution (``nn.utils.fuse_conv_bn_eval``), and a ResNet block's ``relu(conv(x) + identity)``.

    Without autograd (inference) the convolution kernels, CPU and CUDA, apply the bias, residual and
    activation to each piece of the output as they write it, while it is in cache, instead of as
    separate passes over the whole output. Where a gradient is needed it is the same operations one
    after another, with their gradients. ``residual`` has the output's shape (no broadcasting).
    """
    if activation not in _CONV_ACTIVATIONS:
        raise ValueError(f"conv2d_bias_act: unknown activation {activation!r} (expected one of "
                         f"{_CONV_ACTIVATIONS})")
    if residual is not None and not isinstance(residual, Tensor):
        raise TypeError(f"conv2d_bias_act: residual must be a Tensor, got {type(residual).__name__}")
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
        residual = residual.unsqueeze(0) if residual is not None else None
    _check_conv("conv2d_bias_act", input, weight, bias, groups)
    input, stride, padding, dilation, out_hw = _conv2d_geometry(input, weight, stride, padding, dilation)
    if residual is not None:
        want = (input.shape[0], weight.shape[0]) + out_hw
        if tuple(residual.shape) != want:
            raise RuntimeError(f"conv2d_bias_act: residual of size {list(residual.shape[unbatched:])} does "
                               f"not match the output's {list(want[unbatched:])}")
        if residual.dtype != input.dtype or residual.device != input.device:
            raise RuntimeError(f"conv2d_bias_act: residual is {residual.dtype} on {residual.device}, the "
                               f"input {input.dtype} on {input.device}")
    if is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias, residual)):
        y = conv2d(input, weight, bias, stride, padding, dilation, groups)
        if residual is not None:
            y = y + residual
        if activation is not None:
            y = relu(y) if activation == "relu" else silu(y)
    else:
        res = None if residual is None else residual.data
        y = _Conv2d(stride=stride, padding=padding, dilation=dilation, groups=groups, out_hw=out_hw,
                    activation=activation, residual=res)(input, weight, bias)
    return y.squeeze(0) if unbatched else y


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-D convolution through conv2d on a height-1 image. input (N, C, L), weight (C_out, C/g, k)."""
    unbatched = input.ndim == 2
    if unbatched:
        input = input.unsqueeze(0)
    one = lambda v: v[0] if isinstance(v, (tuple, list)) else v
    pad_arg = padding if isinstance(padding, str) else (0, one(padding))
    y = conv2d(input.unsqueeze(2), weight.unsqueeze(2), bias, (1, one(stride)), pad_arg, (1, one(dilation)),
               groups).squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed convolution (the gradient of conv2d with respect to its input).

    input (N, C_in, H, W); weight (C_in, C_out/groups, kH, kW); output (N, C_out, H_out, W_out) with
    H_out = (H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1.
    """
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    _check_conv("conv_transpose2d", input, weight, bias, groups, transposed=True)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    dilation, output_padding = _pair(dilation, "dilation"), _pair(output_padding, "output_padding")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= max(s, d):
            raise RuntimeError(f"conv_transpose2d: output padding must be smaller than either stride or "
                               f"dilation, got output_padding={output_padding}, stride={stride}, "
                               f"dilation={dilation}")
    n, _, h, w = input.shape
    kh, kw = weight.shape[2:]
    ho = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
    wo = (w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
    if ho < 1 or wo < 1:
        raise RuntimeError(f"conv_transpose2d: calculated output size ({ho}x{wo}) is too small for input "
                           f"{_shape(input)} and weight {_shape(weight)}")
    cout = weight.shape[1] * groups
    y = _ConvBackwardData(x_shape=(n, cout, ho, wo), stride=stride, padding=padding, dilation=dilation,
                          groups=groups)(input, weight)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y.squeeze(0) if unbatched else y


# ----------------------------------------------------------------------------- 3-D convolution


class _Conv3d(Function):
    """y = conv3d(x, w) (+ b) by vol2col + BLAS (``kernels/cpu/conv3d.py``). Backward: _Conv3dBackwardData
    and _Conv3dBackwardWeight, both differentiable, whose own backwards are these three again."""

    saves_inputs = (0, 1)

    def forward(self, x, w, b):
        return kernel("conv3d", "conv3d_forward", x)(x, w, self.stride, self.padding, self.dilation,
                                                     self.groups, bias=b)

    def backward(self, gy):
        x, w = self.saved_tensors
        geom = _geom(self)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gx = _Conv3dBackwardData(x_shape=tuple(x.shape), **geom)(gy, w)
        if self.needs_input_grad[1]:
            gw = _Conv3dBackwardWeight(w_shape=tuple(w.shape), **geom)(x, gy)
        if self.needs_input_grad[2]:
            gb = gy.sum((0, 2, 3, 4))
        return gx, gw, gb


def _crop_like(t: Tensor, ref: Tensor) -> Tensor:
    """t cut to ref's spatial size (a transposed convolution's output_padding >= stride leaves the
    convolution of its output larger than its input)."""
    if t.shape == ref.shape:
        return t
    return t[(slice(None), slice(None)) + tuple(slice(0, s) for s in ref.shape[2:])]


class _Conv3dBackwardData(Function):
    """gx = conv3d^T(gy, w): the input gradient of conv3d and the forward of conv_transpose3d."""

    def forward(self, gy, w):
        return kernel("conv3d", "conv3d_backward_input", gy)(gy, w, self.x_shape, self.stride, self.padding,
                                                             self.dilation, self.groups)

    def backward(self, ggx):
        gy, w = self.inputs
        geom = _geom(self)
        g_gy = g_w = None
        if self.needs_input_grad[0]:
            g_gy = _crop_like(_Conv3d(**geom)(ggx, w, None), gy)
        if self.needs_input_grad[1]:
            g_w = _Conv3dBackwardWeight(w_shape=tuple(w.shape), **geom)(ggx, gy)
        return g_gy, g_w


class _Conv3dBackwardWeight(Function):
    """gw = gy ⋆ x: the weight gradient of conv3d. Bilinear in (x, gy)."""

    def forward(self, x, gy):
        return kernel("conv3d", "conv3d_backward_weight", x)(x, gy, self.w_shape, self.stride, self.padding,
                                                             self.dilation, self.groups)

    def backward(self, ggw):
        x, gy = self.inputs
        geom = _geom(self)
        g_x = g_gy = None
        if self.needs_input_grad[0]:
            g_x = _Conv3dBackwardData(x_shape=tuple(x.shape), **geom)(gy, ggw)
        if self.needs_input_grad[1]:
            g_gy = _crop_like(_Conv3d(**geom)(x, ggw, None), gy)
        return g_x, g_gy


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """3-D cross-correlation over volumes, as ``torch.nn.functional.conv3d``.

    input (N, C_in, D, H, W) or (C_in, D, H, W); weight (C_out, C_in/groups, kD, kH, kW); bias (C_out);
    stride, padding, dilation an int or a triple; padding also ``'valid'`` or ``'same'`` (stride 1; an
    odd total padding puts the extra slice at the end, as PyTorch).
    Returns (N, C_out, D_out, H_out, W_out), D_out = (D + 2*padding - dilation*(kD - 1) - 1) // stride + 1.
    """
    unbatched = input.ndim == 4
    if unbatched:
        input = input.unsqueeze(0)
    _check_conv("conv3d", input, weight, bias, groups, nd=3)
    input, stride, padding, dilation, _ = _conv_geometry("conv3d", input, weight, stride, padding, dilation,
                                                         3)
    y = _Conv3d(stride=stride, padding=padding, dilation=dilation, groups=groups)(input, weight, bias)
    return y.squeeze(0) if unbatched else y


def _transposed_size(name, input, weight, stride, padding, output_padding, dilation, nd):
    stride, padding = _ntuple(stride, nd, "stride"), _ntuple(padding, nd, "padding")
    dilation = _ntuple(dilation, nd, "dilation")
    output_padding = _ntuple(output_padding, nd, "output_padding")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(output_padding) < 0:
        raise RuntimeError(f"{name}: stride and dilation must be positive, padding and output_padding "
                           f"non-negative, got stride={stride}, padding={padding}, dilation={dilation}, "
                           f"output_padding={output_padding}")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= max(s, d):
            raise RuntimeError(f"{name}: output padding must be smaller than either stride or dilation, got "
                               f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, d, op in
                zip(input.shape[2:], weight.shape[2:], stride, padding, dilation, output_padding))
    if min(out) < 1:
        raise RuntimeError(f"{name}: calculated output size ({'x'.join(map(str, out))}) is too small for "
                           f"input {_shape(input)} and weight {_shape(weight)}")
    return stride, padding, dilation, out


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 3-D convolution (the gradient of conv3d with respect to its input).

    input (N, C_in, D, H, W) or (C_in, D, H, W); weight (C_in, C_out/groups, kD, kH, kW); output
    (N, C_out, D_out, H_out, W_out) with
    D_out = (D - 1)*stride - 2*padding + dilation*(kD - 1) + output_padding + 1.
    """
    unbatched = input.ndim == 4
    if unbatched:
        input = input.unsqueeze(0)
    _check_conv("conv_transpose3d", input, weight, bias, groups, transposed=True, nd=3)
    stride, padding, dilation, out = _transposed_size("conv_transpose3d", input, weight, stride, padding,
                                                      output_padding, dilation, 3)
    x_shape = (input.shape[0], weight.shape[1] * groups) + out
    y = _Conv3dBackwardData(x_shape=x_shape, stride=stride, padding=padding, dilation=dilation,
                            groups=groups)(input, weight)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1, 1)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 1-D convolution, through conv_transpose2d on a height-1 image.

    input (N, C_in, L) or (C_in, L); weight (C_in, C_out/groups, kW); output (N, C_out, L_out) with
    L_out = (L - 1)*stride - 2*padding + dilation*(kW - 1) + output_padding + 1.
    """
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise RuntimeError(f"conv_transpose1d: expected 2-D (unbatched) or 3-D (batched) input and a 3-D "
                           f"weight (in_channels, out_channels/groups, kW), got input of size "
                           f"{_shape(input)} and weight of size {_shape(weight)}")
    unbatched = input.ndim == 2
    x = input.unsqueeze(0) if unbatched else input
    if weight.shape[0] != x.shape[1]:
        raise RuntimeError(f"conv_transpose1d: weight of size {_shape(weight)} expects input"
                           f"{_shape(input)} to have {weight.shape[0]} channels, but got {x.shape[1]} "
                           f"channels instead")
    stride, padding, dilation, _ = _transposed_size("conv_transpose1d", x, weight, stride, padding,
                                                    output_padding, dilation, 1)
    output_padding = _ntuple(output_padding, 1, "output_padding")
    y = conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1,) + stride, (0,) + padding,
                         (0,) + output_padding, groups, (1,) + dilation).squeeze(2)
    return y.squeeze(0) if unbatched else y


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sliding local blocks (im2col): (N, C, H, W) -> (N, C*kH*kW, L), as ``torch.nn.functional.unfold``.

    Implemented as a convolution with a one-hot weight (one output channel per (c, i, j)), so it is
    differentiable to any order.
    """
    kh, kw = _pair(kernel_size)
    n, c = input.shape[:2]
    y = conv2d(input, _one_hot_taps(input, c, kh, kw), None, stride, padding, dilation, groups=c)
    return y.reshape(n, c * kh * kw, -1)


def _one_hot_taps(like: Tensor, c: int, kh: int, kw: int) -> Tensor:
    """(c*kh*kw, 1, kh, kw): output channel (c, i, j) of a grouped convolution picks tap (i, j) of
    channel c."""
    xp = get_array_module(like.data)
    eye = xp.eye(kh * kw, dtype=like.data.dtype).reshape(kh * kw, 1, kh, kw)
    return Tensor(xp.ascontiguousarray(xp.tile(eye, (c, 1, 1, 1))))


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sum sliding local blocks back into an image (col2im): (N, C*kH*kW, L) -> (N, C, H, W), as
    ``torch.nn.functional.fold``; the adjoint of :func:`unfold` (overlapping blocks add up).

    A transposed convolution with unfold's one-hot weight, so it is differentiable to any order.
    """
    kh, kw = _pair(kernel_size)
    oh_, ow_ = _pair(output_size)
    (dh, dw), (ph, pw), (sh, sw) = _pair(dilation), _pair(padding), _pair(stride)
    if input.ndim not in (2, 3):
        raise ValueError(f"fold: expected (N, C*kH*kW, L) or (C*kH*kW, L), got shape {tuple(input.shape)}")
    batched = input.ndim == 3
    x = input if batched else input.unsqueeze(0)
    n, ck, length = x.shape
    if ck % (kh * kw):
        raise ValueError(f"fold: {ck} channels are not a multiple of the kernel's {kh}x{kw} = {kh * kw} taps")
    c = ck // (kh * kw)
    bh = (oh_ + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    bw = (ow_ + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if bh < 1 or bw < 1 or bh * bw != length:
        raise ValueError(f"fold: output_size {(oh_, ow_)} with kernel {(kh, kw)}, dilation {(dh, dw)}, "
                         f"padding {(ph, pw)}, stride {(sh, sw)} has {max(bh, 0)}x{max(bw, 0)} blocks, "
                         f"but the input has {length}")
    # the transposed convolution covers up to the last block's extent; output_padding adds the rest
    eh = oh_ - ((bh - 1) * sh - 2 * ph + dh * (kh - 1) + 1)
    ew = ow_ - ((bw - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
    y = conv_transpose2d(x.reshape(n, ck, bh, bw), _one_hot_taps(x, c, kh, kw), None, (sh, sw), (ph, pw),
                         (eh, ew), groups=c, dilation=(dh, dw))
    return y if batched else y.squeeze(0)


# ============================================================================= pooling


class _MaxPool(Function):
    """Max pooling by the kernels ``<kind>_forward`` / ``_backward`` / ``_gather`` of kernel module ``mod``
    (``"pool"``, ``"max_pool2d"``; ``"conv3d"``, ``"max_pool3d"``), with the window geometry ``geom``."""

    def forward(self, x):
        y, self.argpos = kernel(self.mod, self.kind + "_forward", x)(x, *self.geom)
        self.x_shape = x.shape
        return y

    def _linked(self, cls):
        return cls(argpos=self.argpos, x_shape=self.x_shape, geom=self.geom, mod=self.mod, kind=self.kind)

    def backward(self, gy):
        return self._linked(_MaxPoolScatter)(gy)


class _MaxPoolScatter(_MaxPool):
    """Route window gradients to the winning inputs (linear; its adjoint is _MaxPoolGather)."""

    def forward(self, gy):
        return kernel(self.mod, self.kind + "_backward", gy)(gy, self.argpos, self.x_shape, *self.geom)

    def backward(self, ggx):
        return self._linked(_MaxPoolGather)(ggx)


class _MaxPoolGather(_MaxPool):
    def forward(self, gx):
        return kernel(self.mod, self.kind + "_gather", gx)(gx, self.argpos, *self.geom)

    def backward(self, g):
        return self._linked(_MaxPoolScatter)(g)


def _pool_args(name, kernel_size, stride, padding, dilation):
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise RuntimeError(f"{name}: kernel_size, stride and dilation must be positive, got kernel_size={k}, "
                           f"stride={s}, dilation={d}")
    for pi, ki in zip(p, k):
        if pi < 0 or pi > ki // 2:
            raise RuntimeError(f"{name}: pad should be at most half of effective kernel size, but got "
                               f"pad={p} and kernel_size={k}")
    return k, s, p, d


def _batched4(name, input):
    if input.ndim == 3:
        return input.unsqueeze(0), True
    if input.ndim != 4:
        raise RuntimeError(f"{name}: expected 3-D or 4-D input, got input of size {_shape(input)}")
    return input, False


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max pooling over (N, C, H, W) or (C, H, W). With ``return_indices`` also returns the flat
    index (h*W + w) of each maximum within its input plane, as PyTorch (int64)."""
    x, unbatched = _batched4("max_pool2d", input)
    k, s, p, d = _pool_args("max_pool2d", kernel_size, stride, padding, dilation)
    from .kernels.cpu.pool import pool_out_size

    ho = pool_out_size(x.shape[2], k[0], s[0], p[0], d[0], ceil_mode)
    wo = pool_out_size(x.shape[3], k[1], s[1], p[1], d[1], ceil_mode)
    if ho < 1 or wo < 1:
        raise RuntimeError(f"max_pool2d: given input size {_shape(input)}, calculated output size "
                           f"({ho}x{wo}) is too small (kernel_size={k}, padding={p}, dilation={d})")
    fn = _MaxPool(mod="pool", kind="max_pool2d", geom=(k, s, p, d, bool(ceil_mode)))
    y = fn(x)
    if unbatched:
        y = y.squeeze(0)
    if not return_indices:
        return y
    idx = kernel("pool", "max_pool2d_indices", fn.argpos)(fn.argpos, tuple(x.shape), k, s, p, d)
    idx = Tensor(idx[0] if unbatched else idx)
    return y, idx


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    one = lambda v: v[0] if isinstance(v, (tuple, list)) else v
    stride = kernel_size if stride is None else stride
    out = max_pool2d(input.unsqueeze(-2), (1, one(kernel_size)), (1, one(stride)), (0, one(padding)),
                     (1, one(dilation)), ceil_mode, return_indices)
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return out.squeeze(-2)


class _AvgPool(Function):
    """Average pooling by the kernels ``<kind>_forward`` / ``_backward`` of kernel module ``mod`` (``"pool"``,
    ``"avg_pool2d"``; ``"conv3d"``, ``"avg_pool3d"``); linear, so its backward (_AvgPoolBackward) has this as
    its own backward."""

    def forward(self, x):
        self.x_shape = x.shape
        return kernel(self.mod, self.kind + "_forward", x)(x, *self.geom)

    def backward(self, gy):
        return _AvgPoolBackward(x_shape=self.x_shape, geom=self.geom, mod=self.mod, kind=self.kind)(gy)


class _AvgPoolBackward(Function):
    def forward(self, gy):
        return kernel(self.mod, self.kind + "_backward", gy)(gy, self.x_shape, *self.geom)

    def backward(self, ggx):
        return _AvgPool(geom=self.geom, mod=self.mod, kind=self.kind)(ggx)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Average pooling over (N, C, H, W) or (C, H, W); divisors follow PyTorch (padding cells count when
    ``count_include_pad``; the ceil-mode overhang never does; ``divisor_override`` replaces both)."""
    x, unbatched = _batched4("avg_pool2d", input)
    k, s, p, _ = _pool_args("avg_pool2d", kernel_size, stride, padding, 1)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("avg_pool2d: divisor must be not zero")
    from .kernels.cpu.pool import pool_out_size

    ho = pool_out_size(x.shape[2], k[0], s[0], p[0], 1, ceil_mode)
    wo = pool_out_size(x.shape[3], k[1], s[1], p[1], 1, ceil_mode)
    if ho < 1 or wo < 1:  # as max_pool2d: an empty result would hide a too-small input
        raise RuntimeError(f"avg_pool2d: given input size {_shape(input)}, calculated output size "
                           f"({ho}x{wo}) is too small (kernel_size={k}, padding={p})")
    y = _AvgPool(mod="pool", kind="avg_pool2d",
                 geom=(k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override))(x)
    return y.squeeze(0) if unbatched else y


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    one = lambda v: v[0] if isinstance(v, (tuple, list)) else v
    return avg_pool2d(input.unsqueeze(-2), (1, one(kernel_size)),
                      (1, one(stride if stride is not None else kernel_size)), (0, one(padding)), ceil_mode,
                      count_include_pad).squeeze(-2)


def _adaptive_ranges(n_in, n_out):
    i = np.arange(n_out)
    start = (i * n_in) // n_out
    end = -((-(i + 1) * n_in) // n_out)  # ceil
    return start, end


def _out_size2(output_size, input):
    o = (output_size, output_size) if output_size is None or isinstance(output_size, numbers.Integral) else (
        tuple(output_size))
    return tuple(int(input.shape[-2 + i]) if v is None else int(v) for i, v in enumerate(o))


def _averaging_matrix(n_in, n_out, xp, dtype):
    start, end = _adaptive_ranges(n_in, n_out)
    m = np.zeros((n_out, n_in))
    for o in range(n_out):  # one row per output cell (not per pixel)
        m[o, start[o]:end[o]] = 1.0 / (end[o] - start[o])
    return Tensor(xp.asarray(m.astype(dtype)))


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Adaptive average pooling: (N, C, H, W) -> (N, C, *output_size). The windows are separable, so
    this is P_h @ x @ P_w^T with two small averaging matrices (differentiable to any order)."""
    x, unbatched = _batched4("adaptive_avg_pool2d", input)
    ho, wo = _out_size2(output_size, x)
    h, w = x.shape[2:]
    if (ho, wo) == (1, 1):
        y = x.mean((2, 3), keepdim=True)
    elif (ho, wo) == (h, w):
        y = x
    elif h % ho == 0 and w % wo == 0:
        y = avg_pool2d(x, (h // ho, w // wo))
    else:
        xp = get_array_module(x.data)
        y = x
        if ho != h:
            y = ops.matmul(_averaging_matrix(h, ho, xp, x.data.dtype), y)
        if wo != w:
            y = ops.matmul(y, _averaging_matrix(w, wo, xp, x.data.dtype).t())
    return y.squeeze(0) if unbatched else y


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Adaptive average pooling: (N, C, L) or (C, L) -> (..., output_size); output i averages
    input[..., floor(i L / out) : ceil((i + 1) L / out)]. ``output_size``: an int or a 1-tuple."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"adaptive_avg_pool1d: expected 2-D (C, L) or 3-D (N, C, L) input, got "
                           f"{input.ndim}-D input of size {_shape(input)}")
    if not isinstance(output_size, numbers.Integral):
        if output_size is None or not hasattr(output_size, "__len__"):
            raise TypeError(f"adaptive_avg_pool1d(): argument 'output_size' must be an int or a tuple of one "
                            f"int, not {type(output_size).__name__}")
        if len(output_size) != 1:
            raise RuntimeError(f"adaptive_avg_pool1d: output_size should contain one int (got "
                               f"{len(output_size)})")
        output_size = output_size[0]
    out = int(output_size)
    if out < 0:
        raise RuntimeError(f"adaptive_avg_pool1d: output_size must be >= 0, got {out}")
    non_batch = input.shape[1:] if input.ndim == 3 else input.shape
    if 0 in tuple(non_batch):
        raise RuntimeError(f"adaptive_avg_pool1d: expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {_shape(input)}")
    length = input.shape[-1]
    if out and length % out == 0:  # equal windows: a mean over a reshaped axis
        return input.reshape(*input.shape[:-1], out, length // out).mean(-1)
    m = _averaging_matrix(length, out, get_array_module(input.data), input.data.dtype)
    return ops.matmul(input, m.t())


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Adaptive max pooling: window i spans [floor(i*H/Ho), ceil((i+1)*H/Ho)) as in PyTorch."""
    x, unbatched = _batched4("adaptive_max_pool2d", input)
    ho, wo = _out_size2(output_size, x)
    n, c, h, w = x.shape
    if h % ho == 0 and w % wo == 0:
        out = max_pool2d(x, (h // ho, w // wo), (h // ho, w // wo), return_indices=return_indices)
    else:
        xp = get_array_module(x.data)
        rs, re = _adaptive_ranges(h, ho)
        cs, ce = _adaptive_ranges(w, wo)
        kh, kw = int((re - rs).max()), int((ce - cs).max())
        # Candidate rows/cols per window; past the end, repeat the last (a repeat never wins a tie).
        rows = np.minimum(rs[:, None] + np.arange(kh)[None], re[:, None] - 1)
        cols = np.minimum(cs[:, None] + np.arange(kw)[None], ce[:, None] - 1)
        flat = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(ho, wo, kh * kw)
        flat_x = xp.asarray(flat)
        vals = x.data.reshape(n, c, h * w)[:, :, flat_x]  # (N, C, Ho, Wo, kh*kw)
        best = xp.argmax(vals, axis=-1)
        idx = xp.take_along_axis(xp.broadcast_to(flat_x, vals.shape), best[..., None], axis=-1)[..., 0]
        idx = idx.astype(xp.int64)
        y = ops.gather(x.reshape(n, c, h * w), 2, Tensor(idx.reshape(n, c, ho * wo))).reshape(n, c, ho, wo)
        out = (y, Tensor(idx)) if return_indices else y
    if unbatched:
        return (out[0].squeeze(0), out[1].squeeze(0)) if return_indices else out.squeeze(0)
    return out


# ----------------------------------------------------------------------------- 3-D pooling


def _batched5(name, input):
    if input.ndim == 4:
        return input.unsqueeze(0), True
    if input.ndim != 5:
        raise RuntimeError(f"{name}: expected 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got input of "
                           f"size {_shape(input)}")
    return input, False


def _pool3d_args(name, input, kernel_size, stride, padding, dilation, ceil_mode):
    k = _ntuple(kernel_size, 3, "kernel_size")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _ntuple(stride, 3,
                                                                                               "stride")
    p, d = _ntuple(padding, 3, "padding"), _ntuple(dilation, 3, "dilation")
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise RuntimeError(f"{name}: kernel_size, stride and dilation must be positive, got kernel_size={k}, "
                           f"stride={s}, dilation={d}")
    if any(pi < 0 or pi > ki // 2 for pi, ki in zip(p, k)):
        raise RuntimeError(f"{name}: pad should be at most half of effective kernel size, but got pad={p} "
                           f"and kernel_size={k}")
    from .kernels.cpu.conv3d import pool_out_size

    out = tuple(pool_out_size(n, ki, si, pi, di, ceil_mode) for n, ki, si, pi, di in
                zip(input.shape[2:], k, s, p, d))
    if min(out) < 1:
        raise RuntimeError(f"{name}: given input size {_shape(input)}, calculated output size "
                           f"({'x'.join(map(str, out))}) is too small (kernel_size={k}, padding={p}, "
                           f"dilation={d})")
    return k, s, p, d


def max_pool3d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max pooling over (N, C, D, H, W) or (C, D, H, W), as ``torch.nn.functional.max_pool3d``. With
    ``return_indices`` also returns the flat index ((d*H + h)*W + w) of each maximum within its input
    volume (int64). Ties go to the first tap; NaN wins."""
    x, unbatched = _batched5("max_pool3d", input)
    k, s, p, d = _pool3d_args("max_pool3d", x, kernel_size, stride, padding, dilation, ceil_mode)
    fn = _MaxPool(mod="conv3d", kind="max_pool3d", geom=(k, s, p, d, bool(ceil_mode)))
    y = fn(x)
    if unbatched:
        y = y.squeeze(0)
    if not return_indices:
        return y
    idx = kernel("conv3d", "max_pool3d_indices", fn.argpos)(fn.argpos, tuple(x.shape), k, s, p, d)
    return y, Tensor(idx[0] if unbatched else idx)


def avg_pool3d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Average pooling over (N, C, D, H, W) or (C, D, H, W), as ``torch.nn.functional.avg_pool3d``;
    divisors follow PyTorch (padding cells count when ``count_include_pad``; the ceil-mode overhang
    never does; ``divisor_override`` replaces both)."""
    x, unbatched = _batched5("avg_pool3d", input)
    k, s, p, _ = _pool3d_args("avg_pool3d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("avg_pool3d: divisor must be not zero")
    y = _AvgPool(mod="conv3d", kind="avg_pool3d",
                 geom=(k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override))(x)
    return y.squeeze(0) if unbatched else y


def _out_size3(name, output_size, input):
    o = (output_size,) * 3 if output_size is None or isinstance(output_size, numbers.Integral) else (
        tuple(output_size))
    if len(o) != 3:
        raise ValueError(f"{name}: output_size must be an int or a triple, got {output_size!r}")
    out = tuple(int(input.shape[2 + i]) if v is None else int(v) for i, v in enumerate(o))
    if min(out) < 1 or 0 in tuple(input.shape[1:]):
        raise RuntimeError(f"{name}: output_size {out} must be positive and the input {_shape(input)} "
                           f"non-empty in its non-batch dimensions")
    return out


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
    """Adaptive average pooling: (N, C, D, H, W) or (C, D, H, W) -> (..., *output_size); output i along
    an axis of n inputs averages [floor(i n / out), ceil((i + 1) n / out)). The windows are separable:
    one small averaging matrix per axis (differentiable to any order)."""
    x, unbatched = _batched5("adaptive_avg_pool3d", input)
    out = _out_size3("adaptive_avg_pool3d", output_size, x)
    sp = tuple(x.shape[2:])
    if out == (1, 1, 1):
        y = x.mean((2, 3, 4), keepdim=True)
    elif all(n % o == 0 for n, o in zip(sp, out)):
        y = x if out == sp else avg_pool3d(x, tuple(n // o for n, o in zip(sp, out)))
    else:
        xp = get_array_module(x.data)
        y = x
        for axis, (n, o) in enumerate(zip(sp, out)):
            if n != o:
                y = _along(y, 2 + axis, _averaging_matrix(n, o, xp, x.data.dtype))
    return y.squeeze(0) if unbatched else y


def adaptive_max_pool3d(input: Tensor, output_size, return_indices: bool = False):
    """Adaptive max pooling over volumes; windows as adaptive_avg_pool3d's. ``return_indices`` gives the
    flat index ((d*H + h)*W + w) of each maximum in its input volume."""
    x, unbatched = _batched5("adaptive_max_pool3d", input)
    out = _out_size3("adaptive_max_pool3d", output_size, x)
    sp = tuple(x.shape[2:])
    if all(n % o == 0 for n, o in zip(sp, out)):
        k = tuple(n // o for n, o in zip(sp, out))
        res = max_pool3d(x, k, k, return_indices=return_indices)
    else:
        xp = get_array_module(x.data)
        n, c = x.shape[:2]
        # candidate positions per window along each axis; past the end, repeat the last (never wins a tie)
        cand = []
        for size, o in zip(sp, out):
            start, end = _adaptive_ranges(size, o)
            kk = int((end - start).max())
            cand.append(np.minimum(start[:, None] + np.arange(kk)[None], end[:, None] - 1))
        (cd, ch, cw), (h, w) = cand, sp[1:]
        flat = ((cd[:, None, None, :, None, None] * h + ch[None, :, None, None, :, None]) * w
                + cw[None, None, :, None, None, :]).reshape(out + (-1,))
        flat_x = xp.asarray(flat)
        vals = x.data.reshape(n, c, -1)[:, :, flat_x]  # (N, C, Do, Ho, Wo, taps)
        best = xp.argmax(vals, axis=-1)
        idx = xp.take_along_axis(xp.broadcast_to(flat_x, vals.shape), best[..., None], axis=-1)[..., 0]
        idx = idx.astype(xp.int64)
        y = ops.gather(x.reshape(n, c, -1), 2, Tensor(idx.reshape(n, c, -1))).reshape(n, c, *out)
        res = (y, Tensor(idx)) if return_indices else y
    if unbatched:
        return (res[0].squeeze(0), res[1].squeeze(0)) if return_indices else res.squeeze(0)
    return res


# ============================================================================= resampling


def _scale_for(n_in, n_out, scale, align_corners):
    """PyTorch's area_pixel_compute_scale (float64 here)."""
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


def _linear_taps(n_in, n_out, scale, align_corners):
    """Source indices i0, i1 and weight l1 of each output (PyTorch's area_pixel source-index rule)."""
    s = _scale_for(n_in, n_out, scale, align_corners)
    dst = np.arange(n_out, dtype=np.float64)
    src = dst * s if align_corners else np.maximum(s * (dst + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def _lerp_along(x: Tensor, axis: int, n_in, n_out, scale, align_corners) -> Tensor:
    """Linear interpolation along ``axis``: a small dense matrix product for short axes (BLAS), a
    gather of two neighbours and a blend for long ones (linear in the output size)."""
    xp = get_array_module(x.data)
    dt = x.data.dtype
    if n_in <= 64:
        return _along(x, axis, _linear_matrix(n_in, n_out, scale, align_corners, xp, dt))
    i0, i1, l1 = _linear_taps(n_in, n_out, scale, align_corners)
    pre = (slice(None),) * axis
    a = x[pre + (xp.asarray(i0),)]
    b = x[pre + (xp.asarray(i1),)]
    w = Tensor(xp.asarray(l1.astype(dt)).reshape((n_out,) + (1,) * (x.ndim - axis - 1)))
    return a + (b - a) * w


_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution coefficient


def _cubic_along(x: Tensor, axis: int, n_in, n_out, scale, align_corners) -> Tensor:
    """Bicubic (cubic convolution, Keys 1981, a = -0.75) interpolation along ``axis``: each output is a
    weighted sum of four neighbours, indices clamped to the edge, as PyTorch's 'bicubic'."""
    xp = get_array_module(x.data)
    s = _scale_for(n_in, n_out, scale, align_corners)
    dst = np.arange(n_out, dtype=np.float64)
    src = dst * s if align_corners else s * (dst + 0.5) - 0.5  # (no clamp at 0 for cubic)
    i = np.floor(src).astype(np.int64)
    t = src - i
    a = _CUBIC_A

    def near(v):  # |v| <= 1
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v):  # 1 < |v| < 2
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    pre = (slice(None),) * axis
    shape = (n_out,) + (1,) * (x.ndim - axis - 1)
    out = None
    for k, w in zip(range(-1, 3), weights):
        idx = np.clip(i + k, 0, n_in - 1)
        term = x[pre + (xp.asarray(idx),)] * Tensor(xp.asarray(w.astype(x.data.dtype)).reshape(shape))
        out = term if out is None else out + term
    return out


def _linear_matrix(n_in, n_out, scale, align_corners, xp, dtype):
    """(n_out, n_in) matrix of linear-interpolation weights (PyTorch's source-index rule)."""
    i0, i1, l1 = _linear_taps(n_in, n_out, scale, align_corners)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), i0), 1.0 - l1)
    np.add.at(m, (np.arange(n_out), i1), l1)
    return Tensor(xp.asarray(m.astype(dtype)))


def _nearest_index(n_in, n_out, scale, exact=False, shortcuts=False):
    """Source index of each output for 'nearest' (floor(dst * s)) or 'nearest-exact' (floor((dst + 0.5)
    * s)), with s = 1/scale_factor when given, in float32 as PyTorch. ``shortcuts``: PyTorch's 2-D
    'nearest' kernel (its legacy ``nearest_idx``) copies when n_out == n_in and halves when
    n_out == 2 n_in, whatever the scale factor; its 1-D / 3-D and 'nearest-exact' kernels do not."""
    if shortcuts and n_out == n_in:
        return np.arange(n_out)
    if shortcuts and n_out == 2 * n_in:
        return np.arange(n_out) // 2
    s = np.float32(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s) if exact else np.floor(dst * s)
    return np.minimum(src.astype(np.int64), n_in - 1)


def _along(x: Tensor, axis: int, m: Tensor) -> Tensor:
    """Apply the (n_out, n_in) matrix m along ``axis`` of x."""
    if axis == x.ndim - 1:
        return ops.matmul(x, m.t())
    if axis == x.ndim - 2:
        return ops.matmul(m, x)
    return ops.matmul(x.transpose(axis, -1), m.t()).transpose(axis, -1)


class _UpsampleNearest(Function):
    """Nearest upscale by integer factors ``ks`` (one per spatial axis): every value repeated in a
    k1 x k2 x ... block. Forward writes the last axis's replicas with strided stores, then copies
    whole filled rows for the other axes (a broadcast copy with a size-k innermost axis runs ~6x
    slower in NumPy). Backward sums each block (written with Tensor ops, so differentiable again)."""

    def forward(self, x):
        xp = get_array_module(x)
        sp, ks = x.shape[2:], self.ks
        self.block_shape = x.shape[:2] + tuple(v for d, k in zip(sp, ks) for v in (d, k))
        o = xp.empty(self.block_shape, dtype=x.dtype)
        full = slice(None)

        def at(replicas):  # index of o with the given replica index (int or slice) per spatial axis
            return (full, full) + tuple(v for r in replicas for v in (full, r))

        zeros = [0] * (len(sp) - 1)
        for j in range(ks[-1]):
            o[at(zeros + [j])] = x
        for ax in reversed(range(len(sp) - 1)):
            if ks[ax] > 1:
                head = [0] * ax
                tail = [full] * (len(sp) - ax - 1)
                o[at(head + [slice(1, None)] + tail)] = o[at(head + [slice(0, 1)] + tail)]
        return o.reshape(x.shape[:2] + tuple(d * k for d, k in zip(sp, ks)))

    def backward(self, g):
        nsp = len(self.ks)
        return g.reshape(self.block_shape).sum(dim=tuple(3 + 2 * i for i in range(nsp)))


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:
    """Resize (N, C, *spatial) with 1-3 spatial dims, as ``torch.nn.functional.interpolate``.

    Modes: 'nearest', 'nearest-exact', 'linear' (3-D), 'bilinear' and 'bicubic' (4-D), 'trilinear' (5-D),
    'area'. Bicubic values may overshoot the input's range, as PyTorch's do.
    Linear modes apply one interpolation matrix per axis (separable, exact, differentiable to any
    order); nearest modes gather rows (an integer upscale is a broadcast).
    """
    nsp = input.ndim - 2
    if nsp < 1 or nsp > 3:
        raise ValueError(f"interpolate: expected 3-D, 4-D or 5-D input, got {_shape(input)}")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size or scale_factor should be defined")
    linear_modes = {"linear": 1, "bilinear": 2, "trilinear": 3, "bicubic": 2}
    if mode in linear_modes:
        if linear_modes[mode] != nsp:
            raise ValueError(f"interpolate: mode {mode!r} expects {linear_modes[mode] + 2}-D input, got "
                             f"{input.ndim}-D input of size {_shape(input)}")
        align_corners = bool(align_corners)
    elif mode in ("nearest", "nearest-exact", "area"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    else:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported")
    in_sz = input.shape[2:]
    if size is not None:
        out_sz = (size,) * nsp if isinstance(size, numbers.Integral) else tuple(int(v) for v in size)
        if len(out_sz) != nsp:
            raise ValueError(f"interpolate: size {size} does not match the {nsp} spatial dimensions of the "
                             f"input")
        scales = (None,) * nsp
    else:
        sf = (scale_factor,) * nsp if isinstance(scale_factor, numbers.Number) else tuple(scale_factor)
        if len(sf) != nsp:
            raise ValueError(f"interpolate: scale_factor {scale_factor} does not match the {nsp} spatial "
                             f"dimensions of the input")
        out_sz = tuple(int(math.floor(float(n) * float(f))) for n, f in zip(in_sz, sf))
        scales = (None,) * nsp if recompute_scale_factor else tuple(float(f) for f in sf)
    if min(out_sz) < 1:
        raise ValueError(f"interpolate: output size {out_sz} must be positive (input {_shape(input)})")
    xp = get_array_module(input.data)
    y = input
    if mode == "area":
        if nsp != 2:
            raise NotImplementedError("interpolate: mode 'area' supports 4-D input only")
        return adaptive_avg_pool2d(input, out_sz)
    shortcuts = mode == "nearest" and nsp == 2
    if mode == "nearest":
        ks = [n_out // n_in if n_out % n_in == 0 else 0 for n_in, n_out in zip(in_sz, out_sz)]
        if all(ks) and any(k > 1 for k in ks) and all(
                np.array_equal(_nearest_index(n, n * k, sc, shortcuts=shortcuts), np.arange(n * k) // k)
                for n, k, sc in zip(in_sz, ks, scales)):
            return _UpsampleNearest(ks=tuple(ks))(input)  # integer upscale: block copies
    for i in range(nsp):
        axis = 2 + i
        n_in, n_out = in_sz[i], out_sz[i]
        if mode in linear_modes:
            # PyTorch copies an axis whose size does not change, whatever its scale factor
            if mode == "bicubic":
                y = _cubic_along(y, axis, n_in, n_out, scales[i], align_corners)
            elif n_in != n_out:
                y = _lerp_along(y, axis, n_in, n_out, scales[i], align_corners)
            continue
        idx = _nearest_index(n_in, n_out, scales[i], exact=(mode == "nearest-exact"), shortcuts=shortcuts)
        if n_out == n_in and np.array_equal(idx, np.arange(n_in)):
            continue
        k = n_out // n_in
        if n_out == k * n_in and np.array_equal(idx, np.arange(n_out) // k):
            # Integer upscale: broadcast a new axis after ``axis`` and merge (gradient: a sum).
            shp = list(y.shape)
            y = y.unsqueeze(axis + 1).expand(*shp[:axis + 1], k, *shp[axis + 1:])
            y = y.reshape(*shp[:axis], n_out, *shp[axis + 1:])
        else:
            key = (slice(None),) * axis + (xp.asarray(idx),)
            y = y[key]
    return y


def affine_grid(theta: Tensor, size, align_corners: bool = False) -> Tensor:
    """Sampling grid (N, H, W, 2) of the affine maps theta (N, 2, 3) over an output of size (N, C, H, W);
    coordinates in [-1, 1], x first, as ``torch.nn.functional.affine_grid``."""
    n, _, h, w = (int(v) for v in size)
    if tuple(theta.shape) != (n, 2, 3):
        raise ValueError(f"affine_grid: expected theta of size [{n}, 2, 3] for size {list(size)}, got "
                         f"{_shape(theta)}")
    xp = get_array_module(theta.data)

    def base(k):
        v = np.linspace(-1.0, 1.0, k) if k > 1 else np.zeros(1)
        return v if align_corners else v * (k - 1) / k

    gy, gx = np.meshgrid(base(h), base(w), indexing="ij")
    b3 = np.stack([gx, gy, np.ones_like(gx)], -1).reshape(1, h * w, 3)
    grid = ops.matmul(Tensor(xp.asarray(b3.astype(theta.data.dtype))), theta.transpose(1, 2))
    return grid.reshape(n, h, w, 2)


def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool | None = None) -> Tensor:
    """Sample input (N, C, H, W) at grid (N, Ho, Wo, 2) locations in [-1, 1] (x, y), as
    ``torch.nn.functional.grid_sample`` for 4-D inputs: modes 'bilinear' and 'nearest', padding
    'zeros', 'border' and 'reflection' (coordinates mirrored at the edges, as PyTorch's).
    Differentiable with respect to the input and (bilinear) the grid."""
    if mode not in ("bilinear", "nearest") or padding_mode not in ("zeros", "border", "reflection"):
        raise NotImplementedError(f"grid_sample: mode {mode!r} / padding_mode {padding_mode!r} is not "
                                  f"supported (bilinear, nearest; zeros, border, reflection)")
    if input.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != input.shape[0]:
        raise RuntimeError(f"grid_sample: expected input (N, C, H, W) and grid (N, Ho, Wo, 2), got "
                           f"{_shape(input)} and {_shape(grid)}")
    ac = bool(align_corners)
    n, c, h, w = input.shape
    ho, wo = grid.shape[1:3]
    xp = get_array_module(input.data)

    def reflect(u, twice_low, twice_high):
        """u mirrored into [twice_low / 2, twice_high / 2] (differentiable: slope +-1)."""
        if twice_low == twice_high:
            return u * 0
        lo, span = twice_low / 2, (twice_high - twice_low) / 2
        a = (u - lo).abs()
        flips = xp.floor(a.data / span)
        extra = a - Tensor((flips * span).astype(a.data.dtype))
        return ops.where(Tensor(flips % 2 == 0), extra + lo, (span + lo) - extra)

    def unnormalize(g, size):
        u = (g + 1) * ((size - 1) / 2) if ac else ((g + 1) * size - 1) / 2
        if padding_mode == "reflection":
            u = reflect(u, 0, 2 * (size - 1)) if ac else reflect(u, -1, 2 * size - 1)
        if padding_mode in ("border", "reflection"):
            u = ops.clamp(u, 0.0, float(size - 1))
        return u

    ix = unnormalize(grid[..., 0], w)  # (N, Ho, Wo)
    iy = unnormalize(grid[..., 1], h)
    flat = input.reshape(n, c, h * w)

    def tap(yy, xx):
        """Values at integer positions (arrays (N, Ho, Wo)); zero outside the image."""
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx = (np.clip(yy, 0, h - 1) * w + np.clip(xx, 0, w - 1)) if xp is np else (
            xp.clip(yy, 0, h - 1) * w + xp.clip(xx, 0, w - 1))
        idx = xp.broadcast_to(idx.reshape(n, 1, ho * wo), (n, c, ho * wo)).astype(xp.int64)
        v = ops.gather(flat, 2, Tensor(xp.ascontiguousarray(idx))).reshape(n, c, ho, wo)
        return v, Tensor(inside.astype(input.data.dtype)).reshape(n, 1, ho, wo)

    if mode == "nearest":
        v, m = tap(xp.rint(iy.data).astype(xp.int64), xp.rint(ix.data).astype(xp.int64))
        return v * m
    x0 = xp.floor(ix.data)
    y0 = xp.floor(iy.data)
    wx1 = (ix - Tensor(x0)).reshape(n, 1, ho, wo)
    wy1 = (iy - Tensor(y0)).reshape(n, 1, ho, wo)
    wx0, wy0 = 1 - wx1, 1 - wy1
    x0i, y0i = x0.astype(xp.int64), y0.astype(xp.int64)
    out = None
    for yy, wy in ((y0i, wy0), (y0i + 1, wy1)):
        for xx, wx in ((x0i, wx0), (x0i + 1, wx1)):
            v, m = tap(yy, xx)
            term = v * (wy * wx * m)
            out = term if out is None else out + term
    return out


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def _check_shuffle(name, input, factor, what):
    if isinstance(factor, bool) or not isinstance(factor, numbers.Integral):
        raise TypeError(f"{name}(): argument '{what}' must be int, not {type(factor).__name__}")
    if factor <= 0:
        raise RuntimeError(f"{name} expects a positive {what}, but got {factor}")
    if input.ndim < 3:
        raise RuntimeError(f"{name} expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s) (size {_shape(input)})")


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C*r^2, H, W) -> (*, C, H*r, W*r) (Shi et al. 2016):
    out[..., c, h*r + i, w*r + j] = input[..., c*r^2 + i*r + j, h, w]."""
    r = upscale_factor
    _check_shuffle("pixel_shuffle", input, r, "upscale_factor")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
                           f"square of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    k = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w).permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H*r, W*r) -> (*, C*r^2, H, W), the inverse of :func:`pixel_shuffle`:
    out[..., c*r^2 + i*r + j, h, w] = input[..., c, h*r + i, w*r + j]. An empty batch gets that shape
    too (PyTorch returns an empty input unchanged, with the input's shape)."""
    r = downscale_factor
    _check_shuffle("pixel_unshuffle", input, r, "downscale_factor")
    *lead, c, h, w = input.shape
    for what, axis, n in (("height", -2, h), ("width", -1, w)):
        if n % r:
            raise RuntimeError(f"pixel_unshuffle expects {what} to be divisible by downscale_factor, but "
                               f"input.size({axis})={n} is not divisible by {r} (input {_shape(input)})")
    k = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r).permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """Interleave the channels of (N, C, *) from ``groups`` groups (ShuffleNet, Zhang et al. 2018):
    channel g * (C / groups) + i moves to i * groups + g."""
    if input.ndim <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with sizes "
                           f"{_shape(input)}")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"channel_shuffle(): argument 'groups' must be int, not {type(groups).__name__}")
    if groups <= 0:
        raise RuntimeError(f"channel_shuffle: number of groups to divide channels in must be positive, "
                           f"got {groups}")
    n, c = input.shape[:2]
    if c % groups:
        raise RuntimeError(f"channel_shuffle: number of channels must be divisible by groups; got {c} "
                           f"channels and {groups} groups (input {_shape(input)})")
    x = input.reshape(n, groups, c // groups, *input.shape[2:]).transpose(1, 2)
    return x.reshape(*input.shape)


class _PadConstant(Function):
    """Constant padding (negative amounts crop). Linear; the adjoint pads by the negated amounts."""

    complex_grad = True

    def forward(self, x):
        xp = get_array_module(x)
        pads = self.pads  # ((before, after), ...) for every axis
        out_shape = tuple(s + a + b for s, (a, b) in zip(x.shape, pads))
        if min(out_shape, default=1) < 0:
            raise RuntimeError(f"pad: the input size {list(x.shape)} padded by {self.pads} gives a "
                               f"negative size {list(out_shape)}")
        out = xp.full(out_shape, self.value, dtype=x.dtype)
        src = tuple(slice(max(-a, 0), s - max(-b, 0)) for s, (a, b) in zip(x.shape, pads))
        dst = tuple(slice(max(a, 0), max(a, 0) + (sl.stop - sl.start)) for sl, (a, b) in zip(src, pads))
        out[dst] = x[src]
        return out

    def backward(self, g):
        return _PadConstant(pads=tuple((-a, -b) for a, b in self.pads), value=0)(g)


def _pad_index(n, before, after, mode):
    i = np.arange(-before, n + after)
    if mode == "reflect":
        if before >= n or after >= n:
            raise RuntimeError(f"pad: padding size should be less than the corresponding input dimension, "
                               f"but got padding ({before}, {after}) for a dimension of size {n}")
        period = 2 * (n - 1)
        i = np.abs(i) % period if period else np.zeros_like(i)
        i = np.where(i >= n, period - i, i)
        return i
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        if before > n or after > n:
            raise RuntimeError("pad: padding value causes wrapping around more than once")
        return i % n
    raise NotImplementedError(f"pad: mode {mode!r} is not supported (constant, reflect, replicate, circular)")


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last len(pad)/2 dimensions: ``pad = (left, right, top, bottom, ...)`` (last dim first).

    'constant' fills with ``value`` (0 by default; negative amounts crop); 'reflect' mirrors without
    repeating the edge; 'replicate' repeats the edge; 'circular' wraps around.
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: padding length must be even and at most 2*ndim ({2 * input.ndim}), got "
                         f"{len(pad)}")
    k = len(pad) // 2
    pairs = [(0, 0)] * (input.ndim - k) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
    if mode == "constant":
        if not any(a or b for a, b in pairs):
            return input
        return _PadConstant(pads=tuple(pairs), value=0 if value is None else value)(input)
    if value not in (None, 0):
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument")
    y = input
    xp = get_array_module(input.data)
    for axis in range(input.ndim - k, input.ndim):
        a, b = pairs[axis]
        if a == 0 and b == 0:
            continue
        if a < 0 or b < 0:
            raise RuntimeError(f"pad: negative padding is only supported in constant mode, got {pad}")
        idx = _pad_index(input.shape[axis], a, b, mode)
        y = y[(slice(None),) * axis + (xp.asarray(idx),)]
    return y


# ============================================================================= normalisation


class _Standardize(Function):
    """(x - mean) / sqrt(var + eps) over ``axes`` (biased variance).

    First-order backward uses the saved arrays (one fused expression); under ``create_graph`` the
    backward recomputes the statistics with Tensor operations so that it is itself differentiable.
    """

    saves_inputs = (0,)

    def _stats(self, x):
        """xhat (kept for backward) and its statistics."""
        xp = get_array_module(x)
        mean = x.mean(axis=self.axes, keepdims=True)
        d = x - mean
        n = math.prod(x.shape[a] for a in self.axes)  # x.size // mean.size fails on an empty batch
        var = _sum_prod(d, d, self.axes) / n
        self.invstd = 1.0 / xp.sqrt(var + x.dtype.type(self.eps))
        self.mean, self.var, self.n = mean, var, n
        d *= self.invstd
        self.xhat = d
        return d

    def forward(self, x):
        return self._stats(x).copy()  # private xhat: an in-place op on the output must not change it

    def _grad_arrays(self, gd):
        xh = self.xhat
        t = gd - gd.mean(axis=self.axes, keepdims=True)
        t -= xh * (gd * xh).mean(axis=self.axes, keepdims=True)
        t *= self.invstd
        return t

    def _xhat_tensor(self, x):
        mu = x.mean(self.axes, keepdim=True)
        d = x - mu
        inv = ((d * d).mean(self.axes, keepdim=True) + self.eps) ** -0.5
        return d * inv, inv

    def _grad_tensors(self, g, xh, inv):
        return inv * (g - g.mean(self.axes, keepdim=True) - xh * (g * xh).mean(self.axes, keepdim=True))

    def backward(self, g):
        if not is_grad_enabled():
            return Tensor(self._grad_arrays(g.data))
        (x,) = self.saved_tensors
        xh, inv = self._xhat_tensor(x)
        return self._grad_tensors(g, xh, inv)


class _NormAffine(_Standardize):
    """Standardisation fused with the affine map: y = xhat * w + b (w, b of shape ``pshape``, or None)."""

    def forward(self, x, w, b):
        xh = self._stats(x)
        y = xh * w.reshape(self.pshape) if w is not None else xh.copy()
        if b is not None:
            y += b.reshape(self.pshape)
        return y

    def backward(self, g):
        _, w, b = self.inputs
        need = self.needs_input_grad
        other = tuple(i for i in range(g.ndim) if self.pshape[i] == 1)
        if not is_grad_enabled() and set(other) == set(self.axes):
            return self._batch_grads(g.data, w, b)
        if not is_grad_enabled():
            gd = g.data
            gw = gb = None
            if need[2]:
                gb = Tensor(gd.sum(axis=other).reshape(b.shape))
            if need[1]:
                gw = Tensor((gd * self.xhat).sum(axis=other).reshape(w.shape))
            gx = None
            if need[0]:
                gxh = gd * w.data.reshape(self.pshape) if w is not None else gd
                gx = Tensor(self._grad_arrays(gxh))
            return gx, gw, gb
        (x,) = self.saved_tensors
        xh, inv = self._xhat_tensor(x)
        gb = g.sum(other).reshape(b.shape) if need[2] else None
        gw = (g * xh).sum(other).reshape(w.shape) if need[1] else None
        gx = None
        if need[0]:
            gxh = g * w.reshape(self.pshape) if w is not None else g
            gx = self._grad_tensors(gxh, xh, inv)
        return gx, gw, gb


    def _batch_grads(self, gd, w, b):
        """Parameters per reduced slice (batch/instance norm over all other axes): the sums that give
        the parameter gradients also give the input gradient,
        gx = invstd * w * (g - sum(g)/n - xhat * sum(g * xhat)/n)."""
        need = self.needs_input_grad
        xh = self.xhat
        sg = gd.sum(axis=self.axes, keepdims=True)
        sgx = _sum_prod(gd, xh, self.axes)
        gx = None
        if need[0]:
            scale = self.invstd if w is None else self.invstd * w.data.reshape(self.pshape)
            t = gd - sg / self.n
            t -= xh * (sgx / self.n)
            t *= scale
            gx = Tensor(t)
        gw = Tensor(sgx.reshape(w.shape)) if need[1] else None
        gb = Tensor(sg.reshape(b.shape)) if need[2] else None
        return gx, gw, gb


class _BatchNormTrain(_NormAffine):
    """Batch norm in training over (N, C, *), with its NumPy passes fused where NumPy allows.

    Over the whole batch, the textbook passes (mean, x - mean, its square sum, scaling, the affine
    map, each with a temporary) stream the activations through memory one after another. Here: one
    sum, one pass writing the centred d = x - mean (kept for backward, as xhat was), per-channel dot
    products as BLAS row dots, and y = d * scale + b in cache-sized chunks. The backward reads g
    and d for the sums and writes gx = a * g + b' * d + c once, in chunks.
    CuPy and float16 take the parent's whole-array path.
    """

    _CHUNK_FLOATS = 64 * 1024  # per working array: a chunk and its temporaries stay in a core's L2

    @staticmethod
    def _fast(x):
        return isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64)

    def _chunks(self, x3):
        n, per = x3.shape[0], x3.shape[1] * x3.shape[2]
        step = max(1, self._CHUNK_FLOATS // max(per, 1))
        return [(i, min(i + step, n)) for i in range(0, n, step)]

    @staticmethod
    def _dot_per_channel(a3, b3):
        """sum over (N, L) of a3 * b3 (both (N, C, L)): BLAS dot products of rows, no temporary."""
        return np.matmul(a3[..., None, :], b3[..., :, None]).reshape(a3.shape[:2]).sum(0)

    def forward(self, x, w, b):
        if not self._fast(x):
            return super().forward(x, w, b)
        c = x.shape[1]
        x3 = x.reshape(x.shape[0], c, -1)
        n = x3.shape[0] * x3.shape[2]
        from .utils.parallel import over_row_parts  # (each pass over ranges of the batch, see there)

        def run(f):
            return over_row_parts(f, x3.shape[0], x3.size)

        mean = sum(run(lambda i0, i1: _per_channel_sum(x3[i0:i1]))) / x.dtype.type(n)
        d = np.empty_like(x3)

        def centre(i0, i1):
            np.subtract(x3[i0:i1], mean.reshape(1, c, 1), out=d[i0:i1])
            return self._dot_per_channel(d[i0:i1], d[i0:i1])

        var = sum(run(centre)) / x.dtype.type(n)
        invstd = 1.0 / np.sqrt(var + x.dtype.type(self.eps))
        scale = (invstd * w.reshape(c) if w is not None else invstd).reshape(1, c, 1)
        y = np.empty_like(x3)

        def affine(i0, i1):
            for j0, j1 in self._chunks(x3[i0:i1]):
                np.multiply(d[i0 + j0:i0 + j1], scale, out=y[i0 + j0:i0 + j1])
                if b is not None:
                    y[i0 + j0:i0 + j1] += b.reshape(1, c, 1)

        run(affine)
        shape = self.pshape
        self.mean, self.var, self.n = mean.reshape(shape), var.reshape(shape), n
        self.invstd = invstd.reshape(shape)
        self.xhat, self.centred = None, d
        return y.reshape(x.shape)

    def _batch_grads(self, gd, w, b):
        d = getattr(self, "centred", None)
        if d is None:  # the parent's forward ran
            return super()._batch_grads(gd, w, b)
        need = self.needs_input_grad
        c = d.shape[1]
        g3 = gd.reshape(d.shape)
        invstd = self.invstd.reshape(c)
        from .utils.parallel import over_row_parts

        def run(f):
            return over_row_parts(f, d.shape[0], d.size)

        sums = run(lambda i0, i1: (_per_channel_sum(g3[i0:i1]), self._dot_per_channel(g3[i0:i1], d[i0:i1])))
        sg = sum(t[0] for t in sums)
        sgx = sum(t[1] for t in sums) * invstd  # sum(g * xhat)
        gx = None
        if need[0]:
            scale = invstd * w.data.reshape(c) if w is not None else invstd
            inv_n = 1.0 / self.n
            a = scale.reshape(1, c, 1)
            bd = (-scale * invstd * sgx * inv_n).astype(d.dtype).reshape(1, c, 1)
            c0 = (-scale * sg * inv_n).astype(d.dtype).reshape(1, c, 1)
            out = np.empty_like(g3)

            def grad(i0, i1):  # gx = scale * (g - sum(g)/n - xhat * sum(g xhat)/n)
                chunks = self._chunks(d[i0:i1])
                buf = np.empty((chunks[0][1] - chunks[0][0],) + d.shape[1:], d.dtype)
                for j0, j1 in chunks:
                    t = np.multiply(d[i0 + j0:i0 + j1], bd, out=buf[:j1 - j0])
                    o = np.multiply(g3[i0 + j0:i0 + j1], a, out=out[i0 + j0:i0 + j1])
                    o += t
                    o += c0

            run(grad)
            gx = Tensor(out.reshape(gd.shape))
        gw = Tensor(sgx.astype(d.dtype).reshape(w.shape)) if need[1] else None
        gb = Tensor(sg.reshape(b.shape)) if need[2] else None
        return gx, gw, gb


def _sum_prod(a, b, axes):
    """sum(a * b) over ``axes`` (keepdims) without the temporary product on NumPy (einsum)."""
    xp = get_array_module(a)
    if xp is not np or a.ndim > 20:
        return (a * b).sum(axis=axes, keepdims=True)
    letters = "abcdefghijklmnopqrstuvwxyz"[:a.ndim]
    out = "".join(ch for i, ch in enumerate(letters) if i not in axes)
    r = np.einsum(f"{letters},{letters}->{out}", a, b)
    return r.reshape(tuple(1 if i in axes else s for i, s in enumerate(a.shape)))


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _update_running(running_mean, running_var, momentum, mean, var):
    """running = (1 - momentum) * running + momentum * stat, in place, for whichever running statistic is
    given (``mean`` / ``var``: callables giving the batch statistic, the variance unbiased); bumps their
    version counters."""
    with no_grad():
        for run, stat in ((running_mean, mean), (running_var, var)):
            if run is not None:
                r = run.data
                r *= 1 - momentum
                r += (momentum * stat()).astype(r.dtype)
                run._vc[0] += 1


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over (N, C, *). In training, normalises with the batch statistics (biased
    variance) and updates the running statistics in place:
    running = (1 - momentum) * running + momentum * batch_stat, with the unbiased variance, as PyTorch.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2-D input (N, C, *), got {_shape(input)}")
    from .amp import cast_inputs

    # Autocast runs the normalisation in float32; the running statistics are never cast (they are
    # updated in place).
    input, weight, bias = cast_inputs("batch_norm", input, weight, bias)
    c = input.shape[1]
    for nm, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                  ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"batch_norm: {nm} should contain {c} elements not {t.numel()} (input "
                               f"{_shape(input)})")
    shape = (1, c) + (1,) * (input.ndim - 2)
    axes = (0,) + tuple(range(2, input.ndim))
    if training:
        n = input.numel() // c if c else 0
        if n == 0:  # an empty batch: an empty output, zero parameter gradients, statistics kept (PyTorch)
            return _affine(input, weight, bias, shape)
        if n == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{_shape(input)}")
        fn = _BatchNormTrain(axes=axes, eps=eps, pshape=shape)
        y = fn(input, weight, bias)
        _update_running(running_mean, running_var, 0.0 if momentum is None else momentum,
                        lambda: fn.mean.reshape(c), lambda: fn.var.reshape(c) * (n / (n - 1)))
        return y
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var must be given when training=False")
    return _BatchNormEval(eps=eps, pshape=shape)(input, running_mean, running_var, weight, bias)


class _BatchNormEval(Function):
    """Inference-mode batch norm as one per-channel affine map, y = x * scale + shift, with
    scale = weight / sqrt(running_var + eps) and shift = bias - running_mean * scale: two passes over
    the activations instead of the eight of the composed expression. Gradients reach the input, the
    affine parameters and the running statistics (a frozen-BN fine-tune, Grad-CAM); the backward is
    written with Tensor operations, so it is itself differentiable."""

    saves_inputs = (0, 1, 2)

    def forward(self, x, rm, rv, w, b):
        inv = 1.0 / get_array_module(rv).sqrt(rv + rv.dtype.type(self.eps))
        scale = inv * w if w is not None else inv
        shift = -rm * scale
        if b is not None:
            shift = shift + b
        y = x * scale.reshape(self.pshape).astype(x.dtype, copy=False)
        y += shift.reshape(self.pshape).astype(x.dtype, copy=False)
        return y

    def backward(self, g):
        x, rm, rv = self.saved_tensors
        _, _, _, w, b = self.inputs
        need = self.needs_input_grad
        ps = self.pshape
        other = tuple(i for i in range(g.ndim) if ps[i] == 1)
        inv = (rv + self.eps) ** -0.5
        scale = inv * w if w is not None else inv
        gx = g * scale.reshape(ps).to(g.dtype) if need[0] else None
        gsum = g.sum(other).reshape(rm.shape) if (need[1] or need[4]) else None
        gw = grv = None
        if need[3] or need[2]:
            gxc = (g * (x - rm.reshape(ps).to(x.dtype))).sum(other).reshape(rv.shape)  # sum g * (x - mean)
            if need[3]:
                gw = (gxc * inv).to(w.dtype)
            if need[2]:
                grv = gxc * (-0.5 * inv ** 3)
                if w is not None:
                    grv = grv * w
        grm = -(gsum * scale) if need[1] else None
        gb = gsum.to(b.dtype) if need[4] else None
        return gx, grm, grv, gw, gb


def instance_norm(input: Tensor, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalisation: each (n, c) plane standardised over its spatial dims."""
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    axes = tuple(range(2, input.ndim))
    if math.prod(input.shape[2:]) <= 1:
        raise ValueError(f"instance_norm: Expected more than 1 spatial element when training, got input size "
                         f"{_shape(input)}")
    pshape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    fn = _NormAffine(axes=axes, eps=eps, pshape=pshape)
    y = fn(input, weight, bias)
    # As PyTorch: each instance updates the running statistics like a batch-norm step, and the N
    # updates are averaged: (1 - m) r + m * mean_n(stat_n), with the unbiased per-instance var.
    n, nc = fn.n, input.shape[:2]
    _update_running(running_mean, running_var, momentum, lambda: fn.mean.reshape(nc).mean(0),
                    lambda: (fn.var.reshape(nc) * (n / max(n - 1, 1))).mean(0))
    return y


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x²) + eps) over the trailing ``normalized_shape`` dimensions, times ``weight``
    (Zhang & Sennrich 2019), as ``torch.nn.functional.rms_norm``; eps defaults to the dtype's epsilon."""
    import numpy as _np

    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(ns):]) != ns:
        raise ValueError(f"rms_norm: normalized_shape {ns} does not match the input's trailing dimensions "
                         f"{tuple(input.shape)}")
    if eps is None:
        eps = float(_np.finfo(input.data.dtype).eps)
    dims = tuple(range(input.ndim - len(ns), input.ndim))
    y = input * ops.rsqrt((input * input).mean(dims, keepdim=True) + eps)
    return y * weight if weight is not None else y


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Standardise over the trailing ``normalized_shape`` dimensions, then scale and shift."""
    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    k = len(ns)
    if tuple(input.shape[input.ndim - k:]) != tuple(ns) or k > input.ndim:
        raise RuntimeError(f"layer_norm: given normalized_shape={list(ns)}, expected input with shape "
                           f"[*, {', '.join(str(s) for s in ns)}], but got input of size {_shape(input)}")
    axes = tuple(range(input.ndim - k, input.ndim))
    pshape = (1,) * (input.ndim - k) + tuple(ns)
    return _NormAffine(axes=axes, eps=eps, pshape=pshape)(input, weight, bias)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Standardise each group of C/num_groups channels (with their spatial dims) per sample."""
    n, c = input.shape[:2]
    if c % num_groups:
        raise RuntimeError(f"group_norm: expected number of channels in input ({c}) to be divisible by "
                           f"num_groups ({num_groups}); input size {_shape(input)}")
    for nm, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:  # else a reshape error deep inside, not naming the op
            raise RuntimeError(f"group_norm: expected {nm} to be a vector of size equal to the number of "
                               f"channels in input, but got {nm} of shape {_shape(t)} and input of shape "
                               f"{_shape(input)}")
    per_group = (c // num_groups) * math.prod(input.shape[2:])  # explicit: -1 fails on an empty batch
    y = _Standardize(axes=(2,), eps=eps)(input.reshape(n, num_groups, per_group)).reshape(input.shape)
    return _affine(y, weight, bias, (1, c) + (1,) * (input.ndim - 2))


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Local response normalisation across channels (Krizhevsky et al. 2012), input (N, C, *) with at
    least one * dimension: y = x / (k + alpha / size * sum x^2)^beta, the sum over the ``size``
    channels c - size//2 .. c + (size-1)//2 (zero beyond the edges; the divisor is always ``size``)."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected 3D or higher dimensionality input (N, C, *), got "
                         f"{input.ndim} dimensions (size {_shape(input)})")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise RuntimeError(f"local_response_norm: size must be a positive int, got {size!r}")
    if input.numel() == 0:
        return input
    n, c = input.shape[:2]
    sq = (input * input).reshape(n, 1, c, math.prod(input.shape[2:]))
    sq = pad(sq, (0, 0, size // 2, (size - 1) // 2))
    div = avg_pool2d(sq, (size, 1), stride=1).reshape(*input.shape)
    return input / (div * alpha + k) ** beta


def _random_uniform(shape, like):
    xp = get_array_module(like)
    if xp is np:
        from .tensor import default_generator

        return default_generator().random(shape, dtype=np.float32)
    return xp.random.random(shape, dtype=xp.float32)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training).
    Uses the framework's generator (``framework.manual_seed``)."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    return _dropout_mask(input, tuple(input.shape), p, inplace)


def _dropout_mask(input, mask_shape, p, inplace):
    dt = input.data.dtype
    if p == 1:
        mask = get_array_module(input.data).zeros(mask_shape, dtype=dt)
    else:
        keep = _random_uniform(mask_shape, input.data) >= p
        mask = keep.astype(dt) * dt.type(1.0 / (1.0 - p))
    if mask.shape != input.shape:
        mask = get_array_module(mask).broadcast_to(mask, input.shape)
    if inplace:
        return input.mul_(Tensor(mask))
    return Mask(mask=mask)(input)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels: (N, C, H, W) or (C, H, W)."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    shape = tuple(input.shape[:-2]) + (1, 1)
    return _dropout_mask(input, shape, p, inplace)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L), as ``torch.nn.functional.dropout1d``."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input")
    return _channel_dropout(input, p, training, inplace, 1)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W), as ``torch.nn.functional.dropout3d``."""
    if input.ndim not in (4, 5):
        raise RuntimeError(f"dropout3d: Expected 4D or 5D input, but received a {input.ndim}D input")
    return _channel_dropout(input, p, training, inplace, 3)


def _channel_dropout(input: Tensor, p: float, training: bool, inplace: bool, spatial: int) -> Tensor:
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    return _dropout_mask(input, tuple(input.shape[:-spatial]) + (1,) * spatial, p, inplace)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x where |x| > lambd, else 0."""
    return ops.where(input.abs() > lambd, input, 0.0)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x - lambd above lambd, x + lambd below -lambd, else 0."""
    return ops.where(input > lambd, input - lambd, ops.where(input < -lambd, input + lambd, 0.0))


def tanhshrink(input: Tensor) -> Tensor:
    """x - tanh(x)."""
    return input - ops.tanh(input)


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Randomized leaky ReLU (Xu et al. 2015): in training each negative element gets its own slope drawn
    from U(lower, upper) (the framework's generator); otherwise the mean slope (lower + upper) / 2."""
    if not training:
        return leaky_relu(input, (lower + upper) / 2, inplace=inplace)
    from .tensor import rand

    slope = rand(tuple(input.shape), dtype=input.dtype, device=input.device) * (upper - lower) + lower
    y = ops.where(input >= 0, input, input * slope)
    return input.copy_(y) if inplace else y


def _lp_pool(input: Tensor, norm_type: float, kernel_size, stride, ceil_mode: bool, dims: int) -> Tensor:
    k = (kernel_size,) * dims if isinstance(kernel_size, int) else tuple(kernel_size)
    pool = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}[dims]
    out = pool(input ** norm_type, k if dims > 1 else k[0], stride, 0, ceil_mode)
    return (ops.sign(out) * relu(out.abs()) * math.prod(k)) ** (1.0 / norm_type)


def lp_pool1d(input: Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    """The power-average pool (sum of x^p over each window)^(1/p), as ``torch.nn.functional.lp_pool1d``."""
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 1)


def lp_pool2d(input: Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 2)


def lp_pool3d(input: Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 3)


def _max_unpool(input: Tensor, indices: Tensor, kernel_size, stride, padding, output_size,
                dims: int) -> Tensor:
    """Values of ``input`` put back at the positions ``indices`` (flat within each spatial plane, as
    max_pool*d(return_indices=True) gives them) of a zero map; the inverse of the pool where it kept."""
    tup = (lambda v: (v,) * dims if isinstance(v, int) else tuple(v))
    k = tup(kernel_size)
    st = k if stride is None else tup(stride)
    pd = tup(padding)
    lead = tuple(input.shape[:-dims])
    if output_size is None:
        size = tuple((input.shape[-dims + i] - 1) * st[i] - 2 * pd[i] + k[i] for i in range(dims))
    else:
        size = tuple(output_size)[-dims:]
    if tuple(indices.shape) != tuple(input.shape):
        raise ValueError(f"max_unpool{dims}d: indices of shape {_shape(indices)} for input {_shape(input)}")
    plane = math.prod(size)
    xp = get_array_module(input.data)
    idx = indices.data.reshape(-1, math.prod(input.shape[-dims:]))
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= plane):
        raise ValueError(f"max_unpool{dims}d: found an invalid max index {int(idx.max())} (output volumes "
                         f"are of size {'x'.join(map(str, size))})")
    rows = xp.arange(idx.shape[0])[:, None] * plane
    flat = (idx + rows).reshape(-1)
    return _Unpool(flat=flat, size=math.prod(lead) * plane)(input.reshape(-1)).reshape(lead + size)


class _Unpool(Function):
    """out[flat] = v on zeros (a value kept by two overlapping windows is written twice, the same);
    backward: the gradient at each value's position."""

    def forward(self, v):
        out = get_array_module(v).zeros(self.size, v.dtype)
        out[self.flat] = v
        return out

    def backward(self, g):
        return g[Tensor(self.flat)]


def _fractional_intervals(sample, n_in, n_out, pool, dtype):
    """Window starts of fractional max pooling (Graham 2014), computed as PyTorch does, in the input's
    floating type so that the truncations agree."""
    seq = np.empty(n_out, np.int64)
    if n_out > 1:
        alpha = dtype.type(n_in - pool) / dtype.type(n_out - 1)
        for i in range(n_out - 1):
            seq[i] = int(dtype.type(i + sample) * alpha) - int(dtype.type(sample) * alpha)
    seq[n_out - 1] = n_in - pool
    return seq


def fractional_max_pool2d(input: Tensor, kernel_size, output_size=None, output_ratio=None,
                          return_indices: bool = False, _random_samples: Tensor | None = None):
    """Max pooling over pseudo-random windows of ``kernel_size`` that tile the input into ``output_size``
    (or ``output_ratio`` of it), as ``torch.nn.functional.fractional_max_pool2d``; ``_random_samples``
    (N, C, 2) in [0, 1) fixes the windows (else drawn from the framework's generator)."""
    return _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices,
                                _random_samples, 2)


def fractional_max_pool3d(input: Tensor, kernel_size, output_size=None, output_ratio=None,
                          return_indices: bool = False, _random_samples: Tensor | None = None):
    """The same over volumes (N, C, T, H, W) or (C, T, H, W), as PyTorch's ``fractional_max_pool3d``;
    ``_random_samples`` (N, C, 3) for the T, H and W windows."""
    return _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices,
                                _random_samples, 3)


def _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples,
                         dims):
    name = f"fractional_max_pool{dims}d"
    unbatched = input.ndim == dims + 1
    x = input.unsqueeze(0) if unbatched else input
    if x.ndim != dims + 2:
        raise ValueError(f"{name}: expected {dims + 1}-D or {dims + 2}-D input, got {_shape(input)}")
    n, c = x.shape[:2]
    size = tuple(x.shape[2:])

    def per_dim(v, what):
        t = (v,) * dims if isinstance(v, (int, float)) else tuple(v)
        if len(t) != dims:
            raise ValueError(f"{name}: {what} must be one number or {dims}, got {v!r}")
        return t

    k = per_dim(kernel_size, "kernel_size")
    if output_size is None:
        if output_ratio is None:
            raise ValueError(f"{name} requires specifying either an output_size or an output_ratio")
        out = tuple(int(s * r) for s, r in zip(size, per_dim(output_ratio, "output_ratio")))
    else:
        out = per_dim(output_size, "output_size")
    if any(o + kk - 1 > s for o, kk, s in zip(out, k, size)):
        raise ValueError(f"{name}: output size {out} with kernel {k} is too large for an input of size "
                         f"{size}")
    dt = x.data.dtype if x.data.dtype.kind == "f" else np.dtype(np.float32)
    if _random_samples is None:
        samples = _random_uniform((n, c, dims), np.empty(0)).astype(dt)
    else:
        samples = np.asarray(_random_samples.detach().cpu().numpy() if isinstance(_random_samples, Tensor)
                             else _random_samples, dt)
    xh = x.data if get_array_module(x.data) is np else x.data.get()
    # sample j drives the window starts of: 2-D (W, H), 3-D (T, H, W), as PyTorch's
    order = (1, 0) if dims == 2 else (0, 1, 2)
    strides = [int(np.prod(size[d + 1:])) for d in range(dims)]
    idx = np.empty((n, c) + out, np.int64)
    for b in range(n):
        for ch in range(c):
            starts = [None] * dims
            for j, d in enumerate(order):
                starts[d] = _fractional_intervals(samples[b, ch, j], size[d], out[d], k[d], dt)
            plane = xh[b, ch]
            for pos in np.ndindex(*out):
                lo = [starts[d][pos[d]] for d in range(dims)]
                win = plane[tuple(slice(lo[d], lo[d] + k[d]) for d in range(dims))]
                flat = int(np.argmax(np.where(np.isnan(win), np.inf, win)))  # first maximum (NaN wins)
                offs = np.unravel_index(flat, k)
                idx[(b, ch) + pos] = sum((lo[d] + int(offs[d])) * strides[d] for d in range(dims))
    gather_idx = Tensor(idx.reshape(n, c, -1))
    if get_array_module(x.data) is not np:
        gather_idx = gather_idx.to(x.device)
    res = ops.gather(x.reshape(n, c, -1), 2, gather_idx).reshape((n, c) + out)
    ind = gather_idx.reshape((n, c) + out)  # (on the input's device, as PyTorch's)
    if unbatched:
        res, ind = res.squeeze(0), ind.squeeze(0)
    return (res, ind) if return_indices else res


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 1)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """The partial inverse of ``max_pool2d(..., return_indices=True)``, as
    ``torch.nn.functional.max_unpool2d``."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 2)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 3)


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """Adaptive max pooling over the last dimension of (N, C, L) or (C, L)."""
    out = adaptive_max_pool2d(input.unsqueeze(-2), (1, output_size if isinstance(output_size, int)
                                                    else output_size[0]), return_indices)
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return out.squeeze(-2)


# SELU's alpha * scale: a SELU saturates at -_SELU_NEG for very negative inputs.
_SELU_NEG = 1.7580993408473766


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False,
                  *, _per_channel: bool = False) -> Tensor:
    """Dropout for self-normalising (SELU) networks (Klambauer et al. 2017): each element is set, with
    probability p, to SELU's saturation value -a' (a' = alpha * scale), then all are mapped by the affine
    a (x or -a') + b that keeps zero mean and unit variance, a = ((1 - p)(1 + p a'^2))^(-1/2),
    b = a a' p. Identity when not training (the default, as PyTorch) or p = 0; zeros when p = 1.
    Uses the framework's generator (``framework.manual_seed``)."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0 or input.numel() == 0:
        return input
    xp = get_array_module(input.data)
    dt = input.data.dtype
    mask_shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2) if _per_channel else tuple(input.shape)
    if p == 1:
        scale = xp.zeros(input.shape, dtype=dt)
        shift = None
    else:
        keep = (_random_uniform(mask_shape, input.data) >= p).astype(dt)
        keep = xp.broadcast_to(keep, tuple(input.shape))
        a = 1.0 / math.sqrt((_SELU_NEG * _SELU_NEG * p + 1.0) * (1.0 - p))
        scale = keep * dt.type(a)
        shift = (keep - 1) * dt.type(_SELU_NEG * a) + dt.type(_SELU_NEG * a * p)
    if inplace:
        input.mul_(Tensor(scale))
        return input if shift is None else input.add_(Tensor(shift))
    y = Mask(mask=scale)(input)
    return y if shift is None else y + Tensor(shift)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False) -> Tensor:
    """alpha_dropout of whole channels: each (n, c) map is kept or set to SELU's saturation value
    together, as ``torch.nn.functional.feature_alpha_dropout``."""
    if input.ndim < 2:
        raise RuntimeError("feature_alpha_dropout: expected input of at least 2 dimensions, got "
                           f"{input.ndim}")
    return alpha_dropout(input, p, training, inplace, _per_channel=True)


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1) -> Tensor:
    """Samples from the Gumbel-softmax (concrete) distribution (Jang et al. 2016; Maddison et al. 2016):
    softmax((logits + g) / tau) with Gumbel(0, 1) noise g from the framework's generator; ``hard``: the
    one-hot of its argmax, with the soft sample's gradient (straight-through), as PyTorch's."""
    xp = get_array_module(logits.data)
    u = _random_uniform(tuple(logits.shape), logits.data)
    tiny = float(np.finfo(logits.data.dtype).tiny)
    gumbels = Tensor((-xp.log(-xp.log(xp.clip(u, tiny, 1.0)) + tiny)).astype(logits.data.dtype))
    y_soft = softmax((logits + gumbels) / tau, dim)
    if not hard:
        return y_soft
    d = dim % logits.ndim
    index = xp.expand_dims(y_soft.data.argmax(axis=d), d)
    hot = xp.zeros(y_soft.shape, y_soft.data.dtype)
    xp.put_along_axis(hot, index, 1.0, axis=d)
    return Tensor(hot) - y_soft.detach() + y_soft


class _Norm2(Function):
    """Euclidean norm along ``dim`` (keepdim). Its gradient at a zero vector is 0 (as PyTorch)."""

    saves_inputs = (0,)
    saves_output = True

    def forward(self, x):
        xp = get_array_module(x)
        return xp.sqrt((x * x).sum(axis=self.dim, keepdims=True))

    def backward(self, g):
        x, n = self.saved_tensors
        safe = ops.where(n == 0, float("inf"), n)
        return x * (g / safe)


def _norm_keep(x, p, dim):
    if p == 2:
        return _Norm2(dim=dim)(x)
    return ops.norm(x, p, dim, keepdim=True)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """x / max(||x||_p, eps) along ``dim``."""
    n = _norm_keep(input, p, dim)
    return input / ops.clamp(n, min=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum((x1 / max(||x1||, eps)) * (x2 / max(||x2||, eps))) along ``dim`` (PyTorch's formulation; the
    clamp does not take part in the gradient)."""
    shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    x1, x2 = x1.expand(*shape), x2.expand(*shape)

    def clamped(n):
        xp = get_array_module(n.data)
        return n + Tensor(xp.maximum(n.data, eps).astype(n.data.dtype) - n.data)

    n1 = clamped(_Norm2(dim=dim)(x1))
    n2 = clamped(_Norm2(dim=dim)(x2))
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """||x1 - x2 + eps||_p over the last dimension (the two broadcast)."""
    d = x1 - x2 + eps
    if d.ndim == 0:  # as PyTorch: a scalar is its own last dimension
        d = d.reshape(1)
        return ops.norm(d, p, -1, keepdim) if keepdim else ops.norm(d, p, -1).reshape(())
    return ops.norm(d, p, -1, keepdim)


def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """p-norm distances between the rows of ``input`` (N, M): the N (N - 1) / 2 pairs i < j in row-major
    order, ||x_i - x_j||_p, p >= 0 (inf included). Gradients follow PyTorch's: zero where a distance or
    (p < 1) a coordinate difference is zero; for p = inf every tied coordinate gets the full gradient.
    The pair differences are materialised: memory O(N^2 M)."""
    if input.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.ndim}D (size {_shape(input)})")
    if input.data.dtype.kind != "f":
        raise RuntimeError(f"pdist only supports floating-point dtypes, got {input.data.dtype}")
    if p < 0:
        raise RuntimeError(f"pdist only supports non-negative p values, got {p}")
    xp = get_array_module(input.data)
    i, j = np.triu_indices(input.shape[0], 1)
    diff = input[xp.asarray(i)] - input[xp.asarray(j)]  # (P, M)
    if p == 0:  # the number of differing coordinates; gradient zero
        count = Tensor((diff.data != 0).sum(axis=-1).astype(diff.data.dtype))
        return count + ops.where(Tensor(xp.zeros(diff.shape, dtype=bool)), diff, 0.0).sum(-1)
    if p == 1:
        return diff.abs().sum(-1)
    if math.isinf(p):
        a = diff.abs()
        if diff.shape[-1]:
            m = a.data.max(axis=-1, keepdims=True)
        else:
            m = xp.zeros((diff.shape[0], 1), a.data.dtype)
        tied = Tensor(a.data == m)
        # value: the maximum; gradient: sign(diff) at every coordinate that reaches it
        return Tensor(m[:, 0]) + ops.where(tied, a - a.detach(), 0.0).sum(-1)
    if p > 1:
        return ops.norm(diff, p, -1)  # zero gradient where the distance is zero
    zero = Tensor(diff.data == 0)  # 0 < p < 1: |d|^(p-1) is infinite at d = 0, PyTorch's gradient is 0
    a = ops.where(zero, 1.0, diff.abs())
    return ops.where(zero, 0.0, a ** p).sum(-1) ** (1.0 / p)


# ============================================================================= activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else ops.relu(input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


class _Hardtanh(Function):
    """clamp(x, lo, hi) whose gradient is 1 strictly inside (lo, hi) only, as PyTorch's hardtanh, relu6
    and hardsigmoid (clamp's own gradient also passes at the bounds: relu6'(0) would be 1)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.mask = ~((x <= self.lo) | (x >= self.hi))  # (NaN passes its gradient, as PyTorch)
        return xp.clip(x, x.dtype.type(self.lo), x.dtype.type(self.hi))

    def backward(self, g):
        return Mask(mask=self.mask)(g)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    y = _Hardtanh(lo=min_val, hi=max_val)(input)
    if inplace:
        return input.copy_(y)
    return y


class _Scale(Function):
    """Multiply by a per-element constant chosen from the sign of x (leaky_relu's piecewise slope)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.mask = xp.where(x > 0, x.dtype.type(1), x.dtype.type(self.slope))
        return x * self.mask

    def backward(self, g):
        return Mask(mask=self.mask)(g)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    y = _Scale(slope=negative_slope)(input)
    if inplace:
        return input.copy_(y)
    return y


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """max(0, x) + weight * min(0, x); weight has 1 or C (= input.shape[1]) elements."""
    if weight.numel() != 1 and (input.ndim < 2 or weight.numel() != input.shape[1]):
        raise RuntimeError(f"prelu: mismatch of parameter numbers and input channel size: weight has "
                           f"{weight.numel()} elements, input {_shape(input)}")
    w = weight.reshape((1, -1) + (1,) * (input.ndim - 2)) if weight.numel() != 1 else weight.reshape(())
    return ops.where(input > 0, input, w * input)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """value where x <= threshold, else x (NaN is kept, with its gradient, as PyTorch)."""
    y = ops.where(input <= threshold, value, input)
    return input.copy_(y) if inplace else y


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1)) (Barron 2017)."""
    if alpha == 0:
        raise RuntimeError("celu: alpha cannot be 0 (the input is divided by it)")
    y = ops.where(input > 0, input, alpha * (ops.exp(ops.clamp(input, max=0.0) / alpha) - 1))
    return input.copy_(y) if inplace else y


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    neg = alpha * (ops.exp(ops.clamp(input, max=0.0)) - 1)
    y = ops.where(input > 0, input, neg)
    return input.copy_(y) if inplace else y


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    y = scale * elu(input, alpha)
    return input.copy_(y) if inplace else y


class _Erf(Function):
    saves_inputs = (0,)

    def forward(self, x):
        return _erf_array(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * (2.0 / math.sqrt(math.pi)) * ops.exp(-(x * x))


def _erf_array(x):
    xp = get_array_module(x)
    if xp is not np:
        import cupyx.scipy.special as cs

        return cs.erf(x).astype(x.dtype, copy=False)  # CuPy's erf maps float16 to float64
    try:
        from scipy.special import erf as _erf
    except ImportError:  # pragma: no cover - scipy is a dependency; keep a slow exact fallback
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return _erf(x).astype(x.dtype, copy=False)


def erf(input: Tensor) -> Tensor:
    """The error function, differentiable (d/dx erf = 2/sqrt(pi) exp(-x^2))."""
    return _Erf()(input)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x): exact with erf ('none'), or the tanh approximation ('tanh')."""
    if approximate == "none":
        return input * (0.5 * (1.0 + erf(input * (1.0 / math.sqrt(2.0)))))
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (input + 0.044715 * input * input * input)
        return 0.5 * input * (1.0 + ops.tanh(inner))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def _written_in_place(input: Tensor, fn, name: str) -> Tensor:
    """``input`` made to hold ``fn(input)``, recorded as an in-place op (the backward reads a snapshot of
    the old values, which fn's product with its input needs; as PyTorch's silu_ and the like)."""
    from .ops.shape import _inplace

    return _inplace(input, fn, name)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    if inplace:
        return _written_in_place(input, silu, "silu_")
    return input * ops.sigmoid(input)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    if inplace:
        return _written_in_place(input, mish, "mish_")
    return input * ops.tanh(softplus(input))


def sigmoid(input: Tensor) -> Tensor:
    return ops.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return ops.tanh(input)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    y = _Hardtanh(lo=0.0, hi=1.0)(input / 6.0 + 0.5)
    if inplace:
        return input.copy_(y)
    return y


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    if inplace:
        return _written_in_place(input, hardswish, "hardswish_")
    return input * hardsigmoid(input)


class _LogSigmoid(Function):
    """log(sigmoid(x)) = -softplus(-x), stable on both tails; gradient sigmoid(-x)."""

    saves_inputs = (0,)

    def forward(self, x):
        xp = get_array_module(x)
        return (xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))).astype(x.dtype, copy=False)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * ops.sigmoid(-x)


def logsigmoid(input: Tensor) -> Tensor:
    return _LogSigmoid()(input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """(1/beta) log(1 + exp(beta x)); linear where beta*x > threshold, as PyTorch."""
    bx = input * beta if beta != 1 else input
    soft = -_LogSigmoid()(-bx)
    if beta != 1:
        soft = soft / beta
    return ops.where(bx > threshold, input, soft)


def softsign(input: Tensor) -> Tensor:
    return input / (1 + input.abs())


def glu(input: Tensor, dim: int = -1) -> Tensor:
    a, b = input.chunk(2, dim)
    return a * ops.sigmoid(b)


def _softmax_dim(ndim):
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    return ops.softmax(input, _softmax_dim(input.ndim) if dim is None else dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    return ops.log_softmax(input, _softmax_dim(input.ndim) if dim is None else dim, dtype=dtype)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """softmax(-x) along ``dim`` (default as softmax's)."""
    return ops.softmax(-input, _softmax_dim(input.ndim) if dim is None else dim, dtype=dtype)


# ============================================================================= embeddings


class _Embedding(Function):
    """Rows of ``weight`` at integer indices; with ``zero_rows`` set, rows equal to ``padding_idx``
    read as zero (used by the double backward, where the padding row carries no gradient)."""

    def forward(self, weight):
        out = weight[self.idx]
        if self.zero_rows and self.padding_idx is not None:
            out = out * (self.idx != self.padding_idx)[..., None].astype(out.dtype)
        self.num = weight.shape[0]
        return out

    def backward(self, g):
        return _EmbeddingBackward(idx=self.idx, num=self.num, padding_idx=self.padding_idx)(g)


class _EmbeddingBackward(Function):
    def forward(self, g):
        xp = get_array_module(g)
        d = g.shape[-1]
        out = xp.zeros((self.num, d), dtype=g.dtype)
        from .ops.shape import add_at

        add_at(xp, out, self.idx.reshape(-1), g.reshape(-1, d))
        if self.padding_idx is not None:
            out[self.padding_idx] = 0
        return out

    def backward(self, gg):
        return _Embedding(idx=self.idx, padding_idx=self.padding_idx, zero_rows=True)(gg)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """weight[input]: input integer indices of any shape, weight (num_embeddings, embedding_dim).
    The row ``padding_idx`` receives no gradient. ``max_norm`` renormalises the looked-up rows of
    ``weight`` in place (as PyTorch)."""
    idx = input.data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"embedding: expected indices of an integer type, got {idx.dtype}")
    num = weight.shape[0]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError(f"embedding: index out of range in self (indices in [{int(idx.min())}, "
                         f"{int(idx.max())}] for a weight of size {_shape(weight)})")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx must be within num_embeddings ({num}), "
                             f"got {padding_idx}")
        padding_idx %= num
    if max_norm is not None:
        xp = get_array_module(weight.data)
        rows = xp.unique(idx)
        w = weight.data[rows]
        norms = (xp.abs(w) ** norm_type).sum(-1) ** (1.0 / norm_type)
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(w.dtype)
        weight.data[rows] = w * scale[:, None]
        weight._vc[0] += 1
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse are not supported")
    return _Embedding(idx=idx, padding_idx=padding_idx, zero_rows=False)(weight)


def embedding_bag(input: Tensor, weight: Tensor, offsets: Tensor | None = None, max_norm: float | None = None,
                  norm_type: float = 2, scale_grad_by_freq: bool = False, mode: str = "mean",
                  sparse: bool = False, per_sample_weights: Tensor | None = None,
                  include_last_offset: bool = False, padding_idx: int | None = None) -> Tensor:
    """Sums, means or maxima of bags of embeddings without the (bags, length, dim) intermediate of
    ``embedding``, as ``torch.nn.functional.embedding_bag``.

    Bags: the rows of a 2-D ``input``, or for a 1-D ``input`` the runs starting at ``offsets`` (with
    ``include_last_offset`` the last offset ends the last bag). Entries equal to ``padding_idx`` are left
    out of their bag (and of a mean's count); an empty bag gives zeros. ``per_sample_weights`` (the shape
    of ``input``) scale each embedding, for ``mode="sum"``.
    """
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"embedding_bag: mode has to be one of sum, mean or max, got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is "
                                  f"only supported for mode='sum' (got mode='{mode}')")
    idx = input.data if isinstance(input, Tensor) else np.asarray(input)
    idx = idx.get() if hasattr(idx, "get") else np.asarray(idx)  # the bag layout is worked out on the host
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError("embedding_bag: if input is 2D, then offsets has to be None, as input is "
                             "treated is a mini-batch of fixed length sequences")
        n_bags, length = idx.shape
        starts = np.arange(n_bags) * length
        ends = starts + length
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("embedding_bag: offsets has to be a 1D Tensor but got None")
        off = offsets.data if isinstance(offsets, Tensor) else np.asarray(offsets)
        off = np.asarray(off.get() if hasattr(off, "get") else off)
        if off.ndim != 1 or off.dtype.kind not in "iu":
            raise ValueError(f"embedding_bag: offsets has to be a 1D Tensor of integers, got shape "
                             f"{off.shape} of {off.dtype}")
        if off.size and int(off[0]) != 0:
            raise ValueError(f"embedding_bag: offsets[0] has to be 0, i.e., the first sequence in the "
                             f"mini-batch has to start from position 0. However, got {int(off[0])}")
        if off.size and int(off[-1]) > idx.size:
            raise ValueError(f"embedding_bag: offsets[-1] can not be greater than input's length "
                             f"{idx.size}, but got offsets[-1] of {int(off[-1])}")
        if np.any(np.diff(off) < 0):
            raise ValueError("embedding_bag: offsets must be non-decreasing")
        if include_last_offset:
            starts, ends = off[:-1], off[1:]
        else:
            starts, ends = off, np.append(off[1:], idx.size)
    else:
        raise ValueError(f"embedding_bag: input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{idx.ndim}")
    flat = idx.reshape(-1)
    num, dim = weight.shape
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding_bag: padding_idx must be within num_embeddings ({num}), got "
                             f"{padding_idx}")
        padding_idx %= num
    n_bags = len(starts)
    # positions[b, j]: entry j of bag b in ``flat``, or the sentinel row len(flat) past the bag's end
    kept = [np.arange(a, b)[flat[a:b] != padding_idx] if padding_idx is not None else np.arange(a, b)
            for a, b in zip(starts, ends)]
    counts = np.array([len(k) for k in kept], np.int64)
    width = max(1, int(counts.max()) if n_bags else 1)
    positions = np.full((n_bags, width), flat.size, np.int64)
    for b, k in enumerate(kept):
        positions[b, :len(k)] = k
    from .tensor import full

    emb = embedding(Tensor(flat), weight, None, max_norm, norm_type, scale_grad_by_freq, sparse)
    if per_sample_weights is not None:
        if tuple(per_sample_weights.shape) != tuple(idx.shape):
            raise ValueError(f"embedding_bag: per_sample_weights of shape {_shape(per_sample_weights)} for "
                             f"input of shape {tuple(idx.shape)}")
        emb = emb * per_sample_weights.reshape(-1, 1)
    filler = float("-inf") if mode == "max" else 0.0
    rows = ops.cat([emb, full((1, dim), filler, dtype=emb.dtype, device=emb.device)])
    pos = Tensor(positions).to(emb.device) if emb.device.type != "cpu" else Tensor(positions)
    bags = rows[pos]  # (bags, width, dim)
    if mode == "sum":
        return bags.sum(1)
    if mode == "mean":
        div = Tensor(np.maximum(counts, 1).astype(emb.data.dtype)[:, None])
        return bags.sum(1) / (div.to(emb.device) if emb.device.type != "cpu" else div)
    out = bags.max(1).values
    nonempty = Tensor((counts > 0)[:, None])
    return ops.where(nonempty.to(emb.device) if emb.device.type != "cpu" else nonempty, out, 0.0)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """(*) int64 class indices -> (*, num_classes) int64 one-hot."""
    a = tensor.data
    xp = get_array_module(a)
    if a.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of integer type")
    if a.size and int(a.min()) < 0:
        raise RuntimeError("one_hot: Class values must be non-negative.")
    if num_classes == -1:
        num_classes = int(a.max()) + 1 if a.size else 0
    elif a.size and int(a.max()) >= num_classes:
        raise RuntimeError(f"one_hot: Class values must be smaller than num_classes ({num_classes}).")
    return Tensor((a[..., None] == xp.arange(num_classes)).astype(xp.int64))


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(Q K^T * scale + mask) V. query (*, L, E), key (*, S, E), value (*, S, Ev).
    A boolean ``attn_mask`` marks positions that take part (True); a float mask is added."""
    L, S = query.shape[-2], key.shape[-2]
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key = _repeat_heads(key, rep)
        value = _repeat_heads(value, rep)
    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = ops.matmul(query, key.transpose(-2, -1)) * s
    xp = get_array_module(query.data)
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("scaled_dot_product_attention: attn_mask and is_causal cannot both be set")
        causal = xp.tril(xp.ones((L, S), dtype=bool))
        scores = ops.masked_fill(scores, Tensor(~causal), float("-inf"))
    if attn_mask is not None:
        if attn_mask.data.dtype == bool:
            scores = ops.masked_fill(scores, Tensor(~attn_mask.data), float("-inf"))
        else:
            scores = scores + attn_mask
    attn = _safe_softmax(scores)
    if dropout_p > 0:
        attn = dropout(attn, dropout_p, True)
    return ops.matmul(attn, value)


def _safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim where a row masked out entirely (all -inf) gives zeros, not NaN, as
    PyTorch's attention (``torch._safe_softmax``): a query that may attend to nothing (an all-padded
    key sequence) contributes zero instead of poisoning the output and the gradients with NaN."""
    xp = get_array_module(scores.data)
    dead = xp.all(scores.data == -xp.inf, axis=-1, keepdims=True)
    if not bool(dead.any()):
        return ops.softmax(scores, -1)
    # dead rows get finite stand-in scores (no gradient flows to them), then their weights are zeroed
    alive = Tensor((~dead).astype(scores.data.dtype))
    return ops.softmax(ops.where(Tensor(dead), 0.0, scores), -1) * alive


def _repeat_heads(t, rep):
    shp = list(t.shape)
    t = t.unsqueeze(-3).expand(*shp[:-2], rep, *shp[-2:])
    return t.reshape(*shp[:-3], shp[-3] * rep, *shp[-2:])


# ============================================================================= losses


class _PickClass(Function):
    """out[n, d...] = x[n, target[n, d...], d...] (class axis 1). Linear; adjoint _PlaceClass."""

    def forward(self, x):
        xp = get_array_module(x)
        self.x_shape = x.shape
        return xp.take_along_axis(x, self.target[:, None], axis=1)[:, 0]

    def backward(self, g):
        return _PlaceClass(target=self.target, x_shape=self.x_shape)(g)


class _PlaceClass(Function):
    def forward(self, g):
        xp = get_array_module(g)
        if xp is np:
            out = np.zeros(self.x_shape, dtype=g.dtype)
            np.put_along_axis(out, self.target[:, None], g[:, None], axis=1)
            return out
        classes = xp.arange(self.x_shape[1]).reshape((1, -1) + (1,) * (len(self.x_shape) - 2))
        return (self.target[:, None] == classes) * g[:, None]

    def backward(self, gg):
        return _PickClass(target=self.target)(gg)


def _class_targets(name, input, target, ignore_index):
    """Check (N, C, d...) input against (N, d...) class-index target; returns (safe target, keep mask)."""
    t = target.data
    xp = get_array_module(t)
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"{name}: expected target of an integer type (class indices) for input of size "
                           f"{_shape(input)}, got {t.dtype}")
    exp_shape = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(t.shape) != exp_shape:
        raise ValueError(f"{name}: expected target of size {list(exp_shape)} for input of size "
                         f"{_shape(input)}, got {list(t.shape)}")
    keep = t != ignore_index
    c = input.shape[1]
    if t.size:
        bad = keep & ((t < 0) | (t >= c))
        if bool(bad.any()):
            raise IndexError(f"{name}: Target {int(t[bad].reshape(-1)[0])} is out of bounds (classes: {c})")
    safe = xp.where(keep, t, 0).astype(xp.int64)
    return safe, keep


def _batchify(input, target):
    """Treat (C,) input / () target as a batch of one."""
    if input.ndim == 1:
        return input.unsqueeze(0), target.reshape(1) if target.ndim == 0 else target.unsqueeze(0), True
    return input, target, False


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -w[t] * input[n, t] per element; 'mean' divides by sum of w[t] over
    non-ignored targets. input (N, C, d1, ...) log-probabilities, target (N, d1, ...) class indices."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    input, target, single = _batchify(input, target)
    safe, keep = _class_targets("nll_loss", input, target, ignore_index)
    xp = get_array_module(safe)
    picked = _PickClass(target=safe)(input)
    if weight is not None:
        if weight.numel() != input.shape[1]:
            raise RuntimeError(f"nll_loss: weight tensor should be defined either for all {input.shape[1]} "
                               f"classes or no classes but got weight tensor of shape: {_shape(weight)}")
        wt = weight.data[safe] * keep
    else:
        wt = keep.astype(input.data.dtype)
    wt = Tensor(xp.asarray(wt, dtype=input.data.dtype))
    loss = -picked * wt
    if reduction == "none":
        return loss[0] if single else loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        denom = wt.data.sum()
        if denom == 0:
            # 0/0 = NaN as PyTorch, but ignored rows get a zero gradient (not 0 * inf = NaN) and
            # zero-weight kept rows NaN, as PyTorch's nll_loss backward
            with np.errstate(invalid="ignore", divide="ignore"):
                per = xp.where(keep, wt.data / denom, 0).astype(input.data.dtype)
            return (-picked * Tensor(per)).sum() + float("nan")
        return loss.sum() / wt.sum()
    return _reduce(loss, reduction, "nll_loss")


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits ``input`` (N, C, d1, ...) or (C,) against class indices (N, d1, ...) or
    class probabilities (same shape as input), as ``torch.nn.functional.cross_entropy``.

    With ``label_smoothing`` e, the target becomes (1 - e) * target + e / C; for class indices the loss
    is (1 - e) * nll + e/C * sum_c(-w_c log p_c), 'mean' dividing by the summed target weights.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if target.data.dtype.kind == "f":
        return _cross_entropy_probs(input, target, weight, reduction, label_smoothing)
    if reduction not in ("none", "mean", "sum"):
        return _reduce(input, reduction, "cross_entropy")  # raises the usual message
    input2, target2, single = _batchify(input, target)
    safe, keep = _class_targets("cross_entropy", input2, target2, ignore_index)
    c = input2.shape[1]
    if weight is not None and weight.numel() != c:
        raise RuntimeError(f"cross_entropy: weight tensor should be defined either for all {c} classes or no "
                           f"classes but got weight tensor of shape: {_shape(weight)}")
    wc = None if weight is None else weight.data.astype(input2.data.dtype, copy=False)
    fn = _CrossEntropy(target=safe, keep=keep, wc=wc, eps=float(label_smoothing), reduction=reduction)
    loss = fn(input2)
    return loss[0] if single and reduction == "none" else loss


class _CrossEntropy(Function):
    """Fused log-softmax + (weighted, smoothed, masked) negative log-likelihood over class axis 1.

    Per element i: loss_i = keep_i * [(1 - e) (-w[t_i] log p[i, t_i]) + e/C sum_c(-w_c log p[i, c])];
    'mean' divides by D = sum_i keep_i w[t_i] (PyTorch's normalisation). With q = dL/dlog p, the
    input gradient is q - softmax(x) * sum_c q; the backward builds it with Tensor operations when a
    graph is being recorded, so it is differentiable again.
    """

    saves_inputs = (0,)

    def forward(self, x):
        xp = get_array_module(x)
        dt = x.dtype
        m = x.max(axis=1, keepdims=True)
        z = x - m
        lse = xp.log(xp.exp(z).sum(axis=1, keepdims=True))
        logp = z - lse
        self.logp = logp
        c = x.shape[1]
        keep = self.keep.astype(dt)
        wt = keep if self.wc is None else self.wc[self.target] * keep  # w[t_i] keep_i
        picked = xp.take_along_axis(logp, self.target[:, None], axis=1)[:, 0]
        loss = -(1 - self.eps) * wt * picked
        if self.eps:
            wshape = (1, c) + (1,) * (x.ndim - 2)
            sm = logp.sum(axis=1) if self.wc is None else (logp * self.wc.reshape(wshape)).sum(axis=1)
            loss = loss - (self.eps / c) * keep * sm
        self.wt, self.keepf = wt, keep
        if self.reduction == "none":
            return loss.astype(dt, copy=False)
        total = loss.sum()
        if self.reduction == "sum":
            return xp.asarray(total, dtype=dt)
        self.denom = wt.sum()
        if self.denom == 0:  # PyTorch's nll part is 0/0 (NaN) even when the smoothing part is not 0
            return xp.asarray(xp.nan, dtype=dt)
        return xp.asarray(total / self.denom, dtype=dt)

    def _dlogp(self, xp, dt):
        """q / a: dL/dlog p for a unit upstream gradient (before the reduction's scale)."""
        c = self.logp.shape[1]
        at_target = (-(1 - self.eps) * self.wt)[:, None]
        if xp is np:
            q = np.zeros(self.logp.shape, dtype=dt)
            np.put_along_axis(q, self.target[:, None], at_target, axis=1)
        else:
            classes = xp.arange(c).reshape((1, -1) + (1,) * (self.logp.ndim - 2))
            q = ((self.target[:, None] == classes) * at_target).astype(dt)
        if self.eps:
            wshape = (1, c) + (1,) * (q.ndim - 2)
            wc = xp.ones(wshape, dtype=dt) if self.wc is None else self.wc.reshape(wshape)
            q = q - (self.eps / c) * self.keepf[:, None] * wc
        return q

    def backward(self, g):
        xp = get_array_module(self.logp)
        dt = self.logp.dtype
        q0 = self._dlogp(xp, dt)
        if self.reduction == "none":
            scale = g.unsqueeze(1)
        elif self.reduction == "sum":
            scale = g
        elif self.denom == 0:
            # every target ignored (or weighted 0): the loss is 0/0 = NaN; PyTorch leaves the gradient
            # of ignored rows at 0 (0 * inf gave NaN here and poisoned the parameters) and of
            # zero-weight kept rows at NaN.
            with np.errstate(invalid="ignore", divide="ignore"):
                q0 = xp.where(self.keepf[:, None] > 0, q0 / self.denom, 0).astype(dt)
            scale = g
        else:
            scale = g / float(self.denom)
        if not is_grad_enabled():
            q = q0 * scale.data
            p = xp.exp(self.logp)
            return Tensor(q - p * q.sum(axis=1, keepdims=True))
        (x,) = self.saved_tensors
        q = Tensor(q0) * scale
        return q - ops.softmax(x, 1) * q.sum(1, keepdim=True)


def _cross_entropy_probs(input, target, weight, reduction, label_smoothing):
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"cross_entropy: a floating-point target holds class probabilities and must have "
                         f"the size of the input {_shape(input)}, got {_shape(target)} (class indices "
                         f"must be an integer tensor)")
    cdim = 0 if input.ndim == 1 else 1
    c = input.shape[cdim]
    logp = log_softmax(input, cdim)
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / c
    prod = logp * target
    if weight is not None:
        prod = prod * weight.reshape((c,) + (1,) * (input.ndim - cdim - 1))
    loss = -prod.sum(cdim)
    if reduction == "mean":  # over N·d1·...; NaN for an empty batch, as PyTorch (was 0)
        return loss.mean() if input.ndim > 1 else loss
    return _reduce(loss, reduction, "cross_entropy")


def _check_same_size(name, input, target):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"{name}: using a target size ({_shape(target)}) that is different to the input "
                         f"size ({_shape(input)}) is not supported; please ensure they have the same size")


class _BinaryCrossEntropy(Function):
    """Element-wise -(t log x + (1 - t) log(1 - x)) with the logs clamped at -100, and PyTorch's input
    gradient (x - t) / max(x (1 - x), 1e-12): finite where x is exactly 0 or 1 (a saturated float32
    sigmoid), where the composed clamp(log(x)) gave 0 / 0 = NaN even for a correct prediction."""

    saves_inputs = (0, 1)

    def forward(self, x, t):
        xp = get_array_module(x)
        with np.errstate(divide="ignore"):
            log_x = xp.maximum(xp.log(x), x.dtype.type(-100))
            log_1mx = xp.maximum(xp.log(1 - x), x.dtype.type(-100))
        return -(t * log_x + (1 - t) * log_1mx)

    def backward(self, g):
        x, t = self.saved_tensors
        gx = gt = None
        if self.needs_input_grad[0]:
            gx = ops.basic.unbroadcast(g * (x - t) / ops.clamp((1 - x) * x, min=1e-12), x.shape)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore"):  # unclamped, as PyTorch: +-inf where x is 0 or 1
                gt = ops.basic.unbroadcast(g * (ops.log(1 - x) - ops.log(x)), t.shape)
        return gx, gt


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """-w (t log x + (1 - t) log(1 - x)), logs clamped at -100 as PyTorch; input probabilities in [0, 1]."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_same_size("binary_cross_entropy", input, target)
    x = input.data
    if x.size and (float(x.min()) < 0 or float(x.max()) > 1):
        raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1")
    target = _as_tensor_like(target, input)
    loss = _BinaryCrossEntropy()(input, target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross-entropy, fused and stable: (1 - t) x - (1 + (pos_weight - 1) t) log sigmoid(x),
    times ``weight``. ``pos_weight`` broadcasts against the last (class) dimension."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_same_size("binary_cross_entropy_with_logits", input, target)
    target = _as_tensor_like(target, input)
    ls = logsigmoid(input)
    if pos_weight is not None:
        lw = 1 + (pos_weight - 1) * target
        loss = (1 - target) * input - lw * ls
    else:
        loss = (1 - target) * input - ls
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> Tensor:
    """Focal loss of RetinaNet (Lin et al. 2017), as ``torchvision.ops.sigmoid_focal_loss``:
    BCE-with-logits * (1 - p_t)^gamma, times alpha_t = alpha t + (1 - alpha)(1 - t) when alpha >= 0."""
    p = ops.sigmoid(inputs)
    ce = binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma) if gamma != 0 else ce
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction}' \n Supported reduction modes: "
                         f"'none', 'mean', 'sum'")
    return _reduce(loss, reduction, "sigmoid_focal_loss")


def _pointwise_target(name, input, target):
    target = _as_tensor_like(target, input)
    if tuple(input.shape) != tuple(target.shape):
        try:
            np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise RuntimeError(f"{name}: the size of input {_shape(input)} does not broadcast with the "
                               f"size of target {_shape(target)}") from None
    return target


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    target = _pointwise_target("mse_loss", input, target)
    d = input - target
    loss = d * d
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "mse_loss")


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
            weight: Tensor | None = None) -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    target = _pointwise_target("l1_loss", input, target)
    loss = (input - target).abs()
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "l1_loss")


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0 gives the L1 loss)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    target = _pointwise_target("smooth_l1_loss", input, target)
    d = input - target
    ad = d.abs()
    if beta == 0:
        return _reduce(ad, reduction, "smooth_l1_loss")
    loss = ops.where(ad < beta, (0.5 / beta) * d * d, ad - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    target = _pointwise_target("huber_loss", input, target)
    d = input - target
    ad = d.abs()
    loss = ops.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "huber_loss")


def _broadcast_all(name, **tensors):
    """The broadcast shape of the named tensors, or a RuntimeError naming the function and every shape."""
    try:
        return np.broadcast_shapes(*(tuple(t.shape) for t in tensors.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {_shape(t)}" for k, t in tensors.items())
        raise RuntimeError(f"{name}: the sizes do not broadcast together ({shapes})") from None


def _check_reduction(name, reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{name}: {reduction!r} is not a valid value for reduction "
                         "(use 'none', 'mean' or 'sum')")


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """max(0, -y (x1 - x2) + margin), y in {1, -1}; the three have the same number of dimensions and
    broadcast. At the hinge (exactly 0) the gradient passes, as PyTorch's clamp_min."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("margin_ranking_loss", reduction)
    target = _as_tensor_like(target, input1)
    if not input1.ndim == input2.ndim == target.ndim:
        raise RuntimeError(f"margin_ranking_loss: all input tensors should have the same number of "
                           f"dimensions, but got sizes input1 {_shape(input1)}, input2 {_shape(input2)}, "
                           f"target {_shape(target)}")
    _broadcast_all("margin_ranking_loss", input1=input1, input2=input2, target=target)
    loss = ops.clamp(-target * (input1 - input2) + margin, min=0.0)
    return _reduce(loss, reduction, "margin_ranking_loss")


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """x where y = 1, max(0, margin - x) where y = -1; input and target broadcast. As PyTorch, a target
    that is neither 1 nor -1 gets both terms, x + max(0, margin - x), and at the hinge (margin - x
    exactly 0) the gradient passes (clamp_min). The target takes no gradient."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("hinge_embedding_loss", reduction)
    t = _as_tensor_like(target, input)
    _broadcast_all("hinge_embedding_loss", input=input, target=t)
    t = t.data
    loss = ops.where(t != 1, ops.clamp(margin - input, min=0.0), 0.0) + ops.where(t != -1, input, 0.0)
    return _reduce(loss, reduction, "hinge_embedding_loss")


def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                     reduction: str = "mean") -> Tensor:
    """log(1 + exp(-y x)) per element; as PyTorch, the target broadcasts to the input's size (not the
    other way round). Computed as softplus(-y x), which stays finite where PyTorch's log1p(exp(-y x))
    overflows to inf (-y x above about 88 in float32, 709 in float64); a target that requires grad gets
    its gradient (PyTorch raises)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("soft_margin_loss", reduction)
    t = _as_tensor_like(target, input)
    shape = _broadcast_all("soft_margin_loss", input=input, target=t)
    if tuple(shape) != tuple(input.shape):
        raise RuntimeError(f"soft_margin_loss: the target of size {_shape(t)} must broadcast to the size of "
                           f"the input {_shape(input)} (the result has the input's size), but together they "
                           f"give {list(shape)}")
    return _reduce(-logsigmoid(t * input), reduction, "soft_margin_loss")


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """-mean_c [y log sigmoid(x) + (1 - y) log sigmoid(-x)] over the last (class) dimension of input
    (N, C) or (C,), targets y in {0, 1}; ``weight`` (C,) multiplies each class's term."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("multilabel_soft_margin_loss", reduction)
    if input.ndim == 0:
        raise RuntimeError("multilabel_soft_margin_loss: expected input of size (N, C) or (C,), got a scalar")
    t = _as_tensor_like(target, input)
    named = dict(input=input, target=t) if weight is None else dict(input=input, target=t, weight=weight)
    _broadcast_all("multilabel_soft_margin_loss", **named)
    loss = -(t * logsigmoid(input) + (1 - t) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss.sum(-1) / input.shape[-1], reduction, "multilabel_soft_margin_loss")


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1, 0 for other y; inputs
    (N, D) with target (N,), or (D,) with a scalar target. cos = x1.x2 / sqrt((|x1|^2 + 1e-12)
    (|x2|^2 + 1e-12)), as PyTorch; at the hinge (exactly 0) the gradient passes."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("cosine_embedding_loss", reduction)
    t = _as_tensor_like(target, input1)
    if t.ndim > 1:
        raise RuntimeError(f"cosine_embedding_loss: 0D or 1D target tensor expected, multi-target not "
                           f"supported (target {_shape(t)})")
    if not input1.ndim == input2.ndim == t.ndim + 1:
        raise RuntimeError(f"cosine_embedding_loss: {t.ndim}D target tensor expects {t.ndim + 1}D input "
                           f"tensors, but found inputs with sizes {_shape(input1)} and {_shape(input2)}")
    shape = _broadcast_all("cosine_embedding_loss", input1=input1, input2=input2)
    try:
        np.broadcast_shapes(tuple(t.shape), shape[:-1])
    except ValueError:
        raise RuntimeError(f"cosine_embedding_loss: target of size {_shape(t)} does not match the batch of "
                           f"the inputs {_shape(input1)} and {_shape(input2)}") from None
    eps = 1e-12
    prod = (input1 * input2).sum(-1)
    mag = ((input1 * input1).sum(-1) + eps) * ((input2 * input2).sum(-1) + eps)
    cos = prod / ops.sqrt(mag)
    loss = ops.where(t == 1, 1 - cos, 0.0) + ops.where(t == -1, ops.clamp(cos - margin, min=0.0), 0.0)
    return _reduce(loss, reduction, "cosine_embedding_loss")


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0,
                        p: float = 2, eps: float = 1e-6, swap: bool = False, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    """max(d(a, p) - d(a, n) + margin, 0) with d the p-norm distance over the last dimension
    (:func:`pairwise_distance`); ``swap`` uses min(d(a, n), d(p, n)) (Balntas et al. 2016). At the
    hinge (exactly 0) the gradient passes, as PyTorch's clamp_min."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("triplet_margin_loss", reduction)
    if margin <= 0:
        raise ValueError(f"triplet_margin_loss: margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(f"triplet_margin_loss: the anchor, positive, and negative tensors are expected to "
                           f"have the same number of dimensions, but got: anchor {anchor.ndim}D, positive "
                           f"{positive.ndim}D, and negative {negative.ndim}D inputs")
    _broadcast_all("triplet_margin_loss", anchor=anchor, positive=positive, negative=negative)
    d_ap = pairwise_distance(anchor, positive, p, eps)
    d_an = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_an = ops.minimum(d_an, pairwise_distance(positive, negative, p, eps))
    return _reduce(ops.clamp(d_ap - d_an + margin, min=0.0), reduction, "triplet_margin_loss")


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *,
                                      distance_function=None, margin: float = 1.0, swap: bool = False,
                                      reduction: str = "mean") -> Tensor:
    """max(d(a, p) - d(a, n) + margin, 0) with a distance ``distance_function(x1, x2)`` (default
    :func:`pairwise_distance`), which returns one non-negative value per triplet; ``swap`` uses
    min(d(a, n), d(p, n)). The three inputs have the same number of dimensions. At the hinge (exactly 0)
    the gradient passes, as PyTorch's clamp_min."""
    _check_reduction("triplet_margin_with_distance_loss", reduction)
    if margin <= 0:
        raise ValueError(f"triplet_margin_with_distance_loss: margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(f"triplet_margin_with_distance_loss: the anchor, positive, and negative tensors "
                           f"are expected to have the same number of dimensions, but got: anchor "
                           f"{anchor.ndim}D {_shape(anchor)}, positive {positive.ndim}D {_shape(positive)}, "
                           f"and negative {negative.ndim}D {_shape(negative)} inputs")
    dist = pairwise_distance if distance_function is None else distance_function
    d_ap = dist(anchor, positive)
    d_an = dist(anchor, negative)
    if swap:
        d_an = ops.minimum(d_an, dist(positive, negative))
    return _reduce(ops.clamp(margin + d_ap - d_an, min=0.0), reduction, "triplet_margin_with_distance_loss")


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight: Tensor | None = None, size_average=None, reduce=None,
                      reduction: str = "mean") -> Tensor:
    """Multi-class hinge loss: per sample, sum over classes j != y of w[y] max(0, margin - x[y] + x[j])^p,
    divided by C. input (N, C) or (C,), target class indices (N,) or a scalar; p is 1 or 2; ``weight``
    (C,). 'mean' averages over samples (not weighted; NaN for an empty batch, where PyTorch returns an
    uninitialised value); 'none' gives (N,), or a scalar for a scalar target."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("multi_margin_loss", reduction)
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 supported, got p={p}")
    if weight is not None and weight.ndim != 1:
        raise ValueError(f"multi_margin_loss: weight must be one-dimensional, got size {_shape(weight)}")
    if not ((input.ndim <= 1 and input.numel() != 0) or (input.ndim == 2 and input.shape[1] != 0)):
        raise RuntimeError(f"multi_margin_loss: expected non-empty vector or matrix with optional 0-dim "
                           f"batch size, but got: {_shape(input)}")
    nframe = 1 if input.ndim <= 1 else input.shape[0]
    c = input.numel() if input.ndim <= 1 else input.shape[1]
    t = target.data
    if t.ndim > 1 or t.size != nframe:
        raise RuntimeError(f"multi_margin_loss: target tensor should be 1-D with size equal to the number of "
                           f"input samples (batch size). Expected target size [{nframe}], but got "
                           f"{_shape(target)}. Input has shape {_shape(input)}.")
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"multi_margin_loss: expected target of an integer type (class indices), got "
                           f"{t.dtype}")
    if weight is not None and weight.numel() != c:
        raise RuntimeError(f"multi_margin_loss: inconsistent weight size, expected {c} but got "
                           f"{_shape(weight)}")
    xp = get_array_module(t)
    t = t.reshape(nframe).astype(xp.int64)
    if t.size and bool(((t < 0) | (t >= c)).any()):
        raise RuntimeError(f"multi_margin_loss: target out of range (classes: {c}, target min "
                           f"{int(t.min())}, max {int(t.max())})")
    x = input.reshape(nframe, c)
    picked = _PickClass(target=t)(x)  # x[n, y_n]
    hinge = ops.relu(margin - picked.unsqueeze(1) + x)  # no gradient at exactly 0, as PyTorch
    if p == 2:
        hinge = hinge * hinge
    others = Tensor((xp.arange(c)[None, :] != t[:, None]).astype(x.data.dtype))
    hinge = hinge * others
    if weight is not None:
        hinge = hinge * weight[Tensor(t)].unsqueeze(1)
    loss = hinge.sum(1) / c
    if target.ndim == 0:
        loss = loss.reshape(())
    return _reduce(loss, reduction, "multi_margin_loss")


def multilabel_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                           reduction: str = "mean") -> Tensor:
    """Multi-label hinge loss: per sample, sum over its target classes j and the non-target classes i of
    max(0, 1 - (x[j] - x[i])), divided by C. input (N, C), (C,) or a scalar; target class indices of
    the same size (int64 as PyTorch, any integer type here), read up to the first -1 (padding); every
    value must be in [-1, C). A class listed twice counts twice, as PyTorch. At the hinge (exactly 0)
    the gradient is 0, as PyTorch's kernel. 'none' gives (N,), or a scalar for an unbatched input;
    for an empty batch 'sum' gives 0 and 'mean' NaN (PyTorch returns an uninitialised value)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("multilabel_margin_loss", reduction)
    if not ((input.ndim == 2 and input.shape[1] != 0) or (input.ndim == 1 and input.shape[0] != 0)
            or input.ndim == 0):
        raise RuntimeError(f"multilabel_margin_loss: expected non-empty vector or matrix with optional 0-dim "
                           f"batch size, but got input of size {_shape(input)}")
    nframe, c = (input.shape[0], input.shape[1]) if input.ndim == 2 else (1, max(input.numel(), 1))
    t = target.data
    if input.ndim == 2:
        good = t.ndim == 2 and tuple(t.shape) == (nframe, c)
    else:
        good = t.ndim <= 1 and t.size == c
    if not good:
        raise RuntimeError(f"multilabel_margin_loss: inconsistent target size: {_shape(target)} for input of "
                           f"size: {_shape(input)} (expected the input's size)")
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"multilabel_margin_loss: expected target of an integer type (class indices, -1 "
                           f"for padding), got {t.dtype}")
    xp = get_array_module(t)
    t = t.reshape(nframe, c).astype(xp.int64)
    if t.size and bool(((t < -1) | (t >= c)).any()):
        raise RuntimeError(f"multilabel_margin_loss: target is out of range: values must be in [-1, {c}), "
                           f"got min {int(t.min())}, max {int(t.max())} (target size {_shape(target)})")
    listed = xp.cumprod(t >= 0, axis=1).astype(bool)  # the targets before the first -1
    safe = xp.where(listed, t, 0)
    is_target = xp.zeros((nframe, c + 1), dtype=bool)  # column c collects the padding
    is_target[xp.arange(nframe)[:, None], xp.where(listed, t, c)] = True
    x = input.reshape(nframe, c)
    picked = ops.gather(x, 1, Tensor(safe))  # x[n, y_k]
    hinge = ops.relu(1 - picked.unsqueeze(2) + x.unsqueeze(1))  # (N, k, i); no gradient at exactly 0
    pairs = listed[:, :, None] & ~is_target[:, None, :c]
    loss = (hinge * Tensor(pairs.astype(x.data.dtype))).sum((1, 2)) / c
    if input.ndim < 2:
        loss = loss.reshape(())
    return _reduce(loss, reduction, "multilabel_margin_loss")


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                     size_average=None, eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:
    """exp(x) - y x (``log_input``) or x - y log(x + eps); ``full`` adds Stirling's term
    y log y - y + 0.5 log(2 pi y) where y > 1 (its gradient in y is 0 elsewhere: PyTorch's is NaN at
    y = 0). Input and target broadcast."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("poisson_nll_loss", reduction)
    t = _pointwise_target("poisson_nll_loss", input, target)
    loss = ops.exp(input) - t * input if log_input else input - t * ops.log(input + eps)
    if full:
        big = Tensor(t.data > 1)
        safe = ops.where(big, t, 2.0)
        stirling = safe * ops.log(safe) - safe + 0.5 * ops.log(2 * math.pi * safe)
        loss = loss + ops.where(big, stirling, 0.0)
    return _reduce(loss, reduction, "poisson_nll_loss")


def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """0.5 (log(max(var, eps)) + (x - y)^2 / max(var, eps)) (+ 0.5 log(2 pi) when ``full``); the clamp
    takes no part in the gradient, as PyTorch. ``var``: a tensor of the input's size, of the input's
    size without its last dimension, or of the input's size with one dimension 1; or a number (PyTorch
    takes a float only)."""
    if isinstance(var, numbers.Real):
        if var < 0:
            raise ValueError(f"gaussian_nll_loss: var has negative entry/entries (var={var})")
        var = _as_tensor_like(float(var), input).expand(*input.shape)
    elif var.numel() and bool((var.data < 0).any()):
        raise ValueError("gaussian_nll_loss: var has negative entry/entries")
    in_shape, v_shape = tuple(input.shape), tuple(var.shape)
    if v_shape != in_shape:
        if v_shape == in_shape[:-1]:
            var = var.unsqueeze(-1)  # one variance per sample, shared over the last dimension
        elif not (len(v_shape) == len(in_shape)
                  and sum(b for a, b in zip(in_shape, v_shape) if a != b) == 1):
            raise ValueError(f"gaussian_nll_loss: var is of incorrect size: {list(v_shape)} for input of "
                             f"size {list(in_shape)} (use the input's size, that size without the last "
                             f"dimension, or with one dimension of size 1)")
    _check_reduction("gaussian_nll_loss", reduction)
    with no_grad():
        clamped = ops.clamp(var, min=eps)
    v = var + (clamped - var).detach()  # the clamp is not differentiated, as in PyTorch
    d = input - target
    loss = 0.5 * (ops.log(v) + d * d / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction, "gaussian_nll_loss")


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Pointwise KL divergence with ``input`` as log-probabilities: target (log target - input)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        # xlogy(t, t): 0 where t == 0; differentiable in t where t > 0.
        pos = Tensor(target.data > 0)
        safe_t = ops.where(pos, target, 1.0)
        loss = ops.where(pos, target * ops.log(safe_t), 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0]
    return _reduce(loss, reduction, "kl_div")



# ============================================================================= CTC


def _host(a):
    """A NumPy copy of a NumPy or CuPy array (lengths and labels are read on the host)."""
    return a if isinstance(a, np.ndarray) else a.get()


def _ctc_lengths(name, lengths, n):
    """input_lengths / target_lengths given as a tensor, a list or tuple, or an int: an int64 host array
    of n values."""
    if isinstance(lengths, Tensor):
        a = _host(lengths.data)
    else:
        a = np.asarray(lengths)
        if a.size == 0:
            a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise RuntimeError(f"ctc_loss: {name} must be integral, got {a.dtype}")
    a = a.reshape(-1).astype(np.int64)
    if a.size != n:
        raise RuntimeError(f"ctc_loss: {name} must be of size batch_size ({n}), got {a.size} values")
    return a


def _ctc_padded_targets(targets, tl, n, num_classes, blank):
    """Targets as a host (N, S) int64 array padded with ``blank``, S = max(target_lengths), from the
    padded (N, S') or the concatenated (sum(target_lengths),) layout; checks sizes and labels."""
    tg = _host(targets.data)
    if tg.dtype.kind not in "iuf":
        raise RuntimeError(f"ctc_loss: expected targets of an integer type (labels), got {tg.dtype}")
    tg = tg.astype(np.int64)  # PyTorch converts the targets to int64 (float ones too)
    s = int(tl.max(initial=0))
    cols = np.arange(s)
    valid = cols[None, :] < tl[:, None]
    if tg.ndim == 1:
        if tg.shape[0] != tl.sum():
            raise RuntimeError(f"ctc_loss: concatenated targets of size {list(tg.shape)} must hold "
                               f"sum(target_lengths) = {int(tl.sum())} labels")
        offsets = np.cumsum(tl) - tl
        at = np.where(valid, offsets[:, None] + cols[None, :], 0)
        padded = tg[at] if tg.size else np.zeros((n, s), np.int64)
    elif tg.ndim == 2:
        if tg.shape[0] != n or tg.shape[1] < s:
            raise RuntimeError(f"ctc_loss: padded targets of size {list(tg.shape)} must have size batch_size "
                               f"({n}) at dimension 0 and at least max(target_lengths) ({s}) at dimension 1")
        padded = tg[:, :s]
    else:
        raise RuntimeError(f"ctc_loss: expected targets of size (N, S) or (sum(target_lengths),), got "
                           f"{list(tg.shape)}")
    labels = padded[valid]
    if labels.size and bool(((labels < 0) | (labels >= num_classes)).any()):
        raise RuntimeError(f"ctc_loss: target labels must be in [0, {num_classes}), got min "
                           f"{int(labels.min())}, max {int(labels.max())}")
    return np.where(valid, padded, blank)


def _logsumexp_reachable(x: Tensor, dim: int) -> Tensor:
    """logsumexp over ``dim`` that is -inf, with a zero gradient, where every term is -inf (an
    unreachable CTC state); ops.logsumexp would send log(0)'s 0 * inf = NaN back through it."""
    xp = get_array_module(x.data)
    m = x.data.max(axis=dim, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    s = ops.exp(x - Tensor(m)).sum(dim)
    pos = s.data > 0
    return ops.where(pos, ops.log(ops.where(pos, s, 1.0)) + Tensor(m.squeeze(dim)), -math.inf)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Connectionist temporal classification loss (Graves et al. 2006): -log of the total probability of
    the alignments of ``log_probs`` that reduce to the target after merging repeats and removing blanks.

    log_probs (T, N, C) log-probabilities (e.g. ``log_softmax(x, 2)``), or (T, C) unbatched; targets
    padded (N, S) or concatenated (sum(target_lengths),) labels in [0, C); input_lengths and
    target_lengths (N,) as tensors, lists or tuples (an int too, unbatched). 'none' gives (N,) (a scalar
    unbatched); 'mean' divides each loss by its target length (clamped at 1), then averages over the
    batch; ``zero_infinity`` replaces the infinite losses of inputs too short for their target (and
    their gradients) by 0.

    The forward (alpha) recursion of eq. (6)-(8) runs in log space over time, vectorised over the batch
    and the blank-interleaved target l' (length 2S + 1), from a virtual start log 1 at state 0:
    alpha_t(s) = logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2) where l'(s) != l'(s-2))
    + log_probs[t, l'(s)], held after a sample's input length; the loss is
    -logsumexp(alpha_{T_n-1}(2S_n), alpha_{T_n-1}(2S_n - 1)). Gradients come from the composed
    operations.

    The gradient w.r.t. log_probs is PyTorch's: exp(log_probs) - gamma for t < input_length (gamma the
    posterior of each label at t), 0 after. That is the gradient w.r.t. logits x where log_probs =
    log_softmax(x); the partial derivative w.r.t. log_probs is -gamma alone. Through log_softmax (any
    normalised log_probs) the two give the same gradient; for a leaf, or log_probs that are not
    normalised, the gradient is PyTorch's, not the finite difference of the loss. Where a loss is
    infinite (and ``zero_infinity`` is False) its gradient is NaN for t < input_length, as PyTorch.
    Differences: labels outside [0, C) raise an error (PyTorch reads out of bounds); the lengths may
    mix tensors and lists; gradients of gradients are available (PyTorch has none).
    """
    _check_reduction("ctc_loss", reduction)
    if log_probs.ndim not in (2, 3):
        raise RuntimeError(f"ctc_loss: expected log_probs of size (T, N, C) or (T, C), got "
                           f"{_shape(log_probs)}")
    if log_probs.data.dtype.kind != "f":
        raise RuntimeError(f"ctc_loss: expected floating-point log_probs, got {log_probs.data.dtype}")
    batched = log_probs.ndim == 3
    lp = log_probs if batched else log_probs.unsqueeze(1)
    if lp.numel() == 0:
        raise RuntimeError(f"ctc_loss: log_probs tensor must not be empty, got {_shape(log_probs)}")
    t_max, n, c = lp.shape
    if not 0 <= blank < c:
        raise RuntimeError(f"ctc_loss: blank must be in label range [0, {c}), got {blank}")
    il = _ctc_lengths("input_lengths", input_lengths, n)
    tl = _ctc_lengths("target_lengths", target_lengths, n)
    if (tl < 0).any() or (il < 0).any():
        raise RuntimeError(f"ctc_loss: expected input_lengths and target_lengths of at least 0, got "
                           f"{il.tolist()} and {tl.tolist()}")
    if (il > t_max).any():
        raise RuntimeError(f"ctc_loss: expected input_lengths to have value at most {t_max} (log_probs "
                           f"{_shape(log_probs)}), got {il.tolist()}")
    padded = _ctc_padded_targets(targets, tl, n, c, blank)

    # blank-interleaved targets l' (N, 2S + 1) and where the skip from s - 2 is allowed
    s_ext = 2 * padded.shape[1] + 1
    ext = np.full((n, s_ext), blank, dtype=np.int64)
    ext[:, 1::2] = padded
    skip = np.zeros((n, s_ext), dtype=bool)
    skip[:, 2:] = ext[:, 2:] != ext[:, :-2]
    xp = get_array_module(lp.data)
    dt = lp.data.dtype
    index = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(ext)[None], (t_max, n, s_ext)))
    lp_ext = ops.gather(lp, 2, Tensor(index))  # (T, N, 2S + 1): log_probs[t, n, l'(s)]
    skip = xp.asarray(skip)
    il_d = xp.asarray(il)

    start = np.full((n, s_ext), -np.inf, dtype=dt)
    start[:, 0] = 0.0
    alpha = Tensor(xp.asarray(start))
    for t in range(int(il.max(initial=0))):
        prev1 = pad(alpha, (1, -1), value=-math.inf)  # alpha_{t-1}(s - 1)
        prev2 = ops.where(skip, pad(alpha, (2, -2), value=-math.inf), -math.inf) if s_ext > 2 else prev1
        new = _logsumexp_reachable(ops.stack([alpha, prev1, prev2], -1), -1) + lp_ext[t]
        alpha = new if bool((il > t).all()) else ops.where((il_d > t)[:, None], new, alpha)
    ends = xp.asarray(np.stack([2 * tl, np.maximum(2 * tl - 1, 0)], 1))
    last = ops.where(xp.asarray(np.stack([np.ones(n, bool), tl > 0], 1)), ops.gather(alpha, 1, Tensor(ends)),
                     -math.inf)
    nll = -_logsumexp_reachable(last, 1)

    loss = nll
    infinite = nll.data == math.inf
    if is_grad_enabled() and lp.requires_grad:
        # PyTorch's gradient adds exp(log_probs) for t < input_length: a term worth 0 with that gradient
        in_time = xp.asarray(np.arange(t_max)[:, None, None] < il[None, :, None])  # (T, N, 1)
        e = ops.exp(lp)
        loss = loss + ops.where(in_time, e - e.detach(), 0.0).sum((0, 2))
        if not zero_infinity and bool(infinite.any()):
            # and NaN for an infinite loss: where() keeps the value 0 but sends 0 * NaN = NaN to log_probs
            nans = xp.where(in_time & infinite[None, :, None], xp.nan, 0).astype(dt)
            with np.errstate(invalid="ignore"):  # -inf * 0 where log_probs is -inf: a value not kept
                loss = loss + ops.where(xp.zeros((), bool), lp * Tensor(nans), 0.0).sum((0, 2))
    if zero_infinity:
        loss = ops.where(infinite, 0.0, loss)
    if reduction == "mean":
        return (loss / Tensor(xp.asarray(np.maximum(tl, 1), dtype=dt))).mean()
    if reduction == "sum":
        return loss.sum()
    return loss if batched else loss[0]


def _apply_autocast_policies():
    """Give each function its autocast policy (``framework.amp``): matrix products and convolutions
    run in the autocast dtype, norms, softmax and losses in float32. Free when autocast is off."""
    from . import amp

    g = globals()
    for name in ("linear", "bilinear", "conv1d", "conv2d", "conv2d_bias_act", "conv_transpose2d",
                 "conv3d", "conv_transpose1d", "conv_transpose3d",
                 "scaled_dot_product_attention", "prelu",
                 "softplus", "layer_norm", "rms_norm", "group_norm", "instance_norm", "normalize",
                 "cosine_similarity",
                 "nll_loss", "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                 "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "sigmoid_focal_loss",
                 "margin_ranking_loss", "hinge_embedding_loss", "poisson_nll_loss", "gaussian_nll_loss",
                 "cosine_embedding_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss",
                 "soft_margin_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
                 "multi_margin_loss", "ctc_loss", "pdist", "softmax", "log_softmax"):
        g[name] = amp.autocast_op(name)(g[name])


_apply_autocast_policies()


# In-place activations and the pools' *_with_indices forms, under the names torch.nn.functional gives them.


def relu_(input: Tensor) -> Tensor:
    return relu(input, inplace=True)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return elu(input, alpha, inplace=True)


def selu_(input: Tensor) -> Tensor:
    return selu(input, inplace=True)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return celu(input, alpha, inplace=True)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return leaky_relu(input, negative_slope, inplace=True)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return hardtanh(input, min_val, max_val, inplace=True)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    return globals()["threshold"](input, threshold, value, inplace=True)  # (the parameter hides the function)


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False) -> Tensor:
    return rrelu(input, lower, upper, training, inplace=True)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool3d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool1d(input, output_size, return_indices=True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool2d(input, output_size, return_indices=True)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool3d(input, output_size, return_indices=True)


def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices=True, _random_samples=None):
    return fractional_max_pool2d(input, kernel_size, output_size, output_ratio, True, _random_samples)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated in PyTorch for ``interpolate(..., mode='nearest')``; kept for old code."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated in PyTorch for ``interpolate(..., mode='bilinear', align_corners=True)``."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices=True, _random_samples=None):
    return fractional_max_pool3d(input, kernel_size, output_size, output_ratio, True, _random_samples)
