"""Adversarial PyTorch-parity audit of the training utilities: optimizers, lr schedules, the
DataLoader and collation, checkpoints (save/load, damaged and hostile files) and GradScaler.

Each test names the edge case it pins down; PyTorch is the oracle wherever it has an answer.
"""

import io
import json
import struct
import threading

import numpy as np
import pytest

import framework as fw
from framework import data as D
from framework.optim import lr_scheduler as fls
from framework.serialization import CheckpointError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this audit")
tls = torch.optim.lr_scheduler

SHAPES = [(3, 4), (5,), (2, 1, 3)]


# ----------------------------------------------------------------------------------- helpers


def _params(rng):
    arrays = [rng.normal(size=s) for s in SHAPES]
    return ([fw.tensor(a, dtype=fw.float64, requires_grad=True) for a in arrays],
            [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays])


def _loss(ps, lib):
    total = 0
    for i, p in enumerate(ps):
        total = total + (p * p * p).sum() * 0.1 + lib.sin(p).sum() * (i + 1)
    return total


def _step_both(o, t, ours, theirs, used=None):
    """One training step in each framework; ``used`` (indices) limits the loss to some params,
    so that the others keep ``grad=None`` (zero_grad sets to None)."""
    idx = range(len(ours)) if used is None else used
    o.zero_grad()
    _loss([ours[i] for i in idx], fw).backward()
    o.step()
    t.zero_grad()
    _loss([theirs[i] for i in idx], torch).backward()
    t.step()


def _assert_close(ours, theirs, tol=1e-12):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


def _header_file(header, data=b"", n=None) -> io.BytesIO:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return io.BytesIO(struct.pack("<Q", len(raw) if n is None else n) + raw + data)


def _entry(dtype, shape, offsets):
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


# ----------------------------------------------------------------------------------- optimizers

OPTIMS = {
    "sgd-momentum-dampening-wd": ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    "sgd-nesterov-maximize": ("SGD", dict(lr=0.01, momentum=0.8, nesterov=True, maximize=True)),
    "adam-l2-amsgrad": ("Adam", dict(lr=0.05, betas=(0.3, 0.8), weight_decay=0.1, amsgrad=True)),
    "adam-maximize": ("Adam", dict(lr=0.02, maximize=True)),
    "adamw-amsgrad": ("AdamW", dict(lr=0.05, weight_decay=0.2, amsgrad=True)),
    "rmsprop-centered-momentum": ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
}


@pytest.mark.parametrize("name", list(OPTIMS))
def test_trajectory_with_params_whose_grad_is_none_on_some_steps(rng, name):
    """25 steps where each step leaves one parameter out of the loss (grad None): its state
    (Adam's step count, momentum buffers) must not advance, exactly as in PyTorch."""
    cls, kw = OPTIMS[name]
    ours, theirs = _params(rng)
    o = getattr(fw.optim, cls)(ours, **kw)
    t = getattr(torch.optim, cls)(theirs, foreach=False, **kw)
    for s in range(25):
        _step_both(o, t, ours, theirs, used=[i for i in range(3) if i != s % 4])
    _assert_close(ours, theirs, tol=1e-10)
    for i in range(3):
        so, st = o.state_dict()["state"].get(i, {}), t.state_dict()["state"].get(i, {})
        assert set(so) == set(st)
        for k in st:
            np.testing.assert_allclose(np.asarray(so[k].numpy()), st[k].numpy(), rtol=1e-10)


def test_param_groups_with_different_options_and_a_group_added_mid_training(rng):
    ours, theirs = _params(rng)
    g_o = [{"params": [ours[0]], "amsgrad": True, "betas": (0.5, 0.9)},
           {"params": [ours[1]], "lr": 0.2, "weight_decay": 0.3, "maximize": True}]
    g_t = [{"params": [theirs[0]], "amsgrad": True, "betas": (0.5, 0.9)},
           {"params": [theirs[1]], "lr": 0.2, "weight_decay": 0.3, "maximize": True}]
    o, t = fw.optim.Adam(g_o, lr=0.05), torch.optim.Adam(g_t, lr=0.05, foreach=False)
    for _ in range(8):
        _step_both(o, t, ours, theirs, used=[0, 1])
    o.add_param_group({"params": ours[2], "lr": 0.01, "eps": 1e-3})
    t.add_param_group({"params": theirs[2], "lr": 0.01, "eps": 1e-3})
    assert {k: v for k, v in o.param_groups[2].items() if k not in ("params", "foreach")} == \
        {k: v for k, v in t.param_groups[2].items() if k not in ("params", "foreach")}
    for _ in range(15):
        _step_both(o, t, ours, theirs)
    _assert_close(ours, theirs, tol=1e-10)


