"""Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor and LBFGS against PyTorch: 20-step
trajectories (float64 and float32), optimizer state, parameter groups, skipped gradients, state
dicts (also through fw.save / fw.load), argument errors."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for optimizer trajectories")

SHAPES = [(3, 4), (5,), (2, 1, 3)]
# Tolerances: float rounding only. In float64 the trajectories agree to ~1e-16; in float32 to
# ~1e-7 (PyTorch fuses some multiply-adds and its float32 sqrt is not correctly rounded).
TOL = {"float64": 1e-12, "float32": 2e-6}
LOSS_TOL = {"float64": 1e-12, "float32": 1e-5}


def _make(rng, dtype="float64"):
    """The same starting parameters for both frameworks."""
    arrays = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    ours = [fw.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _loss(ps, lib, step):
    """A non-quadratic loss, so that every state variable matters. p[1] is left out of the first
    two steps (its state starts late) and p[2] out of every third step: their gradients are None
    then, and the optimizers must skip them (no update, no state change), as PyTorch does."""
    use = [True, step >= 2, step % 3 != 1]
    total = 0
    for i, p in enumerate(ps):
        if use[i]:
            total = total + (p * p * p).sum() * 0.1 + lib.sin(p).sum() * (i + 1)
    if use[1]:
        total = total + (ps[0][0, :] * ps[1][:4]).sum()
    return total


def _step(opt, ps, lib, step):
    opt.zero_grad()
    _loss(ps, lib, step).backward()
    opt.step()


def _run(o, t, ours, theirs, steps=20, start=0):
    for i in range(start, start + steps):
        _step(o, ours, fw, i)
        _step(t, theirs, torch, i)


def _assert_same(ours, theirs, tol):
    for a, b in zip(ours, theirs):
        assert a.dtype == (fw.float32 if b.dtype == torch.float32 else fw.float64)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


def _assert_same_state(o, t, ours, theirs, tol):
    """Per-parameter state under PyTorch's keys, with PyTorch's values."""
    for p, tp in zip(ours, theirs):
        so, st = o.state.get(p, {}), t.state.get(tp, {})
        assert set(so) == set(st)
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                assert so[k].dtype == getattr(fw, str(v.dtype).split(".")[1]), k
                np.testing.assert_allclose(so[k].numpy(), v.numpy(), rtol=tol, atol=tol, err_msg=k)
            else:
                assert so[k] == v, k


def _options(group):
    # (torch's side is built with foreach=False, to pin its single-tensor code path)
    return {k: v for k, v in group.items() if k not in ("params", "foreach")}


CASES = {
    "Adagrad": [
        dict(),
        dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1),
        dict(lr=0.05, eps=1e-6, maximize=True),
    ],
    "Adadelta": [
        dict(),
        dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1),
        dict(lr=2.0, maximize=True),
    ],
    "Adamax": [
        dict(),
        dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        dict(lr=0.02, betas=(0.3, 0.5), maximize=True),  # beta1 < 0.5: lerp's other formula
    ],
    "NAdam": [
        dict(),
        dict(lr=0.05, weight_decay=0.1),
        dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, momentum_decay=0.01),
        dict(lr=0.03, betas=(0.3, 0.9), eps=1e-6, maximize=True),
    ],
    "RAdam": [
        dict(),  # rho_t <= 5 for the first 5 steps: plain momentum steps, then rectified ones
        dict(lr=0.05, weight_decay=0.1),
        dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True),
        dict(lr=0.03, betas=(0.3, 0.9), maximize=True),
        dict(lr=0.05, betas=(0.9, 0.5)),  # rho_inf = 3: never rectified
    ],
    "Rprop": [
        dict(),
        dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2)),  # both clamps reached
        dict(lr=0.02, maximize=True),
    ],
    "Adafactor": [
        dict(),  # the matrices' second moments factored into row and column means, the vector's not
        dict(lr=0.05, weight_decay=0.1),
        dict(lr=0.02, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, maximize=True),
    ],
    "ASGD": [
        dict(),  # t0 = 1e6: no averaging yet, ax follows p
        dict(lr=0.05, lambd=0.01, alpha=0.5, t0=5, weight_decay=0.1),  # averaging from step 6
        dict(lr=0.03, t0=0, maximize=True),
    ],
}
ALL = [(name, kw) for name, cases in CASES.items() for kw in cases]
ONE = [(name, cases[-1]) for name, cases in CASES.items()]


def _ids(cases):
    return [name + "-" + ",".join(f"{k}={v}" for k, v in kw.items()) for name, kw in cases]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", ALL, ids=_ids(ALL))
def test_trajectory_and_state_match_torch(rng, name, kw, dtype):
    ours, theirs = _make(rng, dtype)
    o, t = getattr(fw.optim, name)(ours, **kw), getattr(torch.optim, name)(theirs, foreach=False, **kw)
    _run(o, t, ours, theirs)
    _assert_same(ours, theirs, TOL[dtype])
    _assert_same_state(o, t, ours, theirs, TOL[dtype])


def test_skipped_parameter_is_untouched(rng):
    """A parameter without a gradient keeps its value and its state (here for all of them)."""
    for name, kw in ALL:
        ours, _ = _make(rng)
        o = getattr(fw.optim, name)(ours, **kw)
        _step(o, ours, fw, 0)
        before = ours[1].detach().numpy().copy()
        state = {k: v.numpy().copy() for k, v in o.state[ours[1]].items()}
        _step(o, ours, fw, 1)  # p[1] has no gradient in steps 0 and 1
        np.testing.assert_array_equal(ours[1].detach().numpy(), before)
        assert {k: v.numpy().tolist() for k, v in o.state[ours[1]].items()} == \
               {k: v.tolist() for k, v in state.items()}, name


GROUP_OPTIONS = {
    "Adagrad": [dict(lr=0.1, lr_decay=0.05), dict(weight_decay=0.2, eps=1e-5, maximize=True)],
    "Adadelta": [dict(lr=0.5, rho=0.7), dict(weight_decay=0.1, eps=1e-3)],
    "Adamax": [dict(betas=(0.5, 0.9)), dict(lr=0.01, weight_decay=0.1, maximize=True)],
    "NAdam": [dict(momentum_decay=0.02), dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)],
    "RAdam": [dict(betas=(0.5, 0.9)), dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)],
    "Rprop": [dict(etas=(0.4, 1.1)), dict(lr=0.001, step_sizes=(1e-4, 0.01), maximize=True)],
    "ASGD": [dict(t0=3), dict(lr=0.02, lambd=0.1, alpha=0.6, weight_decay=0.05)],
    "Adafactor": [dict(lr=0.05), dict(weight_decay=0.1, d=1.5)],
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(GROUP_OPTIONS))
def test_two_param_groups_with_their_own_options(rng, name, dtype):
    ours, theirs = _make(rng, dtype)
    a, b = GROUP_OPTIONS[name]
    o = getattr(fw.optim, name)([dict(params=ours[:2], **a), dict(params=ours[2:], **b)], lr=0.03)
    t = getattr(torch.optim, name)([dict(params=theirs[:2], **a), dict(params=theirs[2:], **b)], lr=0.03,
                                   foreach=False)
    _run(o, t, ours, theirs)
    _assert_same(ours, theirs, TOL[dtype])
    _assert_same_state(o, t, ours, theirs, TOL[dtype])
    for go, gt in zip(o.param_groups, t.param_groups):
        assert _options(go) == _options(gt)


@pytest.mark.parametrize("name,kw", ALL, ids=_ids(ALL))
def test_state_dict_structure_matches_torch(rng, name, kw):
    ours, theirs = _make(rng)
    o, t = getattr(fw.optim, name)(ours, **kw), getattr(torch.optim, name)(theirs, foreach=False, **kw)
    _run(o, t, ours, theirs, steps=3)
    so, st = o.state_dict(), t.state_dict()
    assert sorted(so["state"]) == sorted(st["state"])
    for i, s in st["state"].items():
        assert set(so["state"][i]) == set(s)
    for go, gt in zip(so["param_groups"], st["param_groups"]):
        assert _options(go) == _options(gt) and go["params"] == gt["params"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", ONE, ids=_ids(ONE))
def test_state_dict_resume_through_safetensors_equals_uninterrupted_run(rng, tmp_path, name, kw, dtype):
    """10 steps, checkpoint through fw.save/fw.load, 10 more on a fresh optimizer == 20 steps,
    bit for bit (the float32 scalar state, NAdam's mu_product, ASGD's eta and mu, stays float32)."""
    arrays = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    make = getattr(fw.optim, name)
    ref = [fw.tensor(a, requires_grad=True) for a in arrays]
    o_ref = make(ref, **kw)
    for i in range(20):
        _step(o_ref, ref, fw, i)

    ps = [fw.tensor(a, requires_grad=True) for a in arrays]
    o = make(ps, **kw)
    for i in range(10):
        _step(o, ps, fw, i)
    fw.save({"params": [p.detach() for p in ps], "optim": o.state_dict()}, tmp_path / "ck.safetensors")
    ck = fw.load(tmp_path / "ck.safetensors")
    ps2 = [fw.tensor(a.numpy(), requires_grad=True) for a in ck["params"]]
    o2 = make(ps2, lr=0.5)  # the options come from the checkpoint
    o2.load_state_dict(ck["optim"])
    assert o2.param_groups[0]["lr"] == o.param_groups[0]["lr"]
    for i in range(10, 20):
        _step(o2, ps2, fw, i)
    for a, b in zip(ps2, ref):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    for p, q in zip(ps2, ref):
        for k, v in o_ref.state[q].items():
            assert o2.state[p][k].dtype == v.dtype
            np.testing.assert_array_equal(o2.state[p][k].numpy(), v.numpy())


@pytest.mark.parametrize("name,kw", ALL, ids=_ids(ALL))
def test_load_state_dict_converted_from_torch_continues_like_torch(rng, name, kw):
    ours, theirs = _make(rng)
    t = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for i in range(7):
        _step(t, theirs, torch, i)
    for p, tp in zip(ours, theirs):
        p.data[...] = tp.detach().numpy()
    sd = t.state_dict()
    conv = {"state": {k: {n: fw.tensor(v.numpy()) if isinstance(v, torch.Tensor) else v for n, v in s.items()}
                      for k, s in sd["state"].items()},
            "param_groups": sd["param_groups"]}
    o = getattr(fw.optim, name)(ours)
    o.load_state_dict(conv)
    _run(o, t, ours, theirs, steps=10, start=7)
    _assert_same(ours, theirs, TOL["float64"])


def test_tensor_lr_is_read_at_every_step(rng):
    ours, theirs = _make(rng)
    lr_o, lr_t = fw.tensor(0.05, dtype=fw.float64), torch.tensor(0.05, dtype=torch.float64)
    o, t = fw.optim.NAdam(ours, lr=lr_o), torch.optim.NAdam(theirs, lr=lr_t, foreach=False)
    _run(o, t, ours, theirs, steps=5)
    lr_o.data[...] = 0.01
    lr_t.fill_(0.01)
    _run(o, t, ours, theirs, steps=5, start=5)
    _assert_same(ours, theirs, TOL["float64"])


def test_adagrad_state_is_made_at_construction_like_torch(rng):
    ours, theirs = _make(rng)
    o = fw.optim.Adagrad(ours, initial_accumulator_value=0.3)
    t = torch.optim.Adagrad(theirs, initial_accumulator_value=0.3)
    assert len(o.state) == 3
    _assert_same_state(o, t, ours, theirs, 0)
    assert sorted(o.state_dict()["state"]) == sorted(t.state_dict()["state"]) == [0, 1, 2]


def test_adagrad_add_param_group_and_group_accumulator_like_torch(rng):
    """As in PyTorch, a group's own initial_accumulator_value is not used: the constructor's for
    its parameters, ``defaults``' for those added later."""
    ours, theirs = _make(rng)
    kw = dict(lr=0.05, initial_accumulator_value=0.2)
    own = {"initial_accumulator_value": 5.0}
    o = fw.optim.Adagrad([{"params": ours[:1]}, {"params": ours[1:2], **own}], **kw)
    t = torch.optim.Adagrad([{"params": theirs[:1]}, {"params": theirs[1:2], **own}], foreach=False, **kw)
    _run(o, t, ours, theirs, steps=4)
    o.add_param_group({"params": [ours[2]], "lr": 0.1, "initial_accumulator_value": 3.0})
    t.add_param_group({"params": [theirs[2]], "lr": 0.1, "initial_accumulator_value": 3.0})
    _run(o, t, ours, theirs, steps=10, start=4)
    _assert_same(ours, theirs, TOL["float64"])
    _assert_same_state(o, t, ours, theirs, TOL["float64"])


