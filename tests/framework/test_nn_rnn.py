"""LSTM / GRU / RNN (and cells) and packed sequences against PyTorch: outputs, states, gradients."""

import numpy as np
import pytest

import framework as fw
from framework import nn
from framework.nn.utils import rnn as rnn_utils

torch = pytest.importorskip("torch")

DTYPES = [(torch.float64, fw.float64, 1e-10), (torch.float32, fw.float32, 2e-5)]


def copy_weights(t, f):
    res = f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert list(f.state_dict()) == list(t.state_dict())
    t.load_state_dict({k: torch.tensor(np.array(v.numpy())) for k, v in f.state_dict().items()}, strict=True)
    for (n, tp), (m, fp) in zip(t.named_parameters(), f.named_parameters()):
        assert n == m and tuple(tp.shape) == tuple(fp.shape)


def close(f, t, tol):
    np.testing.assert_allclose(np.asarray(f.detach().numpy()), t.detach().numpy(), rtol=tol, atol=tol)


def flat_states(mode, s):
    return list(s) if mode == "LSTM" else [s]


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("dt", DTYPES, ids=["f64", "f32"])
def test_packed_bidirectional_multilayer(mode, dt):
    tdt, fdt, tol = dt
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    t = getattr(torch.nn, mode)(4, 5, **kw).to(tdt)
    f = getattr(nn, mode)(4, 5, **kw).to(fdt)
    copy_weights(t, f)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 4))
    lengths = [3, 6, 1, 4]  # unsorted: exercises sorted_indices / unsorted_indices
    n_states = 2 if mode == "LSTM" else 1
    h0 = [rng.standard_normal((4, 4, 5)) for _ in range(n_states)]
    tx = torch.tensor(x, dtype=tdt, requires_grad=True)
    fx = fw.tensor(x, dtype=fdt, requires_grad=True)
    th0 = [torch.tensor(h, dtype=tdt, requires_grad=True) for h in h0]
    fh0 = [fw.tensor(h, dtype=fdt, requires_grad=True) for h in h0]
    tp = torch.nn.utils.rnn.pack_padded_sequence(tx, lengths, batch_first=True, enforce_sorted=False)
    fp = rnn_utils.pack_padded_sequence(fx, lengths, batch_first=True, enforce_sorted=False)
    close(fp.data, tp.data, tol)
    np.testing.assert_array_equal(fp.batch_sizes.numpy(), tp.batch_sizes.numpy())
    to, ts = t(tp, tuple(th0) if mode == "LSTM" else th0[0])
    fo, fs = f(fp, tuple(fh0) if mode == "LSTM" else fh0[0])
    assert isinstance(fo, rnn_utils.PackedSequence)
    to, tl = torch.nn.utils.rnn.pad_packed_sequence(to, batch_first=True)
    fo, fl = rnn_utils.pad_packed_sequence(fo, batch_first=True)
    np.testing.assert_array_equal(fl.numpy(), tl.numpy())
    close(fo, to, tol)
    for a, b in zip(flat_states(mode, fs), flat_states(mode, ts)):
        close(a, b, tol)
    w = [rng.standard_normal(tuple(to.shape))] + [rng.standard_normal(tuple(s.shape))
                                                  for s in flat_states(mode, ts)]
    tl_ = sum((a * torch.tensor(b, dtype=tdt)).sum() for a, b in zip([to] + flat_states(mode, ts), w))
    fl_ = sum((a * fw.tensor(b, dtype=fdt)).sum() for a, b in zip([fo] + flat_states(mode, fs), w))
    tl_.backward()
    fl_.backward()
    close(fx.grad, tx.grad, tol)
    for a, b in zip(fh0, th0):
        close(a.grad, b.grad, tol)
    for tp_, fp_ in zip(t.parameters(), f.parameters()):
        close(fp_.grad, tp_.grad, 10 * tol)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_padded_batch_first_unbatched_and_no_bias(mode):
    torch.manual_seed(1)
    for kw in (dict(batch_first=False), dict(batch_first=True, bias=False), dict(num_layers=3)):
        t = getattr(torch.nn, mode)(3, 4, **kw).double()
        f = getattr(nn, mode)(3, 4, **kw).double()
        copy_weights(t, f)
        x = np.random.default_rng(2).standard_normal((5, 2, 3))
        tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
        to, ts = t(tx)
        fo, fs = f(fx)
        close(fo, to, 1e-10)
        (to.sum() + flat_states(mode, ts)[0].sum()).backward()
        (fo.sum() + flat_states(mode, fs)[0].sum()).backward()
        close(fx.grad, tx.grad, 1e-10)
        close(f.weight_hh_l0.grad, t.weight_hh_l0.grad, 1e-9)
    # Unbatched input (L, H_in) and hidden (num_layers, H).
    t = getattr(torch.nn, mode)(3, 4, num_layers=2).double()
    f = getattr(nn, mode)(3, 4, num_layers=2).double()
    copy_weights(t, f)
    x = np.random.default_rng(3).standard_normal((6, 3))
    to, ts = t(torch.tensor(x))
    fo, fs = f(fw.tensor(x))
    assert tuple(fo.shape) == tuple(to.shape) == (6, 4)
    close(fo, to, 1e-10)
    for a, b in zip(flat_states(mode, fs), flat_states(mode, ts)):
        assert tuple(a.shape) == (2, 4)
        close(a, b, 1e-10)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_cells_match_torch(mode):
    torch.manual_seed(2)
    t = getattr(torch.nn, mode + "Cell")(3, 5).double()
    f = getattr(nn, mode + "Cell")(3, 5).double()
    copy_weights(t, f)
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((4, 2, 3))
    tx, fx = torch.tensor(xs, requires_grad=True), fw.tensor(xs, requires_grad=True)
    ts = fs = None
    tout, fout = 0, 0
    for i in range(4):
        ts = t(tx[i], ts)
        fs = f(fx[i], fs)
        th = ts[0] if mode == "LSTM" else ts
        fh = fs[0] if mode == "LSTM" else fs
        close(fh, th, 1e-10)
        tout = tout + (th * (i + 1)).sum()
        fout = fout + (fh * (i + 1)).sum()
    tout.backward()
    fout.backward()
    close(fx.grad, tx.grad, 1e-10)
    for tp, fp in zip(t.parameters(), f.parameters()):
        close(fp.grad, tp.grad, 1e-9)
    # Unbatched (H_in,) input.
    h = f(fw.tensor(xs[0, 0]))
    th = t(torch.tensor(xs[0, 0]))
    close(h[0] if mode == "LSTM" else h, th[0] if mode == "LSTM" else th, 1e-10)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_double_backward_matches_torch(mode):
    """create_graph=True takes the differentiable recomputation path."""
    torch.manual_seed(3)
    t = getattr(torch.nn, mode)(3, 4, bidirectional=True).double()
    f = getattr(nn, mode)(3, 4, bidirectional=True).double()
    copy_weights(t, f)
    x = np.random.default_rng(5).standard_normal((4, 2, 3))
    tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad((t(tx)[0] ** 2).sum(), tx, create_graph=True)
    (fg,) = fw.autograd.grad((f(fx)[0] ** 2).sum(), fx, create_graph=True)
    close(fg, tg, 1e-10)
    (tg**2).sum().backward()
    (fg**2).sum().backward()
    close(fx.grad, tx.grad, 1e-9)
    close(f.weight_hh_l0_reverse.grad, t.weight_hh_l0_reverse.grad, 1e-9)