@pytest.mark.parametrize("name", list(OPTIMS))
def test_fresh_optimizer_loaded_from_a_checkpoint_continues_torch_trajectory(rng, tmp_path, name):
    """12 steps, save params + state dict with fw.save, load into a fresh optimizer over fresh
    params, 12 more steps: the same as PyTorch's 24 uninterrupted steps."""
    cls, kw = OPTIMS[name]
    ours, theirs = _params(rng)
    o = getattr(fw.optim, cls)(ours, **kw)
    t = getattr(torch.optim, cls)(theirs, foreach=False, **kw)
    for _ in range(12):
        _step_both(o, t, ours, theirs)
    fw.save({"p": [p.detach() for p in ours], "o": o.state_dict()}, tmp_path / "ck.safetensors")
    ck = fw.load(tmp_path / "ck.safetensors")
    ours2 = [fw.tensor(a.numpy(), requires_grad=True) for a in ck["p"]]
    o2 = getattr(fw.optim, cls)(ours2, lr=123.0)  # options come from the checkpoint
    o2.load_state_dict(ck["o"])
    for _ in range(12):
        _step_both(o2, t, ours2, theirs)
    _assert_close(ours2, theirs, tol=1e-10)


@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_lr_given_as_a_tensor_is_used(rng, cls):
    """PyTorch accepts a tensor lr; ours used to leave the parameters unchanged (``w += Tensor``
    rebound a local instead of updating the array)."""
    ours, theirs = _params(rng)
    kw = dict(momentum=0.9) if cls == "SGD" else {}
    o = getattr(fw.optim, cls)(ours, lr=fw.tensor(0.01, dtype=fw.float64), **kw)
    t = getattr(torch.optim, cls)(theirs, lr=torch.tensor(0.01, dtype=torch.float64), foreach=False, **kw)
    start = [p.detach().numpy().copy() for p in ours]
    for _ in range(20):
        _step_both(o, t, ours, theirs)
    assert not np.allclose(ours[0].detach().numpy(), start[0])
    _assert_close(ours, theirs, tol=1e-10)


def test_scheduler_updates_a_tensor_lr_in_place_like_torch(rng):
    ours, theirs = _params(rng)
    lr_o, lr_t = fw.tensor(0.1, dtype=fw.float64), torch.tensor(0.1, dtype=torch.float64)
    o, t = fw.optim.SGD(ours, lr=lr_o, momentum=0.5), torch.optim.SGD(theirs, lr=lr_t, momentum=0.5)
    so, st = fls.StepLR(o, step_size=3, gamma=0.5), tls.StepLR(t, step_size=3, gamma=0.5)
    for _ in range(10):
        _step_both(o, t, ours, theirs)
        so.step()
        st.step()
        assert o.param_groups[0]["lr"] is lr_o  # updated in place, as torch's fill_
        assert float(lr_o.item()) == pytest.approx(float(lr_t), rel=1e-15)
    assert float(so.base_lrs[0]) == 0.1  # initial_lr is a copy, not the live tensor
    _assert_close(ours, theirs, tol=1e-10)


