"""1-D, 2-D and 3-D convolution and transposed convolution layers (weights laid out as PyTorch's)."""

from __future__ import annotations

import math

from ..tensor import empty
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


def _ntuple(v, n: int):
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"expected an int or a {n}-tuple, got {v!r}")
        return tuple(int(x) for x in v)
    return (int(v),) * n


class _ConvNd(Module):
    _n = 2  # spatial dimensions

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, transposed,
                 output_padding, groups, bias, padding_mode, device=None, dtype=None):
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode must be one of 'zeros', 'reflect', 'replicate' or "
                             f"'circular', but got padding_mode='{padding_mode}'")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                                 "{'valid', 'same'}")
            if padding == "same" and any(s != 1 for s in _ntuple(stride, self._n)):
                raise ValueError("padding='same' is not supported for strided convolutions")
        self.in_channels = in_channels
        self.out_channels = out_channels
        n = self._n
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride = _ntuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, n)
        self.dilation = _ntuple(dilation, n)
        self.transposed = transposed
        self.output_padding = _ntuple(output_padding, n)
        self.groups = groups
        self.padding_mode = padding_mode
        if transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(empty(*shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch.
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        zero, one = (0,) * self._n, (1,) * self._n
        if self.padding != zero:
            s += f", padding={self.padding}"
        if self.dilation != one:
            s += f", dilation={self.dilation}"
        if self.output_padding != zero:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D cross-correlation. Input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` with
    ``H_out = floor((H + 2·pad - dil·(k-1) - 1) / stride + 1)``.

    ``weight``: ``(C_out, C_in/groups, kH, kW)``; ``padding`` may be an int, a pair, ``'valid'`` or
    ``'same'``; ``padding_mode`` one of ``'zeros'``, ``'reflect'``, ``'replicate'``, ``'circular'``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0,
                         groups, bias, padding_mode, device, dtype)

    def _explicit_padding(self):
        """(top, bottom, left, right) zero padding that 'same'/'valid'/ints stand for."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            out = []
            for d, k in zip(self.dilation, self.kernel_size):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]  # the extra pixel goes after, as PyTorch
            return tuple(out)
        ph, pw = self.padding
        return (ph, ph, pw, pw)

    def forward(self, input):
        if self.padding_mode != "zeros":
            t, b, l, r = self._explicit_padding()
            x = F.pad(input, (l, r, t, b), mode=self.padding_mode)
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class _ConvTransposeNd(_ConvNd):
    """What the transposed layers share: argument checks and ``output_size`` in forward."""

    _fn = None  # the functional form, set by each subclass

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                 dilation, padding_mode, device, dtype):
        name = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(f"Only 'zeros' padding mode is supported for {name}")
        if isinstance(padding, str):
            raise ValueError(f"{name} does not accept string padding")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True,
                         output_padding, groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        n = self._n
        output_size = list(output_size)[-n:]
        out = []
        for i in range(n):
            size_in = input.shape[-n + i]
            min_size = ((size_in - 1) * self.stride[i] - 2 * self.padding[i]
                        + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = output_size[i] - min_size
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"requested an output size of {output_size}, but valid sizes range from "
                                 f"{min_size} to {min_size + max(self.stride[i], self.dilation[i]) - 1}")
            out.append(extra)
        return tuple(out)

    def forward(self, input, output_size=None):
        op = self._output_padding(input, output_size)
        return type(self)._fn(input, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                              self.dilation)


class ConvTranspose2d(_ConvTransposeNd):
    """The gradient of Conv2d with respect to its input (sometimes called deconvolution).

    Input ``(N, C_in, H, W)``; output height ``(H-1)·stride - 2·pad + dil·(k-1) + output_padding + 1``.
    ``weight``: ``(C_in, C_out/groups, kH, kW)``.
    """

    _fn = staticmethod(F.conv_transpose2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups,
                         bias, dilation, padding_mode, device, dtype)


class Conv1d(_ConvNd):
    """1-D cross-correlation. Input ``(N, C_in, L)``, weight ``(C_out, C_in/groups, k)``."""

    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0,
                         groups, bias, padding_mode, device, dtype)

    def _explicit_padding(self):
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            total = self.dilation[0] * (self.kernel_size[0] - 1)
            return (total // 2, total - total // 2)
        return (self.padding[0], self.padding[0])

    def forward(self, input):
        if self.padding_mode != "zeros":
            x = F.pad(input, self._explicit_padding(), mode=self.padding_mode)
            return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv3d(_ConvNd):
    """3-D cross-correlation over volumes (CT, MR). Input ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``,
    output ``(N, C_out, D_out, H_out, W_out)`` with
    ``D_out = floor((D + 2·pad - dil·(k-1) - 1) / stride + 1)``.

    ``weight``: ``(C_out, C_in/groups, kD, kH, kW)``; ``padding`` an int, a triple, ``'valid'`` or
    ``'same'``; ``padding_mode`` one of ``'zeros'``, ``'reflect'``, ``'replicate'``, ``'circular'``.
    """

    _n = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0,
                         groups, bias, padding_mode, device, dtype)

    def _pad_arg(self):
        """F.pad's (left, right, top, bottom, front, back) for 'same'/'valid'/ints."""
        if self.padding == "valid":
            return (0,) * 6
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return tuple(v for t in reversed(totals) for v in (t // 2, t - t // 2))  # extra one after
        return tuple(v for p in reversed(self.padding) for v in (p, p))

    def forward(self, input):
        if self.padding_mode != "zeros":
            x = F.pad(input, self._pad_arg(), mode=self.padding_mode)
            return F.conv3d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose3d(_ConvTransposeNd):
    """The gradient of Conv3d with respect to its input. Input ``(N, C_in, D, H, W)``; output depth
    ``(D-1)·stride - 2·pad + dil·(k-1) + output_padding + 1``;
    ``weight``: ``(C_in, C_out/groups, kD, kH, kW)``.
    """

    _n = 3
    _fn = staticmethod(F.conv_transpose3d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups,
                         bias, dilation, padding_mode, device, dtype)


class ConvTranspose1d(_ConvTransposeNd):
    """The gradient of Conv1d with respect to its input. Input ``(N, C_in, L)``; output length
    ``(L-1)·stride - 2·pad + dil·(k-1) + output_padding + 1``; ``weight``: ``(C_in, C_out/groups, k)``."""

    _n = 1
    _fn = staticmethod(F.conv_transpose1d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups,
                         bias, dilation, padding_mode, device, dtype)
