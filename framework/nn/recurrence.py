"""Fused recurrences: one graph node per (layer, direction) of an LSTM, GRU or Elman RNN.

Forward: the input projection for all time steps in a single matrix product, then a tight per-step
loop on raw arrays. Backward: a hand-written loop on arrays, with the weight gradients again in
single matrix products. When a graph of the gradient is requested (``create_graph=True``), the
backward instead recomputes the sequence with differentiable Tensor operations and differentiates
that (see ``_recompute_grads``), so double backward works.

Variable lengths follow PyTorch's packed layout: the batch is sorted by decreasing length, and at
step ``t`` only the first ``batch_sizes[t]`` rows advance; the others keep their state, so the final
state of every sequence is the one after its own last step.
"""

from __future__ import annotations

from .. import autograd
from ..autograd import Function
from ..backend import get_array_module
from ..ops import cat, stack
from ..tensor import Tensor, zeros


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _sizes(batch_sizes, T, B):
    return [B] * T if batch_sizes is None else [int(b) for b in batch_sizes]


class _LSTMSeq(Function):
    """One LSTM layer in one direction over a padded, time-major batch.

    Inputs: x ``(T, B, I)``, h0 ``(B, P)``, c0 ``(B, H)``, w_ih ``(4H, I)``, w_hh ``(4H, P)``,
    b_ih, b_hh ``(4H,)`` or None, and optionally w_hr ``(P, H)`` (LSTM with projections; else
    P = H). Attributes: ``batch_sizes`` (or None), ``reverse``.
    Outputs: y ``(T, B, P)`` (zero where a sequence has ended), h_n ``(B, P)``, c_n ``(B, H)``.
    Gates in PyTorch's order i, f, g, o:  c' = f·c + i·g,  h' = o·tanh(c')  (then h' ← W_hr h').
    """

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr=None):
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = w_hh.shape[0] // 4
        P = H if w_hr is None else w_hr.shape[0]
        G = (x.reshape(T * B, x.shape[2]) @ w_ih.T).reshape(T, B, 4 * H)
        if b_ih is not None:
            G += b_ih + b_hh
        # tanh(x/2)/2 + 1/2 is the sigmoid: one tanh over all four gates, then a fix-up of i, f, o.
        scale = xp.full(4 * H, 0.5, dtype=G.dtype)
        scale[2 * H:3 * H] = 1.0
        acts = xp.empty_like(G)
        Hp = xp.zeros((T, B, P), dtype=x.dtype)
        Cp = xp.zeros((T, B, H), dtype=x.dtype)
        Tc = xp.zeros((T, B, H), dtype=x.dtype)
        Y = xp.zeros((T, B, P), dtype=x.dtype)
        R = None if w_hr is None else xp.zeros((T, B, H), dtype=x.dtype)  # o·tanh(c) before W_hr
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
            if R is None:
                xp.multiply(a[:, 3 * H:], tc, out=hn)
            else:
                r = R[t, :bs]
                xp.multiply(a[:, 3 * H:], tc, out=r)
                xp.matmul(r, w_hr.T, out=hn)
            c[:bs] = cn
            h[:bs] = hn
        self.acts, self.Hp, self.Cp, self.Tc, self.R = acts, Hp, Cp, Tc, R
        return Y, h, c

    def backward(self, gY, ghn, gcn):
        if autograd.is_grad_enabled():  # create_graph: differentiate a Tensor-op recomputation
            return _recompute_grads(self, _lstm_reference, (gY, ghn, gcn))
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, *rest = (getattr(v, "data", v) for v in self.inputs)
        w_hr = rest[0] if rest else None
        need = self.needs_input_grad
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = w_hh.shape[0] // 4
        acts, Hp, Cp, Tc, R = self.acts, self.Hp, self.Cp, self.Tc, self.R
        gY = gY.data
        dh = ghn.data.copy()
        dc = gcn.data.copy()
        dG = xp.zeros((T, B, 4 * H), dtype=x.dtype)
        dHout = None if w_hr is None else xp.zeros_like(self.Hp)  # grads of the projected outputs
        sizes = _sizes(self.batch_sizes, T, B)
        for t in _steps(T, not self.reverse):
            bs = sizes[t]
            a = acts[t, :bs]
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            tc = Tc[t, :bs]
            dht = dh[:bs] + gY[t, :bs]
            if w_hr is not None:
                dHout[t, :bs] = dht
                dht = dht @ w_hr
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
        grads = _weight_grads(need, x, dG, Hp, w_ih, dh, dc, b_ih is not None, xp)
        if w_hr is None:
            return grads
        dw_hr = None
        if need[7]:
            n = T * B
            dw_hr = Tensor(dHout.reshape(n, dHout.shape[2]).T @ R.reshape(n, R.shape[2]))
        return grads + (dw_hr,)


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
    out.append(Tensor(dGi2.T @ x.reshape(T * B, x.shape[2])) if need[k] else None)
    out.append(Tensor(dGh2.T @ Hp.reshape(T * B, Hp.shape[2])) if need[k + 1] else None)
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
        Gi = (x.reshape(T * B, x.shape[2]) @ w_ih.T).reshape(T, B, 3 * H)
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
        G = (x.reshape(T * B, x.shape[2]) @ w_ih.T).reshape(T, B, H)
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


def _lstm_reference(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *rest, batch_sizes=None, reverse=False):
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
        if rest and rest[0] is not None:  # projection (proj_size > 0)
            hn = hn @ rest[0].t()
        ys[t] = _pad_rows(hn, B)
        h, c = _advance(h, hn, bs, B), _advance(c, cn, bs, B)
    return stack(ys, 0), h, c


def _gru_reference(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, reverse=False):
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


def _rnn_reference(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, reverse=False, nonlinearity="tanh"):
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
        outs = reference(*sub_inputs, batch_sizes=fn.batch_sizes, reverse=fn.reverse, **kwargs)
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
