"""Adafactor (Shazeer & Stern 2018, arXiv:1804.04235), as ``torch.optim.Adafactor``: Adam-like steps whose
second-moment estimate of a matrix is factored into row and column means (memory O(m + n), not O(mn))."""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, params_with_grad, scalar


class Adafactor(Optimizer):
    """Per step t, with gradient ``g`` (negated when ``maximize``), as PyTorch's::

        1 - beta2_t = t ** beta2_decay;  rho = min(lr, 1 / sqrt(t));  alpha = max(eps2, RMS(p)) * rho
        p = p * (1 - lr * weight_decay)
        matrices (the last two dimensions; more are batch): R <- lerp(R, mean_cols(g^2), 1 - beta2_t),
            C <- lerp(C, mean_rows(g^2), 1 - beta2_t),  V = R C / max(mean(R), eps1)
        vectors: V <- lerp(V, g^2, 1 - beta2_t)
        U = g / sqrt(max(V, eps1^2));  p = p - alpha * U / max(1, RMS(U) / d)

    ``eps = (eps1, eps2)``; eps1 None means the parameter dtype's machine epsilon. State: ``step``,
    and ``row_var`` / ``col_var`` (matrices) or ``variance`` (vectors).
    """

    def __init__(self, params, lr: float = 1e-2, beta2_decay: float = -0.8, eps=(None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, *, foreach=None, maximize: bool = False):
        if not 0.0 <= scalar(lr):
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize))

    def _update_group(self, group):
        lr, wd, d = scalar(group["lr"]), group["weight_decay"], group["d"]
        eps1_given, eps2 = group["eps"]
        for p in params_with_grad(group):
            w = p.data
            xp = get_array_module(w)
            g = -p.grad.data if group["maximize"] else p.grad.data
            eps1 = float(np.finfo(w.dtype).eps) if eps1_given is None else eps1_given
            state = self.state[p]
            if len(state) == 0:
                state["step"] = Tensor(np.array(0.0, dtype=np.float32))
                if g.ndim > 1:
                    state["row_var"] = Tensor(xp.zeros(g.shape[:-1] + (1,), g.dtype))
                    state["col_var"] = Tensor(xp.zeros(g.shape[:-2] + (1, g.shape[-1]), g.dtype))
                else:
                    state["variance"] = Tensor(xp.zeros_like(g))
            step_t = state["step"].data
            step_t += 1
            t = float(step_t)
            one_minus_beta2 = t ** group["beta2_decay"]
            rho = min(lr, 1 / math.sqrt(t))
            alpha = max(eps2, float(xp.sqrt((w.astype(np.float64) ** 2).sum())) / math.sqrt(w.size)) * rho
            if wd != 0:
                w *= 1 - lr * wd
            sq = g * g
            if g.ndim > 1:
                r, c = state["row_var"].data, state["col_var"].data
                r += one_minus_beta2 * (sq.mean(-1, keepdims=True) - r)
                c += one_minus_beta2 * (sq.mean(-2, keepdims=True) - c)
                var = (r @ c) / xp.maximum(r.mean(-2, keepdims=True), eps1)
            else:
                v = state["variance"].data
                v += one_minus_beta2 * (sq - v)
                var = v.copy()
            update = g / xp.sqrt(xp.maximum(var, eps1 * eps1))
            rms = float(xp.sqrt((update.astype(np.float64) ** 2).sum())) / (math.sqrt(update.size) * d)
            w -= (alpha / max(1.0, rms)) * update
            p._vc[0] += 1