def test_gradcheck_lstm_layer():
    from framework.nn.rnn import _LSTMSeq

    rng = np.random.default_rng(6)
    T, B, I, H = 3, 3, 2, 2
    args = [rng.standard_normal(s) for s in [(T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,),
                                            (4 * H,)]]
    ts = [fw.tensor(a, requires_grad=True) for a in args]
    bs = np.array([3, 2, 1])

    def loss(*xs):
        y, h, c = _LSTMSeq(batch_sizes=bs, reverse=True)(*xs)
        return (y * y).sum() + (h * c).sum()

    grads = fw.autograd.grad(loss(*ts), ts)
    eps = 1e-6
    for k, (a, g) in enumerate(zip(args, grads)):
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [x.copy() for x in args]
            minus = [x.copy() for x in args]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            with fw.no_grad():
                up, down = loss(*map(fw.tensor, plus)).item(), loss(*map(fw.tensor, minus)).item()
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g.numpy(), num, rtol=1e-5, atol=1e-7)


def test_long_recurrent_loop_backpropagates():
    cell = nn.GRUCell(2, 3)
    x = fw.randn(10000, 1, 2)
    h = None
    for t in range(10000):
        h = cell(x[t], h)
    h.sum().backward()
    assert cell.weight_hh.grad is not None and np.isfinite(cell.weight_hh.grad.numpy()).all()