def test_nadam_and_asgd_keep_torchs_float32_scalars(rng):
    """PyTorch keeps mu_product and eta as float32 tensors even for float64 parameters: the
    step size of ASGD is lr rounded to float32. A float64 product would drift by ~1e-9."""
    ours, _ = _make(rng)
    o = fw.optim.ASGD(ours, lr=0.1)
    _step(o, ours, fw, 0)
    assert o.state[ours[0]]["eta"].dtype == fw.float32
    assert o.state[ours[0]]["eta"].item() == float(np.float32(0.1 / (1 + 1e-4 * 0.1) ** 0.75))
    n = fw.optim.NAdam(ours)
    _step(n, ours, fw, 0)
    assert n.state[ours[0]]["mu_product"].dtype == fw.float32


# ---------------------------------------------------------------------------------- errors

BAD = [
    ("Adagrad", dict(lr=-1)), ("Adagrad", dict(lr_decay=-0.1)), ("Adagrad", dict(weight_decay=-1)),
    ("Adagrad", dict(initial_accumulator_value=-1)), ("Adagrad", dict(eps=-1)),
    ("Adadelta", dict(lr=-1)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(rho=-0.1)),
    ("Adadelta", dict(eps=-1)), ("Adadelta", dict(weight_decay=-1)),
    ("Adamax", dict(lr=-1)), ("Adamax", dict(eps=-1)), ("Adamax", dict(betas=(1.0, 0.9))),
    ("Adamax", dict(betas=(0.9, -0.1))), ("Adamax", dict(weight_decay=-1)),
    ("NAdam", dict(lr=-1)), ("NAdam", dict(betas=(0.9, 1.0))), ("NAdam", dict(momentum_decay=-1)),
    ("NAdam", dict(weight_decay=-1)), ("NAdam", dict(eps=-1)),
    ("RAdam", dict(lr=-1)), ("RAdam", dict(betas=(-0.5, 0.9))), ("RAdam", dict(weight_decay=-1)),
    ("RAdam", dict(eps=-1)),
    ("Rprop", dict(lr=-1)), ("Rprop", dict(etas=(1.5, 1.2))), ("Rprop", dict(etas=(0.5, 0.9))),
    ("Rprop", dict(etas=(0.0, 1.2))),
    ("ASGD", dict(lr=-1)), ("ASGD", dict(weight_decay=-1)),
    ("LBFGS", dict(lr=-1)),
]


