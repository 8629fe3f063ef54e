"""Recurrent layers: LSTM, GRU, RNN and their cells, with PyTorch's parameter names and layouts.

Each (layer, direction) runs as one fused graph node (``recurrence.py``); packed sequences are
unpacked to a padded, time-major batch sorted by length, and packed again on the way out.
"""

from __future__ import annotations

import math

import numpy as np

from ..amp import cast_inputs, is_autocast_enabled
from ..ops import cat, stack
from ..tensor import empty, zeros
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter
from .recurrence import _GATES, _SEQ, _GRUSeq, _LSTMSeq, _RNNSeq
from .utils.rnn import PackedSequence, _packed_rows, gather_rows, scatter_rows

# autocast's name for each recurrence (all run in the lower precision, like PyTorch's cells)
_AMP_OP = {"LSTM": "lstm_cell", "GRU": "gru_cell", "RNN_TANH": "rnn_tanh_cell", "RNN_RELU": "rnn_relu_cell"}



def _check_state_dtype(name, which, state, x):
    """A state of another dtype than the input is refused (PyTorch raises too); without the check the
    recurrence ran and returned states and outputs of different dtypes. Under autocast, float16 and
    float32 mix freely (both are cast to the autocast dtype)."""
    if state.dtype == x.dtype:
        return
    low = ("float16", "float32")
    if (is_autocast_enabled("cpu") or is_autocast_enabled("cuda")) and state.dtype.name in low \
            and x.dtype.name in low:
        return
    raise RuntimeError(f"{name}: {which} dtype {state.dtype} does not match the input dtype {x.dtype}")


# --------------------------------------------------------------------------------------- layers


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU (parameter layout as PyTorch's ``RNNBase``).

    Parameters per layer ``k`` and direction (suffix ``""`` or ``"_reverse"``): ``weight_ih_l{k}``
    ``(G·H, I_k)``, ``weight_hh_l{k}`` ``(G·H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(G·H,)``,
    with ``G`` = 4 (LSTM), 3 (GRU) or 1 and ``I_k`` = input_size for k = 0, else ``D·H``; all drawn
    from U(-1/sqrt(H), 1/sqrt(H)). An LSTM with ``proj_size = P > 0`` also has ``weight_hr_l{k}``
    ``(P, H)``; its outputs and hidden states then have size P (``weight_hh`` is ``(4H, P)``).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
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
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                in_size = input_size if layer == 0 else real_hidden * num_directions
                sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                shapes = [(gate, in_size), (gate, real_hidden)]
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    shapes += [(gate,), (gate,)]
                if proj_size > 0:
                    names.append(f"weight_hr{sfx}")
                    shapes.append((proj_size, hidden_size))
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
        names += [f"bias_ih{sfx}", f"bias_hh{sfx}"] if self.bias else []
        return names + ([f"weight_hr{sfx}"] if self.proj_size > 0 else [])

    def _weights(self, layer, direction):
        """[w_ih, w_hh, b_ih, b_hh] (biases None without bias), then w_hr with projections."""
        sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        ws = [getattr(self, f"weight_ih{sfx}"), getattr(self, f"weight_hh{sfx}")]
        ws += [getattr(self, f"bias_ih{sfx}"), getattr(self, f"bias_hh{sfx}")] if self.bias else [None, None]
        return ws + ([getattr(self, f"weight_hr{sfx}")] if self.proj_size > 0 else [])

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
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
        op = _AMP_OP.get(self.mode, "rnn_tanh_cell")
        xc, wc = cast_inputs(op, x, self.weight_ih_l0)  # under autocast both go to its dtype
        if xc.dtype != wc.dtype:
            raise RuntimeError(f"{type(self).__name__}: input dtype {x.dtype} does not match the "
                               f"parameters' dtype {self.weight_ih_l0.dtype}")
        D = 2 if self.bidirectional else 1
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise RuntimeError(f"{type(self).__name__}: Expected sequence length to be larger than 0 in RNN "
                               f"(input of size {list(input.shape)})")
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
                args = cast_inputs(op, x, *init_states, *w)
                res = seq_cls(batch_sizes=batch_sizes, reverse=d == 1, **extra)(*args)
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
        # h has the projected size with proj_size > 0; c always has hidden_size.
        h_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        shapes = [(self.num_layers * D, B, h_size), (self.num_layers * D, B, self.hidden_size)][:n_states]
        if hx is None:
            return [zeros(*shape, dtype=x.dtype, device=x.device) for shape in shapes]
        hs = list(hx) if n_states == 2 else [hx]
        if len(hs) != n_states:
            raise ValueError(f"{type(self).__name__}: expected {n_states} initial state tensors")
        out = []
        for h, shape in zip(hs, shapes):
            if how[0] == "unbatched":
                if h.dim() != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {h.dim()}-D "
                                       "tensor")
                h = h.unsqueeze(1)
            if tuple(h.shape) != shape:
                raise RuntimeError(f"Expected hidden size {shape}, got {tuple(h.shape)}")
            _check_state_dtype(type(self).__name__, "hx", h, x)
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
        name = type(self).__name__
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size} (input of size {list(input.shape)})")
        x = input.reshape(1, 1, input.shape[-1]) if unbatched else input.unsqueeze(0)
        B = x.shape[1]
        if states is None:
            states = [zeros(B, self.hidden_size, dtype=x.dtype, device=x.device)] * kw.pop("n", 1)
        else:
            kw.pop("n", None)
            for j, s in enumerate(states):
                # PyTorch's checks: a state of another batch size or width must not broadcast silently
                if s.dim() != input.dim():
                    raise RuntimeError(f"{name}: Expected hidden{j} to be {input.dim()}-D for "
                                       f"{input.dim()}-D input, got size {list(s.shape)}")
                if s.shape[-1] != self.hidden_size:
                    raise RuntimeError(f"{name}: hidden{j} has inconsistent hidden_size: got {s.shape[-1]}, "
                                       f"expected {self.hidden_size}")
                if not unbatched and s.shape[0] != B:
                    raise RuntimeError(f"{name}: Input batch size {B} doesn't match hidden{j} batch size "
                                       f"{s.shape[0]}")
                _check_state_dtype(name, f"hidden{j}", s, x)
            states = [s.unsqueeze(0) if unbatched else s for s in states]
        op = {_LSTMSeq: "lstm_cell", _GRUSeq: "gru_cell"}.get(seq_cls, "rnn_tanh_cell")
        res = seq_cls(batch_sizes=None, reverse=False, **kw)(
            *cast_inputs(op, x, *states, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh))
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
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity} (use 'tanh' or 'relu')")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        (h,) = self._step(_RNNSeq, input, None if hx is None else [hx], nonlinearity=self.nonlinearity)
        return h
