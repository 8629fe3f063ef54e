"""Adagrad (Duchi, Hazan & Singer, 2011, JMLR 12: "Adaptive Subgradient Methods for Online Learning
and Stochastic Optimization")."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, params_with_grad, scalar


class Adagrad(Optimizer):
    """Scale each coordinate's step by the root of the sum of its squared gradients so far.

    Per step ``t`` (from 1), with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    in PyTorch's order of operations. State per parameter: ``step`` (a float32 scalar tensor) and
    ``sum`` (started at ``initial_accumulator_value``).

    As in PyTorch, the state of the parameters given to the constructor is made at once, from the
    constructor's ``initial_accumulator_value`` (a group's own value of that option is not used),
    and that of parameters added later with :meth:`add_param_group` from ``defaults``.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach=None, *,
                 maximize: bool = False, differentiable: bool = False, fused=None):
        for name, v in (("learning rate", lr), ("lr_decay value", lr_decay),
                        ("weight_decay value", weight_decay),
                        ("initial_accumulator_value value", initial_accumulator_value),
                        ("epsilon value", eps)):
            if not 0.0 <= v:
                raise ValueError(f"Invalid {name}: {v}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, initial_accumulator_value)

    def _init_state(self, p: Tensor, initial_accumulator_value: float) -> None:
        xp = get_array_module(p.data)
        state = self.state[p]
        state["step"] = Tensor(np.array(0.0, dtype=np.float32))
        state["sum"] = Tensor(xp.full_like(p.data, initial_accumulator_value))

    def _update_group(self, group):
        lr, lr_decay, eps = scalar(group["lr"]), group["lr_decay"], group["eps"]
        wd, maximize = group["weight_decay"], group["maximize"]
        for p in params_with_grad(group):
            w = p.data
            xp = get_array_module(w)
            g = p.grad.data
            state = self.state[p]
            if len(state) == 0:
                self._init_state(p, self.defaults["initial_accumulator_value"])
            step_t = state["step"].data
            step_t += 1
            step = float(step_t)
            if maximize:
                g = -g
            if wd != 0:
                g = g + wd * w
            clr = lr / (1 + (step - 1) * lr_decay)
            if get_array_module(state["sum"].data) is not xp:
                # (the state was made at construction: the model has moved to another device since)
                state["sum"] = state["sum"].to(p.device)
            s = state["sum"].data
            s += g * g
            std = xp.sqrt(s)
            std += eps
            w += ((-clr) * g) / std
            p._vc[0] += 1
