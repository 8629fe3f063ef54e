"""Datasets, samplers and the DataLoader, shaped like ``torch.utils.data``.

``DataLoader(num_workers > 0)`` prefetches batches on background *threads* (not processes): the
heavy work of a typical ``__getitem__`` (NumPy, OpenCV, image decoding) releases the GIL, nothing
has to be pickled, and shutting down is just dropping the iterator. Batches come out in sampler
order whatever the number of workers; an exception raised while loading a batch is re-raised in
the main thread with the batch number and sample indices. Each ``generator`` seed gives the same
batches in the same order, run after run.

Random augmentation in worker threads stays reproducible: while a worker loads batch ``n``, the
framework's random functions called without a ``generator`` (``fw.rand``, ``fw.randn``,
``fw.randint``, ...) draw from a generator seeded with (the iterator's base seed, ``n``), not from
the shared global one, so what a sample draws depends neither on which thread ran it nor on how
many workers there are. (NumPy's and Python's own global generators are shared by all threads and
cannot be made so: a dataset that draws from them is reproducible only with ``num_workers=0``;
``get_worker_info().batch_seed`` seeds a private generator instead.)
"""

from __future__ import annotations

import bisect
import collections
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .backend import get_array_module
from .dtypes import get_default_dtype
from .tensor import Generator, Tensor, _gen, default_generator
from .tensor import _thread as _thread_rng

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset",
           "StackDataset", "random_split",
           "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler",
           "DataLoader", "default_collate", "default_convert", "get_worker_info"]


# ----------------------------------------------------------------------------------- datasets


class Dataset:
    """A map-style data set: subclasses define ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define ``__iter__()``. No sampler or shuffle applies."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class TensorDataset(Dataset):
    """Samples ``(t[0][i], t[1][i], ...)`` from tensors with the same first dimension."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = tensors[0].shape[0]
        for i, t in enumerate(tensors):
            if t.shape[0] != n:
                raise ValueError(f"Size mismatch between tensors: tensor 0 has {n} rows, tensor {i} "
                                 f"has {t.shape[0]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = list(indices)

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


class ChainDataset(IterableDataset):
    """Several iterable data sets one after the other (a stream of streams), as PyTorch's."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


class StackDataset(Dataset):
    """Samples of several data sets of the same length side by side: ``StackDataset(a, b)`` gives
    ``(a[i], b[i])``, ``StackDataset(x=a, y=b)`` gives ``{"x": a[i], "y": b[i]}``, as PyTorch's."""

    def __init__(self, *args: Dataset, **kwargs: Dataset):
        if args and kwargs:
            raise ValueError("Supported either ``tuple``- (via ``args``) or``dict``- (via ``kwargs``) like "
                             "input/output, but both types are given.")
        parts = list(args) or list(kwargs.values())
        if not parts:
            raise ValueError("At least one dataset should be passed")
        n = len(parts[0])
        if any(len(d) != n for d in parts):
            raise ValueError("Size mismatch between datasets")
        self._length = n
        self.datasets = args if args else kwargs

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self):
        return self._length


class ConcatDataset(Dataset):
    """Several data sets one after the other."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        if idx >= len(self):
            raise IndexError(f"index {idx} out of range for a dataset of {len(self)} samples")
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[d - 1] if d > 0 else 0
        return self.datasets[d][idx - start]


def random_split(dataset: Dataset, lengths: Sequence[int | float],
                 generator: Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths.

    ``lengths`` may be fractions summing to 1: each subset gets ``floor(n * fraction)`` samples
    and the remainder is dealt one by one to the subsets in order (PyTorch's rule, by which lengths
    summing to 1 are always fractions: ``[1, 0]`` puts every sample in the first subset).
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    perm = _gen(generator).permutation(n).tolist()
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[start:start + k]))
        start += k
    return out


# ----------------------------------------------------------------------------------- samplers


class Sampler:
    """Yields indices (or, for a batch sampler, lists of indices) into a data set."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self) -> Iterator:
        raise NotImplementedError


