"""Lazy layers, shaped like PyTorch's: ``LazyLinear``, ``LazyConv1d``-``3d``, ``LazyConvTranspose1d``-``3d``,
``LazyBatchNorm1d``-``3d`` and ``LazyInstanceNorm1d``-``3d`` take their input size (features or channels)
from the first input they see.

Until then their parameters and buffers are empty placeholders. The first forward (or a
``load_state_dict``, from the shapes in the state dict) builds the real layer's tensors, initialised as
the real layer initialises them, and writes them into the same Parameter objects. The module then becomes
an instance of the real class (``cls_to_become``), as in PyTorch. An optimizer built before the first
forward would hold the placeholders' old (empty) values, so, as PyTorch advises, run one batch first.
"""

from __future__ import annotations

import numpy as np

from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .linear import Linear
from .module import Module
from .normalization import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
)

__all__ = ["LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d",
           "LazyConvTranspose2d", "LazyConvTranspose3d", "LazyBatchNorm1d", "LazyBatchNorm2d",
           "LazyBatchNorm3d", "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"]


class _Lazy(Module):
    cls_to_become: type
    _spatial = 0  # spatial dimensions of a batched input (0: the size is the last dimension)
    _channels_at_1 = False  # batch norms: the channels are always dimension 1

    def __init__(self, *args, **kwargs):
        super().__init__()
        self._lazy_args, self._lazy_kwargs = args, kwargs
        probe = self.cls_to_become(self._probe_size(), *args, **kwargs)
        for store in ("_parameters", "_buffers"):
            for name, t in probe.__dict__[store].items():
                self.__dict__[store][name] = None if t is None else type(t)(np.empty((0,), t.data.dtype))
        self._non_persistent_buffers_set.update(probe._non_persistent_buffers_set)
        self._lazy_hook = self.register_forward_pre_hook(_Lazy._infer)

    def _probe_size(self) -> int:
        return 1

    def has_uninitialized_params(self) -> bool:
        return "_lazy_args" in self.__dict__

    @staticmethod
    def _infer(module, args):
        if not args:
            raise ValueError(f"{type(module).__name__}: the first call needs the input")
        x = args[0]
        if module._spatial == 0:
            n = x.shape[-1]
        elif module._channels_at_1 or x.ndim == module._spatial + 2:
            n = x.shape[1]
        else:  # an unbatched input (C, *spatial)
            n = x.shape[0]
        module._materialize(int(n))

    def _materialize(self, n: int) -> None:
        real = self.cls_to_become(n, *self._lazy_args, **self._lazy_kwargs)
        real.train(self.training)
        for store in ("_parameters", "_buffers"):
            mine = self.__dict__[store]
            for name, t in real.__dict__[store].items():
                if mine.get(name) is not None and t is not None:
                    old = mine[name]  # its dtype and device as .to() / .double() left them
                    t = t.to(old.device)
                    if t.dtype.is_floating_point and old.dtype.is_floating_point and t.dtype != old.dtype:
                        t = t.to(old.dtype)
                    old.data = t.data  # the same Parameter object, now the real size
                    old._vc[0] += 1
                else:
                    mine[name] = t
        for name, value in real.__dict__.items():
            if not name.startswith("_") and name != "training":
                self.__dict__[name] = value
        self._lazy_hook.remove()
        for name in ("_lazy_args", "_lazy_kwargs", "_lazy_hook"):
            del self.__dict__[name]
        self.__class__ = self.cls_to_become

    def _size_from_state(self, state_dict, prefix):  # pragma: no cover - per class
        raise NotImplementedError

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs, assign=False):
        args = (state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs, assign)
        n = self._size_from_state(state_dict, prefix)
        if n is None:  # nothing to size it from: it stays lazy (its keys are reported missing)
            return Module._load_from_state_dict(self, *args)
        self._materialize(n)
        return type(self)._load_from_state_dict(self, *args)  # the real class's, now


class LazyLinear(_Lazy):
    """``Linear(in_features, out_features, bias)`` with in_features from the first input's last dimension."""

    cls_to_become = Linear

    def _size_from_state(self, state_dict, prefix):
        w = state_dict.get(prefix + "weight")
        return None if w is None else int(w.shape[1])


class _LazyConv(_Lazy):
    def _probe_size(self) -> int:
        # (out_channels, kernel_size, stride, padding, dilation or output_padding, groups, ...)
        return int(self._lazy_kwargs.get("groups", self._lazy_args[5] if len(self._lazy_args) > 5 else 1))

    def _size_from_state(self, state_dict, prefix):
        w = state_dict.get(prefix + "weight")
        if w is None:
            return None
        if self.cls_to_become.__name__.startswith("ConvTranspose"):
            return int(w.shape[0])  # (in_channels, out_channels / groups, *kernel)
        return int(w.shape[1]) * self._probe_size()  # (out_channels, in_channels / groups, *kernel)


def _conv(cls, dims):
    return type(f"Lazy{cls.__name__}", (_LazyConv,), {
        "cls_to_become": cls, "_spatial": dims, "__module__": __name__,
        "__doc__": f"``{cls.__name__}`` with in_channels from the first input."})


LazyConv1d, LazyConv2d, LazyConv3d = _conv(Conv1d, 1), _conv(Conv2d, 2), _conv(Conv3d, 3)
LazyConvTranspose1d = _conv(ConvTranspose1d, 1)
LazyConvTranspose2d = _conv(ConvTranspose2d, 2)
LazyConvTranspose3d = _conv(ConvTranspose3d, 3)


class _LazyNorm(_Lazy):
    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):
        # (the instance norms too default to affine parameters and running statistics when lazy, as in
        # PyTorch, unlike InstanceNorm*d itself)
        super().__init__(eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats,
                         device=device, dtype=dtype)

    def _size_from_state(self, state_dict, prefix):
        for key in ("weight", "running_mean"):
            if prefix + key in state_dict:
                return int(state_dict[prefix + key].shape[0])
        return None


def _norm(cls, dims):
    return type(f"Lazy{cls.__name__}", (_LazyNorm,), {
        "cls_to_become": cls, "_spatial": dims, "__module__": __name__,
        "_channels_at_1": cls.__name__.startswith("BatchNorm"),
        "__doc__": f"``{cls.__name__}`` with num_features from the first input."})


LazyBatchNorm1d, LazyBatchNorm2d, LazyBatchNorm3d = (_norm(BatchNorm1d, 1), _norm(BatchNorm2d, 2),
                                                     _norm(BatchNorm3d, 3))
LazyInstanceNorm1d = _norm(InstanceNorm1d, 1)
LazyInstanceNorm2d = _norm(InstanceNorm2d, 2)
LazyInstanceNorm3d = _norm(InstanceNorm3d, 3)
