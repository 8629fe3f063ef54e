"""fw.optim.swa_utils against torch.optim.swa_utils: AveragedModel (SWA, EMA by avg_fn and by multi_avg_fn,
buffers averaged or followed), SWALR's lr sequences, update_bn's statistics, state dicts and errors."""

import numpy as np
import pytest

import framework as fw
from framework.optim import swa_utils as fsw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for weight averaging")
tsw = torch.optim.swa_utils


def _models():
    """The same small conv net with batch norm in both frameworks (PyTorch's weights copied over)."""

    def make(nn):
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 5 * 5, 3))

    torch.manual_seed(0)
    t = make(torch.nn)
    f = make(fw.nn)
    f.load_state_dict({k: fw.tensor(v.numpy()) for k, v in t.state_dict().items()})
    return f, t


def _train_steps(f, t, steps, seed=0):
    """Yield after each SGD step, the same batch and update in both (weights and BN statistics move)."""
    rng = np.random.default_rng(seed)
    fo = fw.optim.SGD(f.parameters(), lr=0.1, momentum=0.9)
    to = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        x = rng.standard_normal((6, 3, 5, 5)).astype(np.float32)
        y = rng.integers(0, 3, 6)
        for model, opt, lib, F in ((f, fo, fw, fw.nn.functional), (t, to, torch, torch.nn.functional)):
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(lib.tensor(x)), lib.tensor(y)).backward()
            opt.step()
        yield


def _same_state(fm, tm, atol=1e-6):
    fs, ts = fm.state_dict(), tm.state_dict()
    assert list(fs) == list(ts)
    for k in ts:
        a, b = fs[k].numpy(), ts[k].numpy()
        assert a.dtype == b.dtype, k
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol, err_msg=k)