class SequentialSampler(Sampler):
    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _epoch_rng(generator: Generator | None) -> np.random.Generator:
    """The generator for one pass: ``generator``'s own stream, or a fresh seed drawn from the
    global one (so ``fw.manual_seed`` alone makes shuffling reproducible)."""
    if generator is not None:
        return generator.rng
    seed = int(default_generator().integers(0, 2**63 - 1))
    return np.random.default_rng(seed)


class RandomSampler(Sampler):
    """A random permutation of the indices (or ``num_samples`` draws with ``replacement``)."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, rng = len(self.data_source), _epoch_rng(self.generator)
        if self.replacement:
            return iter(rng.integers(0, n, size=self.num_samples).tolist())
        idx = []
        for _ in range(self.num_samples // n):
            idx.extend(rng.permutation(n).tolist())
        idx.extend(rng.permutation(n)[: self.num_samples % n].tolist())
        return iter(idx)

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in random order."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None):
        self.indices = list(indices)
        self.generator = generator

    def __iter__(self):
        rng = _epoch_rng(self.generator)
        return iter([self.indices[i] for i in rng.permutation(len(self.indices))])

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability proportional to ``weights`` (e.g. inverse
    class frequencies, to rebalance a skewed data set); with ``replacement=False`` each index at
    most once. Weights need not sum to one."""

    def __init__(self, weights, num_samples: int, replacement: bool = True,
                 generator: Generator | None = None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        w = np.asarray(weights.tolist() if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("weights must be a 1-D sequence of non-negative finite numbers, not all 0")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError(f"cannot draw {num_samples} samples without replacement from "
                             f"{np.count_nonzero(w)} non-zero weights")
        self.weights, self.num_samples, self.replacement = w, num_samples, replacement
        self.generator = generator

    def __iter__(self):
        rng = _epoch_rng(self.generator)
        p = self.weights / self.weights.sum()
        return iter(rng.choice(len(p), size=self.num_samples, replace=self.replacement, p=p).tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size`` (the last one shorter
    unless ``drop_last``)."""

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# ----------------------------------------------------------------------------------- collation


def _stack_arrays(arrays, what):
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise RuntimeError(f"default_collate: {what} in a batch must all have the same shape, got "
                           f"{sorted(shapes)}")
    return get_array_module(arrays[0]).stack(arrays)


def default_collate(batch: Sequence[Any]) -> Any:
    """Merge a list of samples into a batch, as PyTorch's ``default_collate``:
    tensors and NumPy arrays are stacked on a new first dimension (into a Tensor); Python floats
    become a float64 tensor, ints an int64 tensor, bools a bool tensor; strings stay a list;
    dicts, tuples, lists and namedtuples are collated field by field. One extension: a field that is
    None in every sample (an optional label, say) stays a list of None where PyTorch raises."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor(_stack_arrays([b.data for b in batch], "tensors"))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "OSUV":
            raise TypeError(f"default_collate: NumPy arrays of dtype {elem.dtype} are not supported")
        return Tensor(_stack_arrays(list(batch), "arrays"))
    if isinstance(elem, np.generic):
        return Tensor(np.array(batch, dtype=elem.dtype))
    if isinstance(elem, int):  # bools too
        # As torch.tensor(batch): the dtype is inferred from all the values, so [1, 2.5] is a
        # float batch (in the default dtype) and [True, 2] an int64 one, not truncated.
        a = np.array(batch)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"default_collate: cannot collate a batch of numbers mixed with "
                            f"{sorted({type(b).__name__ for b in batch})}")
        return Tensor(a.astype(get_default_dtype().np if a.dtype.kind == "f" else
                               np.int64 if a.dtype.kind in "iu" else np.bool_))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if elem is None:
        return list(batch)
    if isinstance(elem, Mapping):
        return {k: default_collate([d[k] for d in batch]) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(elem, Sequence):
        n = len(elem)
        if any(len(s) != n for s in batch):
            raise RuntimeError("default_collate: each element in a list batch should be of equal size")
        return [default_collate(list(f)) for f in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, dicts or "
                    f"lists; found {type(elem).__name__}")


def default_convert(data: Any) -> Any:
    """What ``batch_size=None`` applies to each sample: NumPy arrays and scalars become Tensors, containers
    are converted element-wise, anything else is left alone."""
    if isinstance(data, (np.ndarray, np.generic)) and data.dtype.kind not in "OSUV":
        return Tensor(np.asarray(data))  # (NumPy scalars become 0-d tensors, as in PyTorch)
    if isinstance(data, Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(v) for v in data))
    if isinstance(data, (list, tuple)):
        return [default_convert(v) for v in data]
    return data


# ----------------------------------------------------------------------------------- loader

_worker_local = threading.local()
WorkerInfo = collections.namedtuple("WorkerInfo", ["id", "num_workers", "seed", "dataset", "batch_seed"])


def get_worker_info() -> WorkerInfo | None:
    """Inside a DataLoader worker thread, its ``(id, num_workers, seed, dataset, batch_seed)``; else None.
    ``seed`` is the worker's (base seed + id, as PyTorch's); ``batch_seed`` that of the batch being
    loaded (from the base seed and the batch number), the one to seed a private generator with for
    augmentation that must not depend on thread scheduling."""
    return getattr(_worker_local, "info", None)


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args mirror ``torch.utils.data.DataLoader``: ``batch_size`` (None: no batching),
    ``shuffle``, ``sampler``, ``batch_sampler``, ``num_workers`` (threads prefetching up to
    ``num_workers * prefetch_factor`` batches ahead), ``collate_fn`` (default
    :func:`default_collate`), ``drop_last``, ``generator`` (seeds shuffling), ``worker_init_fn``
    (called with the worker id in each thread). ``pin_memory``, ``timeout``,
    ``persistent_workers`` and ``multiprocessing_context`` are accepted and ignored.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False, drop_last: bool = False,
                 timeout: float = 0, worker_init_fn: Callable | None = None,
                 multiprocessing_context=None, generator: Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = ""):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing. "
                             "let num_workers > 0 to enable multiprocessing")
        if num_workers > 0 and prefetch_factor is not None and prefetch_factor < 1:
            # (a window of 0 batches would silently give an empty epoch)
            raise ValueError(f"prefetch_factor must be at least 1, got {prefetch_factor}")
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = 2 if prefetch_factor is None else prefetch_factor
        self.pin_memory, self.timeout, self.worker_init_fn = pin_memory, timeout, worker_init_fn
        self.persistent_workers = persistent_workers
        self.generator = generator
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle:
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                                 f"option, but got shuffle={shuffle}")
            if sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        if collate_fn is None:
            collate_fn = default_collate if (batch_size is not None or batch_sampler is not None) \
                else default_convert
        self.collate_fn = collate_fn

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def _index_stream(self) -> Iterator:
        if self._iterable:
            return iter(())
        return iter(self.batch_sampler) if self.batch_sampler is not None else iter(self.sampler)

    def _fetch(self, indices):
        if self.batch_sampler is not None:
            return self.collate_fn([self.dataset[i] for i in indices])
        return self.collate_fn(self.dataset[indices])

    def _iterable_batches(self):
        it = iter(self.dataset)
        if self.batch_size is None:
            for sample in it:
                yield self.collate_fn(sample)
            return
        while True:
            batch = []
            for sample in it:
                batch.append(sample)
                if len(batch) == self.batch_size:
                    break
            if not batch or (len(batch) < self.batch_size and self.drop_last):
                return
            yield self.collate_fn(batch)
            if len(batch) < self.batch_size:
                return

    def __iter__(self):
        if self._iterable:
            return self._iterable_batches()
        if self.num_workers == 0:
            return _SerialIter(self)
        return _ThreadedIter(self)


