"""Automatic mixed precision: ``autocast`` and ``GradScaler`` with PyTorch's semantics.

``autocast(device_type, dtype=None, enabled=True, cache_enabled=None)`` is a context manager (and a
decorator). Inside it, operations of the framework ask :func:`cast_inputs` (or carry the
:func:`autocast_op` decorator) how to cast their floating point inputs, following PyTorch's policy:

- ``"lower"`` ops (matmul, linear, conv, ...) run in the autocast dtype (float16 by default on CUDA);
- ``"fp32"`` ops (reductions, softmax, losses, norms, exp/log, ...) run in float32;
- ``"promote"`` ops (cat, stack, where, ...) run in the widest floating dtype among their inputs;
- any other op runs in its inputs' own dtypes.

Only tensors on the autocast device whose dtype is float16 or float32 are cast (float64 and
integers are left alone, as in PyTorch). Casts are differentiable, so gradients flow back in the
inputs' own dtypes. Casts of leaf tensors that require grad (the parameters) are cached for the
duration of the outermost autocast region, as PyTorch does, so a weight used twice is cast once.

Differences from PyTorch: there is no bfloat16 (NumPy has none), so ``autocast("cpu")`` defaults to
float16; it exists mainly to test the policy on machines without a GPU.

``GradScaler`` implements dynamic loss scaling exactly as ``torch.amp.GradScaler``: ``scale(loss)``,
``unscale_(optimizer)``, ``step(optimizer)`` (skipped when a gradient is inf/NaN), ``update()``.
"""

from __future__ import annotations

import functools
import threading
import weakref

import numpy as np

from . import dtypes as _dt
from .backend import device_of, get_array_module

__all__ = ["autocast", "GradScaler", "cast_inputs", "autocast_op", "op_policy", "is_autocast_enabled",
           "get_autocast_dtype", "custom_fwd", "custom_bwd"]

# Op names as the framework's functions call them (PyTorch's names where they exist).
LOWER_PRECISION_OPS = frozenset({
    "matmul", "mm", "bmm", "linear", "addmm", "baddbmm", "addbmm", "chain_matmul", "conv1d", "conv2d",
    "conv2d_bias_act", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "prelu",
    "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "multi_head_attention_forward",
    "scaled_dot_product_attention", "einsum",
})
FP32_OPS = frozenset({
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal",
    "rsqrt", "sinh", "tan", "pow", "softplus", "layer_norm", "group_norm", "batch_norm",
    "instance_norm", "norm", "normalize", "cosine_similarity", "nll_loss", "cross_entropy",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss", "l1_loss",
    "smooth_l1_loss", "huber_loss", "kl_div", "margin_ranking_loss", "sigmoid_focal_loss", "softmax",
    "log_softmax", "logsumexp", "sum", "mean", "var", "std", "prod", "cumsum", "cumprod", "dist",
    "cdist", "pdist", "renorm", "gelu_backward", "hinge_embedding_loss", "poisson_nll_loss",
    "gaussian_nll_loss", "cosine_embedding_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss",
    "soft_margin_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss", "multi_margin_loss",
    "ctc_loss",
})
PROMOTE_OPS = frozenset({"cat", "stack", "where", "addcdiv", "addcmul", "atan2", "cross", "dot",
                         "index_put", "scatter_add", "tensordot", "bilinear", "grid_sample"})


def op_policy(op: str) -> str:
    """``"lower"``, ``"fp32"``, ``"promote"`` or ``"none"`` for an op name."""
    if op in LOWER_PRECISION_OPS:
        return "lower"
    if op in FP32_OPS:
        return "fp32"
    if op in PROMOTE_OPS:
        return "promote"
    return "none"


_DEFAULT_DTYPE = {"cuda": _dt.float16, "cpu": _dt.float16}


