"""Compare a framework function with its PyTorch counterpart: forward values and input gradients.

Used by the functional tests (imported as a sibling module). PyTorch is the oracle only here.
"""

from __future__ import annotations

import numpy as np

import framework as fw

TOL = {np.float64: (1e-9, 1e-10), np.float32: (2e-4, 2e-5)}


class Const:
    """Wrap an array that is passed to both libraries without requiring grad (e.g. class weights)."""

    def __init__(self, a):
        self.a = a


def _to(a, lib, dtype):
    import torch

    if isinstance(a, Const):
        a = a.a.astype(dtype) if a.a.dtype.kind == "f" else a.a
        return fw.tensor(a) if lib == "fw" else torch.tensor(a)
    if not isinstance(a, np.ndarray):
        return a
    if a.dtype.kind == "f":
        a = a.astype(dtype)
        if lib == "fw":
            return fw.tensor(a, requires_grad=True)
        return torch.tensor(a, requires_grad=True)
    return fw.tensor(a) if lib == "fw" else torch.tensor(a)


def _as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def check(fw_fn, torch_fn, args, dtype=np.float64, grad=True, rtol=None, atol=None, seed=0):
    """Run both on the same arrays (float arrays become leaves requiring grad) and compare outputs and
    the gradients of sum(y * g) for a random g. Returns the framework outputs."""
    import torch

    r0, a0 = TOL[dtype]
    rtol = r0 if rtol is None else rtol
    atol = a0 if atol is None else atol
    fa = [_to(a, "fw", dtype) for a in args]
    ta = [_to(a, "torch", dtype) for a in args]
    ys, tys = _as_tuple(fw_fn(*fa)), _as_tuple(torch_fn(*ta))
    assert len(ys) == len(tys)
    for i, (y, ty) in enumerate(zip(ys, tys)):
        assert tuple(y.shape) == tuple(ty.shape), f"output {i}: shape {tuple(y.shape)} vs {tuple(ty.shape)}"
        np.testing.assert_allclose(
            y.detach().numpy(), ty.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"output {i} differs"
        )
    if not grad:
        return ys
    rng = np.random.default_rng(seed)
    loss_fw, loss_th = 0, 0
    for y, ty in zip(ys, tys):
        if not ty.requires_grad:
            continue
        g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
        loss_fw = loss_fw + (y * fw.tensor(g)).sum()
        loss_th = loss_th + (ty * torch.tensor(g)).sum()
    loss_fw.backward()
    loss_th.backward()
    for i, (f, t) in enumerate(zip(fa, ta)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            if t.grad is None:
                assert f.grad is None or not np.any(f.grad.numpy()), f"input {i}: torch has no gradient"
                continue
            assert f.grad is not None, f"input {i}: no gradient"
            np.testing.assert_allclose(
                f.grad.numpy(),
                t.grad.numpy(),
                rtol=rtol,
                atol=atol * 10,
                err_msg=f"gradient of input {i} differs",
            )
    return ys


def torchvision_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss (Lin et al. 2017), written out with torch tensors (torchvision is
    not a dependency)."""
    import torch
    import torch.nn.functional as TF

    p = torch.sigmoid(inputs)
    ce = TF.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def both(f):
    """``f(L, *args)`` written once: the pair (L = framework, L = torch) that :func:`check` takes."""
    import torch

    return (lambda *a: f(fw, *a)), (lambda *a: f(torch, *a))