def _reraise(e: BaseException, n: int, indices) -> None:
    where = getattr(e, "_dataloader_where", None) or f"while loading batch {n} (sample indices {indices})"
    msg = f"Caught {type(e).__name__} in DataLoader worker {where}: {e}"
    try:
        new = type(e)(msg)
    except Exception:  # exception types with unusual constructors
        new = RuntimeError(msg)
    raise new from e


def _base_seed(loader: DataLoader) -> int:
    # Drawn by every iterator (as PyTorch does), so the batches for a given generator seed are the
    # same with or without workers.
    rng = loader.generator.rng if loader.generator is not None else default_generator()
    return int(rng.integers(0, 2**63 - 1))


def _batch_seed(base_seed: int, n: int) -> int:
    """The seed of batch ``n``'s generator in a worker thread: mixed from the base seed and ``n``."""
    return int(np.random.SeedSequence([base_seed, n]).generate_state(2, np.uint64)[0] >> 1)


class _SerialIter:
    def __init__(self, loader: DataLoader):
        self.loader = loader
        self.base_seed = _base_seed(loader)
        self.indices = loader._index_stream()
        self.n = 0

    def __iter__(self):
        return self

    def __len__(self):
        return len(self.loader)

    def __next__(self):
        idx = next(self.indices)
        n = self.n
        self.n += 1
        try:
            return self.loader._fetch(idx)
        except StopIteration:
            raise
        except Exception as e:
            _reraise(e, n, idx)