def test_load_state_dict_fills_options_missing_from_an_older_checkpoint(rng):
    """Older PyTorch state dicts lack newer options (Adam's ``decoupled_weight_decay``,
    SGD's ``maximize``...); PyTorch fills them in, ours raised KeyError at the next step."""
    ours, theirs = _params(rng)
    t = torch.optim.Adam(theirs, lr=0.05, foreach=False)
    for _ in range(5):
        t.zero_grad()
        _loss(theirs, torch).backward()
        t.step()
    sd = t.state_dict()
    old_groups = [{k: v for k, v in g.items() if k not in ("decoupled_weight_decay", "maximize")}
                  for g in sd["param_groups"]]
    conv = {"state": {k: {n: fw.tensor(v.numpy()) for n, v in s.items()} for k, s in sd["state"].items()},
            "param_groups": old_groups}
    for p, tp in zip(ours, theirs):
        p.data[...] = tp.detach().numpy()
    o = fw.optim.Adam(ours, lr=0.05)
    o.load_state_dict(conv)
    assert o.param_groups[0]["decoupled_weight_decay"] is False and o.param_groups[0]["maximize"] is False
    for _ in range(10):
        _step_both(o, t, ours, theirs)
    _assert_close(ours, theirs, tol=1e-10)


def test_zero_grad_keeps_zeroed_tensor_and_detaches_a_graph_grad():
    p = fw.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward(create_graph=True)
    assert p.grad.grad_fn is not None
    o = fw.optim.SGD([p], lr=0.1)
    o.zero_grad(set_to_none=False)
    assert p.grad is not None and p.grad.grad_fn is None and p.grad.numpy().tolist() == [0.0, 0.0]
    o.zero_grad()
    assert p.grad is None


# ----------------------------------------------------------------------------------- lr schedules


def _sched_pair(opt="SGD", **kw):
    ours = [{"params": [fw.zeros(2, requires_grad=True)], "lr": lr} for lr in (0.1, 0.02)]
    theirs = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in (0.1, 0.02)]
    return getattr(fw.optim, opt)(ours, **kw), getattr(torch.optim, opt)(theirs, **kw)


def _momentum(group):
    return group["betas"][0] if "betas" in group else group["momentum"]


ONE_CYCLE = [
    dict(total_steps=24),
    dict(epochs=4, steps_per_epoch=6),
    dict(total_steps=24, three_phase=True),
    dict(total_steps=24, anneal_strategy="linear", three_phase=True, pct_start=0.4),
    dict(total_steps=24, cycle_momentum=False, div_factor=10.0, final_div_factor=100.0),
]


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
@pytest.mark.parametrize("kw", ONE_CYCLE)
def test_one_cycle_full_run_resume_and_error_past_the_end(opt, kw):
    okw = dict(momentum=0.9) if opt == "SGD" else {}
    o, t = _sched_pair(opt, **okw)
    so, st = fls.OneCycleLR(o, max_lr=[0.5, 0.3], **kw), tls.OneCycleLR(t, max_lr=[0.5, 0.3], **kw)
    for i in range(24):
        o.step()
        t.step()
        so.step()
        st.step()
        np.testing.assert_allclose(so.get_last_lr(), st.get_last_lr(), rtol=1e-12)
        np.testing.assert_allclose([_momentum(g) for g in o.param_groups],
                                   [_momentum(g) for g in t.param_groups], rtol=1e-12)
        if i == 10:  # resume a copy from its state dicts, through a checkpoint file
            buf = io.BytesIO()
            fw.save({"o": o.state_dict(), "s": so.state_dict()}, buf)
            buf.seek(0)
            ck = fw.load(buf)
            o, _ = _sched_pair(opt, **okw)
            so = fls.OneCycleLR(o, max_lr=[0.5, 0.3], **kw)
            o.load_state_dict(ck["o"])
            so.load_state_dict(ck["s"])
    o.step()
    t.step()
    with pytest.raises(ValueError, match="Tried to step 25 times"):
        so.step()
    with pytest.raises(ValueError, match="Tried to step 25 times"):
        st.step()


