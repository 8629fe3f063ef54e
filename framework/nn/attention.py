"""Multi-head attention (Vaswani et al. 2017) with PyTorch's parameters, masks and outputs."""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module
from ..functional import _safe_softmax
from ..ops import cat
from ..tensor import Tensor, empty, zeros
from . import functional as F
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter


def _float_mask(mask, dtype, name):
    """Bool masks (True = not allowed) become additive float masks with -inf; float masks stay."""
    if mask is None:
        return None
    if mask.dtype.name == "bool":
        xp = get_array_module(mask.data)
        return Tensor(xp.where(mask.data, -np.inf, 0.0).astype(dtype.np))
    if not mask.is_floating_point():
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask.to(dtype)


def _pad_last(t, value=0.0):
    if t is None:
        return None
    pad = zeros(*t.shape[:-1], 1, dtype=t.dtype, device=t.device)
    return cat([t, pad + value if value else pad], -1)


def _check_qkv(query, key, value, key_padding_mask, batch_first):
    """PyTorch's input checks: query, key and value all batched (3-D) or all unbatched (2-D), key and
    value of one sequence length and batch, the same batch as the query. Without them a mismatch
    surfaced as a reshape or matmul error deep inside, or broadcast silently."""
    qd = query.dim()
    if qd not in (2, 3) or key.dim() != qd or value.dim() != qd:
        raise AssertionError(f"MultiheadAttention: query, key and value must be all 3-D (batched) or all 2-D "
                             f"(unbatched), got query {list(query.shape)}, key {list(key.shape)}, value "
                             f"{list(value.shape)}")
    if tuple(key.shape[:-1]) != tuple(value.shape[:-1]):
        raise AssertionError(f"MultiheadAttention: key shape {list(key.shape)} does not match value shape "
                             f"{list(value.shape)} (sequence length and batch must agree)")
    if qd == 3:
        bdim = 0 if batch_first else 1
        if key.shape[bdim] != query.shape[bdim]:
            raise AssertionError(f"MultiheadAttention: query batch size {query.shape[bdim]} does not match "
                                 f"key batch size {key.shape[bdim]} (query {list(query.shape)}, key "
                                 f"{list(key.shape)}, batch_first={batch_first})")
    if key_padding_mask is not None and key_padding_mask.dim() != qd - 1:
        raise AssertionError(f"MultiheadAttention: expected a {qd - 1}-D key_padding_mask for {qd}-D query, "
                             f"got size {list(key_padding_mask.shape)}")


