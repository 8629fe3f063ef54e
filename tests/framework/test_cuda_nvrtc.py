"""The runtime compile path: NVRTC (what cupy.RawModule uses) compiles every kernel the loaders can
request, from the exact source text ``_loader.source`` produces, with CuPy's ``-ftz=true``, and
resolves every name expression -- no GPU needed, only libnvrtc (the ``nvidia-cuda-nvrtc`` wheel or a
CUDA toolkit). Skipped with a reason when libnvrtc cannot be found.

PTX is generated for compute_80 and compute_90 (ptxas, which turns PTX into a cubin, is covered by
test_cuda_compile.py through nvcc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys

import pytest

from framework.kernels.cuda import _loader, conv, norm, pool


def _find_nvrtc():
    cands = []
    name = ctypes.util.find_library("nvrtc")
    if name:
        cands.append(name)
    for base in sys.path:
        cands += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib", "libnvrtc.so*")))
    for home in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        cands += sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")))
    for c in cands:
        if "builtins" in c or "alt" in os.path.basename(c):
            continue
        try:
            # libnvrtc dlopens its builtins library by name: load it first from the same folder.
            for b in sorted(glob.glob(os.path.join(os.path.dirname(c) or ".", "libnvrtc-builtins.so*"))):
                ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(c)
        except OSError:
            continue
    return None


NVRTC = _find_nvrtc()
pytestmark = pytest.mark.skipif(NVRTC is None, reason="libnvrtc not found (pip install nvidia-cuda-nvrtc)")


def _check(rc, prog=None, what=""):
    if rc != 0:
        log = ""
        if prog is not None:
            size = ctypes.c_size_t()
            NVRTC.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            NVRTC.nvrtcGetProgramLog(prog, buf)
            log = buf.value.decode(errors="replace")
        raise AssertionError(f"NVRTC error {rc} in {what}:\n{log[-6000:]}")


def _compile(filename, names, arch):
    src = _loader.source(filename).encode()
    prog = ctypes.c_void_p()
    _check(NVRTC.nvrtcCreateProgram(ctypes.byref(prog), src, filename.encode(), 0, None, None),
           what="create")
    try:
        for n in names:
            _check(NVRTC.nvrtcAddNameExpression(prog, n.encode()), what=n)
        opts = [o.encode() for o in (*_loader._OPTIONS, "-ftz=true", f"--gpu-architecture={arch}")]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        _check(NVRTC.nvrtcCompileProgram(prog, len(opts), arr), prog, f"{filename} for {arch}")
        lowered = {}
        for n in names:
            p = ctypes.c_char_p()
            _check(NVRTC.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(p)), what=n)
            lowered[n] = p.value.decode()
        size = ctypes.c_size_t()
        _check(NVRTC.nvrtcGetPTXSize(prog, ctypes.byref(size)), what="ptx size")
        buf = ctypes.create_string_buffer(size.value)
        _check(NVRTC.nvrtcGetPTX(prog, buf), what="ptx")
        return lowered, buf.value.decode()
    finally:
        NVRTC.nvrtcDestroyProgram(ctypes.byref(prog))


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
    lowered, ptx = _compile(filename, names, arch)
    assert len(lowered) == len(names)
    for n, low in lowered.items():
        assert f".entry {low}" in ptx, f"{n} ({low}) missing from the PTX"
    if "conv_mma" in " ".join(names):
        assert "mma.sync.aligned.m16n8k16" in ptx and "mma.sync.aligned.m16n8k8" in ptx
        assert "ldmatrix.sync.aligned" in ptx and "cp.async" in ptx