def test_cosine_with_eta_min_stepped_far_past_t_max_and_resumed_with_last_epoch():
    o, t = _sched_pair()
    so = fls.CosineAnnealingLR(o, T_max=7, eta_min=0.004)
    st = tls.CosineAnnealingLR(t, T_max=7, eta_min=0.004)
    for _ in range(40):
        o.step()
        t.step()
        so.step()
        st.step()
        np.testing.assert_allclose(so.get_last_lr(), st.get_last_lr(), rtol=1e-12, atol=1e-15)
    o2, t2 = _sched_pair()
    o2.load_state_dict(o.state_dict())
    t2.load_state_dict(t.state_dict())
    so2 = fls.CosineAnnealingLR(o2, T_max=7, eta_min=0.004, last_epoch=40)
    st2 = tls.CosineAnnealingLR(t2, T_max=7, eta_min=0.004, last_epoch=40)
    for _ in range(10):
        np.testing.assert_allclose(so2.get_last_lr(), st2.get_last_lr(), rtol=1e-12, atol=1e-15)
        o2.step()
        t2.step()
        so2.step()
        st2.step()


def test_sequential_three_schedulers_resume_from_state_dict():
    def make(m, o):
        return m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=4), m.StepLR(o, 3, 0.5),
                                  m.CosineAnnealingLR(o, T_max=6, eta_min=0.001)], milestones=[4, 11])

    o, t = _sched_pair()
    so, st = make(fls, o), make(tls, t)
    seq_o, seq_t = [], []
    for i in range(25):
        o.step()
        t.step()
        so.step()
        st.step()
        seq_o.append(so.get_last_lr())
        seq_t.append(st.get_last_lr())
        if i == 6:
            sd_o, sd_s = o.state_dict(), so.state_dict()
            o, _ = _sched_pair()
            so = make(fls, o)
            o.load_state_dict(sd_o)
            so.load_state_dict(sd_s)
    np.testing.assert_allclose(seq_o, seq_t, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------------- data


def _show(x):
    """A comparable description of a collated batch (either framework)."""
    if isinstance(x, (fw.Tensor, torch.Tensor)):
        return ("tensor", str(x.numpy().dtype), tuple(x.shape), x.numpy().tolist())
    if isinstance(x, dict):
        return {k: _show(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return (type(x).__name__, *(_show(v) for v in x))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_show(v) for v in x])
    return x


Pair = __import__("collections").namedtuple("Pair", "a b")
COLLATE_CASES = {
    "ints": [1, 2, 3],
    "ints-then-float": [1, 2.5, 3],
    "bool-then-int": [True, 2],
    "bools": [True, False],
    "floats-then-int": [0.5, 2],
    "numpy-scalars": [np.float32(1.5), np.float32(2)],
    "numpy-0d": [np.array(1.0), np.array(2.0)],
    "numpy-uint8": [np.array([1, 2], np.uint8), np.array([3, 4], np.uint8)],
    "numpy-float16": [np.ones(2, np.float16), np.zeros(2, np.float16)],
    "strings": ["a", "b"],
    "dicts": [{"x": 1, "y": "s", "z": np.ones(2)}, {"x": 2, "y": "t", "z": np.zeros(2)}],
    "tuples": [(1, 2.0), (3, 4.0)],
    "lists": [[1, 2], [3, 4]],
    "namedtuples": [Pair(1, 2.0), Pair(3, 4.0)],
    "nested": [{"a": [(1, np.ones(1))]}, {"a": [(2, np.zeros(1))]}],
}


@pytest.mark.parametrize("name", list(COLLATE_CASES))
def test_default_collate_matches_torch(name):
    batch = COLLATE_CASES[name]
    assert _show(D.default_collate(batch)) == _show(torch.utils.data.default_collate(batch))


def test_default_collate_errors_like_torch():
    with pytest.raises(RuntimeError):
        D.default_collate([np.ones(2), np.ones(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        D.default_collate([[1, 2], [3]])
    with pytest.raises(TypeError):
        D.default_collate([np.array(["a"]), np.array(["b"])])


class _Slow(D.Dataset):
    def __init__(self, n, bad=None):
        self.n, self.bad = n, bad

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"sample {i} is broken: checksum 0xdeadbeef")
        return np.full(2, i, np.float32), i


@pytest.mark.parametrize("num_workers", [0, 3])
def test_loader_len_drop_last_order_and_error_message(num_workers):
    ld = D.DataLoader(_Slow(23), batch_size=4, drop_last=True, num_workers=num_workers)
    assert len(ld) == 5
    assert [b[1].numpy().tolist() for b in ld] == [list(range(i, i + 4)) for i in range(0, 20, 4)]
    assert len(D.DataLoader(_Slow(23), batch_size=4, num_workers=num_workers)) == 6
    with pytest.raises(ValueError, match="sample 9 is broken: checksum 0xdeadbeef"):
        for _ in D.DataLoader(_Slow(20, bad=9), batch_size=4, num_workers=num_workers):
            pass


def test_worker_init_fn_error_surfaces_with_its_own_type_and_message():
    """A failing worker_init_fn used to surface as 'BrokenThreadPool: A thread initializer failed'
    with the real error only logged to stderr."""
    def init(worker_id):
        raise OSError(f"cannot open the shard for worker {worker_id}: quota")

    with pytest.raises(OSError, match="cannot open the shard for worker .: quota"):
        for _ in D.DataLoader(_Slow(8), batch_size=2, num_workers=2, worker_init_fn=init):
            pass


def test_worker_init_fn_runs_once_per_worker_with_worker_info():
    seen, lock = [], threading.Lock()

    def init(worker_id):
        info = D.get_worker_info()
        with lock:
            seen.append((worker_id, info.id, info.num_workers, threading.get_ident()))

    out = [b[1].numpy().tolist() for b in D.DataLoader(_Slow(40), batch_size=2, num_workers=3,
                                                        worker_init_fn=init)]
    assert out == [[i, i + 1] for i in range(0, 40, 2)]
    assert len(seen) == len({s[3] for s in seen}) <= 3  # once per thread
    assert all(a == b and n == 3 for a, b, n, _ in seen)
    assert sorted(s[0] for s in seen) == list(range(len(seen)))


def test_early_break_leaves_no_threads_behind():
    import gc
    import time

    before = threading.active_count()
    for _ in range(10):
        for i, _b in enumerate(D.DataLoader(_Slow(400), batch_size=2, num_workers=3)):
            if i == 2:
                break
    gc.collect()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before


def test_shuffle_is_reproducible_per_generator_seed_across_worker_counts():
    def epochs(seed, nw):
        ld = D.DataLoader(_Slow(11), batch_size=3, shuffle=True, num_workers=nw,
                          generator=fw.Generator().manual_seed(seed))
        return [[b[1].numpy().tolist() for b in ld] for _ in range(2)]

    a = epochs(7, 0)
    assert a == epochs(7, 2) and a[0] != a[1] and a != epochs(8, 0)
    assert sorted(sum(a[0], [])) == list(range(11))


def test_batch_size_none_converts_each_sample_like_torch():
    ds = D.TensorDataset(fw.arange(5), fw.arange(5) * 2)
    ld = D.DataLoader(ds, batch_size=None)
    tld = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(5), torch.arange(5) * 2),
                                      batch_size=None)
    assert len(ld) == len(tld) == 5
    assert [_show(b) for b in ld] == [_show(b) for b in tld]
    with pytest.raises(ValueError, match="drop_last"):
        D.DataLoader(ds, batch_size=None, drop_last=True)


def test_tensor_dataset_length_mismatch():
    with pytest.raises(ValueError, match="Size mismatch"):
        D.TensorDataset(fw.zeros(3, 2), fw.zeros(4))


@pytest.mark.parametrize("lengths", [[0.3, 0.3, 0.4], [0.33, 0.33, 0.34], [0.1] * 10, [0.7, 0.2, 0.1],
                                     [0.25] * 4, [0.6, 0.4], [1, 0], [0, 1], [1]])
@pytest.mark.parametrize("n", [7, 10, 13])
def test_random_split_fraction_rounding_matches_torch(lengths, n):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about empty splits
        theirs = [len(s) for s in torch.utils.data.random_split(range(n), lengths)]
        ours = D.random_split(_Slow(n), lengths, generator=fw.Generator().manual_seed(0))
    assert [len(s) for s in ours] == theirs
    assert sorted(i for s in ours for i in s.indices) == list(range(n))
    again = D.random_split(_Slow(n), lengths, generator=fw.Generator().manual_seed(0))
    assert [s.indices for s in again] == [s.indices for s in ours]


# ----------------------------------------------------------------------------------- checkpoints


def _roundtrip(obj):
    buf = io.BytesIO()
    fw.save(obj, buf)
    buf.seek(0)
    return fw.load(buf)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int16", "int32", "int64",
                                   "uint8", "bool"])
