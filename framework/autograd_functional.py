"""``framework.autograd.functional``: Jacobian-vector products, Jacobians and Hessians of a function,
as ``torch.autograd.functional`` (``vjp``, ``jvp``, ``jacobian``, ``hessian``, ``vhp``, ``hvp``).

Everything is built on reverse mode (``framework.autograd.grad``): ``jvp`` and ``hvp`` use the
double-backward trick (the gradient of a backward pass with respect to its own ``grad_outputs``),
exactly as PyTorch's versions do, so they need functions whose backward is differentiable, which every
framework operation is. Inputs may be one Tensor or a tuple of Tensors, and so may the function's
outputs; results mirror that nesting. ``create_graph=True`` returns results that are themselves
differentiable; ``strict=True`` raises where an output does not depend on an input instead of returning
zeros.

Differences from PyTorch: ``vectorize=True`` is accepted and computes the same result with one backward
pass per row (there is no vmap here), and ``strategy="forward-mode"`` raises NotImplementedError (there
is no forward-mode AD here).
"""

from __future__ import annotations

from .autograd import enable_grad, grad, is_grad_enabled, set_grad_enabled

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


def _as_tuple(value, what: str, fn_name: str):
    """``(was_a_tuple, tuple_of_tensors)``; a TypeError names the offending element."""
    from .tensor import Tensor

    is_tuple = isinstance(value, tuple)
    values = value if is_tuple else (value,)
    for i, v in enumerate(values):
        if not isinstance(v, Tensor):
            where = f"the value at index {i}" if is_tuple else f"the given {what}"
            raise TypeError(f"The {what} given to {fn_name} must be either a Tensor or a tuple of Tensors "
                            f"but {where} has type {type(v)}.")
    return is_tuple, values


def _unpack(res, was_tuple):
    """Undo ``_as_tuple``: ``was_tuple`` is a bool, or ``(outer, inner)`` for nested results."""
    if isinstance(was_tuple, tuple):
        outer, inner = was_tuple
        if not inner:
            res = tuple(r[0] for r in res)
        return res if outer else res[0]
    return res if was_tuple else res[0]


def _prepare(tensors, create_graph: bool, need_graph: bool):
    """New tensor objects for the function to work on: differentiable aliases of the caller's tensors
    when building a graph through them, otherwise detached copies (that require grad iff
    ``need_graph``). Always new objects, so that tensors the function captures from outside are told
    apart from its arguments."""
    return tuple(t.view_as(t) if create_graph and t.requires_grad else t.detach().requires_grad_(need_graph)
                 for t in tensors)


def _finish(tensors, create_graph: bool):
    """Detach results (nested tuples too) unless the caller asked for a graph."""
    from .tensor import Tensor

    if create_graph:
        return tensors
    return tuple(t.detach() if isinstance(t, Tensor) else _finish(t, create_graph) for t in tensors)


def _check_v(v, like, like_is_tuple: bool) -> None:
    if len(v) != len(like):
        if like_is_tuple:
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(like)} but got {len(v)}.")
        raise RuntimeError("The given v should contain a single Tensor.")
    for i, (a, b) in enumerate(zip(v, like)):
        if tuple(a.shape) != tuple(b.shape):
            where = f"Entry {i} in " if like_is_tuple else ""
            raise RuntimeError(f"{where}v has invalid size: should be {tuple(b.shape)} but got "
                               f"{tuple(a.shape)}.")


_NOT_REQUIRING = {
    "outputs": "Output {i} of the user-provided function does not require gradients. The outputs must "
               "be computed in a differentiable manner from the input when running in strict mode.",
    "grad_inputs": "The gradient with respect to input {i} is independent of the inputs of the "
                   "user-provided function. This is not allowed in strict mode.",
    "jacobian": "While computing the hessian, found that the jacobian of the user-provided function with "
                "respect to input {i} is independent of the input. This is not allowed in strict mode "
                "(the function must be twice differentiable with a jacobian that depends on the inputs; "
                "a linear function violates this).",
    "hessian": "The hessian of the user-provided function with respect to input {i} is independent of "
               "the input. This is not allowed in strict mode (the function must be thrice "
               "differentiable with a hessian that depends on the inputs).",
}


def _check_requires_grad(tensors, kind: str, strict: bool) -> None:
    """strict mode: every one of ``tensors`` must exist and depend on the inputs."""
    if not strict:
        return
    for i, t in enumerate(tensors):
        if t is None:
            raise RuntimeError(f"The output of the user-provided function is independent of input {i}. "
                               "This is not allowed in strict mode.")
        if not t.requires_grad:
            raise RuntimeError(_NOT_REQUIRING[kind].format(i=i))


