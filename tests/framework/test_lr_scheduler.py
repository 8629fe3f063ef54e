"""Learning-rate schedules against PyTorch's: the lr (and momentum) sequences must agree."""

import math

import numpy as np
import pytest

import framework as fw
from framework.optim import lr_scheduler as fls

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for lr schedules")
tls = torch.optim.lr_scheduler


def _pair(opt="SGD", lrs=(0.1, 0.02), **kw):
    ours = [{"params": [fw.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    theirs = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return getattr(fw.optim, opt)(ours, **kw), getattr(torch.optim, opt)(theirs, **kw)


def _sequences(o, t, make_ours, make_theirs, steps=30, extra=None):
    so, st = make_ours(o), make_theirs(t)
    seq_o, seq_t = [so.get_last_lr()], [st.get_last_lr()]
    ext_o, ext_t = [], []
    for _ in range(steps):
        o.step()
        t.step()
        so.step()
        st.step()
        seq_o.append(so.get_last_lr())
        seq_t.append(st.get_last_lr())
        if extra:
            ext_o.append([extra(g) for g in o.param_groups])
            ext_t.append([extra(g) for g in t.param_groups])
        assert [g["lr"] for g in o.param_groups] == so.get_last_lr()
    np.testing.assert_allclose(np.array(seq_o), np.array(seq_t), rtol=1e-12, atol=1e-15)
    if extra:
        np.testing.assert_allclose(np.array(ext_o, dtype=float), np.array(ext_t, dtype=float), rtol=1e-12)
    return so, st


CASES = {
    "StepLR": (lambda m, o: m.StepLR(o, step_size=4, gamma=0.5)),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, milestones=[3, 7, 7, 20], gamma=0.3)),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, gamma=0.9)),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    "LinearLR": (lambda m, o: m.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=8)),
    "ConstantLR": (lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=6)),
    "PolynomialLR": (lambda m, o: m.PolynomialLR(o, total_iters=12, power=2.0)),
    "CosineAnnealingWarmRestarts": (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4, eta_min=1e-3)),
    "CosineAnnealingWarmRestarts-mult": (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2)),
    "LambdaLR": (lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.95**e + 0.01 * e)),
    "LambdaLR-per-group": (lambda m, o: m.LambdaLR(o, lr_lambda=[lambda e: 1 / (1 + e), lambda e: e % 3])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_schedule_matches_torch(name):
    o, t = _pair()
    _sequences(o, t, lambda opt: CASES[name](fls, opt), lambda opt: CASES[name](tls, opt))


def test_cosine_past_t_max_rises_again_like_torch():
    o, t = _pair()
    _sequences(o, t, lambda opt: fls.CosineAnnealingLR(opt, T_max=5),
               lambda opt: tls.CosineAnnealingLR(opt, T_max=5), steps=23)


def test_cosine_closed_form_values():
    o, _ = _pair(lrs=(1.0,))
    s = fls.CosineAnnealingLR(o, T_max=8, eta_min=0.1)
    for t in range(1, 9):
        o.step()
        s.step()
        expected = 0.1 + 0.9 * (1 + math.cos(math.pi * t / 8)) / 2
        assert math.isclose(s.get_last_lr()[0], expected, rel_tol=1e-12)


def test_warm_restarts_with_fractional_epochs_matches_torch():
    o, t = _pair()
    so = fls.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=3, eta_min=0.01)
    st = tls.CosineAnnealingWarmRestarts(t, T_0=2, T_mult=3, eta_min=0.01)
    for e in np.arange(0, 20, 0.37):
        so.step(float(e))
        st.step(float(e))
        assert so.get_last_lr() == pytest.approx(st.get_last_lr(), rel=1e-12)


def test_sequential_warmup_then_cosine_matches_torch():
    o, t = _pair()

    def make(m, opt):
        warm = m.LinearLR(opt, start_factor=0.1, total_iters=5)
        cos = m.CosineAnnealingLR(opt, T_max=20)
        step = m.StepLR(opt, step_size=3, gamma=0.5)
        return m.SequentialLR(opt, [warm, cos, step], milestones=[5, 15])

    _sequences(o, t, lambda opt: make(fls, opt), lambda opt: make(tls, opt), steps=30)


def test_chained_scheduler_matches_torch():
    o, t = _pair()

    def make(m, opt):
        return m.ChainedScheduler([m.LinearLR(opt, start_factor=0.2, total_iters=6),
                                   m.ExponentialLR(opt, gamma=0.9), m.MultiStepLR(opt, [4, 9])])

    _sequences(o, t, lambda opt: make(fls, opt), lambda opt: make(tls, opt), steps=15)


