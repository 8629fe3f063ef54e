"""``framework.nn.utils``: gradient clipping, parameter/vector conversion, ``rnn`` sequence helpers,
``fusion`` (folding frozen batch norms into the layer before them), and weight and spectral
normalization (PyTorch's classic hook-based ``weight_norm`` / ``spectral_norm``), and ``parametrize`` /
``parametrizations`` (tensors computed from unconstrained originals; weight and spectral norm in that
form)."""

from __future__ import annotations

from . import fusion, parametrizations, parametrize, prune, rnn
from .clip_grad import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .convert_parameters import parameters_to_vector, vector_to_parameters
from .fusion import fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval, fuse_linear_bn_weights
from .spectral_norm import remove_spectral_norm, spectral_norm
from .weight_norm import remove_weight_norm, weight_norm

__all__ = ["rnn", "fusion", "parametrize", "parametrizations", "prune", "fuse_conv_bn_eval",
           "fuse_conv_bn_weights", "fuse_linear_bn_eval",
           "fuse_linear_bn_weights",
           "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_",
           "get_total_norm", "parameters_to_vector",
           "vector_to_parameters", "weight_norm", "remove_weight_norm", "spectral_norm",
           "remove_spectral_norm"]
