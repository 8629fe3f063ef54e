"""A small anchor-free CenterNet-style detector (Zhou et al., "Objects as Points", 2019).

Why CenterNet rather than FCOS: one stride-4 output map (no multi-level assignment), no box
regression per pyramid level, and decoding is a 3x3 max-pool peak search plus a top-k, which needs
no NMS for most scenes, so post-processing costs well under a millisecond on a CPU. FCOS needs
per-level outputs and NMS over thousands of candidates.

Architecture (input (N, 3, S, S), values 0..1, S divisible by 32):
- backbone: a 4x4 stride-4 patchify stem, then 3x3 conv-BN-ReLU blocks down to stride 32
  (channels 16, 24, 40, 64, 96);
- neck: FPN-style top-down path (1x1 lateral convs, nearest x2 upsampling, sums) back to stride 4;
- head at stride 4: depthwise 3x3 conv-BN-ReLU, then 1x1 outputs:
  ``heatmap`` logits (N, C, S/4, S/4) and ``reg`` (N, 4, S/4, S/4) = [dx, dy, log w, log h] with
  (dx, dy) the centre offset from the cell in cells and (w, h) in cells.

Parameter names match :func:`benchmarks.perception.torch_model` so weights copy one to one.
"""

from __future__ import annotations

import math

import numpy as np

import framework as fw
import framework.nn as nn
import framework.nn.functional as F

from .classes import NUM_CLASSES


class ConvBNAct(nn.Module):
    """conv (no bias) -> BatchNorm2d -> ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(
            cin, cout, k, stride=stride, padding=0 if k == stride else k // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        if isinstance(self.bn, nn.Identity):  # batch norm folded into the conv (CenterNet.fuse):
            c = self.conv  # one fused call (without autograd the ReLU rides on the conv's output pass)
            return F.conv2d_bias_act(x, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups,
                                     activation="relu" if self.act else None)
        x = self.bn(self.conv(x))
        if not self.act:
            return x
        # without autograd the activation can reuse the fresh conv/BN output
        return F.relu(x, inplace=not fw.is_grad_enabled())


class CenterNet(nn.Module):
    """The detector. ``width`` scales every channel count (1.0 = 0.27 M parameters, 1.5 = 0.61 M: the
    committed model)."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0, neck: int = 48, head: int = 32):
        super().__init__()
        c = [max(8, int(round(v * width))) for v in (16, 24, 40, 64, 96)]
        neck, head = max(8, int(round(neck * width))), max(8, int(round(head * width)))
        self.num_classes = num_classes
        # patchify stem (4x4 stride 4): no activations at stride 2, the costliest memory traffic on a CPU
        self.stem = ConvBNAct(3, c[0], 4, 4)  # /4
        self.s1 = ConvBNAct(c[0], c[1], 3)  # /4
        self.s2 = nn.Sequential(ConvBNAct(c[1], c[2], 3, 2), ConvBNAct(c[2], c[2], 3))  # /8
        self.s3 = nn.Sequential(ConvBNAct(c[2], c[3], 3, 2), ConvBNAct(c[3], c[3], 3))  # /16
        self.s4 = nn.Sequential(ConvBNAct(c[3], c[4], 3, 2), ConvBNAct(c[4], c[4], 3))  # /32
        self.lat4 = ConvBNAct(c[4], neck, 1)
        self.lat3 = ConvBNAct(c[3], neck, 1)
        self.lat2 = ConvBNAct(c[2], neck, 1)
        self.fuse3 = ConvBNAct(neck, neck, 3)
        self.fuse2 = ConvBNAct(neck, head, 3)
        self.lat1 = ConvBNAct(c[1], head, 1)
        self.dw = ConvBNAct(head, head, 3, groups=head)
        self.hm = nn.Conv2d(head, num_classes, 1)
        self.reg = nn.Conv2d(head, 4, 1)
        # CenterNet's focal-loss prior: start with heatmap probability 0.1 everywhere
        prior = -math.log((1 - 0.1) / 0.1)
        with fw.no_grad():
            self.hm.bias.fill_(prior)
            self.reg.bias.fill_(0.0)
            self.reg.bias[2:].fill_(1.0)  # log(w / 4) = 1: objects a few cells wide

    def fuse(self) -> CenterNet:
        """Fold every batch norm into the convolution before it (inference only: the model must be in
        eval mode); returns self. The state dict then no longer has ``bn`` entries."""
        if self.training:
            raise ValueError("CenterNet.fuse: call .eval() first; fusion freezes the batch statistics")
        for m in self.modules():
            if isinstance(m, ConvBNAct) and isinstance(m.bn, nn.BatchNorm2d):
                m.conv = nn.utils.fuse_conv_bn_eval(m.conv, m.bn)
                m.bn = nn.Identity()
        self._merge_heads()
        return self

    def _head_params(self):
        return (self.hm.weight, self.reg.weight, self.hm.bias, self.reg.bias)

    def _merge_heads(self):
        """The two 1x1 heads read the same map: one convolution with both outputs reads it once.
        Non-persistent buffers (they follow .to(device) and stay out of the state dict), rebuilt
        when a head's parameters change (version counters), so they can never go stale."""
        with fw.no_grad():
            self.register_buffer("head_weight", fw.cat([self.hm.weight, self.reg.weight]).detach(),
                                 persistent=False)
            self.register_buffer("head_bias", fw.cat([self.hm.bias, self.reg.bias]).detach(),
                                 persistent=False)
        self._head_versions = tuple(t._version for t in self._head_params())

    @staticmethod
    def _up(x):
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def forward(self, x):
        """x (N, 3, S, S) in 0..1 -> (heatmap logits (N, C, S/4, S/4), reg (N, 4, S/4, S/4))."""
        x1 = self.s1(self.stem(x))
        x2 = self.s2(x1)
        x3 = self.s3(x2)
        x4 = self.s4(x3)
        p = self.fuse3(self.lat3(x3) + self._up(self.lat4(x4)))
        p = self.fuse2(self.lat2(x2) + self._up(p))
        p = self.dw(self.lat1(x1) + self._up(p))
        if getattr(self, "head_weight", None) is not None and not self.training:
            if tuple(t._version for t in self._head_params()) != self._head_versions:
                self._merge_heads()
            out = F.conv2d(p, self.head_weight, self.head_bias)
            return out[:, : self.num_classes], out[:, self.num_classes :]
        return self.hm(p), self.reg(p)


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# Channel spaces of the feature maps: (producers, consumers). A producer's output channels and a
# consumer's input channels index the same activations, so widening a space must treat them alike.
# The depthwise ``dw`` maps each channel of H1 onto itself: it is H1's consumer and H2's producer
# with the same channel mapping.
_SPACES = (
    (("stem",), ("s1",)),
    (("s1",), ("s2.0", "lat1")),
    (("s2.0",), ("s2.1",)),
    (("s2.1",), ("s3.0", "lat2")),
    (("s3.0",), ("s3.1",)),
    (("s3.1",), ("s4.0", "lat3")),
    (("s4.0",), ("s4.1",)),
    (("s4.1",), ("lat4",)),
    (("lat4", "lat3"), ("fuse3",)),
    (("fuse3", "lat2"), ("fuse2",)),
    (("fuse2", "lat1", "dw"), ("hm", "reg")),
)


