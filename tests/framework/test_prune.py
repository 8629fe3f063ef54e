"""nn.utils.prune against torch.nn.utils.prune: the masks (magnitude, structured, iterative, global,
custom, importance scores), state-dict keys, outputs and gradients of pruned layers, remove, and the
errors. Random methods are checked by what they must do (how many entries or channels go)."""

import numpy as np
import pytest

import framework as fw
from framework.nn.utils import prune as fpr

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for pruning")
tpr = pytest.importorskip("torch.nn.utils.prune")


def _pair(make):
    torch.manual_seed(0)
    t = make(torch.nn)
    f = make(fw.nn)
    f.load_state_dict({k: fw.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    return f, t


def _conv(nn):
    return nn.Conv2d(4, 6, 3)


def _same_masks(f, t, names=("weight",)):
    assert list(f.state_dict()) == list(t.state_dict())
    for n in names:
        np.testing.assert_array_equal(getattr(f, n + "_mask").numpy(), getattr(t, n + "_mask").numpy())
        np.testing.assert_array_equal(getattr(f, n).detach().numpy(), getattr(t, n).detach().numpy())


@pytest.mark.parametrize("amount", [0.0, 0.3, 17, 1.0])
def test_l1_unstructured_matches_torch_with_outputs_and_gradients(amount):
    f, t = _pair(_conv)
    fpr.l1_unstructured(f, "weight", amount)
    tpr.l1_unstructured(t, "weight", amount)
    _same_masks(f, t)
    expected = round(amount * f.weight.numel()) if isinstance(amount, float) else amount
    assert int((f.weight_mask.numpy() == 0).sum()) == expected
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    fo, to = f(fw.tensor(x)), t(torch.tensor(x))
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-5)
    fo.sum().backward()
    to.sum().backward()
    g = f.weight_orig.grad.numpy()
    np.testing.assert_allclose(g, t.weight_orig.grad.numpy(), rtol=1e-5, atol=1e-5)
    assert (g[f.weight_mask.numpy() == 0] == 0).all()  # pruned entries get no gradient


@pytest.mark.parametrize("n,dim", [(2, 0), (1, 1), (float("inf"), -1), (2, -4)])
def test_ln_structured_matches_torch(n, dim):
    f, t = _pair(_conv)
    fpr.ln_structured(f, "weight", amount=0.5, n=n, dim=dim)
    tpr.ln_structured(t, "weight", amount=0.5, n=n, dim=dim)
    _same_masks(f, t)


def test_iterative_pruning_prunes_among_what_is_left_like_torch():
    f, t = _pair(_conv)
    for lib in ((fpr, f), (tpr, t)):
        p, m = lib
        p.l1_unstructured(m, "weight", 0.2)
        p.ln_structured(m, "weight", amount=2, n=1, dim=0)
        p.l1_unstructured(m, "weight", 10)
        p.l1_unstructured(m, "bias", 0.5)
    _same_masks(f, t, ("weight", "bias"))
    hooks = [h for h in f._forward_pre_hooks.values() if isinstance(h, fpr.PruningContainer)]
    assert len(hooks) == 1 and len(hooks[0]) == 3  # one container per tensor, three methods in it
    # the pruned structure: 2 whole output channels zero
    assert ((f.weight_mask.numpy().reshape(6, -1) == 0).all(1)).sum() == 2


def test_global_custom_and_importance_scores_match_torch():
    def make(nn):
        return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))

    f, t = _pair(make)
    fpr.global_unstructured([(f[0], "weight"), (f[2], "weight")], fpr.L1Unstructured, amount=0.4)
    tpr.global_unstructured([(t[0], "weight"), (t[2], "weight")], tpr.L1Unstructured, amount=0.4)
    _same_masks(f[0], t[0])
    _same_masks(f[2], t[2])
    total = f[0].weight.numel() + f[2].weight.numel()
    pruned = int((f[0].weight_mask.numpy() == 0).sum() + (f[2].weight_mask.numpy() == 0).sum())
    assert pruned == round(0.4 * total)

    mask = (np.arange(7) % 2).astype(np.float32)
    fpr.custom_from_mask(f[0], "bias", fw.tensor(mask))
    tpr.custom_from_mask(t[0], "bias", torch.tensor(mask))
    _same_masks(f[0], t[0], ("weight", "bias"))

    scores = np.random.default_rng(1).random((3, 7)).astype(np.float32)
    g, u = _pair(make)
    fpr.l1_unstructured(g[2], "weight", 5, importance_scores=fw.tensor(scores))
    tpr.l1_unstructured(u[2], "weight", 5, importance_scores=torch.tensor(scores))
    _same_masks(g[2], u[2])
    np.testing.assert_array_equal(g[2].weight_mask.numpy() == 0, scores <= np.sort(scores.ravel())[4])


