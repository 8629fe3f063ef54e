"""L-BFGS (Liu & Nocedal, 1989, "On the limited memory BFGS method for large scale optimization",
Math. Programming 45), with an optional strong Wolfe line search (Nocedal & Wright, Numerical
Optimization, 2nd ed., algorithms 3.5 and 3.6, cubic interpolation as in their eq. 3.59)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd import enable_grad
from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, scalar


class LBFGS(Optimizer):
    """Limited-memory BFGS, run for up to ``max_iter`` iterations per :meth:`step`.

    The direction is the two-loop recursion (Nocedal & Wright, algorithm 7.4) over the last
    ``history_size`` curvature pairs ``(s, y)`` (a pair is kept only when ``y . s > 1e-10``),
    scaled by ``H_diag = y . s / y . y``; the first direction is ``-g`` with a step
    ``min(1, 1 / |g|_1) * lr``, later ones ``lr``. With ``line_search_fn="strong_wolfe"`` the
    step is found by a strong Wolfe line search (``c1=1e-4``, ``c2=0.9``). An iteration stops on
    ``max |g| <= tolerance_grad``, a step or loss change below ``tolerance_change``, or after
    ``max_eval`` evaluations (default ``max_iter * 5 // 4``).

    ``step(closure)`` needs a closure that clears the gradients, computes the loss, calls
    ``backward()`` and returns the loss; it is called several times per step. All parameters
    form one group (no per-parameter options), as in PyTorch, and must share a device.

    Scalars (``y . s``, step sizes, ...) are kept in the parameters' dtype, as PyTorch's 0-d
    tensors are, so that float32 runs round as PyTorch's do. The state lives with the first
    parameter, under PyTorch's keys: ``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs``,
    ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss`` and ``al``.
    """

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if line_search_fn not in (None, "strong_wolfe"):
            # (PyTorch only finds out in step(); failing here is kinder)
            raise ValueError(f"only 'strong_wolfe' is supported as line_search_fn, got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size,
                        line_search_fn=line_search_fn)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    @property
    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    # ------------------------------------------------------------------ flat views
    def _gather_flat_grad(self):
        parts = []
        for p in self._params:
            xp = get_array_module(p.data)
            parts.append(xp.zeros(p.data.size, dtype=p.data.dtype) if p.grad is None
                         else p.grad.data.reshape(-1))
        return get_array_module(parts[0]).concatenate(parts)

    def _add_grad(self, step_size, update) -> None:
        """``p += step_size * update`` over the parameters, ``update`` being flat."""
        step_size = float(step_size)  # (a weak scalar: it multiplies in the parameters' dtype)
        offset = 0
        for p in self._params:
            n = p.data.size
            p.data += step_size * update[offset:offset + n].reshape(p.data.shape)
            p._vc[0] += 1
            offset += n

    def _set_params(self, arrays) -> None:
        for p, a in zip(self._params, arrays):
            p.data[...] = a
            p._vc[0] += 1

    # ------------------------------------------------------------------ step
    def step(self, closure: Callable[[], Any] | None = None):
        """Run up to ``max_iter`` iterations; returns the loss of the closure's first call."""
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step() needs a closure that clears the gradients, computes the loss, "
                            "calls backward() and returns the loss: optimizer.step(closure)")
        group = self.param_groups[0]
        lr = scalar(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        def evaluate():
            with enable_grad():
                return closure()

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = evaluate()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if _amax_abs(flat_grad) <= tolerance_grad:
            return orig_loss

        d, t = _unbox(state.get("d")), _unbox(state.get("t"))
        old_dirs, old_stps = _unbox(state.get("old_dirs")), _unbox(state.get("old_stps"))
        ro, H_diag = _unbox(state.get("ro")), _unbox(state.get("H_diag"))
        prev_flat_grad, prev_loss = _unbox(state.get("prev_flat_grad")), state.get("prev_loss")
        al = _unbox(state.get("al"))

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                # A new curvature pair, then the two-loop recursion for d = -H g.
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = _dot(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        del old_dirs[0], old_stps[0], ro[0]
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / _dot(y, y)
                if al is None:
                    al = [None] * history_size
                q = -flat_grad
                for i in reversed(range(len(old_dirs))):
                    al[i] = _dot(old_stps[i], q) * ro[i]
                    q += float(-al[i]) * old_dirs[i]
                d = r = q * H_diag
                for i in range(len(old_dirs)):
                    be_i = _dot(old_dirs[i], r) * ro[i]
                    r += float(al[i] - be_i) * old_stps[i]

            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / _host(get_array_module(flat_grad).abs(flat_grad).sum())) * lr
            else:
                t = lr
            gtd = _dot(flat_grad, d)
            if gtd > -tolerance_change:  # not a descent direction
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = [p.data.copy() for p in self._params]

                def along(x, t, d):
                    self._add_grad(t, d)
                    f = float(evaluate())
                    g = self._gather_flat_grad()
                    self._set_params(x)
                    return f, g

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(along, x_init, t, d, loss, flat_grad, gtd,
                                                                  max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = _amax_abs(flat_grad) <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:
                    loss = float(evaluate())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = _amax_abs(flat_grad) <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if _amax_abs(d * t) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break  # no progress

        state.update(d=_box(d), t=_box(t), old_dirs=_box(old_dirs), old_stps=_box(old_stps), ro=_box(ro),
                     H_diag=_box(H_diag), prev_flat_grad=_box(prev_flat_grad), prev_loss=prev_loss)
        if al is not None:
            state["al"] = _box(al)
        return orig_loss


def _host(a):
    """A 0-d array (NumPy or CuPy) or NumPy scalar as a NumPy scalar of the same dtype: it then
    rounds like a 0-d tensor of that dtype (a float32 stays float32 against Python floats)."""
    return a.dtype.type(a.item())


def _dot(a, b):
    return _host(a.dot(b))


def _amax_abs(a):
    return _host(get_array_module(a).abs(a).max())


def _box(x):
    """The state's form of a working value: arrays and NumPy scalars as Tensors (so that state
    dicts keep their dtype through ``fw.save``), lists element-wise."""
    if isinstance(x, list):
        return [_box(v) for v in x]
    if isinstance(x, np.generic):
        return Tensor(np.array(x))
    if x is None or isinstance(x, (int, float)):
        return x
    return Tensor(x)


def _unbox(x):
    if isinstance(x, list):
        return [_unbox(v) for v in x]
    if isinstance(x, Tensor):
        return _host(x.data) if x.data.ndim == 0 else x.data
    return x


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through ``(x1, f1)``, ``(x2, f2)`` with slopes ``g1``, ``g2``,
    clamped to ``bounds`` (by default the interval between ``x1`` and ``x2``); the midpoint of the
    bounds when the cubic has no minimum."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = np.sqrt(d2_square)  # (a host scalar)
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


def _strong_wolfe(along, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step ``t`` along ``d`` from ``x`` (loss ``f``, gradient ``g``, slope ``gtd``) meeting the
    strong Wolfe conditions: first grow the step until an interval holds one (extrapolating with
    cubics), then shrink the interval (zoom). ``along(x, t, d)`` returns the loss and flat
    gradient at ``x + t d``. Returns ``(loss, gradient, t, number of evaluations)``.

    A point is ``[t, loss, gradient, slope]``; the bracket is a list of one or two points.
    """
    d_norm = _amax_abs(d)
    f_new, g_new = along(x, t, d)
    evals = 1
    gtd_new = _dot(g_new, d)
    prev = [0, f, g, gtd]
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= prev[1]):
            bracket = [prev, [t, f_new, g_new, gtd_new]]  # too far: no sufficient decrease
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [[t, f_new, g_new, gtd_new]]  # both conditions hold
            done = True
            break
        if gtd_new >= 0:
            bracket = [prev, [t, f_new, g_new, gtd_new]]  # past a minimum
            break
        # Extrapolate to a longer step, between 1.01 t and 10 t.
        t_new = _cubic_interpolate(prev[0], prev[1], prev[3], t, f_new, gtd_new,
                                   bounds=(t + 0.01 * (t - prev[0]), t * 10))
        prev = [t, f_new, g_new, gtd_new]
        t = t_new
        f_new, g_new = along(x, t, d)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [[0, f, g, gtd], [t, f_new, g_new, gtd_new]]

    # Zoom: "lo" is the bracket's end with the lower loss.
    insufficient_progress = False
    lo, hi = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1][0] - bracket[0][0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0][0], bracket[0][1], bracket[0][3],
                               bracket[1][0], bracket[1][1], bracket[1][3])
        t_max, t_min = max(bracket[0][0], bracket[1][0]), min(bracket[0][0], bracket[1][0])
        eps = 0.1 * (t_max - t_min)
        if min(t_max - t, t - t_min) < eps:
            # Too close to an end: accept once, then move away from the end (or at once if outside).
            if insufficient_progress or t >= t_max or t <= t_min:
                t = t_max - eps if abs(t - t_max) < abs(t - t_min) else t_min + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = along(x, t, d)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket[lo][1]:
            bracket[hi] = [t, f_new, g_new, gtd_new]
            lo, hi = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[hi][0] - bracket[lo][0]) >= 0:
                bracket[hi] = bracket[lo]
            bracket[lo] = [t, f_new, g_new, gtd_new]
    t, f_new, g_new, _ = bracket[lo]
    return f_new, g_new, t, evals
