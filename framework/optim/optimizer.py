"""The Optimizer base class: parameter groups, per-parameter state, state dicts.

Layout of ``state_dict()`` follows ``torch.optim.Optimizer``::

    {"state": {0: {"step": tensor(3.), "exp_avg": ..., ...}, 1: {...}},
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}, {..., "params": [2]}]}

Parameters are numbered by their position across all groups, so a state dict can be loaded into
a freshly built optimizer over the same model (or converted from PyTorch) without object ids.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd import enable_grad
from ..backend import get_array_module, to_device
from ..tensor import Tensor


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Tensors (or of ``(name, Tensor)`` pairs, as from
            ``model.named_parameters()``), or of dicts ``{"params": [...], <option>: value}`` (one
            parameter group each; options missing from a group take the value in ``defaults``).
        defaults: the default value of each option.

    Subclasses implement ``step``; the update runs on the arrays in place (no graph is recorded)
    and bumps each parameter's version counter, like PyTorch's in-place updates.
    """

    # State entries that are float32 scalars on the host (the step count, NAdam's mu_product, ...):
    # :meth:`load_state_dict` keeps them as saved instead of casting them to the parameter's dtype.
    _scalar_state_keys: tuple[str, ...] = ("step",)

    def __init__(self, params, defaults: dict[str, Any]):
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts, but got {type(params).__name__}")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (e.g. a new lr for a new head)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs. Please use a "
                            "list instead.")
        params = list(params)
        # (name, tensor) pairs, as model.named_parameters() yields: the names are kept in
        # group["param_names"] (and so in state dicts), as PyTorch does.
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names and len(names) != len(params):
            raise ValueError("all optimizer params should be with/without names. Some param names are "
                             "missing")
        if self.param_groups and ("param_names" in self.param_groups[0]) != bool(names):
            raise ValueError("all optimizer param groups should be with/without names. cannot add param "
                             f"group with{'' if names else 'out'} names to the optimizer")
        if names:
            params = [p[1] for p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group = dict(param_group)
        group["params"] = params
        if names:
            group["param_names"] = names
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization "
                                 f"parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    # ------------------------------------------------------------------ gradients
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to ``None`` (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    g = p.grad
                    if g.grad_fn is not None:
                        g = g.detach()
                        p.grad = g
                    g.data[...] = 0
                    g._vc[0] += 1

    def step(self, closure: Callable[[], Any] | None = None):
        """Update the parameters once; ``closure`` (re-evaluates the loss) is called with grad on."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _counted_state(self, p: Tensor, zeros: tuple[str, ...] = (), scalars: dict[str, float] | None = None):
        """``p``'s state with this step counted: (state, step number). Made on first use as PyTorch's:
        ``step`` and each of ``scalars`` a float32 host scalar tensor, each name in ``zeros`` an array of
        zeros like ``p``, in that order."""
        state = self.state[p]
        if len(state) == 0:
            state["step"] = Tensor(np.array(0.0, dtype=np.float32))
            for k, v in (scalars or {}).items():
                state[k] = Tensor(np.array(v, dtype=np.float32))
            xp = get_array_module(p.data)
            for k in zeros:
                state[k] = Tensor(xp.zeros_like(p.data))
        step_t = state["step"].data
        step_t += 1
        return state, float(step_t)

    def _update_group(self, group: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state (tensors are shared, not copied) and its groups' options."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict` (ours, or PyTorch's converted to framework tensors).

        Floating-point state tensors (also those in lists, as L-BFGS keeps) are cast to their
        parameter's dtype and device, except ``step`` (kept as saved), as PyTorch does. The other
        host scalars of ``_scalar_state_keys`` (NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``)
        are kept as saved too, where PyTorch casts them (its resumed NAdam then multiplies
        ``mu_product`` in float64 and drifts from an uninterrupted run by ~1e-13): a resumed run
        here continues exactly as an uninterrupted one.
        """
        saved_groups = state_dict["param_groups"]
        groups = self.param_groups
        if len(saved_groups) != len(groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, but the "
                             f"optimizer has {len(groups)}")
        for i, (g, sg) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(f"loaded state dict contains a parameter group {i} of "
                                 f"{len(sg['params'])} parameters that doesn't match the size of the "
                                 f"optimizer's group ({len(g['params'])} parameters)")
        id_map = {}
        for g, sg in zip(groups, saved_groups):
            for p, pid in zip(g["params"], sg["params"]):
                id_map[int(pid)] = p
        self.state = defaultdict(dict)
        for pid, s in state_dict["state"].items():
            pid = int(pid)
            if pid not in id_map:
                continue
            p = id_map[pid]
            self.state[p] = {k: _cast_state(p, k, v, self._scalar_state_keys) for k, v in s.items()}
        new_groups = []
        for g, sg in zip(groups, saved_groups):
            ng = {k: copy.deepcopy(v) for k, v in sg.items() if k != "params"}
            # Options newer than the checkpoint (e.g. Adam's decoupled_weight_decay in a state dict
            # of an older PyTorch) keep this optimizer's values, as PyTorch's __setstate__ does.
            for k, v in g.items():
                ng.setdefault(k, v)
            for key in ("betas", "etas", "step_sizes"):  # a JSON round trip turns tuples into lists
                if isinstance(ng.get(key), list):
                    ng[key] = tuple(ng[key])
            ng["params"] = g["params"]
            new_groups.append(ng)
        self.param_groups = new_groups


def _cast_state(p: Tensor, key: str, value, scalar_keys=("step",)):
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_state(p, key, v, scalar_keys) for v in value)
    if key in scalar_keys and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        # Older PyTorch state dicts hold the step as a number; it is a float32 scalar tensor now.
        return Tensor(np.array(value, dtype=np.float32))
    if not isinstance(value, Tensor):
        return copy.deepcopy(value)
    if key in scalar_keys:
        return Tensor(value.data.copy())
    a = value.data
    if a.dtype.kind == "f" and a.dtype != p.data.dtype:
        a = a.astype(p.data.dtype)
    a = to_device(a, p.device)
    a = get_array_module(a).array(a, copy=True)
    return Tensor(a)


def scalar(value):
    """An option's value as a Python number. A Tensor ``lr`` (accepted, as in PyTorch, so that
    schedulers can change it in place) is read afresh at every step."""
    return value.item() if isinstance(value, Tensor) else value


def params_with_grad(group: dict[str, Any]) -> Iterable[Tensor]:
    """Parameters of ``group`` that have a gradient (the others are skipped, as in PyTorch)."""
    for p in group["params"]:
        if p.grad is not None:
            yield p
