"""Recurrent layers: LSTM, GRU, RNN and their cells, with PyTorch's parameter names and layouts.

Speed: each (layer, direction) runs as ONE graph node. Its forward does the input projection for all
time steps in a single matrix product and then a tight per-step loop on raw arrays; its backward is
a hand-written loop on arrays (gradients of the weights again in single matrix products). When a
graph of the gradient is requested (``create_graph=True``), the backward instead recomputes the
sequence with differentiable Tensor operations and differentiates that, so double backward works.

Variable lengths follow PyTorch's packed layout: the batch is sorted by decreasing length, and at
step ``t`` only the first ``batch_sizes[t]`` rows advance; the others keep their state, so the final
state of every sequence is the one after its own last step.
"""

from __future__ import annotations

import math

import numpy as np

from .. import autograd
from ..autograd import Function
from ..backend import get_array_module
from ..ops import cat, stack
from ..tensor import Tensor, empty, zeros
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence, _packed_rows, gather_rows, scatter_rows

# ------------------------------------------------------------------------------ fused sequences


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _sizes(batch_sizes, T, B):
    return [B] * T if batch_sizes is None else [int(b) for b in batch_sizes]


class _LSTMSeq(Function):
    """One LSTM layer in one direction over a padded, time-major batch.

    Inputs: x ``(T, B, I)``, h0 ``(B, H)``, c0 ``(B, H)``, w_ih ``(4H, I)``, w_hh ``(4H, H)``,
    b_ih, b_hh ``(4H,)`` or None. Attributes: ``batch_sizes`` (or None), ``reverse``.
    Outputs: y ``(T, B, H)`` (zero where a sequence has ended), h_n, c_n ``(B, H)``.
    Gates in PyTorch's order i, f, g, o:  c' = f·c + i·g,  h' = o·tanh(c').
    """

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        G = (x.reshape(T * B, -1) @ w_ih.T).reshape(T, B, 4 * H)
        if b_ih is not None:
            G += b_ih + b_hh
        # tanh(x/2)/2 + 1/2 is the sigmoid: one tanh over all four gates, then a fix-up of i, f, o.
        scale = xp.full(4 * H, 0.5, dtype=G.dtype)
        scale[2 * H:3 * H] = 1.0
        acts = xp.empty_like(G)
        Hp = xp.zeros((T, B, H), dtype=x.dtype)
        Cp = xp.zeros((T, B, H), dtype=x.dtype)
        Tc = xp.zeros((T, B, H), dtype=x.dtype)
        Y = xp.zeros((T, B, H), dtype=x.dtype)
        h = h0.copy()
        c = c0.copy()
        w_hhT = w_hh.T
        sizes = _sizes(self.batch_sizes, T, B)
        for t in _steps(T, self.reverse):
            bs = sizes[t]
            hp, cp = h[:bs], c[:bs]
            Hp[t, :bs] = hp
            Cp[t, :bs] = cp
            a = acts[t, :bs]
            xp.multiply(G[t, :bs] + hp @ w_hhT, scale, out=a)
            xp.tanh(a, out=a)
            a[:, :2 * H] *= 0.5
            a[:, :2 * H] += 0.5
            a[:, 3 * H:] *= 0.5
            a[:, 3 * H:] += 0.5
            cn = a[:, H:2 * H] * cp + a[:, :H] * a[:, 2 * H:3 * H]
            tc = Tc[t, :bs]
            xp.tanh(cn, out=tc)
            hn = Y[t, :bs]
            xp.multiply(a[:, 3 * H:], tc, out=hn)
            c[:bs] = cn
            h[:bs] = hn
        self.acts, self.Hp, self.Cp, self.Tc = acts, Hp, Cp, Tc
        return Y, h, c

    def backward(self, gY, ghn, gcn):
        if autograd.is_grad_enabled():  # create_graph: differentiate a Tensor-op recomputation
            return _recompute_grads(self, _lstm_reference, (gY, ghn, gcn))
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = (getattr(v, "data", v) for v in self.inputs)
        need = self.needs_input_grad
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        acts, Hp, Cp, Tc = self.acts, self.Hp, self.Cp, self.Tc
        gY = gY.data
        dh = ghn.data.copy()
        dc = gcn.data.copy()
        dG = xp.zeros((T, B, 4 * H), dtype=x.dtype)
        sizes = _sizes(self.batch_sizes, T, B)
        for t in _steps(T, not self.reverse):
            bs = sizes[t]
            a = acts[t, :bs]
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            tc = Tc[t, :bs]
            dht = dh[:bs] + gY[t, :bs]
            dct = dc[:bs] + dht * o * (1 - tc * tc)
            d = dG[t, :bs]
            d[:, :H] = dct * g
            d[:, H:2 * H] = dct * Cp[t, :bs]
            d[:, 3 * H:] = dht * tc
            # sigmoid' = s(1-s) on i, f, o; tanh' = 1-g² on g.
            d[:, 2 * H:3 * H] = dct * i * (1 - g * g)
            d[:, :2 * H] *= a[:, :2 * H] * (1 - a[:, :2 * H])
            d[:, 3 * H:] *= o * (1 - o)
            dh[:bs] = d @ w_hh
            dc[:bs] = dct * f
        return _weight_grads(need, x, dG, Hp, w_ih, dh, dc, b_ih is not None, xp)


