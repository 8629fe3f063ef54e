"""nn.AdaptiveLogSoftmaxWithLoss against PyTorch's: a PyTorch state dict loads unchanged and gives the same
outputs, losses, full log-probabilities, predictions and gradients (float64 and float32), batched and
unbatched, with head bias, with targets missing from some clusters; the constructor's and forward's errors."""

import re

import numpy as np
import pytest

import framework as fw
from framework import nn

torch = pytest.importorskip("torch")


def _pair(in_features, n_classes, cutoffs, dtype, **kw):
    torch.manual_seed(0)
    ref = torch.nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, **kw).to(
        torch.float64 if dtype == np.float64 else torch.float32)
    ours = nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs,
                                         dtype=fw.float64 if dtype == np.float64 else fw.float32, **kw)
    state = {k: fw.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()}
    assert sorted(state) == sorted(ours.state_dict())
    ours.load_state_dict(state)
    return ours, ref


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kw,targets", [
    (dict(), [0, 3, 4, 9, 10, 19, 2, 15]),  # every cluster
    (dict(head_bias=True, div_value=2.0), [1, 1, 2, 3]),  # the shortlist only
    (dict(div_value=3.0), [12, 17, 18, 11]),  # the last cluster only
])
def test_forward_log_prob_predict_and_gradients_match_torch(dtype, kw, targets):
    rng = np.random.default_rng(0)
    ours, ref = _pair(16, 20, [4, 10], dtype, **kw)
    x = rng.standard_normal((len(targets), 16)).astype(dtype)
    tgt = np.array(targets)
    fx = fw.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    out, loss = ours(fx, fw.tensor(tgt))
    rout, rloss = ref(tx, torch.tensor(tgt))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(out.detach().numpy(), rout.detach().numpy(), **tol)
    np.testing.assert_allclose(loss.item(), rloss.item(), **tol)
    (loss * 2 + out[0]).backward()
    (rloss * 2 + rout[0]).backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), **tol)
    for (name, p), (rname, rp) in zip(ours.named_parameters(), ref.named_parameters()):
        assert name == rname
        if rp.grad is None:  # a cluster no target fell in
            assert p.grad is None, name
            continue
        np.testing.assert_allclose(p.grad.numpy(), rp.grad.numpy(), err_msg=name, **tol)
    lp = ours.log_prob(fw.tensor(x))
    np.testing.assert_allclose(lp.detach().numpy(), ref.log_prob(torch.tensor(x)).detach().numpy(), **tol)
    np.testing.assert_allclose(np.exp(lp.detach().numpy()).sum(1), 1.0, rtol=1e-5)
    assert ours.predict(fw.tensor(x)).tolist() == ref.predict(torch.tensor(x)).tolist()


def test_unbatched_input_and_zero_d_target():
    ours, ref = _pair(8, 12, [3, 6, 9], np.float64)
    x = np.random.default_rng(1).standard_normal(8)
    out, loss = ours(fw.tensor(x), fw.tensor(np.array(7)))
    rout, rloss = ref(torch.tensor(x), torch.tensor(7))
    assert out.shape == () and loss.shape == ()
    np.testing.assert_allclose(out.item(), rout.item(), rtol=1e-12)
    # (PyTorch's log_prob and predict take batches only; ours take an unbatched input too)
    want = ref.log_prob(torch.tensor(x[None])).detach().numpy()[0]
    np.testing.assert_allclose(ours.log_prob(fw.tensor(x)).detach().numpy(), want, rtol=1e-12)
    assert ours.predict(fw.tensor(x)).item() == int(want.argmax())


def test_tail_sizes_and_parameter_names_follow_torch():
    m = nn.AdaptiveLogSoftmaxWithLoss(64, 1000, [10, 100, 500], div_value=4.0)
    assert m.head.weight.shape == (13, 64) and m.head.bias is None
    assert [tuple(p.shape) for p in m.tail.parameters()] == [(16, 64), (90, 16), (4, 64), (400, 4), (1, 64),
                                                             (500, 1)]


@pytest.mark.parametrize("cutoffs", [[], [5, 3], [0, 4], [4, 20], [4, 4], [2.5]])
def test_bad_cutoffs_raise_torchs_error(cutoffs):
    with pytest.raises(ValueError) as ours:
        nn.AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs)
    with pytest.raises(ValueError) as theirs:
        torch.nn.AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs)
    assert str(ours.value) == str(theirs.value)


def test_forward_errors_name_the_problem():
    m = nn.AdaptiveLogSoftmaxWithLoss(8, 20, [4, 10])
    x = fw.tensor(np.zeros((3, 8), dtype=np.float32))
    msg = "Target values should be in [0, 19], but values in range [-1, 20] were found"
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        m(x, fw.tensor(np.array([-1, 5, 20])))
    with pytest.raises(RuntimeError, match="same size in the batch dimension"):
        m(x, fw.tensor(np.array([1, 2])))
    with pytest.raises(RuntimeError, match="multi-target not supported"):
        m(x, fw.tensor(np.zeros((3, 2), dtype=np.int64)))
    with pytest.raises(RuntimeError, match="1D target tensor expects 2D input"):
        m(fw.tensor(np.zeros((3, 8, 1), dtype=np.float32)), fw.tensor(np.array([1, 2, 3])))