@pytest.mark.parametrize("name,kw", BAD, ids=_ids(BAD))
def test_bad_hyper_parameters_raise_torchs_value_error(name, kw):
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw)
    with pytest.raises(ValueError) as ours:
        getattr(fw.optim, name)([fw.zeros(2, requires_grad=True)], **kw)
    assert str(ours.value) == str(theirs.value)


def test_constructor_defaults_match_torch():
    for name in list(CASES) + ["LBFGS"]:
        o = getattr(fw.optim, name)([fw.zeros(2, requires_grad=True)])
        t = getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)])
        assert o.defaults == t.defaults, name


# ---------------------------------------------------------------------------------- LBFGS

_A = np.random.default_rng(1).normal(size=(6, 6))
_A = _A @ _A.T + 0.5 * np.eye(6)
_B = np.random.default_rng(2).normal(size=6)


def _quadratic(ps, lib):
    """0.5 x'Ax - b'x over x = (ps[0], ps[1]) (4 + 2 entries); ps[2], if any, is unused."""
    x = lib.cat([ps[0], ps[1]])
    a, b = lib.tensor(_A, dtype=x.dtype), lib.tensor(_B, dtype=x.dtype)
    return 0.5 * (x * (a @ x)).sum() - (b * x).sum()


def _rosenbrock(ps, lib):
    x = ps[0]
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _wavy(ps, lib):
    """Many local minima: with a large lr the line search zooms, and its safeguard against
    steps too close to a bracket's end comes into play."""
    x = ps[0]
    return (lib.sin(x) ** 2 * 5 + x * 0.3 + 0.01 * x**4).sum()


