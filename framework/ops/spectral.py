"""Short-time Fourier transforms (``torch.stft`` / ``torch.istft``), built from differentiable pieces:
padding, framing (``Tensor.unfold``), windowing, ``fw.fft`` and an overlap-add by scatter-add, so
their gradients come from those operations' own."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor

__all__ = ["stft", "istft"]


def _window(window, win_length, n_fft, dtype, device, name):
    """The window padded with zeros on both sides to n_fft (centred, as PyTorch)."""
    from ..tensor import ones

    if window is None:
        window = ones(win_length, dtype=dtype, device=device)
    elif window.ndim != 1 or window.shape[0] != win_length:
        raise RuntimeError(f"{name}: expected a 1-D window of size win_length={win_length}, got shape "
                           f"{tuple(window.shape)}")
    if win_length < n_fft:
        from ..functional import pad

        left = (n_fft - win_length) // 2
        window = pad(window, (left, n_fft - win_length - left))
    return window


def _lengths(n_fft, hop_length, win_length, name):
    if not isinstance(n_fft, (int, np.integer)) or n_fft < 1:
        raise RuntimeError(f"{name}: expected 0 < n_fft, got n_fft={n_fft}")
    hop = n_fft // 4 if hop_length is None else hop_length
    win = n_fft if win_length is None else win_length
    if hop < 1:
        raise RuntimeError(f"{name}: expected hop_length > 0, got {hop}")
    if not 0 < win <= n_fft:
        raise RuntimeError(f"{name}: expected 0 < win_length <= n_fft, got win_length={win}, n_fft={n_fft}")
    return int(n_fft), int(hop), int(win)


def stft(input, n_fft, hop_length=None, win_length=None, window=None, center=True, pad_mode="reflect",
         normalized=False, onesided=None, return_complex=None):
    """Spectra of windowed frames: (n_freq, n_frames), or (B, n_freq, n_frames) for a batch of signals.

    Frame t covers samples [t * hop, t * hop + n_fft) of the signal (padded by n_fft // 2 on each side
    with ``pad_mode`` when ``center``); n_freq is n_fft // 2 + 1 when ``onesided`` (the default for
    real signals and windows), else n_fft. ``normalized`` scales by n_fft ** -0.5. As in PyTorch 2,
    ``return_complex`` must be given for real input; False returns ``view_as_real`` of the result."""
    from ..fft import fft, rfft
    from ..functional import pad
    from .complexops import view_as_real
    from .shape import transpose

    n_fft, hop, win = _lengths(n_fft, hop_length, win_length, "stft")
    is_c = input.data.dtype.kind == "c" or (window is not None and window.data.dtype.kind == "c")
    if return_complex is None:
        if not is_c:
            raise RuntimeError("stft requires the return_complex parameter be given for real inputs, and "
                               "will further require that return_complex=True in a future PyTorch release.")
        return_complex = True
    if input.ndim not in (1, 2):
        raise RuntimeError(f"stft: expected a 1-D or 2-D tensor, got shape {tuple(input.shape)}")
    x = input if input.ndim == 2 else input.reshape(1, -1)
    if x.data.dtype.kind in "biu":
        raise RuntimeError(f"stft: expected a floating point or complex input, got {input.dtype}")
    if center:
        p = n_fft // 2
        x = pad(x.reshape(x.shape[0], 1, x.shape[1]), (p, p), mode=pad_mode).reshape(x.shape[0], -1)
    if x.shape[-1] < n_fft:
        raise RuntimeError(f"stft: input of {x.shape[-1]} samples (after padding) is shorter than "
                           f"n_fft={n_fft}")
    w = _window(window, win, n_fft, x.dtype if x.data.dtype.kind == "f" else x.dtype.to_real(), x.device,
                "stft")
    frames = x.unfold(-1, n_fft, hop) * w  # (B, n_frames, n_fft)
    if onesided is None:
        onesided = not is_c
    if onesided and is_c:
        raise RuntimeError("stft: cannot have onesided output if the window or the input is complex")
    spec = rfft(frames, dim=-1) if onesided else fft(frames, dim=-1)
    if normalized:
        spec = spec * float(n_fft) ** -0.5
    spec = transpose(spec, -1, -2)  # (B, n_freq, n_frames)
    if input.ndim == 1:
        spec = spec.reshape(spec.shape[1:])
    return spec if return_complex else view_as_real(spec.contiguous())


def istft(input, n_fft, hop_length=None, win_length=None, window=None, center=True, normalized=False,
          onesided=None, length=None, return_complex=False):
    """The inverse of stft by windowed overlap-add, divided by the summed squared window (which must
    not vanish anywhere in the output: the NOLA condition, checked as PyTorch does).

    ``length`` trims or zero-pads the result; without it, a centred transform drops n_fft // 2 samples
    at each end."""
    from ..fft import ifft, irfft
    from ..tensor import zeros
    from .shape import narrow, scatter_add, transpose

    n_fft, hop, win = _lengths(n_fft, hop_length, win_length, "istft")
    if input.data.dtype.kind != "c":
        raise RuntimeError("istft requires a complex-valued input tensor")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"istft: expected a 2-D or 3-D complex tensor (freq, frames), got shape "
                           f"{tuple(input.shape)}")
    spec = input if input.ndim == 3 else input.reshape((1,) + tuple(input.shape))
    n_freq, n_frames = spec.shape[1], spec.shape[2]
    if onesided is None:
        onesided = n_freq != n_fft
    if onesided and n_freq != n_fft // 2 + 1:
        raise RuntimeError(f"istft: expected the frequency dimension of a one-sided input to be "
                           f"n_fft // 2 + 1 = {n_fft // 2 + 1}, got {n_freq}")
    if not onesided and n_freq != n_fft:
        raise RuntimeError(f"istft: expected the frequency dimension to be n_fft = {n_fft}, got {n_freq}")
    if onesided and return_complex:
        raise RuntimeError("istft: cannot have onesided output if the window or the input is complex")
    real_dt = spec.dtype.to_real()
    w = _window(window, win, n_fft, real_dt, spec.device, "istft")
    if normalized:
        spec = spec * float(n_fft) ** 0.5
    frames_f = transpose(spec, -1, -2)  # (B, n_frames, n_freq)
    if return_complex:
        frames = ifft(frames_f, n=n_fft, dim=-1)
    else:  # (PyTorch's rule: a two-sided spectrum's first half, taken as Hermitian)
        if not onesided:
            frames_f = narrow(frames_f, -1, 0, n_fft // 2 + 1)
        frames = irfft(frames_f, n=n_fft, dim=-1)
    frames = frames * w
    total = n_fft + hop * (n_frames - 1)
    xp = get_array_module(spec.data)
    pos = (xp.arange(n_frames)[:, None] * hop + xp.arange(n_fft)[None, :]).reshape(-1).astype(np.int64)
    b = spec.shape[0]
    index = Tensor(xp.broadcast_to(pos, (b, pos.shape[0])).copy())
    y = scatter_add(zeros(b, total, dtype=frames.dtype, device=frames.device), 1, index,
                    frames.reshape(b, -1))
    wsq = (w.data * w.data.conj()).real if w.data.dtype.kind == "c" else w.data * w.data
    env = xp.bincount(pos, weights=xp.tile(wsq, n_frames), minlength=total).astype(wsq.dtype)
    start = n_fft // 2 if center else 0
    end = start + length if length is not None else (total - n_fft // 2 if center else total)
    stop = min(end, total)
    y = y[:, start:stop]
    env = env[start:stop]
    if env.size and float(xp.abs(env).min()) < 1e-11:
        raise RuntimeError("istft: window overlap add min: the summed squared window is below 1e-11 "
                           "somewhere (the window and hop_length do not satisfy the NOLA condition)")
    y = y / Tensor(env)
    if end > total:
        from ..functional import pad

        y = pad(y, (0, end - total))
    return y if input.ndim == 3 else y.reshape(-1)


# ----------------------------------------------------------------------------------- windows


def _window_grid(name, window_length, periodic):
    """(n, N): sample indices 0..L-1 and the period N (L for a periodic window, the spectral analysis
    convention; L - 1 for a symmetric one, the filter-design convention), in float64."""
    if not isinstance(window_length, (int, np.integer)) or window_length < 0:
        raise RuntimeError(f"{name} requires non-negative window_length, got window_length={window_length}")
    n = np.arange(int(window_length), dtype=np.float64)
    return n, float(window_length if periodic else window_length - 1)


def _window_tensor(values, window_length, dtype, device, requires_grad):
    from .. import dtypes as _dt
    from ..tensor import tensor

    if window_length == 1:
        values = np.ones(1)
    dt = dtype if dtype is not None else _dt.get_default_dtype()
    return tensor(values, dtype=dt, device=device, requires_grad=requires_grad)


def _cosine_sum(name, coefficients, window_length, periodic, dtype, device, requires_grad):
    n, N = _window_grid(name, window_length, periodic)
    w = np.zeros_like(n)
    for k, a in enumerate(coefficients):
        w += a * np.cos(2 * np.pi * k * n / max(N, 1.0))
    return _window_tensor(w, window_length, dtype, device, requires_grad)


def hann_window(window_length, periodic=True, *, dtype=None, device=None, requires_grad=False):
    """0.5 - 0.5 cos(2 pi n / N), as ``torch.hann_window``."""
    return _cosine_sum("hann_window", (0.5, -0.5), window_length, periodic, dtype, device, requires_grad)


def hamming_window(window_length, periodic=True, alpha=0.54, beta=0.46, *, dtype=None, device=None,
                   requires_grad=False):
    """alpha - beta cos(2 pi n / N), as ``torch.hamming_window``."""
    return _cosine_sum("hamming_window", (alpha, -beta), window_length, periodic, dtype, device,
                       requires_grad)


def blackman_window(window_length, periodic=True, *, dtype=None, device=None, requires_grad=False):
    """0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N), as ``torch.blackman_window``."""
    return _cosine_sum("blackman_window", (0.42, -0.5, 0.08), window_length, periodic, dtype, device,
                       requires_grad)


def bartlett_window(window_length, periodic=True, *, dtype=None, device=None, requires_grad=False):
    """The triangle 1 - |2n / N - 1|, as ``torch.bartlett_window``."""
    n, N = _window_grid("bartlett_window", window_length, periodic)
    return _window_tensor(1 - np.abs(2 * n / max(N, 1.0) - 1), window_length, dtype, device, requires_grad)


def kaiser_window(window_length, periodic=True, beta=12.0, *, dtype=None, device=None, requires_grad=False):
    """I0(beta sqrt(1 - (2n / N - 1)^2)) / I0(beta), as ``torch.kaiser_window``."""
    n, N = _window_grid("kaiser_window", window_length, periodic)
    r = 2 * n / max(N, 1.0) - 1
    w = np.i0(beta * np.sqrt(np.clip(1 - r * r, 0, None))) / np.i0(beta)
    return _window_tensor(w, window_length, dtype, device, requires_grad)


__all__ += ["hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window"]
