"""ASGD, averaged stochastic gradient descent (Polyak & Juditsky, 1992, "Acceleration of
Stochastic Approximation by Averaging", SIAM J. Control Optim. 30(4))."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, params_with_grad, scalar


class ASGD(Optimizer):
    """SGD with a decaying step size that also keeps a running average ``ax`` of the iterates
    (averaging starts at step ``t0``; read the average from ``optimizer.state[p]["ax"]``).

    Per step ``t`` (from 1), with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        p = p * (1 - lambd * eta) - eta * g
        ax = ax + (p - ax) * mu                  (ax = p while mu == 1)
        eta = lr / (1 + lambd * lr * t) ** alpha;  mu = 1 / max(1, t - t0)

    in PyTorch's order of operations. State per parameter: ``step``, ``eta`` and ``mu`` (float32
    scalar tensors, as PyTorch keeps them: the step size ``eta`` is rounded to float32, also the
    first one, ``lr``), and ``ax``.
    """

    _scalar_state_keys = ("step", "eta", "mu")

    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                 t0: float = 1e6, weight_decay: float = 0, foreach=None, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, lambd, alpha, t0 = scalar(group["lr"]), group["lambd"], group["alpha"], group["t0"]
        wd = group["weight_decay"]
        for p in params_with_grad(group):
            w = p.data
            g = p.grad.data
            if group["maximize"]:
                g = -g
            state, _ = self._counted_state(p, ("ax",), {"eta": lr, "mu": 1.0})
            step_t, eta_t, mu_t = state["step"].data, state["eta"].data, state["mu"].data
            if wd != 0:
                g = g + wd * w
            eta = float(eta_t)
            w *= 1 - lambd * eta
            w += (-eta) * g
            ax = state["ax"].data
            mu = float(mu_t)
            if mu != 1:
                ax += (w - ax) * mu
            else:
                ax[...] = w
            step = float(step_t)
            # Rounded to float32 whatever the state's dtype (PyTorch rounds them in as_tensor, so a
            # state it cast to float64 on loading still holds float32 values).
            eta_t[...] = np.float32(lr / ((1 + lambd * lr * step) ** alpha))
            mu_t[...] = np.float32(1 / max(1, step - t0))
            p._vc[0] += 1