PROBLEMS = {
    "quadratic": (_quadratic, [np.linspace(-1, 1, 4), np.array([0.5, -0.3]), np.array([2.0, 3.0])]),
    "rosenbrock": (_rosenbrock, [np.array([-1.2, 1.0, -0.5, 0.8])]),
    "wavy": (_wavy, [np.array([0.2, 0.9, -1.3])]),
}


def _lbfgs_pair(problem, dtype="float64", **kw):
    f, x0 = PROBLEMS[problem]
    ours = [fw.tensor(a.astype(dtype), requires_grad=True) for a in x0]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in x0]
    o, t = fw.optim.LBFGS(ours, **kw), torch.optim.LBFGS(theirs, **kw)

    def closure(opt, ps, lib):
        def c():
            opt.zero_grad()
            loss = f(ps, lib)
            loss.backward()
            return loss
        return c

    def step(check_loss=True):
        lo, lt = o.step(closure(o, ours, fw)), t.step(closure(t, theirs, torch))
        if check_loss:  # (a float32 quadratic cancels ~3 digits: 0.5 x'Ax - b'x ~ 10 - 12)
            tol = LOSS_TOL[dtype]
            assert lo.item() == pytest.approx(lt.item(), rel=tol, abs=tol)
        so, st = o.state[ours[0]], t.state[theirs[0]]
        assert (so["n_iter"], so["func_evals"]) == (st["n_iter"], st["func_evals"])

    return o, t, ours, theirs, step


