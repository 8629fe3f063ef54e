"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019, arXiv:1711.05101)."""

from __future__ import annotations

from .adam import Adam


class AdamW(Adam):
    """Adam whose weight decay shrinks the parameters directly, ``p = p * (1 - lr * weight_decay)``,
    before the Adam update, instead of adding ``weight_decay * p`` to the gradient.

    Same arguments as :class:`Adam`, with ``weight_decay=1e-2`` by default as in PyTorch.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