def _weight_grads(need, x, dGi, Hp, w_ih, dh0, dc0, has_bias, xp, dGh=None):
    """Grads of (x, h0, [c0], w_ih, w_hh, b_ih, b_hh) from the per-step pre-activation grads."""
    T, B, _ = x.shape
    n = dGi.shape[-1]
    dGi2 = dGi.reshape(T * B, n)
    dGh2 = dGi2 if dGh is None else dGh.reshape(T * B, n)
    dx = Tensor((dGi2 @ w_ih).reshape(x.shape)) if need[0] else None
    out = [dx, Tensor(dh0) if need[1] else None]
    if dc0 is not None:
        out.append(Tensor(dc0) if need[2] else None)
    k = len(out)
    out.append(Tensor(dGi2.T @ x.reshape(T * B, -1)) if need[k] else None)
    out.append(Tensor(dGh2.T @ Hp.reshape(T * B, -1)) if need[k + 1] else None)
    if has_bias:
        out.append(Tensor(dGi2.sum(0)) if need[k + 2] else None)
        out.append(Tensor(dGh2.sum(0)) if need[k + 3] else None)
    else:
        out += [None, None]
    return tuple(out)


class _GRUSeq(Function):
    """One GRU layer in one direction (gates r, z, n as PyTorch):

    r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r·(W_hn h + b_hn)),  h' = (1 - z)·n + z·h.
    Inputs: x, h0, w_ih ``(3H, I)``, w_hh ``(3H, H)``, b_ih, b_hh; outputs y, h_n.
    """

    def forward(self, x, h0, w_ih, w_hh, b_ih, b_hh):
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        Gi = (x.reshape(T * B, -1) @ w_ih.T).reshape(T, B, 3 * H)
        if b_ih is not None:
            Gi += b_ih
        acts = xp.zeros((T, B, 3 * H), dtype=x.dtype)  # r, z, n
        Ghn = xp.zeros((T, B, H), dtype=x.dtype)  # W_hn h + b_hn (needed for dr)
        Hp = xp.zeros((T, B, H), dtype=x.dtype)
        Y = xp.zeros((T, B, H), dtype=x.dtype)
        h = h0.copy()
        w_hhT = w_hh.T
        sizes = _sizes(self.batch_sizes, T, B)
        for t in _steps(T, self.reverse):
            bs = sizes[t]
            hp = h[:bs]
            Hp[t, :bs] = hp
            gh = hp @ w_hhT
            if b_hh is not None:
                gh += b_hh
            a = acts[t, :bs]
            gi = Gi[t, :bs]
            rz = a[:, :2 * H]
            xp.add(gi[:, :2 * H], gh[:, :2 * H], out=rz)
            rz *= 0.5
            xp.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            Ghn[t, :bs] = gh[:, 2 * H:]
            nn_ = a[:, 2 * H:]
            xp.multiply(a[:, :H], gh[:, 2 * H:], out=nn_)
            nn_ += gi[:, 2 * H:]
            xp.tanh(nn_, out=nn_)
            hn = Y[t, :bs]
            xp.subtract(hp, nn_, out=hn)
            hn *= a[:, H:2 * H]
            hn += nn_
            h[:bs] = hn
        self.acts, self.Ghn, self.Hp = acts, Ghn, Hp
        return Y, h

    def backward(self, gY, ghn):
        if autograd.is_grad_enabled():
            return _recompute_grads(self, _gru_reference, (gY, ghn))
        x, h0, w_ih, w_hh, b_ih, b_hh = (getattr(v, "data", v) for v in self.inputs)
        need = self.needs_input_grad
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        acts, Ghn, Hp = self.acts, self.Ghn, self.Hp
        gY = gY.data
        dh = ghn.data.copy()
        dGi = xp.zeros((T, B, 3 * H), dtype=x.dtype)
        dGh = xp.zeros((T, B, 3 * H), dtype=x.dtype)
        sizes = _sizes(self.batch_sizes, T, B)
        for t in _steps(T, not self.reverse):
            bs = sizes[t]
            a = acts[t, :bs]
            r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
            hp = Hp[t, :bs]
            dht = dh[:bs] + gY[t, :bs]
            dnp = dht * (1 - z) * (1 - n * n)
            di = dGi[t, :bs]
            di[:, H:2 * H] = dht * (hp - n) * z * (1 - z)
            di[:, :H] = dnp * Ghn[t, :bs] * r * (1 - r)
            di[:, 2 * H:] = dnp
            dg = dGh[t, :bs]
            dg[:, :2 * H] = di[:, :2 * H]
            dg[:, 2 * H:] = dnp * r
            dh[:bs] = dht * z + dg @ w_hh
        return _weight_grads(need, x, dGi, Hp, w_ih, dh, None, b_ih is not None, xp, dGh=dGh)


