"""NVRTC through ctypes, for the CUDA tests (no GPU needed, only libnvrtc)."""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import sys

from framework.kernels.cuda import _loader


def find_nvrtc():
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


NVRTC = find_nvrtc()


def check(rc, prog=None, what=""):
    if rc != 0:
        log = ""
        if prog is not None:
            size = ctypes.c_size_t()
            NVRTC.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            NVRTC.nvrtcGetProgramLog(prog, buf)
            log = buf.value.decode(errors="replace")
        raise AssertionError(f"NVRTC error {rc} in {what}:\n{log[-6000:]}")


def compile_ptx(filename, names, arch):
    src = _loader.source(filename).encode()
    prog = ctypes.c_void_p()
    check(NVRTC.nvrtcCreateProgram(ctypes.byref(prog), src, filename.encode(), 0, None, None),
           what="create")
    try:
        for n in names:
            check(NVRTC.nvrtcAddNameExpression(prog, n.encode()), what=n)
        opts = [o.encode() for o in (*_loader._OPTIONS, "-ftz=true", f"--gpu-architecture={arch}")]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        check(NVRTC.nvrtcCompileProgram(prog, len(opts), arr), prog, f"{filename} for {arch}")
        lowered = {}
        for n in names:
            p = ctypes.c_char_p()
            check(NVRTC.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(p)), what=n)
            lowered[n] = p.value.decode()
        size = ctypes.c_size_t()
        check(NVRTC.nvrtcGetPTXSize(prog, ctypes.byref(size)), what="ptx size")
        buf = ctypes.create_string_buffer(size.value)
        check(NVRTC.nvrtcGetPTX(prog, buf), what="ptx")
        return lowered, buf.value.decode()
    finally:
        NVRTC.nvrtcDestroyProgram(ctypes.byref(prog))



def entry_params(ptx: str) -> dict[str, dict]:
    """{lowered name: {"params": [bit widths], "maxntid": threads or None}} from PTX text."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\w+)\s*\((.*?)\)\s*((?:\.\w+[^{]*?)*)\{", ptx, re.S):
        widths = [int(w) for w in re.findall(r"\.param\s+\.[usbf](\d+)", m.group(2))]
        ntid = re.search(r"\.maxntid\s+(\d+),\s*(\d+),\s*(\d+)", m.group(3))
        out[m.group(1)] = {"params": widths,
                           "maxntid": None if not ntid else int(ntid[1]) * int(ntid[2]) * int(ntid[3])}
    return out
