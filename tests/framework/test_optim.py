"""Optimizers against PyTorch: 20-step trajectories in float64, state dicts, groups, errors."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for optimizer trajectories")

SHAPES = [(3, 4), (5,), (2, 1, 3)]


def _make(rng, n_groups=1):
    """The same starting parameters for both frameworks (float64)."""
    arrays = [rng.normal(size=s) for s in SHAPES]
    ours = [fw.tensor(a, dtype=fw.float64, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    return ours, theirs


def _loss(ps, lib):
    # A non-quadratic loss so that every state variable matters; p[1] also couples to p[0].
    total = 0
    for i, p in enumerate(ps):
        total = total + (p * p * p).sum() * 0.1 + lib.sin(p).sum() * (i + 1)
    return total + (ps[0][0, :] * ps[1][:4]).sum()


def _run(opt_ours, opt_theirs, ours, theirs, steps=20, closure=False):
    for _ in range(steps):
        if closure:
            def c_ours():
                opt_ours.zero_grad()
                loss = _loss(ours, fw)
                loss.backward()
                return loss

            def c_theirs():
                opt_theirs.zero_grad()
                loss = _loss(theirs, torch)
                loss.backward()
                return loss

            lo, lt = opt_ours.step(c_ours), opt_theirs.step(c_theirs)
            assert abs(lo.item() - lt.item()) < 1e-9
        else:
            opt_ours.zero_grad()
            _loss(ours, fw).backward()
            opt_ours.step()
            opt_theirs.zero_grad()
            _loss(theirs, torch).backward()
            opt_theirs.step()


def _assert_same(ours, theirs, tol=1e-10):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


def _groups(ps, opts):
    return [dict({"params": [p]}, **o) for p, o in zip(ps, opts)]


SGD_CASES = [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.1),
    dict(lr=0.03, momentum=0.5, weight_decay=0.05, maximize=True),
]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_trajectory_matches_torch(rng, kw):
    ours, theirs = _make(rng)
    _run(fw.optim.SGD(ours, **kw), torch.optim.SGD(theirs, foreach=False, **kw), ours, theirs)
    _assert_same(ours, theirs)


ADAM_CASES = [
    dict(),
    dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, amsgrad=True),
    dict(lr=0.02, amsgrad=True, weight_decay=0.05, maximize=True),
    dict(lr=0.05, betas=(0.3, 0.4)),  # beta1 < 0.5: torch.lerp's other formula
]


@pytest.mark.parametrize("kw", ADAM_CASES)
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_adam_and_adamw_trajectories_match_torch(rng, kw, cls):
    ours, theirs = _make(rng)
    o = getattr(fw.optim, cls)(ours, **kw)
    t = getattr(torch.optim, cls)(theirs, foreach=False, **kw)
    _run(o, t, ours, theirs)
    _assert_same(ours, theirs)


RMSPROP_CASES = [
    dict(),
    dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1),
    dict(lr=0.01, momentum=0.9),
    dict(lr=0.005, centered=True, momentum=0.5, maximize=True),
]


@pytest.mark.parametrize("kw", RMSPROP_CASES)
def test_rmsprop_trajectory_matches_torch(rng, kw):
    ours, theirs = _make(rng)
    _run(fw.optim.RMSprop(ours, **kw), torch.optim.RMSprop(theirs, foreach=False, **kw), ours, theirs)
    _assert_same(ours, theirs)


def test_adamw_default_weight_decay_and_float32(rng):
    assert fw.optim.AdamW([fw.zeros(1, requires_grad=True)]).defaults["weight_decay"] == 1e-2
    a = rng.normal(size=(4, 3)).astype(np.float32)
    p, tp = fw.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    o, t = fw.optim.AdamW([p], lr=0.01), torch.optim.AdamW([tp], lr=0.01, foreach=False)
    for _ in range(20):
        o.zero_grad()
        (p * p * p).sum().backward()
        o.step()
        t.zero_grad()
        (tp * tp * tp).sum().backward()
        t.step()
    assert p.dtype == fw.float32
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_param_groups_with_their_own_options(rng):
    ours, theirs = _make(rng)
    opts = [dict(lr=0.1, momentum=0.9), dict(lr=0.01), dict(lr=0.05, nesterov=True, momentum=0.5)]
    o = fw.optim.SGD(_groups(ours, opts), lr=0.3)
    t = torch.optim.SGD(_groups(theirs, opts), lr=0.3, foreach=False)
    _run(o, t, ours, theirs)
    _assert_same(ours, theirs)
    assert [g["lr"] for g in o.param_groups] == [0.1, 0.01, 0.05]
    assert o.param_groups[1]["momentum"] == 0  # default filled in


def test_add_param_group_mid_training(rng):
    ours, theirs = _make(rng)
    o = fw.optim.Adam(ours[:2], lr=0.05)
    t = torch.optim.Adam(theirs[:2], lr=0.05, foreach=False)
    _run(o, t, ours, theirs, steps=5)
    o.add_param_group({"params": [ours[2]], "lr": 0.2, "amsgrad": True})
    t.add_param_group({"params": [theirs[2]], "lr": 0.2, "amsgrad": True})
    _run(o, t, ours, theirs, steps=15)
    _assert_same(ours, theirs)
    with pytest.raises(ValueError, match="more than one parameter group"):
        o.add_param_group({"params": [ours[0]]})


def test_step_with_closure_returns_loss(rng):
    ours, theirs = _make(rng)
    _run(fw.optim.SGD(ours, lr=0.01, momentum=0.9), torch.optim.SGD(theirs, lr=0.01, momentum=0.9),
         ours, theirs, steps=5, closure=True)
    _assert_same(ours, theirs)


def test_zero_grad_set_to_none_and_to_zero():
    p = fw.ones(3, requires_grad=True)
    o = fw.optim.SGD([p], lr=0.1)
    (p * 2).sum().backward()
    o.zero_grad(set_to_none=False)
    assert p.grad is not None and np.all(p.grad.numpy() == 0)
    (p * 2).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2, 2, 2])
    o.zero_grad()
    assert p.grad is None


def test_params_without_grad_are_skipped_and_get_no_state():
    p, q = fw.ones(2, requires_grad=True), fw.ones(2, requires_grad=True)
    o = fw.optim.Adam([p, q], lr=0.1)
    (p * 3).sum().backward()
    o.step()
    np.testing.assert_array_equal(q.detach().numpy(), [1, 1])
    assert len(o.state) == 1 and p in o.state
    assert not np.allclose(p.detach().numpy(), 1)


def test_step_bumps_version_so_stale_graph_raises():
    p = fw.ones(3, requires_grad=True)
    o = fw.optim.SGD([p], lr=0.1)
    y = (p * p).sum()  # Mul saves p
    v = p._version
    (p * 1.0).sum().backward()
    o.step()
    assert p._version > v
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_state_dict_structure_matches_torch(rng):
    ours, theirs = _make(rng)
    opts = [dict(lr=0.1), dict(lr=0.2), dict(lr=0.3, amsgrad=True)]
    o, t = fw.optim.Adam(_groups(ours, opts)), torch.optim.Adam(_groups(theirs, opts), foreach=False)
    _run(o, t, ours, theirs, steps=3)
    so, st = o.state_dict(), t.state_dict()
    assert set(so) == {"state", "param_groups"}
    assert sorted(so["state"]) == sorted(st["state"]) == [0, 1, 2]
    for i in range(3):
        assert set(so["state"][i]) == set(st["state"][i])
        for k, v in st["state"][i].items():
            np.testing.assert_allclose(so["state"][i][k].numpy(), v.numpy(), rtol=1e-12)
    for go, gt in zip(so["param_groups"], st["param_groups"]):
        assert go["params"] == gt["params"]
        for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
            assert go[k] == gt[k]


@pytest.mark.parametrize("make", [
    lambda ps: fw.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: fw.optim.Adam(ps, lr=0.05, amsgrad=True),
    lambda ps: fw.optim.AdamW(ps, lr=0.05),
    lambda ps: fw.optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True),
])
def test_state_dict_resume_equals_uninterrupted_run(rng, tmp_path, make):
    """10 steps, checkpoint through fw.save/fw.load, 10 more on a fresh optimizer == 20 steps."""
    arrays = [rng.normal(size=s) for s in SHAPES]
    ref = [fw.tensor(a, dtype=fw.float64, requires_grad=True) for a in arrays]
    o_ref = make(ref)
    for _ in range(20):
        o_ref.zero_grad()
        _loss(ref, fw).backward()
        o_ref.step()

    ps = [fw.tensor(a, dtype=fw.float64, requires_grad=True) for a in arrays]
    o = make(ps)
    for _ in range(10):
        o.zero_grad()
        _loss(ps, fw).backward()
        o.step()
    fw.save({"params": [p.detach() for p in ps], "optim": o.state_dict()}, tmp_path / "ck.safetensors")
    ck = fw.load(tmp_path / "ck.safetensors")
    ps2 = [fw.tensor(a.numpy(), requires_grad=True) for a in ck["params"]]
    o2 = make(ps2)
    o2.load_state_dict(ck["optim"])
    for _ in range(10):
        o2.zero_grad()
        _loss(ps2, fw).backward()
        o2.step()
    for a, b in zip(ps2, ref):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_load_state_dict_converted_from_torch(rng):
    ours, theirs = _make(rng)
    t = torch.optim.Adam(theirs, lr=0.05, foreach=False)
    for _ in range(5):
        t.zero_grad()
        _loss(theirs, torch).backward()
        t.step()
    for p, tp in zip(ours, theirs):
        p.data[...] = tp.detach().numpy()
    sd = t.state_dict()
    conv = {"state": {k: {n: fw.tensor(v.numpy()) for n, v in s.items()} for k, s in sd["state"].items()},
            "param_groups": sd["param_groups"]}
    o = fw.optim.Adam(ours, lr=0.05)
    o.load_state_dict(conv)
    _run(o, t, ours, theirs, steps=10)
    _assert_same(ours, theirs)


def test_load_state_dict_casts_state_to_param_dtype():
    p = fw.ones(3, requires_grad=True)  # float32
    o = fw.optim.SGD([p], lr=0.1, momentum=0.9)
    o.load_state_dict({"state": {0: {"momentum_buffer": fw.ones(3, dtype=fw.float64)}},
                       "param_groups": [{"lr": 0.5, "momentum": 0.9, "dampening": 0, "weight_decay": 0,
                                         "nesterov": False, "maximize": False, "params": [0]}]})
    assert o.state[p]["momentum_buffer"].dtype == fw.float32
    assert o.param_groups[0]["lr"] == 0.5 and o.param_groups[0]["params"][0] is p


def test_load_state_dict_mismatch_errors():
    o = fw.optim.SGD([fw.ones(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        o.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size"):
        o.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]})


def test_argument_errors():
    p = fw.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="learning rate"):
        fw.optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="beta"):
        fw.optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="Nesterov"):
        fw.optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        fw.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="duplicate"):
        fw.optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        fw.optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        fw.optim.SGD([p * 2], lr=0.1)