def _grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None):
    """``grad`` that skips outputs without a graph and returns None for inputs they do not reach."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o is not None and o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    return grad([o for o, _ in pairs], list(inputs), [g for _, g in pairs], retain_graph=retain_graph,
                create_graph=create_graph, allow_unused=True)


_INDEPENDENT = {
    "back": "The output of the user-provided function is independent of input {i}. This is not allowed "
            "in strict mode.",
    "back_trick": "The gradient with respect to the input is independent of entry {i} in the "
                  "grad_outputs when using the double backward trick to compute forward mode gradients. "
                  "This is not allowed in strict mode.",
    "double_back": "The jacobian of the user-provided function is independent of input {i}. This is not "
                   "allowed in strict mode.",
    "double_back_trick": "The hessian of the user-provided function is independent of entry {i} in the "
                         "grad_jacobian. This is not allowed in strict mode as it prevents from using "
                         "the double backward trick to replace forward mode AD.",
}


def _zeros_for_none(grads, like, strict: bool, create_graph: bool, stage: str):
    """Missing gradients become zeros shaped like ``like[i]`` (or an error in strict mode)."""
    from .tensor import zeros_like

    out = []
    for i, g in enumerate(grads):
        if g is None:
            if strict:
                raise RuntimeError(_INDEPENDENT[stage].format(i=i))
            g = zeros_like(like[i])
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if "double" in stage else "jacobian"
            raise RuntimeError(f"The {what} of the user-provided function is independent of input {i}. "
                               "This is not allowed in strict mode when create_graph=True.")
        out.append(g)
    return tuple(out)


def _grad_mode_for(create_graph: bool):
    return set_grad_enabled(True if create_graph else is_grad_enabled())


def _no_v_check(v, tensors, what: str) -> None:
    if v is None and (len(tensors) != 1 or tensors[0].numel() != 1):
        raise RuntimeError(f"The vector v can only be None if {what} a single Tensor with a single element.")


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``v^T J``: the vector-Jacobian product of ``func`` at ``inputs``.

    Returns ``(func_output, vjp)``; ``vjp`` has the shapes of ``inputs``. ``v`` has the shapes of the
    outputs and may be omitted when ``func`` returns a single one-element tensor.
    """
    with enable_grad():
        in_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "vjp")
        _check_requires_grad(outputs, "outputs", strict)
        if v is not None:
            v = _prepare(_as_tuple(v, "v", "vjp")[1], create_graph, need_graph=False)
            _check_v(v, outputs, out_tuple)
        else:
            _no_v_check(v, outputs, "the user-provided function returns")
    with _grad_mode_for(create_graph):
        res = _grad(outputs, inputs, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "back")
    return (_unpack(_finish(outputs, create_graph), out_tuple),
            _unpack(_finish(res, create_graph), in_tuple))


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``J v``: the Jacobian-vector product of ``func`` at ``inputs`` (by the double-backward trick).

    Returns ``(func_output, jvp)``; ``jvp`` has the shapes of the outputs. ``v`` has the shapes of
    ``inputs`` and may be omitted when the input is a single one-element tensor.
    """
    from .tensor import zeros_like

    with enable_grad():
        in_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        if v is not None:
            v = _prepare(_as_tuple(v, "v", "jvp")[1], create_graph, need_graph=False)
            _check_v(v, inputs, in_tuple)
        else:
            _no_v_check(v, inputs, "the input to the user-provided function is")
        out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "jvp")
        _check_requires_grad(outputs, "outputs", strict)
        # The backward pass is linear in its grad_outputs: their value does not matter (zeros keep
        # inf and nan out), only that the pass is recorded as a function of them.
        grad_outputs = tuple(zeros_like(o, requires_grad=True) for o in outputs)
        grad_inputs = _grad(outputs, inputs, grad_outputs, create_graph=True)
        _check_requires_grad(grad_inputs, "grad_inputs", strict)
    with _grad_mode_for(create_graph):
        res = _grad(grad_inputs, grad_outputs, v, create_graph=create_graph)
        res = _zeros_for_none(res, outputs, strict, create_graph, "back_trick")
    return (_unpack(_finish(outputs, create_graph), out_tuple),
            _unpack(_finish(res, create_graph), out_tuple))


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``.

    For one input and one output: a tensor of shape ``output.shape + input.shape``. With a tuple of
    inputs (or outputs) a tuple over them; with both, ``J[i][j]`` is d output_i / d input_j. Entries have
    the dtype of their input. ``vectorize=True`` gives the same values, still one backward pass per
    output element here (PyTorch batches them with vmap); ``strategy="forward-mode"`` is not supported.
    """
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode". Hint: If your '
                         'function has more outputs than inputs, "forward-mode" tends to be more '
                         'performant. Otherwise, prefer to use "reverse-mode".')
    if strategy == "forward-mode":
        raise NotImplementedError('jacobian: strategy="forward-mode" is not supported (this framework '
                                  'has no forward-mode AD); use strategy="reverse-mode"')
    if vectorize and strict:
        raise RuntimeError("jacobian: `strict=True` and `vectorize=True` are not supported together. "
                           "Please either set `strict=False` or `vectorize=False`.")
    from .ops import stack
    from .tensor import eye, zeros

    with enable_grad():
        in_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "jacobian")
        _check_requires_grad(outputs, "outputs", strict)

        jac = []
        for i, out in enumerate(outputs):
            n = out.numel()
            rows = [[] for _ in inputs]
            if n and out.requires_grad:
                flat = out.reshape(-1)
                basis = eye(n, dtype=out.dtype, device=out.device)  # row j: the gradient of element j
                for j in range(n):
                    vj = _grad((flat,), inputs, (basis[j],), create_graph=create_graph, retain_graph=True)
                    for k, (g, inp) in enumerate(zip(vj, inputs)):
                        if g is None:
                            if strict:
                                raise RuntimeError(f"Output {i} of the user-provided function is "
                                                   f"independent of input {k}. This is not allowed in "
                                                   "strict mode.")
                            g = zeros(tuple(inp.shape), dtype=inp.dtype, device=inp.device)
                        elif strict and create_graph and not g.requires_grad:
                            raise RuntimeError(f"The jacobian of the user-provided function is "
                                               f"independent of input {k}. This is not allowed in "
                                               "strict mode when create_graph=True.")
                        rows[k].append(g)
            jac.append(tuple(
                stack(r, 0).reshape(tuple(out.shape) + tuple(inp.shape)) if r else
                zeros(tuple(out.shape) + tuple(inp.shape), dtype=inp.dtype, device=inp.device)
                for r, inp in zip(rows, inputs)))
        return _unpack(_finish(tuple(jac), create_graph), (out_tuple, in_tuple))


