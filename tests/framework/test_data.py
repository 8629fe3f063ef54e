"""fw.data: datasets, samplers, collation, threaded prefetch, reproducibility."""

import collections
import threading
import time

import numpy as np
import pytest

import framework as fw
from framework import data as D


class Squares(D.Dataset):
    def __init__(self, n, fail_at=None, delay=0.0):
        self.n, self.fail_at, self.delay = n, fail_at, delay
        self.calls = 0
        self.lock = threading.Lock()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with self.lock:
            self.calls += 1
        if i == self.fail_at:
            raise KeyError(f"bad sample {i}")
        if self.delay:
            # later indices finish first, to check that order is restored
            time.sleep(self.delay * ((self.n - i) % 4))
        return np.full((2,), i, dtype=np.float32), i


def _ids(loader):
    return [b[1].tolist() for b in loader]


def test_tensor_dataset_subset_concat():
    x, y = fw.arange(10).reshape(5, 2), fw.arange(5)
    ds = D.TensorDataset(x, y)
    assert len(ds) == 5 and ds[3][1].item() == 3 and ds[3][0].tolist() == [6, 7]
    with pytest.raises(ValueError, match="Size mismatch"):
        D.TensorDataset(x, fw.arange(4))
    sub = D.Subset(ds, [4, 0])
    assert len(sub) == 2 and sub[0][1].item() == 4
    cat = ds + D.TensorDataset(x + 100, y + 100)
    assert len(cat) == 10 and cat[7][1].item() == 102 and cat[-1][1].item() == 104
    with pytest.raises(IndexError):
        cat[10]