def widen_state_dict(state: dict, model: CenterNet, seed: int = 0) -> dict:
    """Function-preserving widening (Net2Net, Chen et al. 2016) of a trained CenterNet's state dict
    to the channel counts of the wider ``model``: returns a state dict ``model`` loads, with which
    it computes the same outputs as the narrow network (in train and eval mode alike).

    Every new channel of a space copies an existing one (its conv filter, batch-norm parameters and
    running statistics): after the ReLU both carry the same activations. Each consumer splits its
    weight on an old channel among the copies with random positive shares that sum to one, so the
    sums it computes are unchanged while the copies get different gradients (equal halves would keep
    them identical through training).
    """
    rng = np.random.default_rng(seed)
    old = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in state.items()}
    new = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    unknown = set(old) - set(new)
    if unknown:
        raise ValueError(f"widen_state_dict: keys {sorted(unknown)[:4]} are not in the target model")
    out = {k: v.copy() for k, v in old.items()}
    for producers, consumers in _SPACES:
        p0 = f"{producers[0]}.conv.weight"
        n_old, n_new = old[p0].shape[0], new[p0].shape[0]
        if n_new < n_old:
            raise ValueError(f"widen_state_dict: {producers[0]} would shrink from {n_old} to {n_new} "
                             "channels")
        g = np.concatenate([np.arange(n_old), rng.integers(0, n_old, n_new - n_old)])
        for p in producers:  # output channels (rows) and batch-norm entries copy channel g[j]
            for k in [k for k in out if k.startswith(p + ".") and out[k].ndim >= 1]:
                out[k] = out[k][g]
        for cname in consumers:  # input channels split the old weight among the copies
            key = f"{cname}.weight" if f"{cname}.weight" in out else f"{cname}.conv.weight"
            w = out[key]
            u = rng.uniform(0.5, 1.5, size=(w.shape[0], n_new)).astype(w.dtype)
            share = u / np.stack([u[:, g == i].sum(1) for i in range(n_old)], 1)[:, g]
            out[key] = w[:, g] * share[:, :, None, None]
    for k, v in new.items():
        if out[k].shape != v.shape:
            raise ValueError(f"widen_state_dict: {k} came out {out[k].shape}, the model wants {v.shape}")
    return {k: fw.from_numpy(np.array(v, order="C")) for k, v in out.items()}