class MultiheadAttention(Module):
    """``attn_output, attn_weights = mha(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)``.

    Shapes (``batch_first=False``): query ``(L, N, E)``, key ``(S, N, kdim)``, value ``(S, N, vdim)``
    (``(N, L, E)`` etc. with ``batch_first``; unbatched ``(L, E)`` also accepted). Output ``(L, N, E)``
    and weights ``(N, L, S)`` averaged over heads (``(N, num_heads, L, S)`` otherwise).
    ``key_padding_mask`` ``(N, S)`` and ``attn_mask`` ``(L, S)`` or ``(N·num_heads, L, S)``: bool
    (True = masked out) or float (added to the scores).
    Parameters as PyTorch: ``in_proj_weight`` ``(3E, E)`` (or ``q/k/v_proj_weight`` when kdim/vdim
    differ from E), ``in_proj_bias`` ``(3E,)``, ``out_proj`` (a Linear), ``bias_k``/``bias_v``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} "
                             f"and num_heads={num_heads} instead")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        fk = {"device": device, "dtype": dtype}
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, **fk))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, **fk))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, **fk))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, **fk))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, **fk))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **fk)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, **fk))
            self.bias_v = Parameter(empty(1, 1, embed_dim, **fk))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def __setattr__(self, name, value):
        if name in ("bias_k", "bias_v") and value is None and "_parameters" in self.__dict__ \
                and name not in self._parameters:
            self.register_parameter(name, None)
        else:
            super().__setattr__(name, value)

    def _projections(self, query, key, value):
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if key is query and value is query:  # self-attention: one product for q, k and v
                qkv = F.linear(query, w, b)
                return qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
            wq, wk, wv = w[:E], w[E:2 * E], w[2 * E:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False):
        _check_qkv(query, key, value, key_padding_mask, self.batch_first)
        batched = query.dim() == 3
        if batched and self.batch_first:
            if key is value:
                if query is key:
                    query = key = value = query.transpose(0, 1)
                else:
                    query, key = query.transpose(0, 1), key.transpose(0, 1)
                    value = key
            else:
                query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if not batched:
            same = key is query and value is query
            query = query.unsqueeze(1)
            key = query if same else key.unsqueeze(1)
            value = query if same else value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        L, N, E = query.shape
        if E != self.embed_dim:
            raise AssertionError(f"was expecting embedding dimension of {self.embed_dim}, but got {E}")
        if key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise AssertionError(f"MultiheadAttention: expected key (*, {self.kdim}) and value "
                                 f"(*, {self.vdim}), got key {list(key.shape)} and value {list(value.shape)}")
        H, hd = self.num_heads, self.head_dim
        dt = query.dtype
        if is_causal and attn_mask is None:
            S0 = key.shape[0]
            attn_mask = Tensor(np.triu(np.ones((L, S0), dtype=bool), 1)).to(query.device)
        attn_mask = _float_mask(attn_mask, dt, "attn_mask")
        key_padding_mask = _float_mask(key_padding_mask, dt, "key_padding_mask")

        q, k, v = self._projections(query, key, value)
        if self.bias_k is not None:
            k = cat([k, self.bias_k.expand(1, N, E)], 0)
            v = cat([v, self.bias_v.expand(1, N, E)], 0)
            attn_mask = _pad_last(attn_mask)
            key_padding_mask = _pad_last(key_padding_mask)
        # (L, N, E) -> (N·H, L, hd), heads of one sample contiguous, as PyTorch.
        q = q.reshape(L, N * H, hd).transpose(0, 1)
        k = k.reshape(k.shape[0], N * H, hd).transpose(0, 1)
        v = v.reshape(v.shape[0], N * H, hd).transpose(0, 1)
        if self.add_zero_attn:
            k = cat([k, zeros(N * H, 1, hd, dtype=dt, device=k.device)], 1)
            v = cat([v, zeros(N * H, 1, hd, dtype=dt, device=v.device)], 1)
            attn_mask = _pad_last(attn_mask)
            key_padding_mask = _pad_last(key_padding_mask)
        S = k.shape[1]
        if attn_mask is not None:
            if attn_mask.dim() == 2:
                if tuple(attn_mask.shape) != (L, S):
                    raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but "
                                       f"should be {(L, S)}.")
                attn_mask = attn_mask.unsqueeze(0)
            elif tuple(attn_mask.shape) != (N * H, L, S):
                raise RuntimeError(f"The shape of the {attn_mask.dim()}D attn_mask is "
                                   f"{tuple(attn_mask.shape)}, but should be {(L, S)} or {(N * H, L, S)}.")
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (N, S):
                raise AssertionError(f"expecting key_padding_mask shape of {(N, S)}, but got "
                                     f"{tuple(key_padding_mask.shape)}")
            kpm = key_padding_mask.reshape(N, 1, 1, S).expand(N, H, 1, S).reshape(N * H, 1, S)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm

        scores = (q * (1.0 / math.sqrt(hd))) @ k.transpose(1, 2)  # (N·H, L, S)
        if attn_mask is not None:
            scores = scores + attn_mask
        # need_weights=False is PyTorch's fused path, where a query whose keys are all masked out gets
        # zeros (its _safe_softmax); with weights requested PyTorch returns NaN rows, and so do we.
        weights = F.softmax(scores, dim=-1) if need_weights else _safe_softmax(scores)
        p = self.dropout if self.training else 0.0
        dropped = F.dropout(weights, p, True) if p > 0 else weights
        # softmax runs in float32 under autocast; the product goes back to the projections' dtype
        out = (dropped.to(v.dtype) @ v).transpose(0, 1).reshape(L * N, E)
        # Like PyTorch, out_proj's weights are applied directly (its own hooks do not run).
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias).reshape(L, N, E)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        w = dropped.reshape(N, H, L, S)  # PyTorch returns the weights after dropout
        if average_attn_weights:
            w = w.mean(1)
        if not batched:
            w = w.squeeze(0)
        return out, w
