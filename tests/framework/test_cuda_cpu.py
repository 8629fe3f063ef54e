"""fw.cuda, fw.backends and the CUDA loaders on a machine without CuPy or without a GPU.

Everything must import; queries answer "no device"; operations that need a device raise errors
that say why. The pure-Python parts of the kernel loaders (tile choice, split-K, name expressions)
are checked here too.
"""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

import framework as fw
from framework import backend
from framework.kernels.cuda import _loader
from framework.kernels.cuda import conv as cconv

no_cuda = pytest.mark.skipif(backend.cuda_available(), reason="this machine has a usable CUDA device")


@pytest.mark.parametrize("mod", ["framework.cuda", "framework.amp", "framework.backends",
                                 "framework.kernels.cuda", "framework.kernels.cuda._loader",
                                 "framework.kernels.cuda.conv", "framework.kernels.cuda.pool",
                                 "framework.kernels.cuda.norm", "benchmarks.gpu_conv",
                                 "benchmarks.perception_gpu", "benchmarks.gpu_eager_profile"])
def test_everything_imports_without_a_gpu(mod):
    importlib.import_module(mod)


@no_cuda
@pytest.mark.parametrize("mod", ["benchmarks.perception_gpu", "benchmarks.gpu_eager_profile"])
def test_gpu_benchmarks_say_nothing_was_measured_without_a_gpu(mod, capsys):
    """Without a GPU the GPU benchmarks exit 2 with one JSON line that says so, not a traceback or a
    figure."""
    import json

    assert importlib.import_module(mod).main([]) == 2
    out = json.loads(capsys.readouterr().out.strip())
    assert out["gpu"] is False and "nothing was measured" in out["error"]


def test_gpu_eager_profile_rejects_bad_arguments():
    from benchmarks import gpu_eager_profile

    with pytest.raises(SystemExit):
        gpu_eager_profile.main(["--size", "100"])


def test_public_names():
    assert fw.autocast is fw.amp.autocast
    for name in ["is_available", "device_count", "synchronize", "current_device", "get_device_name",
                 "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "empty_cache",
                 "manual_seed", "manual_seed_all", "CUDAGraph", "graph", "graph_pool_handle",
                 "is_current_stream_capturing"]:
        assert callable(getattr(fw.cuda, name)), name


@no_cuda
def test_queries_without_cuda():
    assert fw.cuda.is_available() is False
    assert fw.cuda.device_count() == 0
    fw.cuda.empty_cache()  # no-ops, as in PyTorch
    fw.cuda.manual_seed(0)
    fw.cuda.manual_seed_all(0)
    assert fw.backends.cudnn.is_available() is False
    assert fw.cuda.is_current_stream_capturing() is False


@no_cuda
@pytest.mark.parametrize("call", [
    lambda: fw.zeros(2, device="cuda"),
    lambda: fw.randn(2, 3, device="cuda:0"),
    lambda: fw.tensor([1.0]).cuda(),
    lambda: fw.tensor([1.0]).to("cuda"),
    lambda: fw.cuda.synchronize(),
    lambda: fw.cuda.memory_allocated(),
    lambda: fw.cuda.get_device_name(),
    lambda: fw.cuda.current_device(),
    lambda: fw.cuda.CUDAGraph().capture_begin(),
    lambda: fw.cuda.graph(fw.cuda.CUDAGraph()).__enter__(),
    lambda: fw.cuda.graph_pool_handle(),
])
def test_cuda_requests_raise_a_clear_error(call):
    with pytest.raises(RuntimeError, match="CuPy is not installed|no CUDA device"):
        call()


def test_cuda_graph_misuse_is_named_before_any_device_is_touched():
    g = fw.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="nothing captured"):
        g.replay()
    with pytest.raises(RuntimeError, match="no capture under way"):
        g.capture_end()
    g.reset()
    assert g.pool() is None


@no_cuda
def test_kernels_raise_a_clear_error_without_cuda():
    x = np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(RuntimeError, match="CUDA"):
        cconv.conv2d_forward(x, x, (1, 1), (0, 0), (1, 1), 1)


