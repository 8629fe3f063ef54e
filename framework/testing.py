"""Gradient checks by central finite differences, as ``torch.autograd.gradcheck`` / ``gradgradcheck``.

``gradcheck(func, inputs)`` compares, for every input that requires grad, the analytical Jacobian
(one backward pass per output element) with the numerical one, (f(x + eps) - f(x - eps)) / (2 eps)
per input element. Use float64 inputs: in float32 the finite differences are too coarse.
``gradgradcheck`` applies the same check to the function that maps (inputs, grad_outputs) to the
first derivatives computed with ``create_graph=True``.
"""

from __future__ import annotations

import numpy as np

from .autograd import grad as _grad
from .backend import get_array_module
from .tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """Raised by gradcheck / gradgradcheck when the Jacobians disagree."""


def _tuple(x):
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _outputs(func, inputs):
    out = func(*inputs)
    return _tuple(out) if isinstance(out, (Tensor, tuple, list)) else (out,)


def _differentiable(outs):
    return [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.data.dtype.kind == "f"]


def _to_host(a):
    xp = get_array_module(a)
    return a if xp is np else a.get()


def _numerical(func, inputs, diff_inputs, out_idx, eps):
    """Numerical Jacobians J[i][o] of shape (numel(out o), numel(input i))."""
    base = _outputs(func, inputs)
    sizes = [base[o].numel() for o in out_idx]
    jac = []
    for i in diff_inputs:
        x = inputs[i]
        n = x.numel()
        cols = [np.zeros((s, n)) for s in sizes]
        for k in range(n):
            pos = np.unravel_index(k, tuple(x.shape)) if x.ndim else ()
            orig = x.data[pos].item() if x.ndim else x.data.item()
            x.data[pos] = orig + eps
            plus = _outputs(func, inputs)
            x.data[pos] = orig - eps
            minus = _outputs(func, inputs)
            x.data[pos] = orig
            for c, o in zip(cols, out_idx):
                d = (_to_host(plus[o].data).astype(np.float64) - _to_host(minus[o].data).astype(np.float64))
                c[:, k] = d.reshape(-1) / (2 * eps)
        jac.append(cols)
    return jac


def _analytical(func, inputs, diff_inputs, out_idx):
    outs = _outputs(func, inputs)
    wrt = [inputs[i] for i in diff_inputs]
    jac = [[np.zeros((outs[o].numel(), inputs[i].numel())) for o in out_idx] for i in diff_inputs]
    for oj, o in enumerate(out_idx):
        y = outs[o]
        if not y.requires_grad:
            continue  # constant output: its Jacobian is zero
        xp = get_array_module(y.data)
        for r in range(y.numel()):
            g = xp.zeros(y.data.shape, dtype=y.data.dtype)
            g.reshape(-1)[r] = 1
            grads = _grad([y], wrt, [Tensor(g)], retain_graph=True, allow_unused=True)
            for ii, gx in enumerate(grads):
                if gx is not None:
                    jac[ii][oj][r] = _to_host(gx.data).astype(np.float64).reshape(-1)
    return jac


def _check(func, inputs, eps, atol, rtol, raise_exception, what):
    inputs = _tuple(inputs)
    diff_inputs = [i for i, x in enumerate(inputs)
                   if isinstance(x, Tensor) and x.requires_grad and x.data.dtype.kind == "f"]
    if not diff_inputs:
        raise ValueError(f"{what}: at least one input tensor should require grad")
    outs = _outputs(func, inputs)
    out_idx = _differentiable(outs)
    num = _numerical(func, inputs, diff_inputs, out_idx, eps)
    ana = _analytical(func, inputs, diff_inputs, out_idx)
    for ii, i in enumerate(diff_inputs):
        for oj, o in enumerate(out_idx):
            n, a = num[ii][oj], ana[ii][oj]
            bad = np.abs(a - n) > atol + rtol * np.abs(n)
            if bad.any():
                r, k = np.argwhere(bad)[0]
                pos = np.unravel_index(k, tuple(inputs[i].shape)) if inputs[i].ndim else ()
                msg = (f"{what}: Jacobian mismatch for output {o} with respect to input {i} "
                       f"(shape {tuple(inputs[i].shape)}): at output element {r}, input element "
                       f"{tuple(int(p) for p in pos)}: numerical {n[r, k]:.8g} vs analytical {a[r, k]:.8g} "
                       f"({int(bad.sum())} of {bad.size} entries differ; atol={atol}, rtol={rtol}).\n"
                       f"numerical:\n{n}\nanalytical:\n{a}")
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, **_ignored) -> bool:
    """True when the analytical and numerical Jacobians of ``func`` agree; otherwise raises
    ``GradcheckError`` naming the output, the input and the element (or returns False when
    ``raise_exception=False``). ``inputs``: a Tensor or a tuple (tensors that require grad are
    checked; other arguments are passed through)."""
    return _check(func, inputs, eps, atol, rtol, raise_exception, "gradcheck")


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, gen_non_contig_grad_outputs: bool = False,
                  raise_exception: bool = True, seed: int = 0, **_ignored) -> bool:
    """Check second derivatives: gradcheck of (inputs, grad_outputs) -> d<func(inputs), grad_outputs>/d
    inputs, the first derivatives being computed with ``create_graph=True``. Random grad_outputs
    (seeded, in the outputs' dtype) are drawn when none are given."""
    inputs = _tuple(inputs)
    outs = _outputs(func, inputs)
    out_idx = [o for o in _differentiable(outs) if outs[o].requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = []
        for o in out_idx:
            xp = get_array_module(outs[o].data)
            g = xp.asarray(rng.standard_normal(tuple(outs[o].shape)).astype(outs[o].data.dtype))
            grad_outputs.append(Tensor(g, requires_grad=True))
    grad_outputs = _tuple(grad_outputs)
    n_in = len(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]

    def first_derivatives(*args):
        xs, gos = args[:n_in], args[n_in:]
        ys = _outputs(func, xs)
        ys = [ys[o] for o in out_idx]
        wrt = [xs[i] for i in diff]
        gs = _grad(ys, wrt, list(gos), create_graph=True, allow_unused=True)
        res = []
        for i, g in zip(diff, gs):
            if g is None:
                xp = get_array_module(xs[i].data)
                g = Tensor(xp.zeros(xs[i].data.shape, dtype=xs[i].data.dtype))
            res.append(g)
        return tuple(res)

    return _check(first_derivatives, inputs + grad_outputs, eps, atol, rtol, raise_exception,
                  "gradgradcheck")