class _State(threading.local):
    def __init__(self):
        super().__init__()
        self.enabled = {"cuda": False, "cpu": False}
        self.dtype = dict(_DEFAULT_DTYPE)
        self.depth = 0  # nesting of autocast regions with caching on
        self.cache: dict = {}


_state = _State()


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    return _state.enabled.get(device_type, False)


def get_autocast_dtype(device_type: str = "cuda"):
    return _state.dtype[device_type]


def clear_autocast_cache() -> None:
    _state.cache.clear()


class autocast:
    """``with fw.autocast("cuda"):`` runs eligible ops in float16 (see the module docstring).

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: the lower precision dtype; ``fw.float16`` (the default). float32 is accepted and makes
            the region a no-op for "lower" ops, as PyTorch allows.
        enabled: False turns autocasting off inside the region (e.g. nested in an enabled one).
        cache_enabled: cache casts of parameters inside the region (default True).
    """

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True,
                 cache_enabled: bool | None = None):
        if device_type not in ("cuda", "cpu"):
            raise ValueError(f"autocast: device_type must be 'cuda' or 'cpu', got {device_type!r}")
        if dtype is None:
            dtype = _DEFAULT_DTYPE[device_type]
        if not isinstance(dtype, _dt.dtype) or dtype not in (_dt.float16, _dt.float32):
            raise ValueError(f"autocast: dtype must be framework.float16 or float32, got {dtype!r} "
                             "(bfloat16 does not exist in this framework)")
        if enabled and device_type == "cuda":
            from . import backend

            if not backend.cuda_available():
                import warnings

                warnings.warn("autocast('cuda') was requested but CUDA is not available; the region "
                              "only affects CUDA tensors, so it changes nothing here", stacklevel=2)
        self.device_type = device_type
        self.fast_dtype = dtype
        self._enabled = bool(enabled)
        self.cache_enabled = True if cache_enabled is None else bool(cache_enabled)

    def __enter__(self):
        st = _state
        self._prev = (st.enabled[self.device_type], st.dtype[self.device_type])
        st.enabled[self.device_type] = self._enabled
        st.dtype[self.device_type] = self.fast_dtype
        if self.cache_enabled:
            st.depth += 1
        return self

    def __exit__(self, *exc):
        st = _state
        st.enabled[self.device_type], st.dtype[self.device_type] = self._prev
        if self.cache_enabled:
            st.depth -= 1
            if st.depth == 0:
                st.cache.clear()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self._enabled, self.cache_enabled):
                return fn(*args, **kwargs)

        return wrapper


def _active_devices():
    st = _state
    return [d for d, on in st.enabled.items() if on]


def _eligible(t, device_type):
    from .tensor import Tensor

    if not isinstance(t, Tensor):
        return False
    data = t.data
    if data.dtype != np.float16 and data.dtype != np.float32:
        return False
    if device_type == "cpu":
        return type(data) is np.ndarray
    return device_of(data).type == "cuda"


def _cast(t, target: np.dtype):
    """Differentiable cast, cached for leaves that require grad while caching is on."""
    if t.data.dtype == target:
        return t
    st = _state
    cacheable = st.depth > 0 and t.is_leaf and t.requires_grad
    if cacheable:
        # (a cast made under no_grad has no graph: it must not serve a use that needs gradients)
        from .autograd import is_grad_enabled

        key = (id(t), target.str, is_grad_enabled())
        hit = st.cache.get(key)
        if hit is not None:
            ref, version, out = hit
            if ref() is t and t._version == version:
                return out
    from .ops.basic import Cast

    out = Cast(dtype=target)(t)
    if cacheable:
        st.cache[key] = (weakref.ref(t), t._version, out)
    return out