@pytest.mark.parametrize("kw", [
    dict(max_lr=0.5, total_steps=40),
    dict(max_lr=[0.5, 0.1], epochs=4, steps_per_epoch=10, anneal_strategy="linear", pct_start=0.25),
    dict(max_lr=1.0, total_steps=37, three_phase=True, div_factor=10.0, final_div_factor=100.0),
])
@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_one_cycle_lr_and_momentum_match_torch(kw, opt):
    extra = (lambda g: g["momentum"]) if opt == "SGD" else (lambda g: g["betas"][0])
    okw = dict(momentum=0.9) if opt == "SGD" else {}
    o, t = _pair(opt, **okw)
    total = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    _sequences(o, t, lambda x: fls.OneCycleLR(x, **kw), lambda x: tls.OneCycleLR(x, **kw),
               steps=total - 1, extra=extra)
    if opt == "Adam":
        assert all(g["betas"][1] == 0.999 for g in o.param_groups)


def test_one_cycle_too_many_steps_raises():
    o, _ = _pair()
    s = fls.OneCycleLR(o, max_lr=0.1, total_steps=3)
    s.step()
    s.step()
    s.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        s.step()


def test_one_cycle_requires_momentum_option():
    o = fw.optim.SGD([fw.zeros(1, requires_grad=True)], lr=0.1)
    del o.defaults["momentum"]
    with pytest.raises(ValueError, match="momentum"):
        fls.OneCycleLR(o, max_lr=0.1, total_steps=10)


def test_reduce_lr_on_plateau_matches_torch():
    o, t = _pair()
    so = fls.ReduceLROnPlateau(o, patience=2, factor=0.5, cooldown=1, min_lr=[0.01, 0.004])
    st = tls.ReduceLROnPlateau(t, patience=2, factor=0.5, cooldown=1, min_lr=[0.01, 0.004])
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7,
               0.7, 0.7, 0.7]
    for m in metrics:
        so.step(m)
        st.step(m)
        assert so.get_last_lr() == pytest.approx(st.get_last_lr(), rel=1e-12)
    assert so.get_last_lr()[0] < 0.1


def test_state_dict_round_trip_resumes_sequence(tmp_path):
    def run(sched_state=None, steps=12, start=0):
        o, _ = _pair()
        s = fls.SequentialLR(o, [fls.LinearLR(o, start_factor=0.5, total_iters=4),
                                 fls.MultiStepLR(o, milestones=[3, 6])], milestones=[4])
        if sched_state is not None:
            s.load_state_dict(sched_state)
            for g, lr in zip(o.param_groups, s.get_last_lr()):
                g["lr"] = lr
        out = []
        for _ in range(start, steps):
            o.step()
            s.step()
            out.append(s.get_last_lr())
        return s, out

    _, full = run()
    s, first = run(steps=5)
    fw.save(s.state_dict(), tmp_path / "s.safetensors")
    _, rest = run(fw.load(tmp_path / "s.safetensors"), steps=12, start=5)
    assert first + rest == full


def test_resume_with_last_epoch_needs_initial_lr():
    o, _ = _pair()
    with pytest.raises(KeyError, match="initial_lr"):
        fls.StepLR(o, step_size=2, last_epoch=3)
    with pytest.raises(TypeError, match="not an Optimizer"):
        fls.StepLR(object(), step_size=2)


@pytest.mark.parametrize("make", [
    lambda o: fls.StepLR(o, 3), lambda o: fls.MultiStepLR(o, [2, 2, 5]),
    lambda o: fls.ExponentialLR(o, 0.9), lambda o: fls.CosineAnnealingLR(o, 7), lambda o: fls.LinearLR(o),
    lambda o: fls.LambdaLR(o, lambda e: 0.5), lambda o: fls.CosineAnnealingWarmRestarts(o, 3, 2),
    lambda o: fls.PolynomialLR(o, 10), lambda o: fls.ConstantLR(o),
    lambda o: fls.OneCycleLR(o, max_lr=1.0, total_steps=20), lambda o: fls.ReduceLROnPlateau(o),
    lambda o: fls.SequentialLR(o, [fls.LinearLR(o), fls.StepLR(o, 2)], [3]),
    lambda o: fls.ChainedScheduler([fls.LinearLR(o), fls.ExponentialLR(o, 0.8)]),
])
def test_every_scheduler_state_saves_and_loads(tmp_path, make):
    o, _ = _pair(lrs=(0.5,), momentum=0.9)
    s = make(o)
    for _ in range(4):
        o.step()
        s.step(1.0) if isinstance(s, fls.ReduceLROnPlateau) else s.step()
    fw.save({"optim": o.state_dict(), "sched": s.state_dict()}, tmp_path / "s.safetensors")
    o2, _ = _pair(lrs=(0.5,), momentum=0.9)
    s2 = make(o2)
    ck = fw.load(tmp_path / "s.safetensors")
    o2.load_state_dict(ck["optim"])  # the current lr lives in the optimizer's groups
    s2.load_state_dict(ck["sched"])
    assert getattr(s2, "last_epoch", None) == getattr(s, "last_epoch", None)
    assert s2.get_last_lr() == s.get_last_lr()
    for _ in range(3):
        for opt, sch in ((o, s), (o2, s2)):
            opt.step()
            sch.step(2.0) if isinstance(sch, fls.ReduceLROnPlateau) else sch.step()
    assert s2.get_last_lr() == pytest.approx(s.get_last_lr(), rel=1e-12)
