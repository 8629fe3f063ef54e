"""Adadelta (Zeiler, 2012, arXiv:1212.5701)."""

from __future__ import annotations

from ..backend import get_array_module
from .optimizer import Optimizer, params_with_grad, scalar


class Adadelta(Optimizer):
    """Steps sized by the ratio of running RMS of past updates to running RMS of gradients.

    Per step, with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta

    in PyTorch's order of operations (``lr`` scales the step, 1.0 being the paper's method).
    State per parameter: ``step``, ``square_avg`` (``v``) and ``acc_delta`` (``u``).
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach=None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, rho, eps = scalar(group["lr"]), group["rho"], group["eps"]
        wd, maximize = group["weight_decay"], group["maximize"]
        for p in params_with_grad(group):
            w = p.data
            xp = get_array_module(w)
            g = p.grad.data
            state, _ = self._counted_state(p, ("square_avg", "acc_delta"))
            if maximize:
                g = -g
            if wd != 0:
                g = g + wd * w
            v, u = state["square_avg"].data, state["acc_delta"].data
            v *= rho
            v += ((1 - rho) * g) * g
            delta = xp.sqrt(u + eps)
            delta /= xp.sqrt(v + eps)
            delta *= g
            u *= rho
            u += ((1 - rho) * delta) * delta
            w += (-lr) * delta
            p._vc[0] += 1