def cast_inputs(op: str, *args):
    """Return ``args`` cast for ``op`` under the current autocast state (unchanged when off).

    Called by the framework's functions at their entry, e.g. ``x, w, b = cast_inputs("conv2d", x, w, b)``.
    Non-tensor arguments pass through.
    """
    st = _state
    if not (st.enabled["cuda"] or st.enabled["cpu"]):  # the common case costs two lookups
        return args
    active = _active_devices()
    policy = op_policy(op)
    if policy == "none":
        return args
    for device_type in active:
        if not any(_eligible(a, device_type) for a in args):
            continue
        if policy == "lower":
            target = _state.dtype[device_type].np
        elif policy == "fp32":
            target = np.dtype(np.float32)
        else:  # promote: the widest floating dtype among the eligible inputs
            kinds = [a.data.dtype for a in args if _eligible(a, device_type)]
            target = np.dtype(np.float32) if np.dtype(np.float32) in kinds else kinds[0]
        return tuple(_cast(a, target) if _eligible(a, device_type) else a for a in args)
    return args


def autocast_op(op: str):
    """Decorator giving a function ``op``'s autocast policy: its Tensor arguments (positional and
    keyword) are cast by :func:`cast_inputs` on entry. Free when autocast is off.

        @amp.autocast_op("conv2d")
        def conv2d(input, weight, bias=None, ...): ...
    """
    policy = op_policy(op)

    def deco(fn):
        if policy == "none":
            return fn

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            st = _state
            if not (st.enabled["cuda"] or st.enabled["cpu"]):
                return fn(*args, **kwargs)
            keys = list(kwargs)
            cast = cast_inputs(op, *args, *kwargs.values())
            return fn(*cast[:len(args)], **dict(zip(keys, cast[len(args):])))

        return wrapper

    return deco


def custom_fwd(fwd=None, *, device_type: str = "cuda", cast_inputs=None):
    """Decorator for a user function's forward, as ``torch.amp.custom_fwd``.

    With ``cast_inputs=dtype`` the function runs with autocast off and its floating inputs on the
    device cast to ``dtype``; without it the function runs under the caller's autocast state.
    """
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def wrapper(*args, **kwargs):
        if cast_inputs is None or not is_autocast_enabled(device_type):
            return fwd(*args, **kwargs)
        target = cast_inputs.np
        args = tuple(_cast(a, target) if _eligible(a, device_type) else a for a in args)
        kwargs = {k: (_cast(v, target) if _eligible(v, device_type) else v) for k, v in kwargs.items()}
        with autocast(device_type, enabled=False):
            return fwd(*args, **kwargs)

    return wrapper