def test_backend_flags_defaults_and_validation():
    assert fw.backends.cuda.matmul.allow_tf32 is False  # PyTorch's defaults
    assert fw.backends.cudnn.allow_tf32 is True
    assert fw.backends.cudnn.benchmark is False
    old = fw.backends.cudnn.benchmark
    try:
        fw.backends.cudnn.benchmark = 1
        assert fw.backends.cudnn.benchmark is True
    finally:
        fw.backends.cudnn.benchmark = old
    with pytest.raises(AttributeError, match="no flag"):
        fw.backends.cudnn.allow_tf33 = True
    with pytest.raises(AttributeError, match="no flag"):
        fw.backends.cuda.matmul.alow_tf32 = True


def test_backend_flag_hooks_run():
    seen = []
    fw.backends.on_change("_ConvFlags", "deterministic", seen.append)
    fw.backends.cudnn.deterministic = True
    fw.backends.cudnn.deterministic = False
    assert seen == [True, False]
    fw.backends._HOOKS[("_ConvFlags", "deterministic")].clear()


# ------------------------------------------------------------------------------- loader logic

def test_math_path_selection():
    assert cconv._math(np.dtype(np.float16), 90) == "f16"
    assert cconv._math(np.dtype(np.float16), 75) == "ffma"
    try:
        fw.backends.cudnn.allow_tf32 = True
        assert cconv._math(np.dtype(np.float32), 80) == "tf32"
        assert cconv._math(np.dtype(np.float32), 75) == "ffma"
        fw.backends.cudnn.allow_tf32 = False
        assert cconv._math(np.dtype(np.float32), 90) == "ffma"
    finally:
        fw.backends.cudnn.allow_tf32 = True


@pytest.mark.parametrize("kind", ["f16", "tf32", "ffma"])
@pytest.mark.parametrize("m,ng,groups", [(32 * 56 * 56, 64, 1), (80 * 80, 64, 1), (32 * 7 * 7, 512, 1),
                                         (5, 3, 1), (1000, 8, 4)])
def test_candidates_are_a_permutation_with_a_sensible_pick(kind, m, ng, groups):
    pool = {"f16": cconv.F16_CONFIGS, "tf32": cconv.TF32_CONFIGS, "ffma": cconv.FFMA_CONFIGS}[kind]
    cands = cconv.candidate_configs(kind, m, ng, groups, sms=132)
    assert sorted(map(repr, cands)) == sorted(map(repr, pool))
    pick = cands[0]
    # Never a tile wider than needed when a narrower one covers Ng exactly.
    if ng <= 64 and any(c.bn == 64 for c in pool):
        assert pick.bn <= 64


