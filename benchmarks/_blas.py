"""Which OpenBLAS kernels NumPy uses during a benchmark, chosen before NumPy loads.

PyTorch's CPU convolutions and matrix products (oneDNN, MKL) pick the widest vector instructions the
CPU has. NumPy's OpenBLAS does the same unless ``OPENBLAS_CORETYPE`` names a kernel set; some machines
preset it (the development VMs of this project preset ``Haswell``, i.e. AVX2, on AVX-512 CPUs), which
would compare our AVX2 products with PyTorch's AVX-512 ones. ``--blas-core native`` (the default)
removes the preset for the benchmark process, so both libraries use the CPU's own instruction set;
``--blas-core inherit`` keeps the environment as it is. The JSON records the preset, the choice and
the kernel set OpenBLAS reports, so a figure always says which comparison it is.
"""

from __future__ import annotations

import os
import sys

_STATE: dict = {}


def choose(argv: list[str] | None = None) -> None:
    """Apply ``--blas-core`` from ``argv`` (default ``sys.argv``); must run before NumPy is imported."""
    argv = sys.argv if argv is None else argv
    mode = "native"
    for i, a in enumerate(argv):
        if a == "--blas-core" and i + 1 < len(argv):
            mode = argv[i + 1]
        elif a.startswith("--blas-core="):
            mode = a.split("=", 1)[1]
    if mode not in ("native", "inherit"):
        raise SystemExit(f"--blas-core must be 'native' or 'inherit', not {mode!r}")
    preset = os.environ.get("OPENBLAS_CORETYPE")
    _STATE.update(mode=mode, preset=preset)
    if mode == "native" and preset is not None:
        if "numpy" in sys.modules:
            raise RuntimeError("--blas-core native must be applied before NumPy is imported")
        del os.environ["OPENBLAS_CORETYPE"]


def add_argument(ap) -> None:
    ap.add_argument("--blas-core", choices=["native", "inherit"], default="native",
                    help="native: let OpenBLAS use the CPU's widest kernels, as PyTorch does (removes a "
                         "preset OPENBLAS_CORETYPE for this process); inherit: keep the environment")


def info() -> dict:
    """What the JSON records about NumPy's BLAS kernels and the CPU's vector extensions."""
    out = dict(blas_core=_STATE.get("mode", "inherit"), openblas_coretype_preset=_STATE.get("preset"))
    try:
        from threadpoolctl import threadpool_info

        out["openblas_kernels"] = sorted({str(d.get("architecture")) for d in threadpool_info()
                                          if d.get("internal_api") == "openblas"})
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
        out["cpu_vector_isa"] = [x for x in ("avx2", "avx512f") if x in flags]
    except OSError:
        pass
    return out
