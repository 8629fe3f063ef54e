"""Adaptive softmax (Grave et al., "Efficient softmax approximation for GPUs", 2017), as PyTorch's
``nn.AdaptiveLogSoftmaxWithLoss``: same arguments, parameter names, outputs and errors.

The classes, sorted by frequency, are split at ``cutoffs``: the head is a softmax over the frequent
classes (the shortlist) plus one entry per tail cluster; each cluster's classes get a softmax of their
own, computed from a projection of the input to a smaller size (``in_features // div_value**(i+1)``),
and a class's log-probability is its cluster's head entry plus its own within the cluster. A batch
only evaluates the clusters of its targets, which is what makes large vocabularies cheap.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..tensor import Tensor
from . import functional as F
from .container import ModuleList, Sequential
from .linear import Linear
from .module import Module

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(Module):
    """``forward(input, target)`` -> (output, loss): ``output`` (N,) the log-probability of each target,
    ``loss`` the mean negative log-likelihood. ``log_prob(input)`` (N, n_classes) gives every class's;
    ``predict(input)`` the most likely class. Input (N, in_features) with target (N,), or unbatched
    (in_features,) with a 0-d target. Parameters: ``head`` (Linear to shortlist + clusters) and
    ``tail[i]`` (Sequential of two bias-free Linears), named as PyTorch names them."""

    def __init__(self, in_features: int, n_classes: int, cutoffs, div_value: float = 4.0,
                 head_bias: bool = False, device=None, dtype=None):
        super().__init__()
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted in an "
                             "increasing order, where each value is between 1 and n_classes-1")
        self.in_features, self.n_classes = in_features, n_classes
        self.cutoffs = [int(c) for c in cutoffs] + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        kw = dict(device=device, dtype=dtype)
        self.head = Linear(in_features, self.head_size, bias=head_bias, **kw)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hsz = int(in_features // (div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(Linear(in_features, hsz, bias=False, **kw),
                                        Linear(hsz, osz, bias=False, **kw)))

    def reset_parameters(self) -> None:
        self.head.reset_parameters()
        for i2h, h2o in self.tail:
            i2h.reset_parameters()
            h2o.reset_parameters()

    def forward(self, input: Tensor, target: Tensor) -> _ASMoutput:
        targ_dim = target.dim()
        if targ_dim == 1:
            if input.size(0) != target.size(0):
                raise RuntimeError("Input and target should have the same size in the batch dimension.")
            if input.dim() != 2:
                raise RuntimeError(f"1D target tensor expects 2D input tensors, but found inputs with size "
                                   f"{tuple(input.shape)}")
        elif targ_dim == 0:
            if input.dim() != 1:
                raise RuntimeError(f"0D target tensor expects 1D input tensors, but found inputs with size "
                                   f"{tuple(input.shape)}")
        else:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        batched = targ_dim > 0
        x = input if batched else input.unsqueeze(0)
        t = target if batched else target.unsqueeze(0)
        tv = np.asarray(t.detach().cpu().numpy()).astype(np.int64)
        n = tv.shape[0]
        if n and (tv.min() < 0 or tv.max() >= self.n_classes):
            raise RuntimeError(f"Target values should be in [0, {self.n_classes - 1}], but values in range "
                               f"[{tv.min()}, {tv.max()}] were found. ")
        head_index = np.where(tv < self.shortlist_size, tv, 0)
        output = None
        bounds = self.cutoffs
        for i in range(self.n_clusters):
            rows = np.nonzero((tv >= bounds[i]) & (tv < bounds[i + 1]))[0]
            if rows.size == 0:
                continue
            head_index[rows] = self.shortlist_size + i
            cluster_logprob = F.log_softmax(self.tail[i](x[rows]), dim=1)
            rel = Tensor((tv[rows] - bounds[i]).reshape(-1, 1))
            local = cluster_logprob.gather(1, rel.to(x.device)).squeeze(1)
            base = x.new_zeros(n) if output is None else output
            output = base.index_add(0, Tensor(rows).to(x.device), local)
        head_logprob = F.log_softmax(self.head(x), dim=1)
        picked = head_logprob.gather(1, Tensor(head_index.reshape(-1, 1)).to(x.device)).squeeze(1)
        output = picked if output is None else output + picked
        loss = (-output).mean()
        return _ASMoutput(output if batched else output.squeeze(0), loss)

    def _get_full_log_prob(self, input: Tensor, head_output: Tensor) -> Tensor:
        from .. import cat

        head_logprob = F.log_softmax(head_output, dim=1)
        parts = [head_logprob[:, :self.shortlist_size]]
        for i in range(self.n_clusters):
            j = self.shortlist_size + i  # the cluster's entry in the head
            parts.append(F.log_softmax(self.tail[i](input), dim=1) + head_logprob[:, j:j + 1])
        return cat(parts, dim=1)

    def log_prob(self, input: Tensor) -> Tensor:
        """Log-probabilities of every class: (N, n_classes), or (n_classes,) for an unbatched input."""
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        out = self._get_full_log_prob(x, self.head(x))
        return out if batched else out.squeeze(0)

    def predict(self, input: Tensor) -> Tensor:
        """The most likely class of each input: (N,), or a 0-d tensor for an unbatched input."""
        return self.log_prob(input).argmax(dim=-1)