def test_tile_configs_satisfy_the_kernel_static_asserts():
    for cfg in cconv.F16_CONFIGS + cconv.TF32_CONFIGS:
        itemsize = 2 if cfg in cconv.F16_CONFIGS else 4
        threads = cfg.threads()
        vec = 16 // itemsize
        cpr = cfg.bk // vec
        wm, wn = cfg.bm // cfg.warps_m, cfg.bn // cfg.warps_n
        assert wm % 16 == 0 and (wn // 8) % 2 == 0
        assert threads % cpr == 0 and threads % cfg.bk == 0
        assert (cfg.bm * cpr) % threads == 0 and (cfg.bn * cpr) % threads == 0
        assert cfg.smem(itemsize) <= 227 * 1024  # the sm_80/sm_90 opt-in limit
    for cfg in cconv.FFMA_CONFIGS:
        t = cfg.threads()
        assert t % cfg.bk == 0 and (cfg.bm * cfg.bk) % t == 0 and (cfg.bn * cfg.bk) % t == 0
        assert t <= 1024


@pytest.mark.parametrize("kr", [1, 7, 16, 1000, 32 * 56 * 56, 32 * 7 * 7])
def test_split_k_partition_covers_the_reduction_exactly(kr):
    cfg = cconv.TF32_CONFIGS[0]
    splits, kps = cconv.split_k(cfg, m=64, ng=576, kr=kr, groups=1, sms=132)
    assert kps % cfg.bk == 0 and splits >= 1
    assert (splits - 1) * kps < kr <= splits * kps  # no empty trailing split, nothing left over
    assert splits <= 64


def test_vec_flags():
    geo = (2, 8, 7, 7, 12, 3, 3, 7, 7, 1, 1, 1, 1, 1, 1, 1)
    assert cconv.vec_flags(0, geo, 4) == (True, True)  # Cg = 8
    assert cconv.vec_flags(0, geo, 2) == (True, True)
    assert cconv.vec_flags(1, geo, 2) == (False, False)  # Kg = 12 is not a multiple of 8 halves
    assert cconv.vec_flags(2, geo, 4) == (False, False)  # P*Q = 49
    geo3 = (2, 3, 8, 8, 12, 3, 3, 8, 8, 1, 1, 1, 1, 1, 1, 1)
    assert cconv.vec_flags(0, geo3, 4) == (False, False)  # C = 3 (first layer)
    assert cconv.vec_flags(2, geo3, 4) == (True, False)


def _kernel_templates():
    names = {}
    for f in _loader.CU_FILES:
        src = _loader.source(f)
        for m in re.finditer(r"__global__ void[^;{]*?\b(fw_\w+)\(", src):
            names[m.group(1)] = f
    return names


def test_every_kernel_the_loaders_name_exists_in_its_file():
    names = _kernel_templates()
    from framework.kernels.cuda import norm, pool

    for mod in (cconv, pool, norm):
        for f, exprs in mod.all_kernel_names().items():
            for e in exprs:
                base = e.split("<")[0]
                assert names.get(base) == f, f"{mod.__name__} asks {f} for {e}, which it does not define"


def test_cxx_types():
    assert _loader.cxx_type(np.float32) == "float"
    assert _loader.cxx_type(np.float16) == "fw_half"
    with pytest.raises(TypeError, match="float32 or float16"):
        _loader.cxx_type(np.float64)


def test_autotuner_without_benchmark_takes_the_heuristic_pick_and_caches_nothing():
    t = _loader.Autotuner()
    calls = []
    assert t.choose("k", ["a", "b"], calls.append) == "a"
    assert calls == [] and t.cache == {}


# ------------------------------------------------------------------------- benchmark model code

def test_benchmark_models_build_and_train_alike_on_cpu():
    """The ResNet-18 / detector builders of benchmarks.gpu_conv give the same network in both
    frameworks (checked on the CPU at a small size: same outputs and same loss after one step)."""
    torch = pytest.importorskip("torch")
    from benchmarks import gpu_conv
    from framework import nn, optim

    torch.manual_seed(0)
    tm = gpu_conv.resnet18(torch.nn, num_classes=10).double()
    fm = gpu_conv.resnet18(nn, num_classes=10)
    fm.load_state_dict({k: fw.tensor(v.numpy()) for k, v in tm.state_dict().items()})
    fm = fm.double()
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 3, 32, 32))
    t0 = rng.integers(0, 10, 2)
    losses = []
    for model, lib, opt_mod, ce in ((tm, torch, torch.optim, torch.nn.functional.cross_entropy),
                                    (fm, fw, optim, nn.functional.cross_entropy)):
        opt = opt_mod.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, t = lib.tensor(x0), lib.tensor(t0)
        gpu_conv.train_step_fn(model, opt, x, t, ce)()
        losses.append(ce(model(x), t).item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)

    td = gpu_conv.detector(torch.nn).double().eval()
    fd = gpu_conv.detector(nn)
    fd.load_state_dict({k: fw.tensor(v.numpy()) for k, v in td.state_dict().items()})
    fd = fd.double().eval()
    d0 = rng.standard_normal((1, 3, 64, 64))
    with torch.no_grad(), fw.no_grad():
        np.testing.assert_allclose(fd(fw.tensor(d0)).numpy(), td(torch.tensor(d0)).numpy(), rtol=1e-8,
                                   atol=1e-8)
