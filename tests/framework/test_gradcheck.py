"""fw.testing.gradcheck / gradgradcheck: they pass on correct gradients and catch wrong ones."""

import numpy as np
import pytest

import framework as fw
from framework.autograd import Function
from framework.testing import GradcheckError, gradcheck, gradgradcheck


def _t(a):
    return fw.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


class _WrongSquare(Function):
    """x^2 with a deliberately wrong gradient (3x instead of 2x)."""

    saves_inputs = (0,)

    def forward(self, x):
        return x * x

    def backward(self, g):
        (x,) = self.saved_tensors
        return 3 * g * x


class _RightSquareWrongSecond(Function):
    """x^2 whose backward is right in value but not differentiable correctly (detached x)."""

    saves_inputs = (0,)

    def forward(self, x):
        return x * x

    def backward(self, g):
        (x,) = self.saved_tensors
        return 2 * g * x.detach()


def test_gradcheck_passes_on_correct_functions(rng):
    x, y = _t(rng.standard_normal((3, 2))), _t(rng.standard_normal((2, 4)))
    assert gradcheck(lambda a, b: (a @ b).tanh(), (x, y))
    assert gradcheck(lambda a: (a.exp().sum(0), a.sin()), (x,))  # several outputs
    assert gradgradcheck(lambda a, b: (a @ b).sigmoid(), (x, y))


def test_gradcheck_names_input_and_element():
    x = _t([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(
        GradcheckError, match=r"output 0 with respect to input 1 \(shape \(2, 2\)\).*input element"
    ):
        gradcheck(lambda c, a: c * _WrongSquare()(a), (fw.tensor(2.0, dtype=fw.float64), x))
    assert gradcheck(lambda a: _WrongSquare()(a), (x,), raise_exception=False) is False


def test_gradgradcheck_catches_a_non_differentiable_backward():
    x = _t([0.5, -1.5, 2.0])
    assert gradcheck(lambda a: _RightSquareWrongSecond()(a), (x,))
    with pytest.raises(GradcheckError, match="gradgradcheck"):
        gradgradcheck(lambda a: _RightSquareWrongSecond()(a), (x,))


def test_gradgradcheck_with_given_grad_outputs_and_linear_functions(rng):
    x = _t(rng.standard_normal(4))
    go = _t(rng.standard_normal(4))
    assert gradgradcheck(lambda a: 3 * a, (x,), (go,))  # first derivative does not depend on x
    assert gradgradcheck(lambda a: a**3, (x,), (go,))


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="require grad"):
        gradcheck(lambda a: a * 2, (fw.tensor([1.0]),))


def test_fw_testing_namespace():
    assert fw.testing.gradcheck is gradcheck and fw.testing.gradgradcheck is gradgradcheck
