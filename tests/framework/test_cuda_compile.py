"""Every .cu file of framework/kernels/cuda compiles with nvcc for sm_80 and sm_90 (no GPU needed).

The files' ``FW_INSTANTIATE_FOR_NVCC_CHECK`` section instantiates every kernel template in each
mode, math path (f16 / tf32 mma.sync, FFMA) and loader variant, so the whole of each template goes
through the compiler and ptxas (a cubin is produced), not just the parser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from framework.kernels.cuda import _loader

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None,
                                reason="nvcc is not on the PATH (CUDA toolkit not installed)")

ARCHS = ("sm_80", "sm_90")
JOBS = [(f, a) for f in _loader.CU_FILES for a in ARCHS]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Compile all (file, arch) pairs concurrently, once for the module."""
    out = tmp_path_factory.mktemp("cubin")

    def build(job):
        f, arch = job
        cmd = _loader.nvcc_command(f, arch, str(out / f"{f}.{arch}.cubin"))
        r = subprocess.run(cmd, capture_output=True, text=True)
        return job, r.returncode, r.stdout + r.stderr, out / f"{f}.{arch}.cubin"

    with ThreadPoolExecutor(max_workers=max(1, min(len(JOBS), os.cpu_count() or 1))) as ex:
        return {job: rest for job, *rest in ex.map(build, JOBS)}


def test_every_cu_file_is_listed():
    on_disk = sorted(p.name for p in _loader.KERNEL_DIR.glob("*.cu"))
    assert on_disk == sorted(_loader.CU_FILES)


@pytest.mark.parametrize("job", JOBS, ids=[f"{f}-{a}" for f, a in JOBS])
def test_cu_file_compiles(compiled, job):
    rc, log, cubin = compiled[job]
    assert rc == 0, f"nvcc failed for {job}:\n{log}"
    assert cubin.stat().st_size > 0
    assert "warning" not in log.lower(), log
