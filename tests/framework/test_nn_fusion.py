"""framework.nn.utils.fusion: frozen batch norms folded into the layer before them, against
torch.nn.utils.fusion and against the unfused pair."""

import numpy as np
import pytest

import framework as fw
import framework.nn as nn

torch = pytest.importorskip("torch")


def _randomise_bn(bn, rng):
    c = bn.running_mean.numel()
    with fw.no_grad():
        bn.running_mean.copy_(fw.tensor(rng.standard_normal(c).astype(np.float32)))
        bn.running_var.copy_(fw.tensor(rng.uniform(0.2, 3.0, c).astype(np.float32)))
        if bn.weight is not None:
            bn.weight.copy_(fw.tensor(rng.standard_normal(c).astype(np.float32)))
            bn.bias.copy_(fw.tensor(rng.standard_normal(c).astype(np.float32)))


def _torch_copy(module, tmod):
    tmod.load_state_dict({k: torch.tensor(v.numpy()) for k, v in module.state_dict().items()})
    return tmod


@pytest.mark.parametrize(
    "make, tmake, transpose, shape",
    [
        (lambda: nn.Conv2d(3, 5, 3, padding=1, bias=False),
         lambda: torch.nn.Conv2d(3, 5, 3, padding=1, bias=False), False, (2, 3, 9, 9)),
        (lambda: nn.Conv2d(4, 4, 3, stride=2, groups=4), lambda: torch.nn.Conv2d(4, 4, 3, stride=2, groups=4),
         False, (2, 4, 9, 9)),
        (lambda: nn.ConvTranspose2d(3, 5, 2, stride=2), lambda: torch.nn.ConvTranspose2d(3, 5, 2, stride=2),
         True, (2, 3, 4, 4)),
    ],
)
def test_fuse_conv_bn_eval_matches_torch_and_the_unfused_pair(make, tmake, transpose, shape, rng):
    conv, bn = make(), None
    n_out = conv.weight.shape[1] if transpose else conv.weight.shape[0]
    bn = nn.BatchNorm2d(n_out, eps=1e-3)
    _randomise_bn(bn, rng)
    conv.eval()
    bn.eval()
    fused = nn.utils.fuse_conv_bn_eval(conv, bn, transpose=transpose)
    tconv = _torch_copy(conv, tmake()).eval()
    tbn = _torch_copy(bn, torch.nn.BatchNorm2d(n_out, eps=1e-3)).eval()
    tfused = torch.nn.utils.fusion.fuse_conv_bn_eval(tconv, tbn, transpose=transpose)
    for ours, ref in ((fused.weight, tfused.weight), (fused.bias, tfused.bias)):
        np.testing.assert_allclose(ours.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    x = fw.tensor(rng.standard_normal(shape).astype(np.float32))
    unfused = bn(conv(x)).detach().numpy()
    np.testing.assert_allclose(fused(x).detach().numpy(), unfused, rtol=1e-4, atol=1e-5)
    assert conv.bias is None or conv.bias is not fused.bias  # the original is left alone


def test_fuse_linear_bn_eval(rng):
    lin, bn = nn.Linear(6, 4), nn.BatchNorm1d(4)
    _randomise_bn(bn, rng)
    lin.eval()
    bn.eval()
    fused = nn.utils.fuse_linear_bn_eval(lin, bn)
    x = fw.tensor(rng.standard_normal((5, 6)).astype(np.float32))
    np.testing.assert_allclose(fused(x).detach().numpy(), bn(lin(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_fusion_refuses_training_mode_and_mismatched_channels():
    conv, bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match="only for evaluation"):
        nn.utils.fuse_conv_bn_eval(conv, bn)
    conv.eval()
    with pytest.raises(ValueError, match="has 5 channels"):
        nn.utils.fuse_conv_bn_eval(conv, nn.BatchNorm2d(5).eval())
    with pytest.raises(ValueError, match="no running statistics"):
        nn.utils.fuse_conv_bn_eval(conv, nn.BatchNorm2d(4, track_running_stats=False).eval())
