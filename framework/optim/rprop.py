"""Rprop, resilient backpropagation (Riedmiller & Braun, 1993, "A direct adaptive method for faster
backpropagation learning: the RPROP algorithm"), in the variant without weight backtracking."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, params_with_grad, scalar


class Rprop(Optimizer):
    """Move each coordinate by its own step size against the sign of its gradient; the step size
    grows by ``etas[1]`` while the sign holds and shrinks by ``etas[0]`` when it flips.

    Per step, with gradient ``g`` (negated when ``maximize``) and ``g_prev`` the previous one::

        s = sign(g * g_prev)
        step_size = clamp(step_size * (etaplus if s > 0 else etaminus if s < 0 else 1),
                          *step_sizes)
        g = 0 where s < 0                        (no move after a sign change)
        p = p - sign(g) * step_size;  g_prev = g

    State per parameter: ``step``, ``prev`` (``g_prev``) and ``step_size`` (started at ``lr``).
    Full-batch gradients are what it was designed for; it works poorly with mini-batches.
    """

    def __init__(self, params, lr: float = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, capturable: bool = False,
                 foreach=None, maximize: bool = False, differentiable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        for p in params_with_grad(group):
            w = p.data
            xp = get_array_module(w)
            g = p.grad.data
            g = -g if group["maximize"] else g.copy()
            state = self.state[p]
            if len(state) == 0:
                state["step"] = Tensor(np.array(0.0, dtype=np.float32))
                state["prev"] = Tensor(xp.zeros_like(w))
                state["step_size"] = Tensor(xp.full_like(g, scalar(group["lr"])))
            state["step"].data += 1
            prev, step_size = state["prev"].data, state["step_size"].data
            # The sign array becomes the factor in place, as in PyTorch (a NaN stays a NaN).
            factor = xp.sign(g * prev)
            factor[factor > 0] = etaplus
            factor[factor < 0] = etaminus
            factor[factor == 0] = 1
            step_size *= factor
            xp.clip(step_size, step_size_min, step_size_max, out=step_size)
            g[factor == etaminus] = 0
            w -= xp.sign(g) * step_size
            prev[...] = g
            p._vc[0] += 1
