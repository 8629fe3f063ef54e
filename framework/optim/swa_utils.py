"""Weight averaging, shaped like ``torch.optim.swa_utils``: stochastic weight averaging (SWA; Izmailov et
al. 2018, arXiv:1803.05407) and exponential moving averages (EMA) of a model's weights.

- :class:`AveragedModel` holds a copy of a model whose parameters (and, with ``use_buffers=True``, its
  buffers) are a running average of the model's, updated by ``update_parameters(model)``: the equal-weight
  mean of every update by default (SWA), or any rule given as ``avg_fn`` (one tensor at a time) or
  ``multi_avg_fn`` (lists of tensors of one device and dtype), such as :func:`get_ema_multi_avg_fn`.
- :class:`SWALR` anneals each group's learning rate to a constant ``swa_lr`` over ``anneal_epochs``.
- :func:`update_bn` recomputes the batch-norm statistics of an averaged model with one pass over data
  (averaged weights need statistics of their own: the averaged ones belong to no network).

The arithmetic is PyTorch's: the first update copies the model, update n (from 0) then gives
``avg + (p - avg) / (n + 1)`` (SWA) or ``decay * ema + (1 - decay) * p`` (EMA). Integer buffers (a batch
norm's ``num_batches_tracked``) take the same formulas and are truncated back to their type; PyTorch's
list form of the SWA rule refuses them, its per-tensor form truncates, as here.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable

from ..autograd import no_grad
from ..dtypes import int64
from ..nn.module import Module
from ..nn.normalization import _BatchNorm
from ..tensor import Tensor, tensor
from .lr_scheduler import LRScheduler, _per_group
from .optimizer import Optimizer

__all__ = ["AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn", "get_swa_multi_avg_fn",
           "get_ema_avg_fn", "get_swa_avg_fn"]


def _is_float(t: Tensor) -> bool:
    return t.dtype.is_floating_point


def get_ema_avg_fn(decay: float = 0.999) -> Callable:
    """``fn(ema, current, num_averaged) -> decay * ema + (1 - decay) * current`` (one tensor)."""

    def ema_update(ema: Tensor, current: Tensor, num_averaged) -> Tensor:
        with no_grad():
            return decay * ema + (1 - decay) * current

    return ema_update


def get_swa_avg_fn() -> Callable:
    """``fn(avg, current, num_averaged) -> avg + (current - avg) / (num_averaged + 1)`` (one tensor)."""

    def swa_update(averaged: Tensor, current: Tensor, num_averaged) -> Tensor:
        with no_grad():
            return averaged + (current - averaged) / (num_averaged + 1)

    return swa_update


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """``fn(ema_list, current_list, num_averaged)``: each ema moved in place a fraction ``1 - decay`` of
    the way to its current value (floating tensors); integer ones become
    ``decay * ema + (1 - decay) * current``, truncated."""

    def ema_update(ema_list: list[Tensor], current_list: list[Tensor], num_averaged) -> None:
        with no_grad():
            for ema, cur in zip(ema_list, current_list):
                if _is_float(ema):
                    ema.copy_(ema + (cur - ema) * (1 - decay))
                else:
                    ema.copy_(ema * decay + cur * (1 - decay))

    return ema_update


def get_swa_multi_avg_fn() -> Callable:
    """``fn(avg_list, current_list, num_averaged)``: each average moved in place to
    ``avg + (current - avg) / (num_averaged + 1)`` (integer tensors truncated)."""
    one = get_swa_avg_fn()

    def swa_update(avg_list: list[Tensor], current_list: list[Tensor], num_averaged) -> None:
        for avg, cur in zip(avg_list, current_list):
            avg.copy_(one(avg, cur, num_averaged))

    return swa_update


class AveragedModel(Module):
    """A running average of ``model``'s weights, itself a module (``forward`` calls the averaged copy).

    Args:
        model: the model to average; it is deep-copied (to ``device`` when given), never changed.
        avg_fn: ``fn(averaged, current, num_averaged) -> new averaged`` for one tensor.
        multi_avg_fn: ``fn(averaged_list, current_list, num_averaged)`` updating lists in place (one call
            per device and dtype). At most one of the two; neither: the equal-weight mean (SWA).
        use_buffers: average the buffers as well (running statistics, counts); otherwise they are copied
            from ``model`` at each update.
    Attributes: ``module`` (the averaged copy), ``n_averaged`` (int64 buffer: updates so far).
    """

    def __init__(self, model: Module, device=None, avg_fn: Callable | None = None,
                 multi_avg_fn: Callable | None = None, use_buffers: bool = False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("AveragedModel: give avg_fn or multi_avg_fn, not both")
        if not isinstance(model, Module):
            raise TypeError(f"AveragedModel: model must be a Module, got {type(model).__name__}")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", tensor(0, dtype=int64, device=device))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _tensors(self, model: Module) -> Iterable[Tensor]:
        if self.use_buffers:
            return itertools.chain(model.parameters(), model.buffers())
        return model.parameters()

    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current weights into the average (the first call copies them)."""
        mine = [t.detach() for t in self._tensors(self.module)]
        theirs = [t.detach() for t in self._tensors(model)]
        if len(mine) != len(theirs):
            raise ValueError(f"AveragedModel.update_parameters: the model has {len(theirs)} "
                             f"{'parameters and buffers' if self.use_buffers else 'parameters'}, the "
                             f"averaged copy {len(mine)}: not the model it was made from")
        with no_grad():
            theirs = [t.to(a.device) if t.device != a.device else t for a, t in zip(mine, theirs)]
            for a, t in zip(mine, theirs):
                if a.shape != t.shape:
                    raise ValueError(f"AveragedModel.update_parameters: shape {tuple(t.shape)} where the "
                                     f"averaged copy has {tuple(a.shape)}")
            n = int(self.n_averaged.item())
            if n == 0:
                for a, t in zip(mine, theirs):
                    a.copy_(t)
            elif self.avg_fn is not None:
                for a, t in zip(mine, theirs):
                    a.copy_(self.avg_fn(a, t, self.n_averaged.to(a.device)))
            else:
                groups: dict[tuple, tuple[list, list]] = {}
                for a, t in zip(mine, theirs):
                    lists = groups.setdefault((str(a.device), str(a.dtype)), ([], []))
                    lists[0].append(a)
                    lists[1].append(t)
                fn = self.multi_avg_fn or get_swa_multi_avg_fn()
                for a_list, t_list in groups.values():
                    fn(a_list, t_list, self.n_averaged.to(a_list[0].device))
            if not self.use_buffers:  # buffers follow the model
                for a, t in zip(self.module.buffers(), model.buffers()):
                    a.detach().copy_(t.detach().to(a.device))
            self.n_averaged.add_(1)