def hessian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of the scalar function ``func`` at ``inputs``: the Jacobian of its gradient.

    For one input: a tensor of shape ``input.shape + input.shape``; for a tuple of inputs, ``H[i][j]`` of
    shape ``input_i.shape + input_j.shape``.
    """
    in_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    if outer_jacobian_strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode".')

    def scalar_func(*inp):
        out = func(*inp)
        out_tuple, outs = _as_tuple(out, "outputs of the user-provided function", "hessian")
        _check_requires_grad(outs, "outputs", strict)
        if out_tuple:
            raise RuntimeError("The function given to hessian should return a single Tensor")
        if out.numel() != 1:
            raise RuntimeError("The Tensor returned by the function given to hessian should contain a "
                               "single element")
        return out.reshape(())

    def gradient(*inp):
        jac = jacobian(scalar_func, inp, create_graph=True)
        _check_requires_grad(jac, "jacobian", strict)
        return jac

    res = jacobian(gradient, inputs, create_graph=create_graph, strict=strict, vectorize=vectorize,
                   strategy=outer_jacobian_strategy)
    return _unpack(res, (in_tuple, in_tuple))


def _scalar_output(func, inputs, name: str, strict: bool):
    out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", name)
    _check_requires_grad(outputs, "outputs", strict)
    if out_tuple:
        raise RuntimeError(f"The function given to {name} should return a single Tensor")
    if outputs[0].numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {name} should contain a single "
                           "element")
    return out_tuple, outputs


def _hessian_setup(func, inputs, v, create_graph, strict, name):
    in_tuple, inputs = _as_tuple(inputs, "inputs", name)
    inputs = _prepare(inputs, create_graph, need_graph=True)
    if v is not None:
        v = _prepare(_as_tuple(v, "v", name)[1], create_graph, need_graph=False)
        _check_v(v, inputs, in_tuple)
    else:
        _no_v_check(v, inputs, "the input to the user-provided function is")
    out_tuple, outputs = _scalar_output(func, inputs, name, strict)
    jac = _grad(outputs, inputs, create_graph=True)
    _check_requires_grad(jac, "jacobian", strict)
    return in_tuple, inputs, v, out_tuple, outputs, jac


def vhp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``v^T H``: the vector-Hessian product of the scalar function ``func`` at ``inputs``.

    Returns ``(func_output, vhp)``; ``vhp`` has the shapes of ``inputs``.
    """
    with enable_grad():
        in_tuple, inputs, v, out_tuple, outputs, jac = _hessian_setup(func, inputs, v, create_graph,
                                                                      strict, "vhp")
    with _grad_mode_for(create_graph):
        res = _grad(jac, inputs, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "double_back")
    return (_unpack(_finish(outputs, create_graph), out_tuple),
            _unpack(_finish(res, create_graph), in_tuple))


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``H v``: the Hessian-vector product of the scalar function ``func`` at ``inputs``, by the
    double-backward trick (for a twice continuously differentiable function it equals ``vhp``, which
    is cheaper).

    Returns ``(func_output, hvp)``; ``hvp`` has the shapes of ``inputs``.
    """
    from .tensor import zeros_like

    with enable_grad():
        in_tuple, inputs, v, out_tuple, outputs, jac = _hessian_setup(func, inputs, v, create_graph,
                                                                      strict, "hvp")
        grad_jac = tuple(zeros_like(t, requires_grad=True) for t in inputs)
        double_back = _grad(jac, inputs, grad_jac, create_graph=True)
        _check_requires_grad(jac, "hessian", strict)
    with _grad_mode_for(create_graph):
        res = _grad(double_back, grad_jac, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "double_back_trick")
    return (_unpack(_finish(outputs, create_graph), out_tuple),
            _unpack(_finish(res, create_graph), in_tuple))