class _RNNSeq(Function):
    """One Elman RNN layer in one direction: h' = act(W_ih x + b_ih + W_hh h + b_hh)."""

    def forward(self, x, h0, w_ih, w_hh, b_ih, b_hh):
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        G = (x.reshape(T * B, -1) @ w_ih.T).reshape(T, B, H)
        if b_ih is not None:
            G += b_ih + b_hh
        Hp = xp.zeros((T, B, H), dtype=x.dtype)
        Y = xp.zeros((T, B, H), dtype=x.dtype)
        h = h0.copy()
        w_hhT = w_hh.T
        relu = self.nonlinearity == "relu"
        sizes = _sizes(self.batch_sizes, T, B)
        for t in _steps(T, self.reverse):
            bs = sizes[t]
            Hp[t, :bs] = h[:bs]
            hn = Y[t, :bs]
            xp.add(G[t, :bs], h[:bs] @ w_hhT, out=hn)
            if relu:
                xp.maximum(hn, 0, out=hn)
            else:
                xp.tanh(hn, out=hn)
            h[:bs] = hn
        self.Y, self.Hp = Y, Hp
        return Y, h

    def backward(self, gY, ghn):
        if autograd.is_grad_enabled():
            return _recompute_grads(self, _rnn_reference, (gY, ghn))
        x, h0, w_ih, w_hh, b_ih, b_hh = (getattr(v, "data", v) for v in self.inputs)
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        gY = gY.data
        dh = ghn.data.copy()
        dG = xp.zeros((T, B, H), dtype=x.dtype)
        sizes = _sizes(self.batch_sizes, T, B)
        for t in _steps(T, not self.reverse):
            bs = sizes[t]
            y = self.Y[t, :bs]
            d = dG[t, :bs]
            xp.add(dh[:bs], gY[t, :bs], out=d)
            d *= (y > 0) if self.nonlinearity == "relu" else (1 - y * y)
            dh[:bs] = d @ w_hh
        return _weight_grads(self.needs_input_grad, x, dG, self.Hp, w_ih, dh, None, b_ih is not None, xp)


# ----------------------------------------------------------- differentiable reference recurrences


def _advance(state, new, bs, B):
    """Rows ``:bs`` take ``new``; the others (sequences already ended) keep ``state``."""
    return new if bs == B else cat([new, state[bs:]], 0)


