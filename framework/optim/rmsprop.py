"""RMSprop (Hinton, Neural Networks for Machine Learning, lecture 6e; centered form: Graves, 2013,
arXiv:1308.0850)."""

from __future__ import annotations

from ..backend import get_array_module
from .optimizer import Optimizer, params_with_grad, scalar


class RMSprop(Optimizer):
    """Divide the gradient by a running root mean square of recent gradients.

    Per step, with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - m * m) + eps      (centered, m = lerp(m, g, 1 - alpha))  else sqrt(v) + eps
        b = momentum * b + g / avg;  p = p - lr * b     (momentum > 0)
        p = p - lr * g / avg                            (otherwise)

    in PyTorch's order of operations. State: ``step``, ``square_avg``, and ``momentum_buffer`` /
    ``grad_avg`` when used.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        for name, v in (("learning rate", lr), ("epsilon value", eps), ("momentum value", momentum),
                        ("weight_decay value", weight_decay), ("alpha value", alpha)):
            if v < 0.0:
                raise ValueError(f"Invalid {name}: {v}")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, alpha, eps = scalar(group["lr"]), group["alpha"], group["eps"]
        wd, momentum, centered = group["weight_decay"], group["momentum"], group["centered"]
        for p in params_with_grad(group):
            w = p.data
            xp = get_array_module(w)
            g = p.grad.data
            if group["maximize"]:
                g = -g
            extra = (("momentum_buffer",) if momentum > 0 else ()) + (("grad_avg",) if centered else ())
            state, _ = self._counted_state(p, ("square_avg",) + extra)
            if wd != 0:
                g = g + wd * w
            v = state["square_avg"].data
            v *= alpha
            v += (1 - alpha) * (g * g)
            if centered:
                m = state["grad_avg"].data
                m += (1 - alpha) * (g - m)
                avg = xp.sqrt(v + (-1) * (m * m))
            else:
                avg = xp.sqrt(v)
            avg += eps
            if momentum > 0:
                b = state["momentum_buffer"].data
                b *= momentum
                b += g / avg
                w += (-lr) * b
            else:
                w += (-lr) * (g / avg)
            p._vc[0] += 1