def test_every_dtype_and_degenerate_shape_round_trips(dtype):
    for shape in [(), (0,), (3, 0, 2), (2, 3)]:
        a = (np.arange(int(np.prod(shape))).reshape(shape) % 3)
        t = fw.tensor(a, dtype=getattr(fw, dtype))
        r = _roundtrip({"t": t, "nested": [t, {"x": (t,)}]})
        for got in (r["t"], r["nested"][0], r["nested"][1]["x"][0]):
            assert got.dtype == t.dtype and tuple(got.shape) == shape
            np.testing.assert_array_equal(got.numpy(), t.numpy())


def test_non_contiguous_and_mixed_python_values_round_trip():
    x = fw.tensor(np.arange(24.0).reshape(4, 6))
    obj = {"T": x.t(), "strided": x[:, ::2], "reversed": fw.tensor(np.arange(5.0)[::-1]),
           "broadcast": fw.tensor(np.broadcast_to(np.arange(3.0), (4, 3))),
           "misc": [1, 2.5, "s", None, True, -0.0, float("inf"), 2**70, ()], 3: {"int key": []},
           "__dunder": 1}
    r = _roundtrip(obj)
    for k in ("T", "strided", "reversed", "broadcast"):
        np.testing.assert_array_equal(r[k].numpy(), obj[k].numpy())
    assert r["misc"] == obj["misc"] and type(r["misc"][-1]) is tuple
    assert r[3] == {"int key": []} and r["__dunder"] == 1


