"""Adamax, the infinity-norm variant of Adam (Kingma & Ba, 2015, arXiv:1412.6980, section 7.1)."""

from __future__ import annotations

from ..backend import get_array_module
from .adam import _lerp_, _maximum_
from .optimizer import Optimizer, params_with_grad, scalar


class Adamax(Optimizer):
    """Adam with the second moment replaced by an exponentially weighted infinity norm.

    Per step ``t`` (from 1), with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        m = lerp(m, g, 1 - beta1)
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1**t) * m / u

    in PyTorch's order of operations. State per parameter: ``step``, ``exp_avg`` (``m``) and
    ``exp_inf`` (``u``).
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, foreach=None, *,
                 maximize: bool = False, differentiable: bool = False, capturable: bool = False):
        _check_adam_args(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, (beta1, beta2), eps = scalar(group["lr"]), group["betas"], group["eps"]
        wd, maximize = group["weight_decay"], group["maximize"]
        for p in params_with_grad(group):
            w = p.data
            xp = get_array_module(w)
            g = p.grad.data
            if maximize:
                g = -g
            state, step = self._counted_state(p, ("exp_avg", "exp_inf"))
            if wd != 0:
                g = g + wd * w
            m, u = state["exp_avg"].data, state["exp_inf"].data
            _lerp_(m, g, 1 - beta1)
            u *= beta2
            norm = xp.abs(g)
            norm += eps
            _maximum_(u, norm)
            clr = lr / (1 - beta1 ** step)
            w += ((-clr) * m) / u
            p._vc[0] += 1


def _check_adam_args(lr, betas, eps, weight_decay) -> None:
    """The argument checks (and messages) that PyTorch's Adam family shares."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