def test_random_split_lengths_fractions_and_seed():
    ds = Squares(10)
    a, b = D.random_split(ds, [7, 3], generator=fw.Generator().manual_seed(1))
    assert len(a) == 7 and len(b) == 3
    assert sorted(a.indices + b.indices) == list(range(10))
    a2, _ = D.random_split(ds, [7, 3], generator=fw.Generator().manual_seed(1))
    assert a.indices == a2.indices
    parts = D.random_split(Squares(11), [0.5, 0.3, 0.2], generator=fw.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [6, 3, 2]  # floor 5,3,2 then the remainder dealt in order
    with pytest.raises(ValueError, match="Sum of input lengths"):
        D.random_split(ds, [5, 4])


def test_samplers():
    assert list(D.SequentialSampler(range(4))) == [0, 1, 2, 3]
    r = list(D.RandomSampler(range(20), generator=fw.Generator().manual_seed(3)))
    assert sorted(r) == list(range(20)) and r != list(range(20))
    rr = list(D.RandomSampler(range(5), replacement=True, num_samples=50))
    assert len(rr) == 50 and set(rr) <= set(range(5))
    assert len(list(D.RandomSampler(range(4), num_samples=10))) == 10
    bs = D.BatchSampler(range(10), 4, drop_last=False)
    assert list(bs) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(bs) == 3
    bs = D.BatchSampler(range(10), 4, drop_last=True)
    assert len(list(bs)) == len(bs) == 2
    with pytest.raises(ValueError):
        D.BatchSampler(range(3), 0, False)
    s = list(D.SubsetRandomSampler([10, 20, 30]))
    assert sorted(s) == [10, 20, 30]


def test_weighted_random_sampler():
    w = [1.0, 0.0, 3.0, 6.0]
    draws = list(D.WeightedRandomSampler(w, 20_000, generator=fw.Generator().manual_seed(0)))
    counts = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(counts, np.array(w) / 10, atol=0.015)  # ~5 sigma at n=20000
    assert counts[1] == 0
    again = list(D.WeightedRandomSampler(fw.tensor(w), 20_000, generator=fw.Generator().manual_seed(0)))
    assert draws == again
    once = list(D.WeightedRandomSampler(w, 3, replacement=False))
    assert sorted(once) == [0, 2, 3]
    with pytest.raises(ValueError, match="without replacement"):
        D.WeightedRandomSampler(w, 4, replacement=False)
    with pytest.raises(ValueError, match="non-negative"):
        D.WeightedRandomSampler([1.0, -1.0], 2)
    dl = D.DataLoader(Squares(4), batch_size=5, sampler=D.WeightedRandomSampler(w, 10))
    assert len(dl) == 2 and all(1 not in b[1].tolist() for b in dl)


Point = collections.namedtuple("Point", "x y")


def test_default_collate_types():
    b = D.default_collate([
        {"img": np.ones((2, 3), np.float32), "label": 1, "w": 0.5, "name": "a", "ok": True,
         "t": fw.ones(2), "p": Point(1, 2.0), "pair": (np.int16(3), [1, 2])},
        {"img": np.zeros((2, 3), np.float32), "label": 2, "w": 1.5, "name": "b", "ok": False,
         "t": fw.zeros(2), "p": Point(3, 4.0), "pair": (np.int16(4), [3, 4])},
    ])
    assert b["img"].shape == (2, 2, 3) and b["img"].dtype == fw.float32
    assert b["label"].dtype == fw.int64 and b["label"].tolist() == [1, 2]
    assert b["w"].dtype == fw.float64
    assert b["ok"].dtype == fw.bool
    assert b["name"] == ["a", "b"]
    assert b["t"].tolist() == [[1, 1], [0, 0]]
    assert isinstance(b["p"], Point) and b["p"].x.tolist() == [1, 3]
    assert b["pair"][0].dtype == fw.int16 if hasattr(fw, "int16") else True
    assert [t.tolist() for t in b["pair"][1]] == [[1, 3], [2, 4]]
    with pytest.raises(RuntimeError, match="same shape"):
        D.default_collate([np.ones(2), np.ones(3)])
    with pytest.raises(TypeError, match="found object"):
        D.default_collate([object()])


def test_default_collate_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as tcollate

    samples = [(np.arange(3, dtype=np.float32) + i, i, float(i) / 2) for i in range(4)]
    ours, theirs = D.default_collate(samples), tcollate(samples)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    del torch


def test_dataloader_batches_len_drop_last():
    dl = D.DataLoader(Squares(10), batch_size=4)
    assert len(dl) == 3 and _ids(dl) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x, _ = next(iter(dl))
    assert x.shape == (4, 2)
    dl = D.DataLoader(Squares(10), batch_size=4, drop_last=True)
    assert len(dl) == 2 and len(list(dl)) == 2
    dl = D.DataLoader(Squares(3), batch_size=None)
    first = next(iter(dl))
    assert isinstance(first[0], fw.Tensor) and first[1] == 0 and len(dl) == 3
    dl = D.DataLoader(Squares(5), batch_size=2, collate_fn=lambda b: [s[1] for s in b])
    assert list(dl) == [[0, 1], [2, 3], [4]]
    dl = D.DataLoader(Squares(6), batch_sampler=[[5, 0], [1]])
    assert _ids(dl) == [[5, 0], [1]]


def test_dataloader_argument_errors():
    with pytest.raises(ValueError, match="mutually exclusive"):
        D.DataLoader(Squares(4), sampler=D.SequentialSampler(range(4)), shuffle=True)
    with pytest.raises(ValueError, match="mutually exclusive"):
        D.DataLoader(Squares(4), batch_sampler=[[0]], batch_size=2)
    with pytest.raises(ValueError, match="prefetch_factor"):
        D.DataLoader(Squares(4), prefetch_factor=4)


def test_shuffle_is_reproducible_with_a_generator_or_manual_seed():
    def epochs(seed, workers):
        g = fw.Generator().manual_seed(seed)
        dl = D.DataLoader(Squares(20), batch_size=3, shuffle=True, generator=g, num_workers=workers)
        return [_ids(dl), _ids(dl)]

    a = epochs(7, 0)
    assert a == epochs(7, 0) == epochs(7, 3)
    assert a[0] != a[1]  # each epoch reshuffles
    assert a != epochs(8, 0)
    assert sorted(sum(a[0], [])) == list(range(20))
    fw.manual_seed(5)
    b = _ids(D.DataLoader(Squares(20), batch_size=4, shuffle=True))
    fw.manual_seed(5)
    assert b == _ids(D.DataLoader(Squares(20), batch_size=4, shuffle=True))


def test_workers_preserve_order_and_use_threads():
    ds = Squares(24, delay=0.002)
    seen = set()

    def init(wid):
        seen.add((wid, threading.current_thread().name))

    dl = D.DataLoader(ds, batch_size=2, num_workers=3, worker_init_fn=init, prefetch_factor=2)
    assert _ids(dl) == [[i, i + 1] for i in range(0, 24, 2)]
    assert {w for w, _ in seen} <= {0, 1, 2} and len(seen) >= 1
    assert all(name.startswith("DataLoader") for _, name in seen)


def test_worker_info_inside_workers():
    infos = []

    class DS(Squares):
        def __getitem__(self, i):
            infos.append(D.get_worker_info())
            return super().__getitem__(i)

    list(D.DataLoader(DS(6), batch_size=2, num_workers=2))
    assert all(i is not None and i.num_workers == 2 for i in infos)
    assert D.get_worker_info() is None


@pytest.mark.parametrize("workers", [0, 2])
def test_worker_exception_is_reraised_with_the_batch(workers):
    dl = D.DataLoader(Squares(10, fail_at=5), batch_size=2, num_workers=workers)
    it = iter(dl)
    assert next(it)[1].tolist() == [0, 1]
    assert next(it)[1].tolist() == [2, 3]
    with pytest.raises(KeyError, match=r"batch 2 \(sample indices \[4, 5\]\).*bad sample 5"):
        next(it)


def _threads_back_to(n, timeout=10.0):
    """Wait (on a loaded machine threads may take a moment to exit) for the thread count to drop."""
    end = time.monotonic() + timeout
    while threading.active_count() > n and time.monotonic() < end:
        time.sleep(0.02)
    return threading.active_count() <= n


def test_prefetch_is_bounded_and_early_drop_shuts_down():
    ds = Squares(1000)
    dl = D.DataLoader(ds, batch_size=1, num_workers=2, prefetch_factor=3)
    before = threading.active_count()
    it = iter(dl)
    next(it)
    time.sleep(0.05)
    assert ds.calls <= 1 + 2 * 3 + 2  # one consumed, a window of 6 in flight (+ slack for racing)
    del it  # dropped without close(): pending batches are cancelled, the threads exit
    assert _threads_back_to(before)
    assert ds.calls < 20
    for i, _ in enumerate(dl):  # leaving a for loop early drops the iterator the same way
        if i == 2:
            break
    assert _threads_back_to(before)
    assert ds.calls < 40


def test_iterable_dataset():
    class Stream(D.IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    dl = D.DataLoader(Stream(), batch_size=3)
    assert [b.tolist() for b in dl] == [[0, 1, 2], [3, 4, 5], [6]] and len(dl) == 3
    dl = D.DataLoader(Stream(), batch_size=3, drop_last=True)
    assert [b.tolist() for b in dl] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="shuffle"):
        D.DataLoader(Stream(), shuffle=True)


def test_training_epoch_with_loader_and_optimizer():
    """End to end: a linear regression fitted with DataLoader + SGD converges."""
    g = fw.Generator().manual_seed(0)
    x = fw.randn(64, 3, generator=g)
    w_true = fw.tensor([[1.0], [-2.0], [0.5]])
    y = x @ w_true
    w = fw.zeros(3, 1, requires_grad=True)
    opt = fw.optim.SGD([w], lr=0.1)
    dl = D.DataLoader(D.TensorDataset(x, y), batch_size=16, shuffle=True, generator=g)
    for _ in range(30):
        for xb, yb in dl:
            opt.zero_grad()
            ((xb @ w - yb) ** 2).mean().backward()
            opt.step()
    np.testing.assert_allclose(w.detach().numpy(), w_true.numpy(), atol=1e-3)
