"""NAdam: Adam with Nesterov momentum (Dozat, 2016, "Incorporating Nesterov Momentum into Adam",
ICLR workshop), with the momentum schedule of the paper."""

from __future__ import annotations

from ..backend import get_array_module
from .adam import _lerp_
from .adamax import _check_adam_args
from .optimizer import Optimizer, params_with_grad, scalar


class NAdam(Optimizer):
    """Adam whose update looks ahead along the momentum, with a warming momentum schedule.

    Per step ``t`` (from 1), with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p                 (p = p * (1 - lr * weight_decay) if decoupled)
        mu_t = beta1 * (1 - 0.5 * 0.96**(t * momentum_decay))
        prod = prod * mu_t                       (prod of mu_1 .. mu_t)
        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2**t)) + eps
        p = p - lr * (1 - mu_t) / (1 - prod) * g / denom
              - lr * mu_{t+1} / (1 - prod * mu_{t+1}) * m / denom

    in PyTorch's order of operations. ``decoupled_weight_decay=True`` gives NAdamW.
    State per parameter: ``step`` and ``mu_product`` (float32 scalar tensors, as PyTorch keeps
    them: the product is rounded to float32 at every step), ``exp_avg`` and ``exp_avg_sq``.
    """

    _scalar_state_keys = ("step", "mu_product")

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        _check_adam_args(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, (beta1, beta2), eps = scalar(group["lr"]), group["betas"], group["eps"]
        wd, psi = group["weight_decay"], group["momentum_decay"]
        for p in params_with_grad(group):
            w = p.data
            xp = get_array_module(w)
            g = p.grad.data
            if group["maximize"]:
                g = -g
            state, step = self._counted_state(p, ("exp_avg", "exp_avg_sq"), {"mu_product": 1.0})
            bias_correction2 = 1 - beta2**step
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    w *= 1 - lr * wd
                else:
                    g = g + wd * w
            mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
            mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
            mu_product_t = state["mu_product"].data
            mu_product_t *= mu  # in the scalar's float32, as PyTorch's in-place multiply
            mu_product = float(mu_product_t)
            mu_product_next = mu_product * mu_next
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            _lerp_(m, g, 1 - beta1)
            v *= beta2
            v += ((1 - beta2) * g) * g
            denom = xp.sqrt(v / bias_correction2)
            denom += eps
            w += ((-lr * (1.0 - mu) / (1.0 - mu_product)) * g) / denom
            w += (((-lr * mu_next) / (1.0 - mu_product_next)) * m) / denom
            p._vc[0] += 1
