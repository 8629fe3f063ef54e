"""MultiplicativeLR and CyclicLR against PyTorch's: the lr (and momentum) sequences over 50 steps
must be the same numbers; state dicts round-trip through fw.save / fw.load."""

import numpy as np
import pytest

import framework as fw
from framework.optim import lr_scheduler as fls

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for lr schedules")
tls = torch.optim.lr_scheduler

STEPS = 50


def _pair(opt="SGD", lrs=(0.1, 0.02), **kw):
    ours = [{"params": [fw.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    theirs = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return getattr(fw.optim, opt)(ours, **kw), getattr(torch.optim, opt)(theirs, **kw)


def _momentum(group):
    return group["betas"][0] if "betas" in group else group.get("momentum")


def _trace(opt, sched, steps=STEPS):
    """The lr and momentum of every group, after construction and after each step."""
    lrs, moms = [sched.get_last_lr()], [[_momentum(g) for g in opt.param_groups]]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
        moms.append([_momentum(g) for g in opt.param_groups])
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    return lrs, moms


def _same_sequences(o, t, make, steps=STEPS):
    lo, mo = _trace(o, make(fls, o), steps)
    lt, mt = _trace(t, make(tls, t), steps)
    # The same formulas in the same order: the same floats, not merely close ones.
    assert lo == lt
    assert mo == mt
    return lo, mo


# ---------------------------------------------------------------------------------- MultiplicativeLR

@pytest.mark.parametrize("lr_lambda", [
    lambda e: 0.95,
    lambda e: 1.0 + 0.01 * (e % 7) - 0.04 * (e % 3 == 0),
    [lambda e: 0.9, lambda e: 1.02 if e < 20 else 0.8],
], ids=["constant", "varying", "per-group"])
def test_multiplicative_lr_matches_torch(lr_lambda):
    o, t = _pair()
    lrs, _ = _same_sequences(o, t, lambda m, opt: m.MultiplicativeLR(opt, lr_lambda=lr_lambda))
    assert lrs[0] == [0.1, 0.02]  # the first lr is the optimizer's, untouched


def test_multiplicative_lr_composes_with_another_schedule_like_torch():
    o, t = _pair()

    def make(m, opt):
        return m.ChainedScheduler([m.MultiplicativeLR(opt, lambda e: 0.97), m.StepLR(opt, step_size=10)])

    _same_sequences(o, t, make)


class _Decay:
    """A callable object: its attributes are state and are saved with the scheduler."""

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, epoch):
        return self.factor


def test_multiplicative_lr_state_dict_round_trip(tmp_path):
    def run(steps, state=None, factor=0.9):
        o, _ = _pair()
        s = fls.MultiplicativeLR(o, [_Decay(factor), lambda e: 0.95])
        if state is not None:
            o.load_state_dict(state["optim"])
            s.load_state_dict(state["sched"])
        lrs, _ = _trace(o, s, steps)
        return o, s, lrs[1:]

    _, _, full = run(20)
    o, s, first = run(8)
    assert s.state_dict()["lr_lambdas"] == [{"factor": 0.9}, None]
    fw.save({"optim": o.state_dict(), "sched": s.state_dict()}, tmp_path / "s.safetensors")
    _, s2, rest = run(12, fw.load(tmp_path / "s.safetensors"), factor=0.5)
    assert s2.lr_lambdas[0].factor == 0.9  # restored from the checkpoint
    assert first + rest == full


def test_multiplicative_lr_errors():
    o, t = _pair()
    for m, opt in ((fls, o), (tls, t)):
        with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
            m.MultiplicativeLR(opt, [lambda e: 0.9])
        with pytest.raises(TypeError, match="lr_lambda should be a function, but got float"):
            m.MultiplicativeLR(opt, 0.9)


# ---------------------------------------------------------------------------------- CyclicLR

CYCLIC = [
    dict(base_lr=0.01, max_lr=0.1, step_size_up=5),
    dict(base_lr=0.01, max_lr=0.1, step_size_up=4, step_size_down=9),
    dict(base_lr=[0.01, 0.001], max_lr=[0.1, 0.05], step_size_up=6, mode="triangular2"),
    dict(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5, mode="exp_range", gamma=0.97),
    dict(base_lr=0.001, max_lr=0.01, step_size_up=7, scale_fn=lambda x: 0.5 * (1 + np.sin(x))),
    dict(base_lr=0.001, max_lr=0.01, step_size_up=4, scale_fn=lambda x: 1 / (1 + 0.1 * x),
         scale_mode="iterations"),
    dict(base_lr=0.01, max_lr=0.1, step_size_up=5, mode="nonsense", scale_fn=lambda x: 0.9**x),
    dict(base_lr=0.01, max_lr=0.1, step_size_up=5, base_momentum=[0.7, 0.6], max_momentum=0.95),
    dict(base_lr=0.01, max_lr=0.1, step_size_up=1),
]


def _cyclic_ids():
    return [",".join(f"{k}={v.__name__ if callable(v) else v}" for k, v in kw.items()) for kw in CYCLIC]


@pytest.mark.parametrize("kw", CYCLIC, ids=_cyclic_ids())
@pytest.mark.parametrize("opt", ["SGD", "Adam", "NAdam"])
def test_cyclic_lr_and_momentum_match_torch(kw, opt):
    okw = dict(momentum=0.9) if opt == "SGD" else {}
    o, t = _pair(opt, **okw)
    lrs, moms = _same_sequences(o, t, lambda m, x: m.CyclicLR(x, **kw))
    assert lrs[0] == ([kw["base_lr"]] * 2 if not isinstance(kw["base_lr"], list) else kw["base_lr"])
    mm = kw.get("max_momentum", 0.9)
    assert moms[0] == [mm, mm]  # the cycle starts at the lowest lr and the highest momentum
    if opt != "SGD":
        assert all(g["betas"][1] == 0.999 for g in o.param_groups)


def test_triangular_values():
    o, _ = _pair(lrs=(1.0,), momentum=0.9)
    s = fls.CyclicLR(o, base_lr=1.0, max_lr=3.0, step_size_up=2, step_size_down=4, cycle_momentum=False)
    lrs, moms = _trace(o, s, steps=12)
    assert [x[0] for x in lrs] == pytest.approx([1, 2, 3, 2.5, 2, 1.5, 1, 2, 3, 2.5, 2, 1.5, 1])
    assert {m[0] for m in moms} == {0.9}  # momentum untouched


def test_cyclic_lr_without_momentum_cycling_on_an_optimizer_without_momentum():
    o, t = _pair("Adagrad")
    _same_sequences(o, t, lambda m, x: m.CyclicLR(x, 0.01, 0.1, step_size_up=4, mode="triangular2",
                                                  cycle_momentum=False))


def test_cyclic_lr_errors_like_torch():
    o, t = _pair("Adagrad")
    for m, opt in ((fls, o), (tls, t)):
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
            m.CyclicLR(opt, 0.01, 0.1)
        with pytest.raises(ValueError, match="mode is invalid and scale_fn is None"):
            m.CyclicLR(opt, 0.01, 0.1, mode="triangular3", cycle_momentum=False)
        with pytest.raises(ValueError):
            m.CyclicLR(opt, [0.01, 0.02, 0.03], 0.1, cycle_momentum=False)
    with pytest.raises(TypeError, match="not an Optimizer"):
        fls.CyclicLR(object(), 0.01, 0.1)


class _Halving:
    """A callable scale with state (its attributes go into the scheduler's state dict)."""

    def __init__(self, base):
        self.base = base

    def __call__(self, x):
        return self.base**x


@pytest.mark.parametrize("kw", [
    dict(mode="exp_range", gamma=0.95),
    dict(mode="triangular2"),
    dict(scale_fn=None, scale_mode="iterations"),  # (a _Halving object, made in run())
], ids=["exp_range", "triangular2", "callable-object"])
def test_cyclic_lr_state_dict_round_trip(tmp_path, kw):
    def run(steps, state=None):
        o, _ = _pair("Adam")
        extra = dict(kw)
        if "scale_fn" in kw:  # a fresh object, whose attribute the checkpoint restores
            extra["scale_fn"] = _Halving(0.8 if state is None else 0.3)
        s = fls.CyclicLR(o, 0.001, 0.01, step_size_up=3, step_size_down=5, base_momentum=0.7, **extra)
        if state is not None:
            o.load_state_dict(state["optim"])
            s.load_state_dict(state["sched"])
        lrs, moms = _trace(o, s, steps)
        return o, s, lrs[1:], moms[1:]

    _, _, lrs, moms = run(30)
    o, s, lrs1, moms1 = run(11)
    fw.save({"optim": o.state_dict(), "sched": s.state_dict()}, tmp_path / "s.safetensors")
    if "scale_fn" in kw:
        assert s.state_dict()["_scale_fn_custom"] == {"base": 0.8}
    _, s2, lrs2, moms2 = run(19, fw.load(tmp_path / "s.safetensors"))
    assert s2.last_epoch == 30 and s2.scale_mode == s.scale_mode
    if "scale_fn" in kw:
        assert s2._scale_fn_custom.base == 0.8
    assert lrs1 + lrs2 == lrs
    assert moms1 + moms2 == moms
