"""The runtime compile path: NVRTC (what cupy.RawModule uses) compiles every kernel the loaders can
request, from the exact source text ``_loader.source`` produces, with CuPy's ``-ftz=true``, and
resolves every name expression -- no GPU needed, only libnvrtc (the ``nvidia-cuda-nvrtc`` wheel or a
CUDA toolkit). Skipped with a reason when libnvrtc cannot be found.

PTX is generated for compute_80 and compute_90 (ptxas, which turns PTX into a cubin, is covered by
test_cuda_compile.py through nvcc).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from framework.kernels.cuda import _loader, conv, norm, pool

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper beside this file
from cuda_nvrtc_util import NVRTC, compile_ptx  # noqa: E402

pytestmark = pytest.mark.skipif(NVRTC is None, reason="libnvrtc not found (pip install nvidia-cuda-nvrtc)")


def _all_names():
    names = {}
    for mod in (conv, pool, norm):
        for f, ns in mod.all_kernel_names().items():
            names.setdefault(f, []).extend(ns)
    return names


def test_every_cu_file_has_kernels_requested():
    assert sorted(_all_names()) == sorted(_loader.CU_FILES)


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
@pytest.mark.parametrize("filename", _loader.CU_FILES)
def test_nvrtc_compiles_every_requested_kernel(filename, arch):
    names = _all_names()[filename]
    if filename == "conv_igemm.cu":
        # Every (dtype, math path, mode, loader variant) on the 64x64 tiles; the other tile sizes
        # only change template numbers, and compiling all of them takes minutes on this machine.
        names = [n for n in names if "fw_conv" not in n or ", 64, 64, " in n]
        assert len(names) > 20
    lowered, ptx = compile_ptx(filename, names, arch)
    assert len(lowered) == len(names)
    for n, low in lowered.items():
        assert f".entry {low}" in ptx, f"{n} ({low}) missing from the PTX"
    if "conv_mma" in " ".join(names):
        assert "mma.sync.aligned.m16n8k16" in ptx and "mma.sync.aligned.m16n8k8" in ptx
        assert "ldmatrix.sync.aligned" in ptx and "cp.async" in ptx