class _ThreadedIter:
    """Keeps up to ``num_workers * prefetch_factor`` batches in flight, yields them in order."""

    def __init__(self, loader: DataLoader):
        self.loader = loader
        base_seed = _base_seed(loader)
        self.indices = loader._index_stream()
        self.n = 0
        counter = iter(range(loader.num_workers))
        lock = threading.Lock()
        worker = threading.local()  # this iterator's per-thread state: its id, whether initialised

        # Each thread initialises itself on its first batch rather than in the pool's initializer,
        # so that a failing worker_init_fn reaches the caller with its own type and message
        # (an initializer's error only breaks the pool: "BrokenThreadPool: A thread initializer
        # failed").
        def fetch(n, idx):
            if not hasattr(worker, "id"):
                with lock:
                    worker.id = next(counter)
            wid = worker.id
            batch_seed = _batch_seed(base_seed, n)
            _worker_local.info = WorkerInfo(wid, loader.num_workers, base_seed + wid, loader.dataset,
                                            batch_seed)
            try:
                if not getattr(worker, "ready", False):
                    if loader.worker_init_fn is not None:
                        # its draws come from the worker's own stream, not from a batch's
                        _thread_rng.rng = np.random.default_rng(base_seed + wid)
                        try:
                            loader.worker_init_fn(wid)
                        except Exception as e:
                            e._dataloader_where = f"{wid}, in worker_init_fn"
                            raise
                    worker.ready = True
                _thread_rng.rng = np.random.default_rng(batch_seed)
                return loader._fetch(idx)
            finally:
                _thread_rng.rng = None

        self._fetch = fetch
        self.pool = ThreadPoolExecutor(max_workers=loader.num_workers, thread_name_prefix="DataLoader")
        self.pending: collections.deque = collections.deque()
        self.window = loader.num_workers * loader.prefetch_factor
        self._fill()

    def _fill(self):
        while len(self.pending) < self.window:
            try:
                idx = next(self.indices)
            except StopIteration:
                return
            n = self.n + len(self.pending)
            self.pending.append((n, idx, self.pool.submit(self._fetch, n, idx)))

    def __iter__(self):
        return self

    def __len__(self):
        return len(self.loader)

    def __next__(self):
        if not self.pending:
            self.close()
            raise StopIteration
        n, idx, fut = self.pending.popleft()
        self.n += 1
        try:
            batch = fut.result()
        except Exception as e:
            self.close()
            _reraise(e, n, idx)
        self._fill()
        return batch

    def close(self):
        """Cancel the batches not started yet and let the worker threads exit."""
        pool = getattr(self, "pool", None)
        if pool is not None:
            self.pending.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def __del__(self):
        self.close()
