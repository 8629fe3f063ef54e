"""Reproducible randomness: generator states saved and restored (against PyTorch's semantics), and
DataLoader worker threads whose random augmentation does not depend on thread scheduling."""

import random
import threading
import time

import numpy as np
import pytest

import framework as fw
import framework.data as D


def test_generator_get_set_state_replays_the_stream():
    g = fw.Generator().manual_seed(7)
    fw.rand(5, generator=g)
    state = g.get_state()
    assert state.dtype == fw.uint8 and state.ndim == 1
    a = fw.randn(4, 3, generator=g).numpy()
    b = fw.randint(0, 100, (6,), generator=g).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(fw.randn(4, 3, generator=g).numpy(), a)
    np.testing.assert_array_equal(fw.randint(0, 100, (6,), generator=g).numpy(), b)
    # the state is a copy: drawing does not change a saved state
    g2 = fw.Generator().set_state(state)
    np.testing.assert_array_equal(fw.randn(4, 3, generator=g2).numpy(), a)


def test_global_rng_state_round_trips_through_a_checkpoint(tmp_path):
    fw.manual_seed(3)
    fw.rand(10)
    fw.save({"rng": fw.get_rng_state()}, tmp_path / "rng.safetensors")
    expected = fw.rand(8).numpy()
    fw.rand(100)  # move on
    fw.set_rng_state(fw.load(tmp_path / "rng.safetensors")["rng"])
    np.testing.assert_array_equal(fw.rand(8).numpy(), expected)
    # nn.init and dropout draw from the same global stream
    fw.set_rng_state(fw.load(tmp_path / "rng.safetensors")["rng"])
    first = fw.nn.functional.dropout(fw.ones(50), 0.5, training=True).numpy()
    fw.set_rng_state(fw.load(tmp_path / "rng.safetensors")["rng"])
    np.testing.assert_array_equal(fw.nn.functional.dropout(fw.ones(50), 0.5, training=True).numpy(), first)


@pytest.mark.parametrize("bad, match", [
    (fw.zeros(4), "uint8"),
    (fw.tensor(np.frombuffer(b"not json at all", np.uint8).copy()), "not a generator state"),
    (fw.tensor(np.frombuffer(b'{"bit_generator": "Generator", "state": {}}', np.uint8).copy()),
     "not a generator state"),
    (fw.tensor(np.frombuffer(b'{"bit_generator": "PCG64", "state": {"state": "x"}}', np.uint8).copy()),
     "not a generator state"),
])
def test_set_state_rejects_what_get_state_did_not_make(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        fw.Generator().set_state(bad)
    with pytest.raises((TypeError, ValueError), match=match):
        fw.set_rng_state(bad)


class _Augmented(D.Dataset):
    """Each sample adds framework noise; random sleeps shuffle which thread finishes first."""

    def __init__(self, n=24):
        self.n = n
        self.jitter = random.Random(0)
        self.lock = threading.Lock()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with self.lock:
            pause = self.jitter.random() * 0.004
        time.sleep(pause)
        return fw.tensor(float(i)) + fw.rand(()) + fw.randn(2).sum() * 0


def _epoch(num_workers, seed=11):
    loader = D.DataLoader(_Augmented(), batch_size=3, shuffle=True, num_workers=num_workers,
                          generator=fw.Generator().manual_seed(seed))
    return np.concatenate([b.numpy() for b in loader])


def test_worker_augmentation_is_reproducible_and_independent_of_worker_count():
    a, b = _epoch(4), _epoch(4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_epoch(1), a)
    np.testing.assert_array_equal(_epoch(3), a)
    assert not np.array_equal(_epoch(4, seed=12), a)
    # the noise differs between samples (not one value reused by every draw)
    frac = a - np.floor(a)
    assert len(np.unique(np.round(frac, 6))) == len(a)


def test_workers_leave_the_main_threads_stream_alone():
    fw.manual_seed(5)
    expected = fw.rand(4).numpy()
    fw.manual_seed(5)
    it = iter(D.DataLoader(_Augmented(), batch_size=3, num_workers=3))
    next(it)  # the iterator drew its base seed from the global generator, as PyTorch's does
    after_base = fw.rand(4).numpy()
    fw.manual_seed(5)
    D.default_generator().integers(0, 2**63 - 1)  # the one base-seed draw
    np.testing.assert_array_equal(fw.rand(4).numpy(), after_base)
    assert not np.array_equal(after_base, expected)
    list(it)
    assert D.get_worker_info() is None  # (main thread)


def test_worker_info_gives_a_per_batch_seed_and_worker_init_fn_does_not_shift_batches():
    seen = {}

    class Seeds(D.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            info = D.get_worker_info()
            seen.setdefault(i, info.batch_seed)
            return fw.rand(())

    def init(wid):
        fw.rand(wid + 1)  # a worker_init_fn that draws must not change the batches' draws

    out = [b.numpy() for b in D.DataLoader(Seeds(), batch_size=2, num_workers=3, worker_init_fn=init,
                                           generator=fw.Generator().manual_seed(1))]
    seeds = [seen[2 * k] for k in range(6)]
    assert len(set(seeds)) == 6 and all(seen[2 * k + 1] == seeds[k] for k in range(6))
    again = [b.numpy() for b in D.DataLoader(Seeds(), batch_size=2, num_workers=2,
                                             generator=fw.Generator().manual_seed(1))]
    np.testing.assert_array_equal(np.concatenate(out), np.concatenate(again))
