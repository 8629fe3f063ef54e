"""Stochastic gradient descent with momentum (``torch.optim.SGD``)."""

from __future__ import annotations

from ..tensor import Tensor
from .optimizer import Optimizer, params_with_grad, required, scalar


class SGD(Optimizer):
    """SGD, optionally with momentum, dampening, Nesterov momentum and L2 weight decay.

    With gradient ``g`` of parameter ``p`` (negated when ``maximize``), each step does::

        g = g + weight_decay * p
        b = g                                   (first step)
        b = momentum * b + (1 - dampening) * g  (later steps)
        g = g + momentum * b if nesterov else b
        p = p - lr * g

    which is PyTorch's formulation (momentum applied to the gradient, not to ``lr * g`` as in
    Sutskever et al., 2013); the arithmetic is done in the same order, so trajectories match.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, momentum, dampening = scalar(group["lr"]), group["momentum"], group["dampening"]
        wd, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        for p in params_with_grad(group):
            w = p.data
            g = p.grad.data
            if maximize:
                g = -g
            if wd != 0:
                g = g + wd * w
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = Tensor(g.copy())
                    state["momentum_buffer"] = buf
                else:
                    b = buf.data
                    b *= momentum
                    b += (1 - dampening) * g
                g = g + momentum * buf.data if nesterov else buf.data
            w += (-lr) * g
            p._vc[0] += 1