LINE_SEARCHES = [None, "strong_wolfe"]


@pytest.mark.parametrize("line_search_fn", LINE_SEARCHES)
@pytest.mark.parametrize("kw", [dict(), dict(lr=0.5, history_size=3, max_iter=7)])
def test_lbfgs_quadratic_matches_torch(line_search_fn, kw):
    o, t, ours, theirs, step = _lbfgs_pair("quadratic", line_search_fn=line_search_fn, **kw)
    for _ in range(5):
        step()
        _assert_same(ours, theirs, TOL["float64"])
    x = np.linalg.solve(_A, _B)  # (near it after 5 steps; the comparison with torch is above)
    np.testing.assert_allclose(np.concatenate([ours[0].detach().numpy(), ours[1].detach().numpy()]), x,
                               atol=1e-3)
    assert ours[2].grad is None and ours[2].detach().numpy().tolist() == [2.0, 3.0]


@pytest.mark.parametrize("line_search_fn", LINE_SEARCHES)
def test_lbfgs_rosenbrock_path_matches_torch(line_search_fn):
    """25 iterations in 5 steps. Rosenbrock's valley amplifies rounding along the way (to ~1e-8
    after 50 iterations without a line search), so the path is compared while it is still at
    the rounding level; the complete run is compared below."""
    o, t, ours, theirs, step = _lbfgs_pair("rosenbrock", line_search_fn=line_search_fn, max_iter=5)
    for _ in range(5):
        step()
        _assert_same(ours, theirs, TOL["float64"])


@pytest.mark.parametrize("kw", [dict(), dict(line_search_fn="strong_wolfe"),
                                dict(line_search_fn="strong_wolfe", history_size=4, max_iter=10)])
def test_lbfgs_rosenbrock_run_to_the_minimum_like_torch(kw):
    """Same iteration and evaluation counts at every step (every branch taken alike), and the
    same minimum. (Without a line search, a short history makes the path chaotic: after a few
    steps rounding decides it, in PyTorch too.)"""
    o, t, ours, theirs, step = _lbfgs_pair("rosenbrock", **kw)
    for _ in range(10):
        step(check_loss=False)
    np.testing.assert_allclose(ours[0].detach().numpy(), theirs[0].detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours[0].detach().numpy(), np.ones(4), atol=1e-5)


@pytest.mark.parametrize("problem,kw", [
    ("wavy", dict(lr=100)),
    ("wavy", dict(lr=10, max_iter=8, history_size=2)),
    # first steps too short: extrapolation, up to the max_eval evaluations
    ("wavy", dict(lr=0.01, max_iter=10)),
    ("rosenbrock", dict(lr=0.001, max_eval=8)),
])
def test_lbfgs_strong_wolfe_branches_match_torch(problem, kw):
    o, t, ours, theirs, step = _lbfgs_pair(problem, line_search_fn="strong_wolfe", **kw)
    for _ in range(5):
        step()
        _assert_same(ours, theirs, TOL["float64"])