HOSTILE = {
    "header length 2**64-1": struct.pack("<Q", 2**64 - 1) + b"{}",
    "header length past the end": _header_file({}, n=1000).getvalue(),
    "non-UTF-8 header": _header_file(b'{"a\xff":1}').getvalue(),
    "empty header": _header_file(b"").getvalue(),
    "header is a list": _header_file([1, 2]).getvalue(),
    "offsets past the data": _header_file({"a": _entry("F32", [2], [0, 8])}, b"\0" * 4).getvalue(),
    "overlapping buffers": _header_file({"a": _entry("F32", [2], [0, 8]), "b": _entry("F32", [1], [4, 8])},
                                        b"\0" * 8).getvalue(),
    "gap between buffers": _header_file({"a": _entry("F32", [1], [4, 8])}, b"\0" * 8).getvalue(),
    "wrong dtype string": _header_file({"a": _entry("float32", [1], [0, 4])}, b"\0" * 4).getvalue(),
    "dtype is a list": _header_file({"a": _entry(["F32"], [1], [0, 4])}, b"\0" * 4).getvalue(),
    "dtype is an object": _header_file({"a": _entry({"F32": 1}, [1], [0, 4])}, b"\0" * 4).getvalue(),
    "empty tensor with a 2**62 dimension": _header_file({"a": _entry("F32", [0, 2**62], [0, 0])}).getvalue(),
    "empty tensor with a 2**70 dimension": _header_file({"a": _entry("F32", [2**70, 0], [0, 0])}).getvalue(),
    "empty tensor of 100 dimensions": _header_file({"a": _entry("U8", [1] * 99 + [0], [0, 0])}).getvalue(),
    "shape larger than the file": _header_file({"a": _entry("U8", [2**32, 2**32], [0, 2**64])}).getvalue(),
    "bool bytes other than 0 and 1": _header_file({"a": _entry("BOOL", [3], [0, 3])},
                                                  b"\x01\x02\xff").getvalue(),
    "NaN in header": _header_file(b'{"a":NaN}').getvalue(),
    "deeply nested header": _header_file(b'{"a":' + b"[" * 50000 + b"]" * 50000 + b"}").getvalue(),
    "structure refers to a missing tensor": _header_file(
        {"__metadata__": {"framework.structure": json.dumps({"x": {"__tensor__": "zz"}})}}).getvalue(),
    "structure uses a tensor twice": _header_file(
        {"a": _entry("F32", [1], [0, 4]),
         "__metadata__": {"framework.structure": json.dumps([{"__tensor__": "a"}, {"__tensor__": "a"}])}},
        b"\0" * 4).getvalue(),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_damaged_or_hostile_file_raises_checkpoint_error(name):
    with pytest.raises(CheckpointError):
        fw.load(io.BytesIO(HOSTILE[name]))


def test_every_truncation_of_a_real_checkpoint_raises_checkpoint_error():
    p = fw.ones(3, requires_grad=True)
    o = fw.optim.Adam([p], lr=0.1)
    (p * p).sum().backward()
    o.step()
    buf = io.BytesIO()
    fw.save({"model": {"w": fw.ones(2, 3)}, "optim": o.state_dict()}, buf)
    good = buf.getvalue()
    for cut in list(range(0, 24)) + list(range(len(good) - 40, len(good))):
        with pytest.raises(CheckpointError):
            fw.load(io.BytesIO(good[:cut]))
    with pytest.raises(CheckpointError, match="after the last tensor"):
        fw.load(io.BytesIO(good + b"\0" * 8))


# ----------------------------------------------------------------------------------- GradScaler


def test_grad_scaler_float64_grads_skips_and_state_dict_round_trip_match_torch(rng):
    w0 = rng.normal(size=4)
    kw = dict(init_scale=2.0**12, growth_factor=3.0, backoff_factor=0.25, growth_interval=2)
    w, tw = fw.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    o, t = fw.optim.SGD([w], lr=0.01, momentum=0.5), torch.optim.SGD([tw], lr=0.01, momentum=0.5)
    s, ts = fw.amp.GradScaler("cpu", **kw), torch.amp.GradScaler("cpu", **kw)
    for i in range(20):
        x = rng.normal(size=4)
        if i in (3, 4, 11):
            x[i % 4] = [np.inf, np.nan, -np.inf][i % 3]
        o.zero_grad()
        t.zero_grad()
        s.scale((w * fw.tensor(x)).sum() + (w * w).sum()).backward()
        ts.scale((tw * torch.tensor(x)).sum() + (tw * tw).sum()).backward()
        before = w.detach().numpy().copy()
        s.step(o)
        ts.step(t)
        assert np.array_equal(before, w.detach().numpy()) == (not np.isfinite(x).all())
        s.update()
        ts.update()
        assert s.get_scale() == ts.get_scale() and s._growth_tracker == ts._get_growth_tracker()
        if i == 9:  # resume the scaler from a checkpoint
            sd = _roundtrip(s.state_dict())
            s = fw.amp.GradScaler("cpu")
            s.load_state_dict(sd)
            assert s.state_dict() == ts.state_dict()
        np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-12)