def _pad_rows(y, B):
    bs = y.shape[0]
    return y if bs == B else cat([y, zeros(B - bs, y.shape[1], dtype=y.dtype, device=y.device)], 0)


def _lstm_reference(x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse):
    T, B = x.shape[0], x.shape[1]
    h, c = h0, c0
    ys = [None] * T
    sizes = _sizes(batch_sizes, T, B)
    for t in _steps(T, reverse):
        bs = sizes[t]
        g = x[t, :bs] @ w_ih.t() + h[:bs] @ w_hh.t()
        if b_ih is not None:
            g = g + b_ih + b_hh
        i, f, gg, o = g.chunk(4, 1)
        cn = f.sigmoid() * c[:bs] + i.sigmoid() * gg.tanh()
        hn = o.sigmoid() * cn.tanh()
        ys[t] = _pad_rows(hn, B)
        h, c = _advance(h, hn, bs, B), _advance(c, cn, bs, B)
    return stack(ys, 0), h, c


def _gru_reference(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse):
    T, B = x.shape[0], x.shape[1]
    h = h0
    ys = [None] * T
    sizes = _sizes(batch_sizes, T, B)
    for t in _steps(T, reverse):
        bs = sizes[t]
        gi = x[t, :bs] @ w_ih.t()
        gh = h[:bs] @ w_hh.t()
        if b_ih is not None:
            gi, gh = gi + b_ih, gh + b_hh
        ir, iz, in_ = gi.chunk(3, 1)
        hr, hz, hn_ = gh.chunk(3, 1)
        r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
        n = (in_ + r * hn_).tanh()
        hn = (1 - z) * n + z * h[:bs]
        ys[t] = _pad_rows(hn, B)
        h = _advance(h, hn, bs, B)
    return stack(ys, 0), h


def _rnn_reference(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, nonlinearity="tanh"):
    T, B = x.shape[0], x.shape[1]
    h = h0
    ys = [None] * T
    sizes = _sizes(batch_sizes, T, B)
    for t in _steps(T, reverse):
        bs = sizes[t]
        g = x[t, :bs] @ w_ih.t() + h[:bs] @ w_hh.t()
        if b_ih is not None:
            g = g + b_ih + b_hh
        hn = g.relu() if nonlinearity == "relu" else g.tanh()
        ys[t] = _pad_rows(hn, B)
        h = _advance(h, hn, bs, B)
    return stack(ys, 0), h


def _recompute_grads(fn, reference, gys):
    """Input gradients of ``fn`` as a differentiable graph (used under ``create_graph=True``).

    The sequence is recomputed with Tensor ops on detached stand-ins of the inputs and differentiated
    there; the resulting gradient graph is then attached to the real inputs (and to ``gys``) through
    one ``_Subgraph`` node. The stand-ins keep the inner differentiation from walking (and firing
    hooks) upstream of this layer.
    """
    sources = [x for x in fn.inputs if isinstance(x, Tensor)] + [g for g in gys if isinstance(g, Tensor)]
    stand = {id(x): Tensor(x.data, requires_grad=x.requires_grad) for x in sources}
    sub_inputs = [stand.get(id(x), x) if isinstance(x, Tensor) else x for x in fn.inputs]
    sub_gys = [stand[id(g)] if isinstance(g, Tensor) else g for g in gys]
    kwargs = {"nonlinearity": fn.nonlinearity} if reference is _rnn_reference else {}
    with autograd.enable_grad():
        outs = reference(*sub_inputs, fn.batch_sizes, fn.reverse, **kwargs)
        wanted = [x for x, need in zip(sub_inputs, fn.needs_input_grad) if need]
        grads = autograd.grad(outs, wanted, grad_outputs=sub_gys, create_graph=True, allow_unused=True)
    live = [g for g in grads if g is not None and g.requires_grad]
    originals = [x for x in sources if x.requires_grad]
    if live and originals:
        attached = _Subgraph(outs=live, leaves=[stand[id(x)] for x in originals])(*originals)
        attached = iter(attached if isinstance(attached, tuple) else (attached,))
        grads = [next(attached) if (g is not None and g.requires_grad) else g for g in grads]
    it = iter(grads)
    return tuple(next(it) if need else None for need in fn.needs_input_grad)


