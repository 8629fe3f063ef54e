"""RAdam: Adam with a rectified adaptive learning rate (Liu et al., 2020, "On the Variance of the
Adaptive Learning Rate and Beyond", arXiv:1908.03265)."""

from __future__ import annotations

from ..backend import get_array_module
from .adam import _lerp_
from .adamax import _check_adam_args
from .optimizer import Optimizer, params_with_grad, scalar


class RAdam(Optimizer):
    """Adam that takes plain momentum steps while the variance of the adaptive lr is intractable
    (the first few steps), and rectified Adam steps afterwards.

    Per step ``t`` (from 1), with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p                 (p = p * (1 - lr * weight_decay) if decoupled)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
        if rho_t > 5:
            r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p = p - m / (1 - beta1**t) * lr * sqrt(1 - beta2**t) / (sqrt(v) + eps) * r
        else:
            p = p - m / (1 - beta1**t) * lr

    in PyTorch's order of operations. ``decoupled_weight_decay=True`` gives RAdamW.
    State per parameter: ``step``, ``exp_avg`` and ``exp_avg_sq``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        _check_adam_args(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay, differentiable=differentiable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, (beta1, beta2), eps = scalar(group["lr"]), group["betas"], group["eps"]
        wd = group["weight_decay"]
        rho_inf = 2 / (1 - beta2) - 1
        for p in params_with_grad(group):
            w = p.data
            xp = get_array_module(w)
            g = p.grad.data
            if group["maximize"]:
                g = -g
            state, step = self._counted_state(p, ("exp_avg", "exp_avg_sq"))
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    w *= 1 - lr * wd
                else:
                    g = g + wd * w
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            _lerp_(m, g, 1 - beta1)
            v *= beta2
            v += ((1 - beta2) * g) * g
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            update = (m / bias_correction1) * lr
            rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
            if rho_t > 5.0:
                rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                        / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
                denom = xp.sqrt(v)
                denom += eps
                # (PyTorch evaluates ``number / tensor`` as ``tensor.reciprocal() * number``)
                update *= (1 / denom) * bias_correction2**0.5
                update *= rect
            w -= update
            p._vc[0] += 1