def test_a_pruned_torch_state_dict_loads_and_remove_makes_it_permanent():
    f, t = _pair(_conv)
    tpr.l1_unstructured(t, "weight", 0.5)
    fpr.identity(f, "weight")  # the pruned form, nothing pruned yet
    assert (f.weight_mask.numpy() == 1).all()
    f.load_state_dict({k: fw.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((1, 4, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(f(fw.tensor(x)).detach().numpy(), t(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    assert fpr.is_pruned(f)
    fpr.remove(f, "weight")
    tpr.remove(t, "weight")
    assert not fpr.is_pruned(f) and isinstance(f.weight, fw.nn.Parameter)
    assert list(f.state_dict()) == list(t.state_dict()) == ["bias", "weight"]  # as PyTorch leaves it
    np.testing.assert_array_equal(f.weight.detach().numpy(), t.weight.detach().numpy())


def test_random_methods_prune_the_asked_number():
    fw.manual_seed(0)
    f, _ = _pair(_conv)
    fpr.random_unstructured(f, "weight", 0.25)
    assert int((f.weight_mask.numpy() == 0).sum()) == round(0.25 * f.weight.numel())
    fpr.random_structured(f, "weight", 2, dim=1)
    zero_in = (f.weight_mask.numpy().transpose(1, 0, 2, 3).reshape(4, -1) == 0).all(1)
    assert zero_in.sum() == 2  # two input channels gone entirely
    fw.manual_seed(1)
    g, _ = _pair(_conv)
    fpr.random_unstructured(g, "weight", 0.25)
    assert not np.array_equal(g.weight_mask.numpy(), _pruned_copy(0))


def _pruned_copy(seed):
    fw.manual_seed(seed)
    f, _ = _pair(_conv)
    fpr.random_unstructured(f, "weight", 0.25)
    return f.weight_mask.numpy()


def test_pruning_errors():
    f, _ = _pair(_conv)
    with pytest.raises(ValueError, match="should either be a float in the range \\[0, 1\\] or a non-neg"):
        fpr.l1_unstructured(f, "weight", 1.5)
    with pytest.raises(ValueError, match="non-negative integer"):
        fpr.l1_unstructured(f, "weight", -1)
    with pytest.raises(TypeError, match="Invalid type for amount"):
        fpr.l1_unstructured(f, "weight", "half")
    with pytest.raises(ValueError, match="amount=1000 should be smaller than the number of parameters"):
        fpr.l1_unstructured(f, "weight", 1000)
    assert isinstance(f.weight, fw.nn.Parameter) and not fpr.is_pruned(f)  # a refused pruning changes nothing
    with pytest.raises(IndexError, match="Invalid index 4 for tensor of size"):
        fpr.ln_structured(f, "weight", 1, 2, dim=4)
    with pytest.raises(ValueError, match="has to be pruned before pruning can be removed"):
        fpr.remove(f, "weight")
    with pytest.raises(TypeError, match='Only "unstructured" PRUNING_TYPE'):
        fpr.global_unstructured([(f, "weight")], fpr.LnStructured, amount=1, n=2, dim=0)
    with pytest.raises(ValueError, match="importance_scores should have the same shape"):
        fpr.l1_unstructured(f, "weight", 3, importance_scores=fw.ones(3))
    bn = fw.nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="has to be a parameter to be pruned"):
        fpr.l1_unstructured(bn, "running_mean", 1)