@pytest.mark.parametrize("line_search_fn", LINE_SEARCHES)
@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
def test_lbfgs_float32_first_steps_match_torch(problem, line_search_fn):
    """Past two steps, float32 noise decides the line search's branches (in PyTorch too: its
    float32 trajectory changes with the CPU's kernels). The scalars' float32 type, which keeps
    the rounding PyTorch's, is checked below."""
    o, t, ours, theirs, step = _lbfgs_pair(problem, "float32", line_search_fn=line_search_fn, max_iter=4)
    for _ in range(2):
        step()
        _assert_same(ours, theirs, TOL["float32"])


@pytest.mark.parametrize("line_search_fn", LINE_SEARCHES)
def test_lbfgs_state_dict_matches_torch_and_resumes_through_safetensors(tmp_path, line_search_fn):
    o, t, ours, theirs, step = _lbfgs_pair("rosenbrock", line_search_fn=line_search_fn, max_iter=4,
                                           history_size=5)
    for _ in range(3):
        step()
    so, st = o.state_dict(), t.state_dict()
    assert list(so["state"]) == list(st["state"]) == [0]
    assert set(so["state"][0]) == set(st["state"][0])
    for k, v in st["state"][0].items():
        w = so["state"][0][k]
        if isinstance(v, list):
            assert len(w) == len(v) and [x is None for x in w] == [x is None for x in v], k
        elif isinstance(v, torch.Tensor):
            np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-12, atol=1e-12, err_msg=k)
        else:
            assert w == pytest.approx(v, rel=1e-12), k
    assert so["param_groups"] == st["param_groups"]

    fw.save({"x": ours[0].detach(), "optim": so}, tmp_path / "ck.safetensors")
    ck = fw.load(tmp_path / "ck.safetensors")
    x2 = fw.tensor(ck["x"].numpy(), requires_grad=True)
    o2 = fw.optim.LBFGS([x2], line_search_fn=line_search_fn, max_iter=4, history_size=5)
    o2.load_state_dict(ck["optim"])

    def closure(opt, x):
        def c():
            opt.zero_grad()
            loss = _rosenbrock([x], fw)
            loss.backward()
            return loss
        return c

    for _ in range(3):
        o.step(closure(o, ours[0]))
        o2.step(closure(o2, x2))
    np.testing.assert_array_equal(x2.detach().numpy(), ours[0].detach().numpy())


def test_lbfgs_float32_state_has_torchs_types():
    o, t, ours, theirs, step = _lbfgs_pair("rosenbrock", "float32", line_search_fn="strong_wolfe", max_iter=3)
    step()
    step()
    so, st = o.state_dict()["state"][0], t.state_dict()["state"][0]
    for k, v in st.items():
        for a, b in zip(so[k], v) if isinstance(v, list) else [(so[k], v)]:
            if isinstance(b, torch.Tensor):
                assert isinstance(a, fw.Tensor) and a.dtype == fw.float32 and a.shape == b.shape, k
            else:
                assert type(a) is type(b), k


def test_lbfgs_needs_a_closure_and_one_group():
    p = fw.zeros(2, requires_grad=True)
    o = fw.optim.LBFGS([p])
    with pytest.raises(TypeError, match="closure"):
        o.step()
    q = fw.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        fw.optim.LBFGS([{"params": [p]}, {"params": [q]}])
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        o.add_param_group({"params": [q]})
    with pytest.raises(ValueError, match="strong_wolfe"):
        fw.optim.LBFGS([p], line_search_fn="backtracking")


def test_lbfgs_stops_at_once_when_the_gradient_is_small():
    p = fw.ones(3, requires_grad=True)
    o = fw.optim.LBFGS([p])
    calls = []

    def closure():
        o.zero_grad()
        calls.append(1)
        loss = ((p - 1) ** 2).sum()
        loss.backward()
        return loss

    assert o.step(closure).item() == 0
    assert len(calls) == 1 and o.state[p]["func_evals"] == 1 and o.state[p]["n_iter"] == 0
