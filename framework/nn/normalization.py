"""Normalisation layers: BatchNorm1d/2d/3d, GroupNorm, LayerNorm, RMSNorm, InstanceNorm2d,
LocalResponseNorm."""

from __future__ import annotations

import numbers

import numpy as np

from ..tensor import Tensor, ones, zeros
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


def _register_affine(module, shape, affine, bias, device, dtype):
    """``weight`` (ones) and ``bias`` (zeros) of ``shape``; None where absent, as PyTorch names them."""
    module.register_parameter(
        "weight", Parameter(ones(*shape, device=device, dtype=dtype)) if affine else None)
    module.register_parameter(
        "bias", Parameter(zeros(*shape, device=device, dtype=dtype)) if affine and bias else None)


def _reset_affine(module) -> None:
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


def _register_running_stats(module, n, track, device, dtype):
    """Buffers ``running_mean``, ``running_var``, ``num_batches_tracked`` (None when not tracked)."""
    if not track:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            module.register_buffer(name, None)
        return
    module.register_buffer("running_mean", zeros(n, device=device, dtype=dtype))
    module.register_buffer("running_var", ones(n, device=device, dtype=dtype))
    count = Tensor(np.array(0, dtype=np.int64))
    module.register_buffer("num_batches_tracked", count.to(device) if device is not None else count)


class _BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy 2015).

    Training: normalise with the batch statistics and update ``running_mean``/``running_var``
    (unbiased variance) by ``momentum``, or by a cumulative average when ``momentum=None``.
    Evaluation: use the running statistics (unless ``track_running_stats=False``).
    Buffers ``running_mean``, ``running_var``, ``num_batches_tracked`` are named as in PyTorch.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None, *,
                 bias: bool = True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _register_affine(self, (num_features,), affine, bias, device, dtype)
        _register_running_stats(self, num_features, track_running_stats, device, dtype)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data[...] = 0
            self.num_batches_tracked._vc[0] += 1

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        _reset_affine(self)

    def _check_input_dim(self, input):
        raise NotImplementedError

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs, assign=False):
        # As PyTorch: a checkpoint without num_batches_tracked (written before it existed, or converted
        # from another framework) keeps the current count instead of failing a strict load.
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and self.num_batches_tracked is not None and key not in state_dict:
            state_dict = dict(state_dict)
            state_dict[key] = self.num_batches_tracked.detach()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs, assign)

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data[...] += 1
            self.num_batches_tracked._vc[0] += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_running = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if use_running else None,
                            self.running_var if use_running else None, self.weight, self.bias,
                            bn_training, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Input ``(N, C)`` or ``(N, C, L)``; statistics per channel C."""

    def _check_input_dim(self, input):
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    """Input ``(N, C, H, W)``; statistics per channel C over N, H, W."""

    def _check_input_dim(self, input):
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


class BatchNorm3d(_BatchNorm):
    """Input ``(N, C, D, H, W)``; statistics per channel C over N, D, H, W."""

    def _check_input_dim(self, input):
        if input.dim() != 5:
            raise ValueError(f"expected 5D input (got {input.dim()}D input)")


class LocalResponseNorm(Module):
    """Normalise each element by the energy of ``size`` neighbouring channels (Krizhevsky et al. 2012):
    ``x / (k + alpha/size · Σ x²)^beta``; input ``(N, C, *)``. No parameters."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class GroupNorm(Module):
    """Normalise over groups of ``num_channels // num_groups`` channels (Wu & He 2018).

    Input ``(N, C, *)``; ``weight``/``bias`` ``(C,)`` per channel when ``affine``.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _register_affine(self, (num_channels,), affine, bias, device, dtype)

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class _TrailingNorm(Module):
    """A norm over the last ``len(normalized_shape)`` dims with an optional ``weight`` and ``bias`` of
    that shape (LayerNorm, RMSNorm)."""

    def __init__(self, normalized_shape, eps, elementwise_affine: bool, bias: bool, device, dtype):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _register_affine(self, self.normalized_shape, elementwise_affine, bias, device, dtype)

    def reset_parameters(self) -> None:
        _reset_affine(self)


class LayerNorm(_TrailingNorm):
    """Normalise over the last ``len(normalized_shape)`` dims (Ba et al. 2016)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(_TrailingNorm):
    """Root-mean-square normalisation over the last ``len(normalized_shape)`` dims, with a learned scale
    and no shift (Zhang & Sennrich 2019), as ``torch.nn.RMSNorm``."""

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True,
                 device=None, dtype=None):
        super().__init__(normalized_shape, eps, elementwise_affine, False, device, dtype)

    def forward(self, input):
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class InstanceNorm2d(Module):
    """Normalise each (sample, channel) plane of ``(N, C, H, W)`` (Ulyanov et al. 2016).

    Defaults as PyTorch: no affine parameters and no running statistics.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _register_affine(self, (num_features,), affine, bias, device, dtype)
        _register_running_stats(self, num_features, track_running_stats, device, dtype)

    _dims = 2  # spatial dimensions

    def forward(self, input):
        d = self._dims
        if input.dim() not in (d + 1, d + 2):
            raise ValueError(f"expected {d + 1}D or {d + 2}D input (got {input.dim()}D input)")
        if input.dim() == d + 1:  # (C, *spatial): one unbatched instance, as PyTorch
            return self.forward(input.unsqueeze(0)).squeeze(0)
        use_input_stats = self.training or not self.track_running_stats
        return F.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                               use_input_stats, self.momentum if self.momentum is not None else 0.0, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class InstanceNorm1d(InstanceNorm2d):
    """Normalise each (sample, channel) sequence of ``(N, C, L)``."""

    _dims = 1


class InstanceNorm3d(InstanceNorm2d):
    """Normalise each (sample, channel) volume of ``(N, C, D, H, W)``."""

    _dims = 3


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose statistics PyTorch gathers over all processes of a distributed job. This
    framework runs in one process, where that is plain batch norm over (N, C, *): the same parameters,
    buffers and state-dict keys, so models written with it (and ``convert_sync_batchnorm``) run here.
    ``process_group`` is accepted and unused."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None, device=None,
                 dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm*d replaced by a SyncBatchNorm holding the same tensors."""
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            out = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group)
            for store in ("_parameters", "_buffers"):
                out.__dict__[store].update(module.__dict__[store])
            out.training = module.training
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out