def test_numpy_scalars_in_a_checkpoint_come_back_as_python_values():
    """np.bool_ (e.g. ``best = loss < prev`` on NumPy values) was refused as "type bool" while the
    message said bools are accepted."""
    r = _roundtrip({"improved": np.bool_(True), "n": np.int32(3), "x": np.float16(1.5), "s": np.str_("a")})
    assert r == {"improved": True, "n": 3, "x": 1.5, "s": "a"}
    assert type(r["improved"]) is bool and type(r["n"]) is int and type(r["s"]) is str


@pytest.mark.parametrize("prefetch_factor", [0, -1])
def test_prefetch_factor_below_one_is_refused_not_an_empty_epoch(prefetch_factor):
    """It used to give an epoch with no batches at all (a prefetch window of 0); PyTorch refuses."""
    with pytest.raises(ValueError, match="prefetch_factor"):
        list(D.DataLoader(_Slow(8), batch_size=2, num_workers=2, prefetch_factor=prefetch_factor))
    assert len(list(D.DataLoader(_Slow(8), batch_size=2, num_workers=2, prefetch_factor=1))) == 4


@pytest.mark.parametrize("sample", [np.float32(1.5), np.int64(3), np.bool_(True), np.ones(2), 3, 2.5, "s",
                                    (np.ones(1), 2), [np.ones(1), "x"], {"a": np.ones(1), "b": np.int32(1)},
                                    Pair(np.ones(1), np.float64(2))])
