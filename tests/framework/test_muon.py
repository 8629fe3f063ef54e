"""fw.optim.Muon against torch.optim.Muon: five steps on a small network's matrices (tall, wide and square
weights), nesterov both ways, both learning-rate adjustments, weight decay; the state dict; the argument
errors. PyTorch runs the Newton-Schulz iteration in bfloat16, ours in float32, so the trajectories agree
to bfloat16's precision (an error in the algorithm moves them by the size of a whole update)."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the optimizer")


def _run(lib, opt_kw, steps=5):
    rng = np.random.default_rng(3)
    w1, w2 = rng.standard_normal((12, 5)) * 0.3, rng.standard_normal((4, 12)) * 0.3
    x, t = rng.standard_normal((16, 5)), rng.standard_normal((16, 4))
    ps = [lib.tensor(w.astype(np.float32), requires_grad=True) for w in (w1, w2)]
    opt = lib.optim.Muon(ps, **opt_kw)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        h = lib.tanh(lib.tensor(x.astype(np.float32)) @ ps[0].T)
        loss = ((h @ ps[1].T - lib.tensor(t.astype(np.float32))) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses, [p.detach().numpy().copy() for p in ps], opt


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.05),
        dict(lr=0.05, nesterov=False, momentum=0.9),
        dict(lr=0.02, adjust_lr_fn="match_rms_adamw", weight_decay=0.3),
        dict(lr=0.05, weight_decay=0.0, ns_steps=3),
    ],
)
def test_muon_follows_pytorch(kw):
    fl, fp, _ = _run(fw, kw)
    tl, tp, _ = _run(torch, kw)
    np.testing.assert_allclose(fl, tl, rtol=2e-3)
    for a, b in zip(fp, tp):
        np.testing.assert_allclose(a, b, atol=5e-3, rtol=0)  # (measured: at most 2.7e-3 apart)
        # (one update is lr * sqrt(12/5) ~ 0.08 in size: a wrong step would be far outside this)
    # and it does optimise: the loss falls
    assert fl[-1] < fl[0]


def test_muon_state_dict_round_trip_and_errors():
    _, _, opt = _run(fw, dict(lr=0.05), steps=2)
    sd = opt.state_dict()
    assert set(sd["state"][0]) == {"momentum_buffer"}
    p = [fw.tensor(np.ones((3, 2), np.float32), requires_grad=True)]
    o2 = fw.optim.Muon(p, lr=0.05)
    with pytest.raises(ValueError, match="2D parameters"):
        fw.optim.Muon([fw.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError, match="not supported"):
        fw.optim.Muon(p, adjust_lr_fn="other")
    with pytest.raises(ValueError, match="less than 100"):
        fw.optim.Muon(p, ns_steps=100)
    with pytest.raises(ValueError, match="Learning rate"):
        fw.optim.Muon(p, lr=-1)
    assert o2.param_groups[0]["ns_coefficients"] == (3.4445, -4.775, 2.0315)


def test_newton_schulz_makes_singular_values_near_one():
    from framework.optim.muon import _newton_schulz

    m = np.random.default_rng(0).standard_normal((20, 7))
    o = _newton_schulz(np, m, (3.4445, -4.775, 2.0315), 5, 1e-7)
    s = np.linalg.svd(o, compute_uv=False)
    assert o.shape == m.shape and (s > 0.6).all() and (s < 1.25).all()  # (the quintic's band, not exactly 1)
