"""F.gumbel_softmax (soft and hard, straight-through gradients) and feature_alpha_dropout /
nn.FeatureAlphaDropout, by the properties PyTorch's have (their draws come from another generator)."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for these layers")
F = fw.nn.functional


def test_gumbel_softmax_samples_the_categorical_and_passes_the_soft_gradient():
    fw.manual_seed(0)
    probs = np.array([0.1, 0.2, 0.7])
    logits = fw.tensor(np.log(probs))
    hard = np.stack([F.gumbel_softmax(logits, tau=0.5, hard=True).numpy() for _ in range(6000)])
    assert set(np.unique(hard)) == {0.0, 1.0} and (hard.sum(1) == 1).all()
    np.testing.assert_allclose(hard.mean(0), probs, atol=0.02)  # argmax of logits + Gumbel noise
    soft = F.gumbel_softmax(fw.tensor(np.zeros((4, 5))), tau=2.0).numpy()
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-12)
    assert (soft > 0).all() and (soft < 1).all()
    # straight-through: the hard sample's gradient is the soft sample's, for the same noise
    x = fw.tensor(np.array([[0.5, -1.0, 2.0]]), requires_grad=True)
    w = fw.tensor(np.array([[1.0, 2.0, 3.0]]))
    fw.manual_seed(3)
    (F.gumbel_softmax(x, tau=0.7, hard=True) * w).sum().backward()
    g_hard = x.grad.numpy().copy()
    x.grad = None
    fw.manual_seed(3)
    (F.gumbel_softmax(x, tau=0.7) * w).sum().backward()
    np.testing.assert_allclose(g_hard, x.grad.numpy(), rtol=1e-12)


def test_feature_alpha_dropout_drops_whole_channels_and_keeps_selu_statistics():
    fw.manual_seed(1)
    x = fw.tensor(np.random.default_rng(0).standard_normal((200, 64, 4, 4)))
    y = fw.nn.FeatureAlphaDropout(0.3)(x).numpy()
    t = torch.nn.FeatureAlphaDropout(0.3)(torch.tensor(x.numpy())).numpy()
    # each channel is either an affine map of the input or a constant (SELU's saturation, mapped)
    const = (y.reshape(200 * 64, -1).std(1) == 0)
    t_const = (t.reshape(200 * 64, -1).std(1) == 0)
    assert abs(const.mean() - 0.3) < 0.02 and abs(t_const.mean() - 0.3) < 0.02
    assert abs(y.mean() - t.mean()) < 0.02 and abs(y.std() - t.std()) < 0.02  # mean ~0, std ~1 in both
    assert np.unique(y.reshape(200 * 64, -1)[const][:, 0]).size == 1  # the same constant everywhere
    np.testing.assert_array_equal(fw.nn.FeatureAlphaDropout(0.3).eval()(x).numpy(), x.numpy())
