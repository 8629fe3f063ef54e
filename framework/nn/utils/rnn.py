"""Variable-length sequences: PackedSequence, pack/pad helpers (``torch.nn.utils.rnn``).

A PackedSequence stores the time steps of a batch sorted by decreasing length, one after the other:
``data`` is ``(sum(lengths), *)`` and ``batch_sizes[t]`` says how many sequences are still running at
step ``t``. All conversions here are differentiable (they are gathers with integer indices).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...autograd import Function
from ...backend import get_array_module
from ...ops import cat
from ...tensor import Tensor


class PackedSequence(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def to(self, *args, **kwargs):
        return PackedSequence(self.data.to(*args, **kwargs), self.batch_sizes,
                              self.sorted_indices, self.unsorted_indices)

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


class _GatherRows(Function):
    """``x[idx]`` along dim 0 for UNIQUE ``idx`` (so the backward is a plain scatter, not add.at)."""

    def forward(self, x):
        self.n = x.shape[0]
        return x[self.idx]

    def backward(self, g):
        return _ScatterRows(idx=self.idx, n=self.n, fill=0.0)(g)


class _ScatterRows(Function):
    """A ``(n, *)`` array filled with ``fill`` whose rows ``idx`` (unique) are ``x``'s rows."""

    def forward(self, x):
        xp = get_array_module(x)
        out = xp.full((self.n, *x.shape[1:]), self.fill, dtype=x.dtype)
        out[self.idx] = x
        return out

    def backward(self, g):
        return _GatherRows(idx=self.idx)(g)


def gather_rows(x: Tensor, idx: np.ndarray) -> Tensor:
    return _GatherRows(idx=_to_xp(idx, x))(x)


def scatter_rows(x: Tensor, idx: np.ndarray, n: int, fill: float = 0.0) -> Tensor:
    return _ScatterRows(idx=_to_xp(idx, x), n=n, fill=fill)(x)


def _to_xp(idx, like):
    from ...backend import to_device

    return to_device(idx, like.device) if like.device.type != "cpu" else idx


def _np_int(a) -> np.ndarray:
    if isinstance(a, Tensor):
        a = np.asarray(a.tolist())
    return np.asarray(a, dtype=np.int64).reshape(-1)


def _batch_sizes(lengths: np.ndarray) -> np.ndarray:
    """``batch_sizes[t] = #{b : lengths[b] > t}`` for sorted (or unsorted) lengths."""
    steps = np.arange(int(lengths.max()))
    return (lengths[None, :] > steps[:, None]).sum(1).astype(np.int64)


def _packed_rows(batch_sizes: np.ndarray, batch: int) -> np.ndarray:
    """Flat time-major indices ``t·batch + b`` of the packed rows, in packed order."""
    t = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    offsets = np.concatenate([[0], np.cumsum(batch_sizes)[:-1]])
    b = np.arange(int(batch_sizes.sum())) - np.repeat(offsets, batch_sizes)
    return t * batch + b


def invert_permutation(perm):
    if perm is None:
        return None
    p = _np_int(perm)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.size)
    return Tensor(inv)


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch ``(T, B, *)`` (or ``(B, T, *)`` with ``batch_first``) of sequences of
    the given ``lengths``. With ``enforce_sorted=False`` the batch is sorted here and the order is
    recorded in ``sorted_indices`` / ``unsorted_indices``."""
    lengths = _np_int(lengths)
    batch = int(input.shape[0 if batch_first else 1])
    if lengths.size != batch:  # checked first: the sort below would otherwise drop rows silently
        raise ValueError(f"pack_padded_sequence: Expected `len(lengths)` to be equal to batch_size, but got "
                         f"{lengths.size} (batch_size={batch}, input of size {list(input.shape)})")
    if lengths.size and lengths.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in "
                           "'lengths' that is <= 0")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when "
                               "`enforce_sorted` is True. You can pass `enforce_sorted=False` to "
                               "pack_padded_sequence and/or pack_sequence to sidestep this requirement "
                               "if you do not need ONNX exportability.")
        sorted_idx = None
    else:
        sorted_idx = np.argsort(-lengths, kind="stable")
        lengths = lengths[sorted_idx]
    bdim = 0 if batch_first else 1
    if sorted_idx is not None:
        input = input.index_select(bdim, Tensor(_to_xp(sorted_idx, input)))
    if batch_first:
        input = input.transpose(0, 1)
    T, B = int(input.shape[0]), int(input.shape[1])
    if lengths.size != B:
        raise ValueError(f"Expected `len(lengths)` to be equal to batch_size, but got {lengths.size} "
                         f"(batch_size={B})")
    if lengths.max() > T:
        raise RuntimeError(f"lengths (max {lengths.max()}) exceed the padded length {T}")
    bs = _batch_sizes(lengths)
    rows = _packed_rows(bs, B)
    data = gather_rows(input.reshape(T * B, *input.shape[2:]), rows)
    if sorted_idx is None:
        return PackedSequence(data, Tensor(bs), None, None)
    # Like PyTorch: batch_sizes on the CPU, the permutations on the data's device.
    return PackedSequence(data, Tensor(bs), Tensor(_to_xp(sorted_idx, data)),
                          Tensor(_to_xp(invert_permutation(sorted_idx).data, data)))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None):
    """Inverse of ``pack_padded_sequence``: ``(padded, lengths)`` in the original batch order."""
    data = sequence.data
    bs = _np_int(sequence.batch_sizes)
    B, T = int(bs[0]), len(bs)
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence "
                             f"in input, but got total_length={total_length} and max sequence length "
                             f"being {T}")
        T_out = total_length
    else:
        T_out = T
    rows = _packed_rows(bs, B)
    padded = scatter_rows(data, rows, T_out * B, padding_value).reshape(T_out, B, *data.shape[1:])
    lengths = (bs[None, :] > np.arange(B)[:, None]).sum(1).astype(np.int64)
    if sequence.unsorted_indices is not None:
        unsort = _np_int(sequence.unsorted_indices)
        padded = padded.index_select(1, Tensor(_to_xp(unsort, padded)))
        lengths = lengths[unsort]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, Tensor(lengths)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors ``(L_i, *)`` into ``(T, B, *)`` (or ``(B, T, *)``), padding with ``padding_value``."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    seqs = list(sequences)
    lengths = np.array([int(s.shape[0]) for s in seqs], dtype=np.int64)
    B, T = len(seqs), int(lengths.max())
    rest = tuple(seqs[0].shape[1:])
    # Destination row (b·T + t) of every element of the concatenated sequences.
    dest = np.concatenate([b * T + (np.arange(n) if padding_side == "right" else T - n + np.arange(n))
                           for b, n in enumerate(lengths)])
    out = scatter_rows(cat(seqs, 0), dest, B * T, padding_value).reshape(B, T, *rest)
    return out if batch_first else out.transpose(0, 1)


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of tensors ``(L_i, *)``."""
    lengths = [int(s.shape[0]) for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False):
    """Split a padded batch back into a list of tensors ``(L_i, *)``."""
    lengths = _np_int(lengths)
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [padded_sequences[b, :int(n)] for b, n in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence):
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence", "invert_permutation"]
