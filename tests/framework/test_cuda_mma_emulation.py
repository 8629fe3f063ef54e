"""Warp-level emulation of the tensor-core main loop of ``fw_conv_mma`` on the CPU.

The shared-memory addresses each lane gives ``ldmatrix``, the fragment registers it fills, the
tf32 fragment loads and the epilogue's (row, col) of every accumulator are read *from the .cu
source text* and evaluated here (C and Python agree on these integer expressions), then combined
with the PTX ISA's definitions of ``ldmatrix.m8n8.x4`` and of the ``mma.sync`` m16n8k16 (f16) and
m16n8k8 (tf32) fragment layouts. The emulated block tile must equal A @ B^T. The same pass checks
that every ldmatrix phase and every tf32 fragment load is free of shared-memory bank conflicts and
that the 16-byte cp.async destinations are aligned.

What this cannot catch: a misreading of the PTX fragment layouts themselves (encoded below from
the PTX ISA), hardware pipelining and timing. Those need a GPU (test_cuda_gpu.py).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from framework.kernels.cuda import _loader
from framework.kernels.cuda import conv as cconv

SRC = _loader.source("conv_igemm.cu")
MMA = SRC[SRC.index("fw_conv_mma("):SRC.index("exact FFMA path")]


def _expr(pattern, flags=0):
    m = re.search(pattern, MMA, flags)
    assert m, f"pattern not found in fw_conv_mma: {pattern}"
    return " ".join(m.group(1).split())


A_ADDR = _expr(r"const T\* p = as \+ (.*?);", re.S)
B_ADDR = _expr(r"const T\* p = bs \+ (.*?);", re.S)
B_REGS = [r.strip() for r in _expr(r"fw_ldmatrix_x4\(fw_smem_addr\(p\), (bf\[.*?)\);", re.S).split(",")]
A_REGS = [r.strip() for r in _expr(r"fw_ldmatrix_x4\(fw_smem_addr\(p\), (af\[.*?)\);", re.S).split(",")]
TA_BASE = _expr(r"const float\* p = fa \+ (.*?);", re.S)
TB_BASE = _expr(r"const float\* p = fb \+ (.*?);", re.S)
TA_OFF = {int(k): v for k, v in re.findall(r"af\[i\]\[(\d)\] = fw_to_tf32\(p\[(.*?)\]\)", MMA)}
TB_OFF = {int(k): v for k, v in re.findall(r"bf\[j\]\[(\d)\] = fw_to_tf32\(p\[(.*?)\]\)", MMA)}
ROW = _expr(r"const int row = (.*?);")
COL = _expr(r"const int col = (.*?);")
GQ, TQ = _expr(r"const int gq = (.*?), tq"), _expr(r"tq = (.*?);")
PAD_F16, PAD_F32 = (int(v) for v in re.search(r"PAD = F16 \? (\d+) : (\d+);", MMA).groups())


def _ev(expr, **env):
    return eval(expr, {}, env)  # the expressions are plain integer arithmetic from the .cu file


def _reg_target(text, **env):
    """'bf[j + 1][0]' -> (fragment index, register index)."""
    m = re.fullmatch(r"[ab]f\[(.*?)\]\[(\d)\]", text.replace(" ", ""))
    return _ev(m.group(1), **env), int(m.group(2))


def _ldmatrix_x4(smem_u16, addrs):
    """PTX ldmatrix.m8n8.x4.b16: matrix q's 8 row addresses come from lanes 8q..8q+7; lane t gets,
    in register q, the two 16-bit elements at row t//4, columns 2*(t%4), 2*(t%4)+1 of matrix q.
    Returns regs[lane][q] as pairs of element values (low half first)."""
    regs = [[None] * 4 for _ in range(32)]
    for q in range(4):
        for t in range(32):
            a = addrs[8 * q + t // 4] + 2 * (t % 4)
            regs[t][q] = (smem_u16[a], smem_u16[a + 1])
    return regs


def _banks_conflict_free(word_addrs_per_phase):
    for phase in word_addrs_per_phase:
        by_bank = {}
        for w in phase:
            by_bank.setdefault(w % 32, set()).add(w)
        assert all(len(ws) == 1 for ws in by_bank.values()), f"bank conflict: {sorted(phase)}"


@pytest.mark.parametrize("cfg", cconv.F16_CONFIGS, ids=repr)
def test_f16_fragments_compute_the_tile_product(cfg):
    bm, bn, bk, wmn, wnn = cfg.bm, cfg.bn, cfg.bk, cfg.warps_m, cfg.warps_n
    lds = bk + PAD_F16
    assert (lds * 2) % 16 == 0, "smem rows must stay 16-byte aligned for cp.async"
    rng = np.random.default_rng(0)
    a = rng.integers(-4, 5, (bm, bk)).astype(np.float64)  # small integers: exact products
    b = rng.integers(-4, 5, (bn, bk)).astype(np.float64)
    As = np.zeros(bm * lds)
    Bs = np.zeros(bn * lds)
    As.reshape(bm, lds)[:, :bk] = a
    Bs.reshape(bn, lds)[:, :bk] = b
    wm_sz, wn_sz = bm // wmn, bn // wnn
    mi, ni = wm_sz // 16, wn_sz // 8
    out = np.full((bm, bn), np.nan)
    for warp in range(wmn * wnn):
        wm, wn = (warp % wmn) * wm_sz, (warp // wmn) * wn_sz
        acc = np.zeros((mi, ni, 32, 4))
        for kk in range(0, bk, 16):
            af = np.zeros((mi, 32, 4, 2))
            bf = np.zeros((ni, 32, 2, 2))
            for i in range(mi):
                addrs = [_ev(A_ADDR, wm=wm, i=i, lane=ln, LDS=lds, kk=kk) for ln in range(32)]
                _banks_conflict_free([[ad // 2 + w for ad in addrs[8 * q:8 * q + 8] for w in range(4)]
                                      for q in range(4)])
                regs = _ldmatrix_x4(As, addrs)
                for t in range(32):
                    for q, target in enumerate(A_REGS):
                        _, r = _reg_target(target, i=i)
                        af[i, t, r] = regs[t][q]
            for j in range(0, ni, 2):
                addrs = [_ev(B_ADDR, wn=wn, j=j, lane=ln, LDS=lds, kk=kk) for ln in range(32)]
                _banks_conflict_free([[ad // 2 + w for ad in addrs[8 * q:8 * q + 8] for w in range(4)]
                                      for q in range(4)])
                regs = _ldmatrix_x4(Bs, addrs)
                for t in range(32):
                    for q, target in enumerate(B_REGS):
                        jj, r = _reg_target(target, j=j)
                        bf[jj, t, r] = regs[t][q]
            # mma.m16n8k16 (PTX ISA): groupID g = lane>>2, tig = lane%4.
            # A regs: 0:(g, 2tig..+1) 1:(g+8, 2tig..) 2:(g, 2tig+8..) 3:(g+8, 2tig+8..)
            # B regs: 0:(k=2tig..+1, n=g) 1:(k=2tig+8..+9, n=g); C: 0,1:(g, 2tig..+1) 2,3:(g+8, ..)
            for i in range(mi):
                A = np.zeros((16, 16))
                for t in range(32):
                    g, tg = t >> 2, t % 4
                    for r, (ro, co) in enumerate(((0, 0), (8, 0), (0, 8), (8, 8))):
                        A[g + ro, 2 * tg + co:2 * tg + co + 2] = af[i, t, r]
                for j in range(ni):
                    B = np.zeros((16, 8))
                    for t in range(32):
                        g, tg = t >> 2, t % 4
                        B[2 * tg:2 * tg + 2, g] = bf[j, t, 0]
                        B[2 * tg + 8:2 * tg + 10, g] = bf[j, t, 1]
                    Cm = A @ B
                    for t in range(32):
                        g, tg = t >> 2, t % 4
                        acc[i, j, t] += [Cm[g, 2 * tg], Cm[g, 2 * tg + 1], Cm[g + 8, 2 * tg],
                                         Cm[g + 8, 2 * tg + 1]]
        for i in range(mi):
            for j in range(ni):
                for t in range(32):
                    gq, tq = _ev(GQ, lane=t), _ev(TQ, lane=t)
                    for e in range(4):
                        row = _ev(ROW, m0=0, wm=wm, i=i, gq=gq, e=e)
                        col = _ev(COL, n0=0, wn=wn, j=j, tq=tq, e=e)
                        assert np.isnan(out[row, col]), "two accumulators map to one output"
                        out[row, col] = acc[i, j, t, e]
    np.testing.assert_array_equal(out, a @ b.T)


@pytest.mark.parametrize("cfg", cconv.TF32_CONFIGS, ids=repr)
def test_tf32_fragments_compute_the_tile_product(cfg):
    bm, bn, bk, wmn, wnn = cfg.bm, cfg.bn, cfg.bk, cfg.warps_m, cfg.warps_n
    lds = bk + PAD_F32
    assert (lds * 4) % 16 == 0
    rng = np.random.default_rng(1)
    a = rng.integers(-4, 5, (bm, bk)).astype(np.float64)
    b = rng.integers(-4, 5, (bn, bk)).astype(np.float64)
    fa = np.zeros(bm * lds)
    fb = np.zeros(bn * lds)
    fa.reshape(bm, lds)[:, :bk] = a
    fb.reshape(bn, lds)[:, :bk] = b
    wm_sz, wn_sz = bm // wmn, bn // wnn
    mi, ni = wm_sz // 16, wn_sz // 8
    out = np.full((bm, bn), np.nan)
    for warp in range(wmn * wnn):
        wm, wn = (warp % wmn) * wm_sz, (warp // wmn) * wn_sz
        acc = np.zeros((mi, ni, 32, 4))
        for kk in range(0, bk, 8):
            for i in range(mi):
                regs = np.zeros((32, 4))
                words = {r: [] for r in range(4)}
                for t in range(32):
                    gq, tq = _ev(GQ, lane=t), _ev(TQ, lane=t)
                    base = _ev(TA_BASE, wm=wm, i=i, gq=gq, LDS=lds, kk=kk, tq=tq)
                    for r, off in TA_OFF.items():
                        w = base + _ev(off, LDS=lds)
                        regs[t, r] = fa[w]
                        words[r].append(w)
                _banks_conflict_free(list(words.values()))
                # m16n8k8 tf32 A: 0:(g, tig) 1:(g+8, tig) 2:(g, tig+4) 3:(g+8, tig+4)
                A = np.zeros((16, 8))
                for t in range(32):
                    g, tg = t >> 2, t % 4
                    for r, (ro, co) in enumerate(((0, 0), (8, 0), (0, 4), (8, 4))):
                        A[g + ro, tg + co] = regs[t, r]
                for j in range(ni):
                    B = np.zeros((8, 8))
                    words = {0: [], 1: []}
                    for t in range(32):
                        gq, tq = _ev(GQ, lane=t), _ev(TQ, lane=t)
                        base = _ev(TB_BASE, wn=wn, j=j, gq=gq, LDS=lds, kk=kk, tq=tq)
                        g, tg = t >> 2, t % 4
                        for r, off in TB_OFF.items():  # B: 0:(k=tig, n=g) 1:(k=tig+4, n=g)
                            w = base + _ev(off, LDS=lds)
                            B[tg + 4 * r, g] = fb[w]
                            words[r].append(w)
                    _banks_conflict_free(list(words.values()))
                    Cm = A @ B
                    for t in range(32):
                        g, tg = t >> 2, t % 4
                        acc[i, j, t] += [Cm[g, 2 * tg], Cm[g, 2 * tg + 1], Cm[g + 8, 2 * tg],
                                         Cm[g + 8, 2 * tg + 1]]
        for i in range(mi):
            for j in range(ni):
                for t in range(32):
                    gq, tq = _ev(GQ, lane=t), _ev(TQ, lane=t)
                    for e in range(4):
                        row = _ev(ROW, m0=0, wm=wm, i=i, gq=gq, e=e)
                        col = _ev(COL, n0=0, wn=wn, j=j, tq=tq, e=e)
                        assert np.isnan(out[row, col])
                        out[row, col] = acc[i, j, t, e]
    np.testing.assert_array_equal(out, a @ b.T)


def test_the_source_expressions_were_found():
    assert "lane" in A_ADDR and "lane" in B_ADDR and len(A_REGS) == len(B_REGS) == 4
    assert sorted(TA_OFF) == [0, 1, 2, 3] and sorted(TB_OFF) == [0, 1]