def test_dropout_between_layers_train_vs_eval():
    fw.manual_seed(0)
    f = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = fw.randn(5, 2, 3)
    a, _ = f(x)
    b, _ = f(x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    f.eval()
    c, _ = f(x)
    d, _ = f(x)
    np.testing.assert_array_equal(c.detach().numpy(), d.detach().numpy())


def test_errors_and_default_init_range():
    f = nn.LSTM(3, 16)
    for p in f.parameters():
        assert float(p.abs().max()) <= 0.25 + 1e-7  # U(-1/sqrt(H), 1/sqrt(H))
    assert float(f.weight_ih_l0.abs().max()) > 0.2
    with pytest.raises(RuntimeError, match="input_size"):
        f(fw.randn(2, 1, 5))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        f(fw.randn(2, 1, 3), (fw.zeros(2, 1, 16), fw.zeros(2, 1, 16)))


def test_pack_pad_utilities_match_torch():
    rng = np.random.default_rng(7)
    seqs = [rng.standard_normal((n, 2)) for n in (2, 5, 3)]
    tseqs = [torch.tensor(s, requires_grad=True) for s in seqs]
    fseqs = [fw.tensor(s, requires_grad=True) for s in seqs]
    for bf in (False, True):
        close(rnn_utils.pad_sequence(fseqs, batch_first=bf, padding_value=-1.0),
              torch.nn.utils.rnn.pad_sequence(tseqs, batch_first=bf, padding_value=-1.0), 0)
    close(rnn_utils.pad_sequence(fseqs, batch_first=True, padding_side="left"),
          torch.nn.utils.rnn.pad_sequence(tseqs, batch_first=True, padding_side="left"), 0)
    tp = torch.nn.utils.rnn.pack_sequence(tseqs, enforce_sorted=False)
    fp = rnn_utils.pack_sequence(fseqs, enforce_sorted=False)
    close(fp.data, tp.data, 0)
    np.testing.assert_array_equal(fp.batch_sizes.numpy(), tp.batch_sizes.numpy())
    np.testing.assert_array_equal(fp.unsorted_indices.numpy(), tp.unsorted_indices.numpy())
    tpad, tl = torch.nn.utils.rnn.pad_packed_sequence(tp, total_length=7, padding_value=9.0)
    fpad, fl = rnn_utils.pad_packed_sequence(fp, total_length=7, padding_value=9.0)
    close(fpad, tpad, 0)
    np.testing.assert_array_equal(fl.numpy(), tl.numpy())
    w = rng.standard_normal(tuple(tpad.shape))
    (tpad * torch.tensor(w)).sum().backward()
    (fpad * fw.tensor(w)).sum().backward()
    for a, b in zip(fseqs, tseqs):
        close(a.grad, b.grad, 1e-12)
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        rnn_utils.pack_padded_sequence(fw.zeros(5, 2, 1), [2, 5])
    unpacked = rnn_utils.unpack_sequence(fp)
    for a, s in zip(unpacked, seqs):
        np.testing.assert_array_equal(a.detach().numpy(), s)


def test_random_lengths_lstm_matches_torch_hypothesis():
    hyp = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hyp.settings(max_examples=12, deadline=None)
    @hyp.given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5), sort=st.booleans(),
               bidirectional=st.booleans(), seed=st.integers(0, 1000))
    def run(lengths, sort, bidirectional, seed):
        if sort:
            lengths = sorted(lengths, reverse=True)
        torch.manual_seed(seed)
        t = torch.nn.LSTM(2, 3, bidirectional=bidirectional).double()
        f = nn.LSTM(2, 3, bidirectional=bidirectional).double()
        f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
        x = np.random.default_rng(seed).standard_normal((max(lengths), len(lengths), 2))
        tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
        tp = torch.nn.utils.rnn.pack_padded_sequence(tx, lengths, enforce_sorted=sort)
        fp = rnn_utils.pack_padded_sequence(fx, lengths, enforce_sorted=sort)
        to, (th, tc) = t(tp)
        fo, (fh, fc) = f(fp)
        to = torch.nn.utils.rnn.pad_packed_sequence(to)[0]
        fo = rnn_utils.pad_packed_sequence(fo)[0]
        close(fo, to, 1e-10)
        close(fh, th, 1e-10)
        close(fc, tc, 1e-10)
        (to.sum() + (th * tc).sum()).backward()
        (fo.sum() + (fh * fc).sum()).backward()
        close(fx.grad, tx.grad, 1e-10)

    run()


