"""Passes over large arrays on the framework's threads (batch norm in training, ReLU forward and backward,
split along the batch by ``framework.utils.parallel.row_parts``) give PyTorch's values and gradients and
what the whole-array pass gives, and really run on two threads; and the worker threads behind
``parallel_map``: a call made while another runs (from inside a call, or from a second thread) runs
serially instead of deadlocking, and a pool replaced by ``set_num_threads`` ends its threads."""

import threading

import numpy as np
import pytest

import framework as fw
import framework.nn.functional as F
from framework.kernels.cpu import conv as C
from framework.utils import parallel as P

RNG = np.random.default_rng(77)


@pytest.fixture
def split_passes(monkeypatch):
    """Two framework threads, and every pass over 64 values or more split in two."""
    monkeypatch.setattr(C, "_THREADS", 2)
    monkeypatch.setattr(C, "_BATCH_PARALLEL", True)
    monkeypatch.setattr(P, "PAR_MIN_VALUES", 64)
    seen = []
    real = P.parallel_map

    def spy(fn, items, threads=None):
        def traced(item):
            seen.append(threading.get_ident())
            return fn(item)

        return real(traced, items, threads)

    monkeypatch.setattr(P, "parallel_map", spy)
    return seen


def _bn_step(x, w, b, g, rm, rv):
    xt, wt, bt = (fw.tensor(a, requires_grad=True) for a in (x, w, b))
    rmt, rvt = fw.tensor(rm.copy()), fw.tensor(rv.copy())
    y = F.batch_norm(xt, rmt, rvt, wt, bt, training=True, momentum=0.1)
    y.backward(fw.tensor(g))
    return [a.numpy() for a in (y.detach(), xt.grad, wt.grad, bt.grad, rmt, rvt)]


@pytest.mark.parametrize("shape", [(6, 5, 7, 9), (3, 4, 33), (2, 3, 4, 5, 6)])
def test_batch_norm_split_over_the_batch_matches_whole_and_torch(shape, split_passes, monkeypatch):
    torch = pytest.importorskip("torch")
    c = shape[1]
    x = (RNG.standard_normal(shape) * 3 + 2).astype(np.float32)
    w, b = RNG.standard_normal(c).astype(np.float32), RNG.standard_normal(c).astype(np.float32)
    g = RNG.standard_normal(shape).astype(np.float32)
    rm, rv = RNG.standard_normal(c).astype(np.float32), RNG.random(c).astype(np.float32) + 0.5
    split = _bn_step(x, w, b, g, rm, rv)
    assert len(set(split_passes)) == 2  # the passes ran on the caller's thread and a worker's
    monkeypatch.setattr(P, "PAR_MIN_VALUES", 1 << 60)
    whole = _bn_step(x, w, b, g, rm, rv)
    for a, e in zip(split, whole):  # the same arithmetic but for the order of the per-channel sums
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)

    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    rmt, rvt = torch.tensor(rm.copy()), torch.tensor(rv.copy())
    y = torch.nn.functional.batch_norm(xt, rmt, rvt, wt, bt, training=True, momentum=0.1)
    y.backward(torch.tensor(g))
    for a, e in zip(split, (y, xt.grad, wt.grad, bt.grad, rmt, rvt)):
        np.testing.assert_allclose(a, e.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_relu_split_equals_whole_bit_for_bit(split_passes, monkeypatch):
    shape = (4, 3, 50, 70)  # (42000 values: several chunks of _RELU_CHUNK per part below)
    monkeypatch.setattr("framework.ops.basic._RELU_CHUNK", 4096)
    x = RNG.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::97] = 0.0  # exact zeros: no gradient, as PyTorch's
    x.reshape(-1)[5] = np.nan  # NaN goes through the forward
    g = RNG.standard_normal(shape).astype(np.float32)

    def run():
        xt = fw.tensor(x, requires_grad=True)
        y = F.relu(xt)
        y.backward(fw.tensor(g))
        return y.detach().numpy(), xt.grad.numpy()

    y, gx = run()
    assert len(set(split_passes)) == 2
    monkeypatch.setattr(P, "PAR_MIN_VALUES", 1 << 60)
    y0, gx0 = run()
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(gx, gx0)
    np.testing.assert_array_equal(y, np.where(np.isnan(x), x, np.maximum(x, 0)))
    np.testing.assert_array_equal(gx, g * (x > 0))


def test_relu_double_backward_still_records_its_mask():
    """With create_graph the backward stays a graph (the mask Function), not the fused array pass."""
    x = fw.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    y = F.relu(x)
    (gx,) = fw.autograd.grad((y * y).sum(), x, create_graph=True)
    np.testing.assert_allclose(gx.detach().numpy(), 2 * np.maximum(x.detach().numpy(), 0))
    (ggx,) = fw.autograd.grad(gx.sum(), x)
    np.testing.assert_allclose(ggx.numpy(), 2.0 * (x.detach().numpy() > 0))


def test_a_parallel_map_inside_a_call_runs_serially(monkeypatch):
    monkeypatch.setattr(C, "_THREADS", 2)
    outer_threads = []

    def inner(v):
        return v * 10

    def outer(i):
        outer_threads.append(threading.get_ident())
        return P.parallel_map(inner, [i, i + 1])  # the pool is busy with this very call

    assert P.parallel_map(outer, range(4)) == [[0, 10], [10, 20], [20, 30], [30, 40]]
    assert len(set(outer_threads)) == 2


def test_parallel_maps_from_two_threads_at_once_both_complete(monkeypatch):
    monkeypatch.setattr(C, "_THREADS", 2)
    gate = threading.Barrier(2)
    results = {}

    def work(tag):
        gate.wait()  # both callers inside parallel_map's window together, as near as threads allow
        for _ in range(50):
            out = P.parallel_map(lambda v: np.full(1000, v, np.float64).sum(), range(6))
            assert out == [1000.0 * v for v in range(6)]
        results[tag] = True

    threads = [threading.Thread(target=work, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {"a": True, "b": True}


def test_a_replaced_pool_ends_its_threads(monkeypatch):
    monkeypatch.setattr(C, "_THREADS", 3)
    monkeypatch.setattr(P, "_POOL", None)
    assert P.parallel_map(lambda v: v + 1, range(5)) == [1, 2, 3, 4, 5]
    pool = P._POOL
    workers = [slot["thread"] for slot in pool.threads]
    assert len(workers) == 2 and all(t.is_alive() for t in workers)
    pool.shutdown(wait=True)
    assert not any(t.is_alive() for t in workers)
    monkeypatch.setattr(P, "_POOL", None)
    assert P.parallel_map(lambda v: 2 * v, range(3)) == [0, 2, 4]  # a fresh pool