class _Subgraph(Function):
    """A recorded graph (``outs`` computed from the leaves ``leaves``) used as one node whose inputs
    are the tensors the leaves stand for; its backward differentiates the inner graph."""

    def forward(self, *xs):
        return tuple(o.data for o in self.outs)

    def backward(self, *gs):
        res = autograd.grad(self.outs, self.leaves, grad_outputs=list(gs), retain_graph=True,
                            create_graph=autograd.is_grad_enabled(), allow_unused=True)
        return tuple(res)


_SEQ = {"LSTM": _LSTMSeq, "GRU": _GRUSeq, "RNN_TANH": _RNNSeq, "RNN_RELU": _RNNSeq}
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


# --------------------------------------------------------------------------------------- layers


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU (parameter layout as PyTorch's ``RNNBase``).

    Parameters per layer ``k`` and direction (suffix ``""`` or ``"_reverse"``): ``weight_ih_l{k}``
    ``(G·H, I_k)``, ``weight_hh_l{k}`` ``(G·H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(G·H,)``,
    with ``G`` = 4 (LSTM), 3 (GRU) or 1 and ``I_k`` = input_size for k = 0, else ``D·H``; all drawn
    from U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        if proj_size:
            raise NotImplementedError("proj_size > 0 (LSTM with projections) is not supported")
        if not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability "
                             "of an element being zeroed")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError("hidden_size and num_layers must be positive")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_directions = 2 if bidirectional else 1
        gate = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                in_size = input_size if layer == 0 else hidden_size * num_directions
                sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                shapes = [(gate, in_size), (gate, hidden_size)]
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    shapes += [(gate,), (gate,)]
                for name, shape in zip(names, shapes):
                    setattr(self, name, Parameter(empty(*shape, device=device, dtype=dtype)))
                self._flat_weights_names.extend(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """No-op (PyTorch's cuDNN weight packing has no counterpart here)."""

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in self._layer_names(k, d)]
                for k in range(self.num_layers) for d in range(2 if self.bidirectional else 1)]

    def _layer_names(self, layer, direction):
        sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
        return names + ([f"bias_ih{sfx}", f"bias_hh{sfx}"] if self.bias else [])

    def _weights(self, layer, direction):
        names = self._layer_names(layer, direction)
        ws = [getattr(self, n) for n in names]
        return ws if self.bias else ws + [None, None]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ------------------------------------------------------------------ forward
    def _prepare(self, input):
        """Padded time-major input ``(T, B, I)``, batch_sizes (or None), and how to undo it."""
        if isinstance(input, PackedSequence):
            bs = np.asarray(input.batch_sizes.tolist(), dtype=np.int64)
            B, T = int(bs[0]), len(bs)
            rows = _packed_rows(bs, B)
            data = input.data
            x = scatter_rows(data, rows, T * B).reshape(T, B, data.shape[1])
            return x, bs, ("packed", rows, input)
        if input.dim() not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D "
                             "instead")
        if input.dim() == 2:
            return input.unsqueeze(1), None, ("unbatched",)
        x = input.transpose(0, 1) if self.batch_first else input
        return x, None, ("batched",)

    def _run(self, input, hx):
        """Returns (output, [h_n] or [h_n, c_n]) for the configured mode."""
        x, batch_sizes, how = self._prepare(input)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {x.shape[-1]}")
        if x.dtype != self.weight_ih_l0.dtype:
            raise RuntimeError(f"{type(self).__name__}: input dtype {x.dtype} does not match the "
                               f"parameters' dtype {self.weight_ih_l0.dtype}")
        D = 2 if self.bidirectional else 1
        T, B = x.shape[0], x.shape[1]
        n_states = 2 if self.mode == "LSTM" else 1
        states = self._initial_states(hx, how, B, D, x, n_states)
        sorted_idx = how[2].sorted_indices if how[0] == "packed" else None
        if sorted_idx is not None:
            states = [s.index_select(1, sorted_idx) for s in states]
        seq_cls = _SEQ[self.mode]
        extra = {"nonlinearity": "relu" if self.mode == "RNN_RELU" else "tanh"} if seq_cls is _RNNSeq else {}
        finals = [[] for _ in range(n_states)]
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                w = self._weights(layer, d)
                init_states = [s[k] for s in states]
                res = seq_cls(batch_sizes=batch_sizes, reverse=d == 1, **extra)(x, *init_states, *w)
                outs.append(res[0])
                for j in range(n_states):
                    finals[j].append(res[1 + j])
            x = outs[0] if D == 1 else cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        finals = [stack(f, 0) for f in finals]
        if how[0] == "packed":
            packed = how[2]
            data = gather_rows(x.reshape(T * B, x.shape[-1]), how[1])
            if packed.unsorted_indices is not None:
                finals = [f.index_select(1, packed.unsorted_indices) for f in finals]
            out = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        elif how[0] == "unbatched":
            out = x.squeeze(1)
            finals = [f.squeeze(1) for f in finals]
        else:
            out = x.transpose(0, 1) if self.batch_first else x
        return out, finals

    def _initial_states(self, hx, how, B, D, x, n_states):
        shape = (self.num_layers * D, B, self.hidden_size)
        if hx is None:
            return [zeros(*shape, dtype=x.dtype, device=x.device) for _ in range(n_states)]
        hs = list(hx) if n_states == 2 else [hx]
        if len(hs) != n_states:
            raise ValueError(f"{type(self).__name__}: expected {n_states} initial state tensors")
        out = []
        for h in hs:
            if how[0] == "unbatched":
                if h.dim() != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {h.dim()}-D "
                                       "tensor")
                h = h.unsqueeze(1)
            if tuple(h.shape) != shape:
                raise RuntimeError(f"Expected hidden size {shape}, got {tuple(h.shape)}")
            out.append(h)
        return out


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), gates i, f, g, o as PyTorch.

    ``forward(input, hx=None)``: input ``(L, N, H_in)`` (``(N, L, H_in)`` if ``batch_first``),
    ``(L, H_in)`` unbatched, or a PackedSequence; ``hx = (h_0, c_0)`` each ``(D·num_layers, N, H)``.
    Returns ``output, (h_n, c_n)`` with output ``(L, N, D·H)`` (or a PackedSequence).
    """

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    def forward(self, input, hx=None):
        out, (h, c) = self._run(input, hx)
        return out, (h, c)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014) with PyTorch's gate order r, z, n and its n formula.

    ``forward(input, hx=None)`` returns ``output, h_n`` (shapes as LSTM's).
    """

    def __init__(self, *args, **kwargs):
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input, hx=None):
        out, (h,) = self._run(input, hx)
        return out, h


