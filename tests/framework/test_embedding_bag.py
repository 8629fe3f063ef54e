"""nn.EmbeddingBag / F.embedding_bag against PyTorch's: every mode with 1-D input and offsets (empty bags,
include_last_offset) and 2-D input, padding_idx, per_sample_weights, gradients, the module's parameters
and state dict, and the errors."""

import numpy as np
import pytest

import framework as fw
import framework.nn.functional as F

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for embedding bags")
TF = torch.nn.functional

RNG = np.random.default_rng(3)
W = RNG.standard_normal((12, 5))


def _run(lib, fn, x, w, **kw):
    wt = lib.tensor(w, requires_grad=True)
    conv = {k: (lib.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    psw = conv.get("per_sample_weights")
    if psw is not None:
        psw.requires_grad_(True)
    out = fn(lib.tensor(x), wt, **conv)
    (out * lib.tensor(np.arange(out.numel(), dtype=np.float64).reshape(tuple(out.shape)))).sum().backward()
    return out.detach().numpy(), wt.grad.numpy(), (None if psw is None else psw.grad.numpy())


def _same(x, **kw):
    a = _run(fw, F.embedding_bag, x, W, **kw)
    b = _run(torch, TF.embedding_bag, x, W, **kw)
    for u, v in zip(a, b):
        if v is None:
            assert u is None
        else:
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)
    return a[0]


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_offsets_and_2d_bags_match_torch(mode):
    x = RNG.integers(0, 12, 11)
    out = _same(x, offsets=np.array([0, 3, 3, 7]), mode=mode)  # bag 1 is empty: zeros
    assert out.shape == (4, 5) and (out[1] == 0).all()
    _same(x, offsets=np.array([0, 3, 3, 7, 11]), mode=mode, include_last_offset=True)
    _same(RNG.integers(0, 12, (4, 6)), mode=mode)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_padding_idx_is_left_out_of_its_bag(mode):
    x = np.array([2, 0, 0, 5, 0, 7, 0])
    out = _same(x, offsets=np.array([0, 3, 4]), mode=mode, padding_idx=0)
    # bags [2, 0, 0], [5], [0, 7, 0] are bags [2], [5], [7]: in every mode, those rows themselves
    np.testing.assert_allclose(out, W[[2, 5, 7]], rtol=1e-12)
    _same(np.array([[0, 0], [3, 0]]), mode=mode, padding_idx=0)  # an all-padding bag: zeros


def test_per_sample_weights_match_torch_and_need_sum():
    x = RNG.integers(0, 12, 8)
    psw = RNG.random(8)
    _same(x, offsets=np.array([0, 5]), mode="sum", per_sample_weights=psw)
    with pytest.raises(NotImplementedError, match="only supported for mode='sum'"):
        F.embedding_bag(fw.tensor(x), fw.tensor(W), fw.tensor(np.array([0, 5])), mode="mean",
                        per_sample_weights=fw.tensor(psw))


def test_module_matches_torch():
    torch.manual_seed(0)
    t = torch.nn.EmbeddingBag(12, 5, mode="max", padding_idx=3).double()
    f = fw.nn.EmbeddingBag(12, 5, mode="max", padding_idx=3).double()
    assert list(f.state_dict()) == list(t.state_dict()) == ["weight"]
    assert (f.weight.detach().numpy()[3] == 0).all()
    f.load_state_dict({"weight": fw.tensor(t.weight.detach().numpy())})
    x, off = RNG.integers(0, 12, 9), np.array([0, 2, 6])
    np.testing.assert_allclose(f(fw.tensor(x), fw.tensor(off)).detach().numpy(),
                               t(torch.tensor(x), torch.tensor(off)).detach().numpy(), rtol=1e-12)
    frozen = fw.nn.EmbeddingBag.from_pretrained(fw.tensor(W), mode="sum")
    assert not frozen.weight.requires_grad
    np.testing.assert_allclose(frozen(fw.tensor(np.array([[1, 2]]))).numpy(), (W[1] + W[2])[None], rtol=1e-12)


def test_embedding_bag_errors():
    w = fw.tensor(W)
    with pytest.raises(ValueError, match="if input is 2D, then offsets has to be None"):
        F.embedding_bag(fw.tensor(np.zeros((2, 2), np.int64)), w, fw.tensor(np.array([0])))
    with pytest.raises(ValueError, match="offsets has to be a 1D Tensor but got None"):
        F.embedding_bag(fw.tensor(np.zeros(3, np.int64)), w)
    with pytest.raises(ValueError, match="offsets\\[0\\] has to be 0"):
        F.embedding_bag(fw.tensor(np.zeros(3, np.int64)), w, fw.tensor(np.array([1, 2])))
    with pytest.raises(ValueError, match="can not be greater than input's length 3"):
        F.embedding_bag(fw.tensor(np.zeros(3, np.int64)), w, fw.tensor(np.array([0, 4])))
    with pytest.raises(ValueError, match="mode has to be one of sum, mean or max"):
        F.embedding_bag(fw.tensor(np.zeros(3, np.int64)), w, fw.tensor(np.array([0])), mode="median")
    with pytest.raises(IndexError, match="index out of range"):
        F.embedding_bag(fw.tensor(np.array([0, 12])), w, fw.tensor(np.array([0])))
    with pytest.raises(ValueError, match="input has to be 1D or 2D Tensor"):
        F.embedding_bag(fw.tensor(np.zeros((1, 1, 1), np.int64)), w)
