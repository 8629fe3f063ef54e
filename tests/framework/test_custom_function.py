"""Custom autograd Functions written in PyTorch's style (static ``forward(ctx, ...)`` / ``backward(ctx, ...)``
on Tensors, ``ctx.save_for_backward``, ``Function.apply``): the same class body runs on both frameworks and
gives the same values, gradients and second derivatives; non-differentiable outputs, non-tensor arguments,
once_differentiable, version checks of saved tensors, and the errors."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for custom Functions")


def _functions(lib):
    """The same source for both libraries (only the module differs), as a user would write it."""

    class ScaledExp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale):
            y = x.exp() * scale
            ctx.save_for_backward(y)
            ctx.scale = scale
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y, None

    class MulAdd(lib.autograd.Function):
        """Two outputs of two inputs; saves an input and an output."""

        @staticmethod
        def forward(ctx, a, b):
            p, s = a * b, a + b
            ctx.save_for_backward(a, b, p)
            return p, s

        @staticmethod
        def backward(ctx, gp, gs):
            a, b, p = ctx.saved_tensors
            ga = gp * b + gs if ctx.needs_input_grad[0] else None
            gb = gp * a + gs if ctx.needs_input_grad[1] else None
            return ga, gb

    class SortWithIndex(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            values, idx = x.sort()
            ctx.mark_non_differentiable(idx)
            ctx.save_for_backward(idx)
            return values, idx

        @staticmethod
        def backward(ctx, g, _g_idx):
            (idx,) = ctx.saved_tensors
            out = g * 0
            out[idx] = g
            return out

    return ScaledExp, MulAdd, SortWithIndex


def _pair(a):
    return fw.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def test_values_gradients_and_second_derivatives_match_torch():
    fe, fm, fs = _functions(fw)
    te, tm, ts = _functions(torch)
    x = np.array([0.3, -1.2, 2.0])
    fx, tx = _pair(x)
    fy, ty = fe.apply(fx, 1.5), te.apply(tx, 1.5)
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    assert type(fy.grad_fn).__name__ == "ScaledExpBackward" == type(ty.grad_fn).__name__
    (fg,) = fw.autograd.grad(fy.sum(), fx, create_graph=True)
    (tg,) = torch.autograd.grad(ty.sum(), tx, create_graph=True)
    np.testing.assert_allclose(fg.detach().numpy(), tg.detach().numpy(), rtol=1e-12)
    (fg2,) = fw.autograd.grad((fg**2).sum(), fx)  # through the saved output, linked to the graph
    (tg2,) = torch.autograd.grad((tg**2).sum(), tx)
    np.testing.assert_allclose(fg2.numpy(), tg2.numpy(), rtol=1e-12)

    a, b = np.array([1.0, 2.0]), np.array([-3.0, 0.5])
    (fa, ta), (fb, tb) = _pair(a), _pair(b)
    fp, fsum = fm.apply(fa, fb)
    tp, tsum = tm.apply(ta, tb)
    ((fp * fsum).sum() + fp.sum()).backward()
    ((tp * tsum).sum() + tp.sum()).backward()
    np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(fb.grad.numpy(), tb.grad.numpy(), rtol=1e-12)
    fc = fw.tensor(b)  # needs_input_grad is False for it: its gradient is not computed
    fp2, _ = fm.apply(fa, fc)
    fp2.sum().backward()
    assert fc.grad is None

    v = np.array([3.0, 1.0, 2.0])
    (fv, tv) = _pair(v)
    fvals, fidx = fs.apply(fv)
    tvals, tidx = ts.apply(tv)
    assert not fidx.requires_grad and not tidx.requires_grad
    (fvals * fw.tensor(np.array([1.0, 10.0, 100.0]))).sum().backward()
    (tvals * torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(fv.grad.numpy(), tv.grad.numpy())


def test_no_graph_without_grad_and_once_differentiable():
    fe, _, _ = _functions(fw)
    y = fe.apply(fw.tensor([1.0]), 2.0)  # no input needs a gradient: a plain tensor
    assert y.grad_fn is None and not y.requires_grad
    with fw.no_grad():
        assert fe.apply(fw.tensor([1.0], requires_grad=True), 2.0).grad_fn is None

    class Square(fw.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @fw.autograd.once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = fw.tensor([3.0], requires_grad=True)
    (g,) = fw.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
    assert g.item() == 6.0 and not g.requires_grad  # first derivative right; no graph for a second
    with pytest.raises(RuntimeError):
        fw.autograd.grad(g.sum(), x)


def test_errors_of_custom_functions():
    class Wrong(fw.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, g):
            return g, g, g

    a, b = fw.tensor([1.0], requires_grad=True), fw.tensor([2.0], requires_grad=True)
    with pytest.raises(
        RuntimeError, match="returned an incorrect number of gradients \\(expected 2, got 3\\)"
    ):
        Wrong.apply(a, b).sum().backward()

    class Saves(fw.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2

    x = fw.tensor([1.0], requires_grad=True)
    h = x * 1
    y = Saves.apply(h)
    h.add_(1)  # the saved input changed after the forward
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()

    class NotTensor(fw.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return 3

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(TypeError, match="forward must return Tensors"):
        NotTensor.apply(fw.tensor([1.0], requires_grad=True))