def update_bn(loader: Iterable, model: Module, device=None) -> None:
    """Recompute the running statistics of every batch norm in ``model`` from one pass over ``loader``
    (batches, or tuples / lists whose first item is the input): the statistics are reset and then
    averaged over the batches with equal weight (``momentum=None``); each layer's momentum and the
    model's train/eval mode are restored after. A model without batch norms is left as it is."""
    momenta = {}
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.reset_running_stats()
            momenta[m] = m.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for m in momenta:
        m.momentum = None
    try:
        with no_grad():
            for batch in loader:
                if isinstance(batch, (list, tuple)):
                    batch = batch[0]
                if device is not None:
                    batch = batch.to(device)
                model(batch)
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each group's learning rate from its current value to ``swa_lr`` over ``anneal_epochs``
    steps (``anneal_strategy`` "cos" or "linear"), then hold it: the schedule of the SWA phase.

    ``swa_lr``: one value or one per parameter group (stored as ``group["swa_lr"]``).
    """

    def __init__(self, optimizer: Optimizer, swa_lr, anneal_epochs: int = 10, anneal_strategy: str = "cos",
                 last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        for value, group in zip(_per_group("swa_lr", optimizer, swa_lr), optimizer.param_groups):
            group["swa_lr"] = value
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must by one of 'cos' or 'linear', instead got {anneal_strategy}")
        if isinstance(anneal_epochs, bool) or not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_strategy = anneal_strategy
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @property
    def anneal_func(self) -> Callable[[float], float]:
        return self._cosine_anneal if self.anneal_strategy == "cos" else self._linear_anneal

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _start_lr(lr: float, swa_lr: float, alpha: float) -> float:
        """The lr the annealing started from, given the lr ``alpha`` of the way along it."""
        return swa_lr if alpha == 1 else (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self) -> list[float]:
        # recursive, as PyTorch's: the start is recovered from the current lr, so another scheduler's
        # changes in between carry through
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_alpha = self.anneal_func(max(0.0, min(1.0, (step - 1) / max(1, self.anneal_epochs))))
        alpha = self.anneal_func(max(0.0, min(1.0, step / max(1, self.anneal_epochs))))
        out = []
        for group in self.optimizer.param_groups:
            lr = float(group["lr"])
            start = self._start_lr(lr, group["swa_lr"], prev_alpha)
            out.append(group["swa_lr"] * alpha + start * (1 - alpha))
        return out