def custom_bwd(bwd=None, *, device_type: str = "cuda"):
    """Decorator for a user backward: runs it under no autocast (our backward passes never autocast)."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def wrapper(*args, **kwargs):
        with autocast(device_type, enabled=False):
            return bwd(*args, **kwargs)

    return wrapper


# ------------------------------------------------------------------------------------ GradScaler

_READY, _UNSCALED, _STEPPED = 0, 1, 2


class GradScaler:
    """Dynamic loss scaling (``torch.amp.GradScaler``).

    Each iteration: ``scaler.scale(loss).backward()``, optionally ``scaler.unscale_(opt)`` (to clip),
    ``scaler.step(opt)`` (skipped if any gradient is inf/NaN), ``scaler.update()``. ``update`` halves
    the scale (``backoff_factor``) after a skipped step and doubles it (``growth_factor``) after
    ``growth_interval`` consecutive good steps.
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        if growth_factor <= 1.0:
            raise ValueError("The growth factor must be > 1.0.")
        if backoff_factor >= 1.0:
            raise ValueError("The backoff factor must be < 1.0.")
        self._device = device
        self._enabled = bool(enabled)
        if self._enabled and device == "cuda":
            from . import backend

            if not backend.cuda_available():
                import warnings

                # As PyTorch: the default device is CUDA, and scaling CPU losses is pointless.
                warnings.warn("GradScaler is enabled, but CUDA is not available.  Disabling.", stacklevel=2)
                self._enabled = False
        self._init_scale = float(init_scale)
        self._scale = None  # created lazily, as PyTorch does
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict] = {}

    # ---------------------------------------------------------------------------- queries
    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale)

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, v: float) -> None:
        self._growth_factor = float(v)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, v: float) -> None:
        self._backoff_factor = float(v)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, v: int) -> None:
        self._growth_interval = int(v)

    def _opt_state(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    # ---------------------------------------------------------------------------- scale
    def scale(self, outputs):
        """Multiply a tensor (or a nested list/tuple/dict of tensors) by the current scale."""
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._scale = self._init_scale
        s = self._scale

        def apply(v):
            from .tensor import Tensor

            if isinstance(v, Tensor):
                return v * s
            if isinstance(v, (list, tuple)):
                return type(v)(apply(x) for x in v)
            if isinstance(v, dict):
                return {k: apply(x) for k, x in v.items()}
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")

        return apply(outputs)

    # ---------------------------------------------------------------------------- unscale
    def _unscale_grads(self, optimizer, inv_scale: float, allow_fp16: bool) -> bool | None:
        """Multiply every gradient by ``inv_scale`` in place; True if any is inf/NaN, None if the
        optimizer has no gradient at all.

        One flag per array module is accumulated on the device and read once, so a CUDA optimizer
        costs a single synchronisation.
        """
        flags = {}  # array module -> running "some gradient is not finite" flag, kept on its device
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if not allow_fp16 and g.data.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                xp = get_array_module(g.data)
                data = g.data
                data *= data.dtype.type(inv_scale)
                bad = xp.logical_not(xp.isfinite(data).all())
                flags[xp] = bad if xp not in flags else xp.logical_or(flags[xp], bad)
        if not flags:
            return None
        return any(bool(f) for f in flags.values())

    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by the scale (once per iteration), recording inf/NaN."""
        if not self._enabled:
            return
        self._check_scale_growth()
        st = self._opt_state(optimizer)
        if st["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last "
                               "update().")
        if st["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # PyTorch: the scale is a float32 tensor; inv_scale = scale.double().reciprocal().float().
        inv = float(np.float32(1.0 / np.float64(np.float32(self._scale))))
        st["found_inf"] = self._unscale_grads(optimizer, inv, allow_fp16=False)
        st["stage"] = _UNSCALED

    def _check_scale_growth(self):
        if self._scale is None:
            raise RuntimeError("Attempted unscale_/step/update before any scale() call: the scale "
                               "has not been initialised.")

    # ---------------------------------------------------------------------------- step/update
    def step(self, optimizer, *args, **kwargs):
        """Unscale (if not done yet) and call ``optimizer.step()`` unless a gradient was inf/NaN.

        Returns ``optimizer.step``'s return value, or None when the step was skipped.
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth()
        st = self._opt_state(optimizer)
        if st["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if st["stage"] == _READY:
            self.unscale_(optimizer)
        if st["found_inf"] is None:  # (typically a forgotten backward())
            raise AssertionError("No inf checks were recorded for this optimizer.")
        ret = None
        if not st["found_inf"]:
            ret = optimizer.step(*args, **kwargs)
        st["stage"] = _STEPPED
        return ret

    def update(self, new_scale=None) -> None:
        """Adjust the scale from this iteration's inf/NaN checks (or set it to ``new_scale``)."""
        if not self._enabled:
            return
        self._check_scale_growth()
        if new_scale is not None:
            self._scale = float(new_scale.item() if hasattr(new_scale, "item") else new_scale)
        else:
            found = [s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None]
            if not found:
                raise AssertionError("No inf checks were recorded prior to update.")
            # float32 arithmetic, as torch's _amp_update_scale_ kernel.
            scale = np.float32(self._scale)
            if any(found):
                scale = scale * np.float32(self._backoff_factor)
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    grown = scale * np.float32(self._growth_factor)
                    if np.isfinite(grown):
                        scale = grown
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
            self._scale = float(scale)
        self._per_optimizer.clear()

    # ---------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a "
                               "disabled instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._scale = self._init_scale
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