class RNN(RNNBase):
    """Elman RNN with ``nonlinearity`` 'tanh' or 'relu'."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        out, (h,) = self._run(input, hx)
        return out, h


# ---------------------------------------------------------------------------------------- cells


class RNNCellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None,
                 dtype=None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s

    def _step(self, seq_cls, input, states, **kw):
        """Run ``seq_cls`` over one time step (one graph node per step, no per-gate nodes)."""
        if input.dim() not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got {input.dim()}D")
        unbatched = input.dim() == 1
        x = input.reshape(1, 1, -1) if unbatched else input.unsqueeze(0)
        B = x.shape[1]
        if states is None:
            states = [zeros(B, self.hidden_size, dtype=x.dtype, device=x.device)] * kw.pop("n", 1)
        else:
            kw.pop("n", None)
            states = [s.unsqueeze(0) if unbatched else s for s in states]
        res = seq_cls(batch_sizes=None, reverse=False, **kw)(
            x, *states, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        outs = res[1:]
        return [o.squeeze(0) for o in outs] if unbatched else list(outs)


class LSTMCell(RNNCellBase):
    """One LSTM step: ``(h', c') = cell(input, (h, c))``; input ``(N, I)`` or ``(I,)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        h, c = self._step(_LSTMSeq, input, None if hx is None else list(hx), n=2)
        return h, c


class GRUCell(RNNCellBase):
    """One GRU step: ``h' = cell(input, h)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        (h,) = self._step(_GRUSeq, input, None if hx is None else [hx])
        return h


class RNNCell(RNNCellBase):
    """One Elman step: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        (h,) = self._step(_RNNSeq, input, None if hx is None else [hx], nonlinearity=self.nonlinearity)
        return h
