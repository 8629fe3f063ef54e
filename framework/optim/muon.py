"""Muon (Jordan et al. 2024; Liu et al. 2025, "Muon is Scalable for LLM Training"), as ``torch.optim.Muon``:
momentum SGD for matrices whose update is orthogonalised by a few Newton-Schulz iterations."""

from __future__ import annotations

import math

from ..backend import get_array_module
from ..tensor import Tensor
from .adam import _lerp_
from .optimizer import Optimizer, params_with_grad, scalar

_ADJUST = ("original", "match_rms_adamw")


class Muon(Optimizer):
    """Per step, for each 2-D parameter ``p`` with gradient ``g``, as PyTorch's::

        B = lerp(B, g, 1 - momentum);  U = lerp(g, B, momentum) if nesterov else B
        O = NS(U): X = U / max(||U||_F, eps) (transposed when U has more rows than columns), then
            ns_steps times  G = X X^T,  X = a X + (b G + c G G) X
        p = p * (1 - lr * weight_decay) - lr' * O,
        lr' = lr * sqrt(max(1, rows / cols)) ("original", the default), 0.2 * lr * sqrt(max(rows, cols))
              ("match_rms_adamw")

    The Newton-Schulz iteration runs in float32 here, in bfloat16 in PyTorch (which has no NumPy
    equivalent): trajectories agree to bfloat16's precision. Only matrices: give vectors and scalars
    to another optimizer (AdamW), as PyTorch's documentation does. State: ``momentum_buffer``.
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315), eps: float = 1e-7,
                 ns_steps: int = 5, adjust_lr_fn: str | None = None):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= scalar(lr):
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"momentum should be >= 0 but is: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
        if adjust_lr_fn is not None and adjust_lr_fn not in _ADJUST:
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        if len(tuple(ns_coefficients)) != 3:
            raise ValueError("Coefficients must be a tuple of exactly 3 values")
        if not 0 < ns_steps < 100:
            raise ValueError("Number of steps must be less than 100 for computational efficiency")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=tuple(ns_coefficients), eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError("Muon only supports 2D parameters whereas we found a parameter with "
                                     f"size: {tuple(p.shape)}")

    def _update_group(self, group):
        lr, wd, mu = scalar(group["lr"]), group["weight_decay"], group["momentum"]
        for p in params_with_grad(group):
            if p.data.dtype.kind == "c":
                raise RuntimeError("Muon does not support complex parameters")
            g = p.grad.data
            xp = get_array_module(g)
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = Tensor(xp.zeros_like(g))
            buf = state["momentum_buffer"].data
            _lerp_(buf, g, 1 - mu)
            if group["nesterov"]:
                update = g.copy()
                _lerp_(update, buf, mu)
            else:
                update = buf
            o = _newton_schulz(xp, update, group["ns_coefficients"], group["ns_steps"], group["eps"])
            rows, cols = p.shape
            fn = group["adjust_lr_fn"]
            if fn in (None, "original"):
                ratio = math.sqrt(max(1.0, rows / cols))
            else:
                ratio = 0.2 * math.sqrt(max(rows, cols))
            w = p.data
            w *= w.dtype.type(1 - lr * wd)
            w -= (lr * ratio) * o.astype(w.dtype)
            p._vc[0] += 1


def _newton_schulz(xp, m, coefficients, steps: int, eps: float):
    """The orthogonalised update: X = m / max(||m||_F, eps), then ``steps`` quintic Newton-Schulz steps
    X <- a X + (b G + c G^2) X with G = X X^T, on the wide orientation (float32)."""
    a, b, c = coefficients
    x = m.astype(xp.float32)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / max(float(xp.linalg.norm(x)), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.T if tall else x
