"""Pooling layers over ``(N, C, L)``, ``(N, C, H, W)`` and ``(N, C, D, H, W)`` inputs: one class per kind of
pooling, and per dimensionality a subclass naming its functional form."""

from __future__ import annotations

from . import functional as F
from .module import Module


class _MaxPoolNd(Module):
    """Max over ``kernel_size`` windows; ``stride`` defaults to ``kernel_size``; padding is -inf."""

    _pool = None  # the functional form, set by each subclass

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):
        return type(self)._pool(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class _AvgPoolNd(Module):
    """Mean over windows; ``count_include_pad`` counts the zero padding in the divisor,
    ``divisor_override`` (2-D and 3-D, as PyTorch) replaces the divisor."""

    _pool = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        kwargs = {"divisor_override": self.divisor_override} if self.divisor_override is not None else {}
        return type(self)._pool(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad, **kwargs)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptiveAvgPoolNd(Module):
    """Average pooling to a fixed ``output_size`` (an int, or a tuple with None to keep a dim)."""

    _pool = None

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return type(self)._pool(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _AdaptiveMaxPoolNd(_AdaptiveAvgPoolNd):
    """Max pooling to a fixed ``output_size``."""

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input):
        return type(self)._pool(input, self.output_size, self.return_indices)


class MaxPool1d(_MaxPoolNd):
    """Max over windows of ``(N, C, L)`` inputs."""

    _pool = staticmethod(F.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """Max over windows of ``(N, C, H, W)`` inputs."""

    _pool = staticmethod(F.max_pool2d)


class MaxPool3d(_MaxPoolNd):
    """Max over windows of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` inputs."""

    _pool = staticmethod(F.max_pool3d)


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of ``(N, C, L)`` inputs."""

    _pool = staticmethod(F.avg_pool1d)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of ``(N, C, H, W)`` inputs."""

    _pool = staticmethod(F.avg_pool2d)


class AvgPool3d(_AvgPoolNd):
    """Mean over windows of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` inputs."""

    _pool = staticmethod(F.avg_pool3d)


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling of ``(N, C, L)`` or ``(C, L)`` inputs to a fixed length ``output_size``."""

    _pool = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed ``output_size`` (an int, a pair, or None in a pair to keep a dim)."""

    _pool = staticmethod(F.adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Average pooling of volumes to a fixed ``output_size`` (an int, or a triple with None to keep a dim)."""

    _pool = staticmethod(F.adaptive_avg_pool3d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed ``output_size``."""

    _pool = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max pooling of volumes to a fixed ``output_size``."""

    _pool = staticmethod(F.adaptive_max_pool3d)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling of ``(N, C, L)`` to a fixed ``output_size``."""

    _pool = staticmethod(F.adaptive_max_pool1d)


class _LPPoolNd(Module):
    """The power-average pool: (sum of x^p over each window)^(1/p)."""

    _pool = None

    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
        super().__init__()
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def forward(self, input):
        return type(self)._pool(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self) -> str:
        return f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, " \
               f"ceil_mode={self.ceil_mode}"


class LPPool1d(_LPPoolNd):
    _pool = staticmethod(F.lp_pool1d)


class LPPool2d(_LPPoolNd):
    _pool = staticmethod(F.lp_pool2d)


class LPPool3d(_LPPoolNd):
    _pool = staticmethod(F.lp_pool3d)


class _MaxUnpoolNd(Module):
    """The partial inverse of max pooling: the pooled values back at the positions of the indices
    ``max_pool*d(return_indices=True)`` gave, zeros elsewhere."""

    _unpool = None

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, input, indices, output_size=None):
        return type(self)._unpool(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    _unpool = staticmethod(F.max_unpool1d)


class MaxUnpool2d(_MaxUnpoolNd):
    _unpool = staticmethod(F.max_unpool2d)


class MaxUnpool3d(_MaxUnpoolNd):
    _unpool = staticmethod(F.max_unpool3d)


class FractionalMaxPool2d(Module):
    """Max pooling over pseudo-random windows (Graham 2014) to ``output_size`` or ``output_ratio``."""

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                 _random_samples=None):
        super().__init__()
        if output_size is None and output_ratio is None:
            raise ValueError(f"{type(self).__name__} requires specifying either an output size, or a pooling "
                             "ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError("only one of output_size and output_ratio may be specified")
        self.kernel_size, self.output_size, self.output_ratio = kernel_size, output_size, output_ratio
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)

    _fn = staticmethod(F.fractional_max_pool2d)

    def forward(self, input):
        return self._fn(input, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
                        _random_samples=self._random_samples)


class FractionalMaxPool3d(FractionalMaxPool2d):
    """FractionalMaxPool2d over volumes (N, C, T, H, W): ``_random_samples`` (N, C, 3)."""

    _fn = staticmethod(F.fractional_max_pool3d)
