"""Adam (Kingma & Ba, 2015, arXiv:1412.6980), with AMSGrad (Reddi et al., 2018) as an option."""

from __future__ import annotations

from ..backend import get_array_module
from .optimizer import Optimizer, params_with_grad, scalar


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient, or decoupled from it (as :class:`AdamW`)
    when ``decoupled_weight_decay=True``.

    Per step ``t`` (from 1), with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p                 (p = p * (1 - lr * weight_decay) if decoupled)
        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v) if amsgrad else v
        p = p - lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)

    evaluated in PyTorch's order of operations so that trajectories match to rounding.
    State per parameter: ``step`` (a float32 scalar tensor), ``exp_avg``, ``exp_avg_sq`` and, with
    amsgrad, ``max_exp_avg_sq``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None, decoupled_weight_decay: bool = False):
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
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, (beta1, beta2), eps = scalar(group["lr"]), group["betas"], group["eps"]
        wd, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
        for p in params_with_grad(group):
            w = p.data
            g = p.grad.data
            if maximize:
                g = -g
            # PyTorch keeps ``step`` as a float32 CPU scalar tensor (unless capturable/fused).
            state, step = self._counted_state(
                p, ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()))
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    w *= 1 - lr * wd
                else:
                    g = g + wd * w
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            _lerp_(m, g, 1 - beta1)
            v *= beta2
            v += (1 - beta2) * (g * g)
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            if amsgrad:
                vmax = state["max_exp_avg_sq"].data
                _maximum_(vmax, v)
                denom = _sqrt(vmax) / bias_correction2_sqrt
            else:
                denom = _sqrt(v) / bias_correction2_sqrt
            denom += eps
            w += (-step_size) * (m / denom)
            p._vc[0] += 1


def _lerp_(start, end, weight: float):
    """``start = lerp(start, end, weight)`` in place, with the two formulas torch.lerp uses (the
    one anchored on the nearer end point), so that results agree to the last bit."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def _maximum_(out, other):
    get_array_module(out).maximum(out, other, out=out)


def _sqrt(a):
    return get_array_module(a).sqrt(a)