def test_default_convert_matches_torch(sample):
    """batch_size=None: NumPy scalars become 0-d tensors, as in PyTorch (they were left as is)."""
    assert repr(_show(D.default_convert(sample))) == repr(_show(torch.utils.data.default_convert(sample)))


def test_cuda_grad_scaler_without_cuda_disables_itself_with_a_warning_like_torch():
    if fw.backend.cuda_available():
        pytest.skip("CUDA is available here")
    with pytest.warns(UserWarning, match="CUDA is not available"):
        s = fw.amp.GradScaler()  # device "cuda" by default
    loss = fw.tensor(3.0)
    assert not s.is_enabled() and s.scale(loss) is loss and s.get_scale() == 1.0
    assert s.state_dict() == {}


def test_grad_scaler_step_without_any_gradient_is_an_error_like_torch():
    """A forgotten backward() used to pass silently (the step ran on no gradients)."""
    w, tw = fw.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    s, ts = fw.amp.GradScaler("cpu"), torch.amp.GradScaler("cpu")
    s.scale(w.sum())
    ts.scale(tw.sum())
    with pytest.raises(AssertionError, match="No inf checks were recorded for this optimizer"):
        ts.step(torch.optim.SGD([tw], lr=0.1))
    with pytest.raises(AssertionError, match="No inf checks were recorded for this optimizer"):
        s.step(fw.optim.SGD([w], lr=0.1))


def test_named_parameters_are_accepted_like_torch(rng):
    """``SGD(model.named_parameters())`` works in PyTorch (groups keep ``param_names``); ours
    refused the (name, tensor) pairs."""
    ours, theirs = _params(rng)
    names = ["w", "b", "c"]
    o = fw.optim.SGD([{"params": list(zip(names[:2], ours[:2]))}, {"params": [("c", ours[2])], "lr": 0.2}],
                     lr=0.1, momentum=0.9)
    t = torch.optim.SGD([{"params": list(zip(names[:2], theirs[:2]))}, {"params": [("c", theirs[2])],
                                                                       "lr": 0.2}], lr=0.1, momentum=0.9)
    assert [g["param_names"] for g in o.param_groups] == [g["param_names"] for g in t.param_groups]
    assert o.param_groups[0]["params"][0] is ours[0]
    for _ in range(5):
        _step_both(o, t, ours, theirs)
    _assert_close(ours, theirs)
    assert [g["param_names"] for g in o.state_dict()["param_groups"]] == [["w", "b"], ["c"]]
    with pytest.raises(ValueError, match="names"):
        fw.optim.SGD([("a", fw.ones(1, requires_grad=True)), fw.ones(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="names"):
        fw.optim.SGD([{"params": [("a", fw.ones(1, requires_grad=True))]},
                      {"params": [fw.ones(1, requires_grad=True)]}], lr=0.1)


@pytest.mark.parametrize("cls", ["Adam", "AdamW", "RMSprop"])
def test_state_dict_with_a_plain_number_step_loads_like_torch(rng, cls):
    """Older PyTorch (and hand-converted) state dicts hold ``step`` as a Python number; PyTorch
    turns it into a tensor on load, ours crashed at the next step ('int' has no 'data')."""
    ours, theirs = _params(rng)
    t = getattr(torch.optim, cls)(theirs, lr=0.05, foreach=False)
    for _ in range(4):
        t.zero_grad()
        _loss(theirs, torch).backward()
        t.step()
    sd = t.state_dict()
    conv = {"state": {k: {n: (int(v.item()) if n == "step" else fw.tensor(v.numpy())) for n, v in s.items()}
                      for k, s in sd["state"].items()},
            "param_groups": sd["param_groups"]}
    for p, tp in zip(ours, theirs):
        p.data[...] = tp.detach().numpy()
    o = getattr(fw.optim, cls)(ours, lr=0.05)
    o.load_state_dict(conv)
    for _ in range(6):
        _step_both(o, t, ours, theirs)
    _assert_close(ours, theirs, tol=1e-10)