@pytest.mark.parametrize("kind", ["swa", "ema_avg_fn", "ema_multi", "custom_avg_fn"])
@pytest.mark.parametrize("use_buffers", [False, True])
def test_averaged_model_matches_torch(kind, use_buffers):
    f, t = _models()
    kw = {
        "swa": ({}, {}),
        "ema_avg_fn": ({"avg_fn": fsw.get_ema_avg_fn(0.9)}, {"avg_fn": tsw.get_ema_avg_fn(0.9)}),
        "ema_multi": ({"multi_avg_fn": fsw.get_ema_multi_avg_fn(0.8)},
                      {"multi_avg_fn": tsw.get_ema_multi_avg_fn(0.8)}),
        "custom_avg_fn": ({"avg_fn": lambda a, p, n: 0.5 * a + 0.5 * p},
                          {"avg_fn": lambda a, p, n: 0.5 * a + 0.5 * p}),
    }[kind]
    fa = fsw.AveragedModel(f, use_buffers=use_buffers, **kw[0])
    ta = tsw.AveragedModel(t, use_buffers=use_buffers, **kw[1])
    for _ in _train_steps(f, t, 6):
        fa.update_parameters(f)
        ta.update_parameters(t)
    assert int(fa.n_averaged.item()) == 6
    _same_state(fa, ta)
    # the average is not the model (it really averaged), and it runs as a module
    assert not np.allclose(fa.module[0].weight.numpy(), f[0].weight.numpy())
    fa.eval()
    ta.eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(fa(fw.tensor(x)).detach().numpy(), ta(torch.tensor(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_swa_is_the_mean_of_the_updates_and_leaves_the_model_alone():
    f, _ = _models()
    snaps = []
    avg = fsw.AveragedModel(f)
    for _ in _train_steps(f, _models()[1], 4):
        snaps.append(f[0].weight.numpy().copy())
        avg.update_parameters(f)
    np.testing.assert_allclose(avg.module[0].weight.numpy(), np.mean(snaps, 0), rtol=1e-5, atol=1e-6)
    assert avg.module is not f and avg.module[0].weight is not f[0].weight
    np.testing.assert_array_equal(f[0].weight.numpy(), snaps[-1])
    # buffers follow the model when they are not averaged
    np.testing.assert_array_equal(avg.module[1].running_mean.numpy(), f[1].running_mean.numpy())


def test_averaged_model_state_dict_round_trip(tmp_path):
    f, _ = _models()
    avg = fsw.AveragedModel(f)
    avg.update_parameters(f)
    avg.update_parameters(f)
    fw.save(avg.state_dict(), tmp_path / "avg.safetensors")
    other = fsw.AveragedModel(_models()[0])
    other.load_state_dict(fw.load(tmp_path / "avg.safetensors"))
    assert int(other.n_averaged.item()) == 2
    _same_state(other, avg, atol=0)


def test_averaged_model_errors():
    f, _ = _models()
    with pytest.raises(ValueError, match="avg_fn or multi_avg_fn, not both"):
        fsw.AveragedModel(f, avg_fn=fsw.get_swa_avg_fn(), multi_avg_fn=fsw.get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="must be a Module"):
        fsw.AveragedModel(lambda x: x)
    avg = fsw.AveragedModel(f)
    with pytest.raises(ValueError, match="not the model it was made from"):
        avg.update_parameters(fw.nn.Linear(2, 2))
    wrong = fw.nn.Sequential(fw.nn.Conv2d(3, 4, 3, padding=1), fw.nn.BatchNorm2d(4), fw.nn.ReLU(),
                             fw.nn.Flatten(), fw.nn.Linear(4 * 5 * 5, 2))
    with pytest.raises(ValueError, match=r"shape \(2, 100\) where the averaged copy has \(3, 100\)"):
        avg.update_parameters(wrong)


def _lr_trace(lib, sched_mod, steps, swa_lr, anneal_epochs, strategy, before=None):
    opt = lib.optim.SGD([{"params": [lib.zeros(2, requires_grad=True)], "lr": 0.1},
                         {"params": [lib.zeros(2, requires_grad=True)], "lr": 0.03}], lr=0.1)
    sched = sched_mod.SWALR(opt, swa_lr=swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    out = [sched.get_last_lr()]
    for i in range(steps):
        opt.step()
        if before is not None and i == 3:
            for g in opt.param_groups:  # another schedule changed the lr meanwhile
                g["lr"] *= before
        sched.step()
        out.append(sched.get_last_lr())
    return out


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 5])
@pytest.mark.parametrize("swa_lr", [0.05, [0.01, 0.2]])
def test_swalr_matches_torch(strategy, anneal_epochs, swa_lr):
    ours = _lr_trace(fw, fsw, 12, swa_lr, anneal_epochs, strategy)
    theirs = _lr_trace(torch, tsw, 12, swa_lr, anneal_epochs, strategy)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    target = swa_lr if isinstance(swa_lr, list) else [swa_lr, swa_lr]
    np.testing.assert_allclose(ours[-1], target, rtol=1e-12)  # annealed, then held


def test_swalr_composes_with_outside_changes_like_torch():
    ours = _lr_trace(fw, fsw, 10, 0.05, 6, "cos", before=0.5)
    theirs = _lr_trace(torch, tsw, 10, 0.05, 6, "cos", before=0.5)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_swalr_state_dict_round_trip_and_errors(tmp_path):
    opt = fw.optim.SGD([fw.zeros(2, requires_grad=True)], lr=0.1)
    sched = fsw.SWALR(opt, swa_lr=0.02, anneal_epochs=4, anneal_strategy="linear")
    for _ in range(2):
        opt.step()
        sched.step()
    fw.save(sched.state_dict(), tmp_path / "s.safetensors")
    opt2 = fw.optim.SGD([fw.zeros(2, requires_grad=True)], lr=0.1)
    again = fsw.SWALR(opt2, swa_lr=0.5, anneal_epochs=9)
    again.load_state_dict(fw.load(tmp_path / "s.safetensors"))
    assert again.anneal_epochs == 4 and again.anneal_strategy == "linear"
    assert again.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="anneal_strategy must by one of 'cos' or 'linear'"):
        fsw.SWALR(opt, swa_lr=0.1, anneal_strategy="exp")
    with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0"):
        fsw.SWALR(opt, swa_lr=0.1, anneal_epochs=-1)
    with pytest.raises(ValueError, match="expected 1 values for swa_lr"):
        fsw.SWALR(opt, swa_lr=[0.1, 0.2])


def test_update_bn_matches_torch_and_restores_momentum_and_mode():
    f, t = _models()
    for _ in _train_steps(f, t, 3):
        pass
    fa, ta = fsw.AveragedModel(f), tsw.AveragedModel(t)
    fa.update_parameters(f)
    ta.update_parameters(t)
    rng = np.random.default_rng(5)
    batches = [rng.standard_normal((n, 3, 5, 5)).astype(np.float32) for n in (4, 7, 5)]
    f[1].momentum = 0.3
    fa.module[1].momentum = 0.3
    fa.eval()
    fsw.update_bn([(fw.tensor(b), 0) for b in batches], fa)  # (input, target) batches: the input is used
    tsw.update_bn([torch.tensor(b) for b in batches], ta)
    _same_state(fa, ta, atol=1e-5)
    assert fa.module[1].momentum == 0.3 and not fa.training
    # equal weight per batch (cumulative average), whatever the batch sizes
    feats = [fa.module[0](fw.tensor(b)).detach().numpy() for b in batches]
    np.testing.assert_allclose(fa.module[1].running_mean.numpy(),
                               np.mean([z.mean((0, 2, 3)) for z in feats], 0), rtol=1e-5, atol=1e-6)
    assert int(fa.module[1].num_batches_tracked.item()) == 3
    # a model without batch norms is left untouched
    lin = fw.nn.Linear(2, 2)
    before = lin.weight.numpy().copy()
    fsw.update_bn([fw.ones(3, 2)], lin)
    np.testing.assert_array_equal(lin.weight.numpy(), before)