@pytest.mark.parametrize("dt", DTYPES, ids=["f64", "f32"])
def test_lstm_with_projections_matches_torch(dt):
    tdt, fdt, tol = dt
    torch.manual_seed(4)
    kw = dict(num_layers=2, bidirectional=True, proj_size=3)
    t = torch.nn.LSTM(4, 6, **kw).to(tdt)
    f = nn.LSTM(4, 6, **kw).to(fdt)
    copy_weights(t, f)
    assert repr(f) == repr(t)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 3, 4))
    h0, c0 = rng.standard_normal((4, 3, 3)), rng.standard_normal((4, 3, 6))
    tx = torch.tensor(x, dtype=tdt, requires_grad=True)
    fx = fw.tensor(x, dtype=fdt, requires_grad=True)
    lengths = [5, 2, 4]
    to, (th, tc) = t(torch.nn.utils.rnn.pack_padded_sequence(tx, lengths, enforce_sorted=False),
                     (torch.tensor(h0, dtype=tdt), torch.tensor(c0, dtype=tdt)))
    fo, (fh, fc) = f(rnn_utils.pack_padded_sequence(fx, lengths, enforce_sorted=False),
                     (fw.tensor(h0, dtype=fdt), fw.tensor(c0, dtype=fdt)))
    close(fo.data, to.data, tol)
    close(fh, th, tol)
    close(fc, tc, tol)
    (to.data.sum() + (th * th).sum() + tc.sum()).backward()
    (fo.data.sum() + (fh * fh).sum() + fc.sum()).backward()
    close(fx.grad, tx.grad, tol)
    for tp, fp in zip(t.parameters(), f.parameters()):
        close(fp.grad, tp.grad, 10 * tol)
    if tdt != torch.float64:
        return
    # create_graph path
    tx.grad = None
    fx.grad = None
    (tg,) = torch.autograd.grad((t(tx)[0] ** 2).sum(), tx, create_graph=True)
    (fg,) = fw.autograd.grad((f(fx)[0] ** 2).sum(), fx, create_graph=True)
    close(fg, tg, tol)
    (tg ** 2).sum().backward()
    (fg ** 2).sum().backward()
    close(f.weight_hr_l1_reverse.grad, t.weight_hr_l1_reverse.grad, 10 * tol)
