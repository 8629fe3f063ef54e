"""SyncBatchNorm in one process (plain batch norm, PyTorch's keys) and convert_sync_batchnorm; NLLLoss2d."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for these layers")


def test_sync_batchnorm_is_batchnorm_in_one_process_and_converts_models():
    rng = np.random.default_rng(0)
    net = fw.nn.Sequential(fw.nn.Conv2d(3, 4, 3), fw.nn.BatchNorm2d(4), fw.nn.ReLU()).double()
    x = fw.tensor(rng.standard_normal((5, 3, 6, 6)))
    ref = fw.nn.Sequential(fw.nn.Conv2d(3, 4, 3), fw.nn.BatchNorm2d(4), fw.nn.ReLU()).double()
    ref.load_state_dict(net.state_dict())
    conv = fw.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert isinstance(conv[1], fw.nn.SyncBatchNorm) and conv[1].weight is net[1].weight  # the same tensors
    np.testing.assert_allclose(conv(x).detach().numpy(), ref(x).detach().numpy(), rtol=1e-12)  # training
    np.testing.assert_allclose(conv[1].running_mean.numpy(), ref[1].running_mean.numpy(), rtol=1e-12)
    t = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).double()
    t = torch.nn.SyncBatchNorm.convert_sync_batchnorm(t)
    assert list(t.state_dict()) == list(conv.state_dict())
    conv.load_state_dict({k: fw.tensor(v.numpy()) for k, v in t.state_dict().items()})
    conv.eval()
    t.eval()  # (PyTorch's SyncBatchNorm trains only in a distributed job; evaluation runs anywhere)
    np.testing.assert_allclose(conv(x).detach().numpy(), t(torch.tensor(x.numpy())).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_nll_loss_2d_is_nll_loss():
    rng = np.random.default_rng(1)
    logp = rng.standard_normal((2, 3, 4, 4))
    target = rng.integers(0, 3, (2, 4, 4))
    got = fw.nn.NLLLoss2d()(fw.tensor(logp), fw.tensor(target)).item()
    want = torch.nn.NLLLoss()(torch.tensor(logp), torch.tensor(target)).item()
    assert abs(got - want) < 1e-12
