"""ChainDataset, StackDataset and nn.init.sparse_ against PyTorch's behaviour."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for data sets and init")
tdata = torch.utils.data


def _stream(base):
    """The same iterable data set over both frameworks' base classes."""

    class Stream(base):
        def __init__(self, lo, hi):
            self.lo, self.hi = lo, hi

        def __iter__(self):
            return iter(range(self.lo, self.hi))

        def __len__(self):
            return self.hi - self.lo

    return Stream


_Stream, _TStream = _stream(fw.data.IterableDataset), _stream(tdata.IterableDataset)


def test_chain_and_stack_datasets_match_torch():
    ours = fw.data.ChainDataset([_Stream(0, 3), _Stream(10, 12)])
    theirs = tdata.ChainDataset([_TStream(0, 3), _TStream(10, 12)])
    assert list(ours) == list(theirs) == [0, 1, 2, 10, 11] and len(ours) == len(theirs) == 5
    with pytest.raises(TypeError, match="only supports IterableDataset"):
        fw.data.ChainDataset([fw.data.TensorDataset(fw.ones(2))])
    a, b = fw.data.TensorDataset(fw.arange(4)), [10, 11, 12, 13]
    s = fw.data.StackDataset(a, b)
    assert len(s) == 4 and s[2][1] == 12 and int(s[2][0][0].item()) == 2
    d = fw.data.StackDataset(x=a, y=b)
    ts = tdata.StackDataset(x=tdata.TensorDataset(torch.arange(4)), y=b)
    assert set(d[1]) == set(ts[1]) == {"x", "y"} and d[1]["y"] == ts[1]["y"] == 11
    loader = fw.data.DataLoader(d, batch_size=2)
    batch = next(iter(loader))
    assert sorted(batch) == ["x", "y"] and batch["y"].tolist() == [10, 11]
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        fw.data.StackDataset(a, [1, 2])
    with pytest.raises(ValueError, match="but both types are given"):
        fw.data.StackDataset(a, y=b)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 1.0])
def test_sparse_init_zeros_the_asked_share_of_each_column(sparsity):
    fw.manual_seed(0)
    w = fw.empty(20, 7)
    fw.nn.init.sparse_(w, sparsity, std=0.05)
    t = torch.empty(20, 7)
    torch.nn.init.sparse_(t, sparsity, std=0.05)
    zeros = (w.numpy() == 0).sum(0)
    np.testing.assert_array_equal(zeros, (t.numpy() == 0).sum(0))  # ceil(sparsity * rows) per column
    nz = w.numpy()[w.numpy() != 0]
    if nz.size > 20:
        assert 0.03 < nz.std() < 0.07
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        fw.nn.init.sparse_(fw.empty(3), 0.5)
