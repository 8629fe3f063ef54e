"""Adversarial PyTorch-parity audit of ``framework.nn`` and the non-convolution parts of ``functional``.

Every test runs the same computation in the framework and in PyTorch (the oracle): values and
gradients, float64 (tight) and float32, and the edge cases where the two used to disagree: empty
batches, length-1 and zero-length sequences, fully masked attention rows, all-ignored targets,
nearest-neighbour resizing by non-integer factors, pooling windows past the input, checkpoints without
``num_batches_tracked``. Bad shapes must raise an error naming the op and the shapes.
"""

import itertools
import math
import warnings

import numpy as np
import pytest
from functional_oracle import torchvision_focal_loss

import framework as fw
from framework import nn
from framework.nn import functional as F
from framework.nn.utils import rnn as rnn_utils

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [(torch.float64, fw.float64, 1e-10), (torch.float32, fw.float32, 3e-5)]
DT_IDS = ["f64", "f32"]


def rng(seed=0):
    return np.random.default_rng(seed)


def copy_weights(t, f):
    """Load a PyTorch module's state dict into the framework module (names and shapes must match)."""
    assert [(k, tuple(v.shape)) for k, v in t.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in f.state_dict().items()
    ]
    res = f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []


def close(a, b, tol=1e-10, msg=""):
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    np.testing.assert_allclose(a, b.detach().numpy(), rtol=tol, atol=tol, err_msg=msg)


def param_grads_close(t, f, tol):
    for (n, p), (m, q) in zip(t.named_parameters(), f.named_parameters()):
        assert n == m
        close(q.grad, p.grad, tol, n)


def modules_close(t, f, x, power=2, tol=1e-9):
    """Torch module ``t`` and our ``f`` (same weights) on float64 ``x``: outputs, then input and parameter
    gradients of sum(out ** power)."""
    tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
    to, fo = t(tx), f(fx)
    close(fo, to)
    (to**power).sum().backward()
    (fo**power).sum().backward()
    close(fx.grad, tx.grad, tol)
    param_grads_close(t, f, tol)


def both(fname, x, *args, grad=True, tol=1e-10, **kw):
    """Run ``fname`` from torch.nn.functional and framework.nn.functional on float64 ``x``; compare the
    outputs (and indices, for a tuple result) and the input gradient under a random upstream gradient."""
    tx = torch.tensor(x, requires_grad=grad)
    fx = fw.tensor(x, requires_grad=grad)
    to = getattr(TF, fname)(tx, *args, **kw)
    fo = getattr(F, fname)(fx, *args, **kw)
    if isinstance(to, tuple):
        np.testing.assert_array_equal(fo[1].numpy(), to[1].numpy(), f"{fname} indices {args} {kw}")
        to, fo = to[0], fo[0]
    assert tuple(fo.shape) == tuple(to.shape), (fname, args, kw)
    close(fo, to, tol, f"{fname} {args} {kw}")
    if grad and to.numel():
        g = rng(1).standard_normal(tuple(to.shape))
        (to * torch.tensor(g)).sum().backward()
        (fo * fw.tensor(g)).sum().backward()
        close(fx.grad, tx.grad, tol, f"{fname} grad {args} {kw}")


# ================================================================================ recurrent layers


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_rnn_empty_batch_matches_torch(mode):
    """A batch of zero sequences: PyTorch returns empty outputs; the framework failed in a reshape."""
    kw = dict(num_layers=2, bidirectional=True)
    t = getattr(torch.nn, mode)(3, 4, **kw).double()
    f = getattr(nn, mode)(3, 4, **kw).double()
    copy_weights(t, f)
    x = np.zeros((5, 0, 3))
    fx = fw.tensor(x, requires_grad=True)
    to, ts = t(torch.tensor(x))
    fo, fs = f(fx)
    assert tuple(fo.shape) == tuple(to.shape) == (5, 0, 8)
    for a, b in zip(fs if mode == "LSTM" else [fs], ts if mode == "LSTM" else [ts]):
        assert tuple(a.shape) == tuple(b.shape)
    fo.sum().backward()
    assert tuple(fx.grad.shape) == (5, 0, 3)
    assert all(tuple(p.grad.shape) == tuple(p.shape) and not p.grad.numpy().any() for p in f.parameters())


def test_rnn_zero_length_sequence_raises_naming_the_layer():
    f = nn.GRU(3, 4)
    with pytest.raises(RuntimeError, match="GRU.*sequence length"):
        f(fw.zeros(0, 2, 3))
    with pytest.raises(RuntimeError):
        torch.nn.GRU(3, 4)(torch.zeros(0, 2, 3))


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cell_shape_errors(cls):
    """A state of another batch size used to broadcast silently; wrong widths failed inside the fused op."""
    f = getattr(nn, cls)(3, 4)
    n = 2 if cls == "LSTMCell" else 1

    def hx(*shape):
        s = [fw.randn(*shape) for _ in range(n)]
        return tuple(s) if n == 2 else s[0]

    with pytest.raises(RuntimeError, match=f"{cls}.*input_size.*5.*3"):
        f(fw.randn(2, 5))
    with pytest.raises(RuntimeError, match=f"{cls}.*batch size 2.*3"):
        f(fw.randn(2, 3), hx(3, 4))
    with pytest.raises(RuntimeError, match=f"{cls}.*hidden_size.*5.*4"):
        f(fw.randn(2, 3), hx(2, 5))
    with pytest.raises(RuntimeError, match=f"{cls}.*2-D"):
        f(fw.randn(2, 3), hx(4))
    with pytest.raises(RuntimeError, match=f"{cls}.*dtype"):
        f(fw.randn(2, 3), tuple(s.double() for s in hx(2, 4)) if n == 2 else hx(2, 4).double())


def test_rnn_cell_rejects_unknown_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNNCell(3, 4, nonlinearity="sigmoid")


def test_rnn_layer_hx_dtype_mismatch_raises():
    """A float64 h_0 with float32 input ran and returned states in another dtype than the output."""
    with pytest.raises(RuntimeError, match="GRU.*dtype"):
        nn.GRU(3, 4)(fw.randn(2, 1, 3), fw.randn(1, 1, 4, dtype=fw.float64))
    with pytest.raises(RuntimeError):
        torch.nn.GRU(3, 4)(torch.randn(2, 1, 3), torch.randn(1, 1, 4, dtype=torch.float64))


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_cells_match_torch(cls, dt):
    tdt, fdt, tol = dt
    r = rng(2)
    kw = {"nonlinearity": "relu"} if cls == "RNNCell" else {}
    t = getattr(torch.nn, cls)(3, 4, **kw).to(tdt)
    f = getattr(nn, cls)(3, 4, **kw).to(fdt)
    copy_weights(t, f)
    x, h, c = r.standard_normal((2, 3)), r.standard_normal((2, 4)), r.standard_normal((2, 4))
    tx, fx = torch.tensor(x, dtype=tdt, requires_grad=True), fw.tensor(x, dtype=fdt, requires_grad=True)
    th, fh = torch.tensor(h, dtype=tdt, requires_grad=True), fw.tensor(h, dtype=fdt, requires_grad=True)
    if cls == "LSTMCell":
        to = t(tx, (th, torch.tensor(c, dtype=tdt)))
        fo = f(fx, (fh, fw.tensor(c, dtype=fdt)))
        tl, fl = to[0].sum() + (to[1] ** 2).sum(), fo[0].sum() + (fo[1] ** 2).sum()
    else:
        to, fo = t(tx, th), f(fx, fh)
        tl, fl = (to**2).sum(), (fo**2).sum()
    tl.backward()
    fl.backward()
    close(fx.grad, tx.grad, tol)
    close(fh.grad, th.grad, tol)
    param_grads_close(t, f, tol)
    # unbatched input, zero initial state
    to, fo = t(tx[0]), f(fx[0])
    close(fo[0] if cls == "LSTMCell" else fo, to[0] if cls == "LSTMCell" else to, tol)


LSTM_VARIANTS = [
    dict(proj_size=2, num_layers=2, bidirectional=True),
    dict(batch_first=True, num_layers=3, bias=False),
    dict(bidirectional=True, batch_first=True),
]


@pytest.mark.parametrize("kw", LSTM_VARIANTS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("T", [1, 4])
def test_lstm_variants_noncontiguous_input(kw, T):
    """Projections, depth, direction, batch_first both ways, length 1; the input is a transposed view."""
    r = rng(3)
    t = torch.nn.LSTM(3, 4, **kw).double()
    f = nn.LSTM(3, 4, **kw).double()
    copy_weights(t, f)
    x = r.standard_normal((2, T, 3) if kw.get("batch_first") else (T, 2, 3))
    swapped = np.ascontiguousarray(x.transpose(1, 0, 2))
    tx = torch.tensor(swapped).transpose(0, 1).requires_grad_()
    fxl = fw.tensor(swapped, requires_grad=True)
    fx = fxl.transpose(0, 1)
    to, (th, tc) = t(tx)
    fo, (fh, fc) = f(fx)
    for a, b in [(fo, to), (fh, th), (fc, tc)]:
        close(a, b, 1e-12)
    (to.sum() + 2 * th.sum() + 3 * tc.sum()).backward()
    (fo.sum() + 2 * fh.sum() + 3 * fc.sum()).backward()
    close(fxl.grad.transpose(0, 1), tx.grad, 1e-10)
    param_grads_close(t, f, 1e-10)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_rnn_dropout_is_off_in_eval(mode):
    t = getattr(torch.nn, mode)(3, 4, num_layers=3, dropout=0.5).double().eval()
    f = getattr(nn, mode)(3, 4, num_layers=3, dropout=0.5).double().eval()
    copy_weights(t, f)
    x = rng(4).standard_normal((5, 2, 3))
    close(f(fw.tensor(x))[0], t(torch.tensor(x))[0], 1e-12)


def test_pack_padded_sequence_length_count_must_match_batch():
    """With enforce_sorted=False, 2 lengths for a batch of 3 silently dropped a sequence."""
    x = fw.randn(4, 3, 2)
    with pytest.raises(ValueError, match=r"len\(lengths\).*2.*batch_size=3"):
        rnn_utils.pack_padded_sequence(x, [4, 2], enforce_sorted=False)
    with pytest.raises(ValueError, match=r"len\(lengths\)"):
        rnn_utils.pack_padded_sequence(x, [4, 2, 1, 1])
    with pytest.raises(RuntimeError, match="greater than 0"):
        rnn_utils.pack_padded_sequence(x, [4, 0, 1], enforce_sorted=False)


def test_pad_and_pack_helpers_match_torch():
    r = rng(5)
    seqs = [r.standard_normal((n, 2)) for n in [3, 1, 4]]
    ts, fs = [torch.tensor(s) for s in seqs], [fw.tensor(s) for s in seqs]
    for kw in [dict(batch_first=True, padding_value=-1.0), dict(padding_side="left"), {}]:
        close(rnn_utils.pad_sequence(fs, **kw), torch.nn.utils.rnn.pad_sequence(ts, **kw), 0)
    tp = torch.nn.utils.rnn.pack_sequence(ts, enforce_sorted=False)
    fp = rnn_utils.pack_sequence(fs, enforce_sorted=False)
    close(fp.data, tp.data, 0)
    for a, b in [
        (fp.batch_sizes, tp.batch_sizes),
        (fp.sorted_indices, tp.sorted_indices),
        (fp.unsorted_indices, tp.unsorted_indices),
    ]:
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    tpad, tl = torch.nn.utils.rnn.pad_packed_sequence(tp, batch_first=True, total_length=6, padding_value=9.0)
    fpad, fl = rnn_utils.pad_packed_sequence(fp, batch_first=True, total_length=6, padding_value=9.0)
    close(fpad, tpad, 0)
    np.testing.assert_array_equal(fl.numpy(), tl.numpy())
    # 1-D sequences; lengths given as a tensor
    close(
        rnn_utils.pad_sequence([fw.tensor([1.0, 2.0]), fw.tensor([3.0])]),
        torch.nn.utils.rnn.pad_sequence([torch.tensor([1.0, 2.0]), torch.tensor([3.0])]),
        0,
    )
    x = r.standard_normal((4, 3, 2))
    tpk = torch.nn.utils.rnn.pack_padded_sequence(
        torch.tensor(x), torch.tensor([4, 2, 3]), enforce_sorted=False
    )
    fpk = rnn_utils.pack_padded_sequence(fw.tensor(x), fw.tensor([4, 2, 3]), enforce_sorted=False)
    close(fpk.data, tpk.data, 0)


# ================================================================================ attention


def _mha_pair(dt=torch.float64, **kw):
    torch.manual_seed(0)
    t = torch.nn.MultiheadAttention(6, 2, **kw).to(dt)
    f = nn.MultiheadAttention(6, 2, **kw).to(fw.float64 if dt == torch.float64 else fw.float32)
    copy_weights(t, f)
    with torch.no_grad():  # non-zero biases so that they are exercised
        for p in t.parameters():
            if p.dim() == 1:
                p.uniform_(-0.5, 0.5)
    copy_weights(t, f)
    return t, f


def _mha_compare(t, f, q, k, v, tol, *, grad=True, self_attn=False, **call):
    tdt = t.out_proj.weight.dtype
    fdt = f.out_proj.weight.dtype

    def mk(a, lib):
        if a is None:
            return None
        if lib is torch:
            return torch.tensor(a) if a.dtype == bool else torch.tensor(a, dtype=tdt)
        return fw.tensor(a) if a.dtype == bool else fw.tensor(a, dtype=fdt)

    tq = torch.tensor(q, dtype=tdt, requires_grad=True)
    fq = fw.tensor(q, dtype=fdt, requires_grad=True)
    if self_attn:
        tk = tv = tq
        fk = fv = fq
    else:
        tk, tv = (torch.tensor(a, dtype=tdt, requires_grad=True) for a in (k, v))
        fk, fv = (fw.tensor(a, dtype=fdt, requires_grad=True) for a in (k, v))
    tcall = {n: mk(a, torch) if isinstance(a, np.ndarray) else a for n, a in call.items()}
    fcall = {n: mk(a, fw) if isinstance(a, np.ndarray) else a for n, a in call.items()}
    to, tw = t(tq, tk, tv, **tcall)
    fo, fwts = f(fq, fk, fv, **fcall)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=tol, atol=tol)
    if tw is None:
        assert fwts is None
    else:
        np.testing.assert_allclose(fwts.detach().numpy(), tw.detach().numpy(), rtol=tol, atol=tol)
    if not grad:
        return
    g = rng(7).standard_normal(tuple(to.shape))
    (to * torch.tensor(g, dtype=tdt)).sum().backward()
    (fo * fw.tensor(g, dtype=fdt)).sum().backward()
    pairs = [(fq, tq)] if self_attn else [(fq, tq), (fk, tk), (fv, tv)]
    for a, b in pairs:
        close(a.grad, b.grad, 10 * tol)
    param_grads_close(t, f, 10 * tol)


L_, S_, N_ = 3, 4, 2
_r = rng(8)
MASK_CASES = {
    "bool2d": dict(attn_mask=np.triu(np.ones((L_, S_), bool), 1)),
    "float2d": dict(attn_mask=_r.standard_normal((L_, S_))),
    "bool3d": dict(attn_mask=_r.random((N_ * 2, L_, S_)) < 0.3),
    "float3d": dict(attn_mask=_r.standard_normal((N_ * 2, L_, S_))),
    "kpm_bool": dict(key_padding_mask=np.array([[0, 0, 1, 1], [0, 0, 0, 1]], bool)),
    "kpm_float": dict(key_padding_mask=_r.standard_normal((N_, S_))),
    "kpm_bool+float2d": dict(
        key_padding_mask=np.array([[0, 1, 0, 1], [0, 0, 0, 1]], bool), attn_mask=_r.standard_normal((L_, S_))
    ),
    "kpm_float+bool3d": dict(
        key_padding_mask=_r.standard_normal((N_, S_)), attn_mask=_r.random((N_ * 2, L_, S_)) < 0.2
    ),
    "no_avg": dict(average_attn_weights=False),
    "no_weights": dict(need_weights=False, key_padding_mask=np.array([[0, 0, 1, 1], [0, 0, 0, 1]], bool)),
}


@pytest.mark.parametrize("case", list(MASK_CASES), ids=list(MASK_CASES))
@pytest.mark.parametrize("batch_first", [False, True], ids=["LNE", "NLE"])
def test_mha_masks_match_torch(case, batch_first):
    t, f = _mha_pair(batch_first=batch_first)
    r = rng(9)
    shp = (lambda a, e: (N_, a, e)) if batch_first else (lambda a, e: (a, N_, e))
    q, k, v = r.standard_normal(shp(L_, 6)), r.standard_normal(shp(S_, 6)), r.standard_normal(shp(S_, 6))
    _mha_compare(t, f, q, k, v, 1e-10, **MASK_CASES[case])


@pytest.mark.parametrize(
    "kw",
    [dict(kdim=5, vdim=7), dict(add_bias_kv=True, add_zero_attn=True), dict(bias=False)],
    ids=["kvdim", "bias_kv_zero_attn", "nobias"],
)
@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_mha_options_match_torch(kw, dt):
    tdt, _, tol = dt
    t, f = _mha_pair(tdt, **kw)
    r = rng(10)
    q = r.standard_normal((L_, N_, 6))
    k = r.standard_normal((S_, N_, kw.get("kdim", 6)))
    v = r.standard_normal((S_, N_, kw.get("vdim", 6)))
    _mha_compare(
        t,
        f,
        q,
        k,
        v,
        tol,
        key_padding_mask=np.array([[0, 0, 1, 0], [1, 0, 0, 0]], bool),
        attn_mask=np.triu(np.ones((L_, S_), bool), 2),
    )


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_self_attention_and_unbatched(batch_first):
    t, f = _mha_pair(batch_first=batch_first)
    r = rng(11)
    _mha_compare(
        t,
        f,
        r.standard_normal((N_, L_, 6) if batch_first else (L_, N_, 6)),
        None,
        None,
        1e-10,
        self_attn=True,
    )
    q, k, v = r.standard_normal((L_, 6)), r.standard_normal((S_, 6)), r.standard_normal((S_, 6))
    _mha_compare(
        t,
        f,
        q,
        k,
        v,
        1e-10,
        key_padding_mask=np.array([0, 1, 0, 0], bool),
        attn_mask=r.standard_normal((2, L_, S_)),
        average_attn_weights=False,
    )


def test_mha_length_one_and_empty_batch():
    t, f = _mha_pair()
    r = rng(12)
    _mha_compare(
        t, f, r.standard_normal((1, 2, 6)), r.standard_normal((1, 2, 6)), r.standard_normal((1, 2, 6)), 1e-10
    )
    _mha_compare(t, f, np.zeros((3, 0, 6)), np.zeros((4, 0, 6)), np.zeros((4, 0, 6)), 1e-10, grad=False)


def test_mha_all_padded_keys_match_torch_on_both_paths():
    """A sample whose keys are all padding: PyTorch's need_weights=False (fused) path gives zeros for it
    (its _safe_softmax) and finite gradients; the framework gave NaN, which a TransformerEncoder (it calls
    with need_weights=False) spread into the parameters. With weights requested both give NaN rows."""
    t, f = _mha_pair()
    r = rng(13)
    q, k, v = (r.standard_normal((a, 2, 6)) for a in (L_, S_, S_))
    kpm = np.array([[1, 1, 1, 1], [0, 0, 1, 0]], bool)
    _mha_compare(t, f, q, k, v, 1e-10, key_padding_mask=kpm, need_weights=False)
    t.zero_grad()
    f.zero_grad()
    to, _ = t(*(torch.tensor(a) for a in (q, k, v)), key_padding_mask=torch.tensor(kpm))
    fo, fwts = f(*(fw.tensor(a) for a in (q, k, v)), key_padding_mask=fw.tensor(kpm))
    assert np.isnan(to[:, 0].detach().numpy()).all() and np.isnan(fo.detach().numpy()[:, 0]).all()
    close(fo[:, 1], to[:, 1])
    # a 3-D float mask of -inf over one head's row: the same rule per (sample, head, query)
    am = np.zeros((4, L_, S_))
    am[1, 2] = -np.inf
    _mha_compare(t, f, q, k, v, 1e-10, attn_mask=am, need_weights=False)


def test_mha_shape_errors_name_the_shapes():
    f = nn.MultiheadAttention(4, 2)
    q = fw.randn(3, 2, 4)
    with pytest.raises(AssertionError, match=r"key shape \[4, 2, 4\] does not match value shape \[5, 2, 4\]"):
        f(q, fw.randn(4, 2, 4), fw.randn(5, 2, 4))
    with pytest.raises(AssertionError, match="batch size 2 does not match key batch size 3"):
        f(q, fw.randn(4, 3, 4), fw.randn(4, 3, 4))
    with pytest.raises(AssertionError, match="all 3-D"):
        f(q, fw.randn(3, 4), fw.randn(3, 4))
    with pytest.raises(AssertionError, match=r"key \(\*, 4\)"):
        f(q, fw.randn(4, 2, 5), fw.randn(4, 2, 4))
    with pytest.raises(AssertionError, match="key_padding_mask"):
        f(q, q, q, key_padding_mask=fw.tensor(np.zeros((3, 3), bool)))
    with pytest.raises(RuntimeError, match="attn_mask"):
        f(q, q, q, attn_mask=fw.tensor(np.zeros((2, 2, 3, 3), bool)))
    with pytest.raises(AssertionError, match="bool and floating"):
        f(q, q, q, attn_mask=fw.tensor(np.zeros((3, 3), np.int64)))


def test_sdpa_fully_masked_rows_are_zero_like_torch():
    r = rng(14)
    q, k, v = (
        r.standard_normal((2, 3, 4, 5)),
        r.standard_normal((2, 3, 6, 5)),
        r.standard_normal((2, 3, 6, 7)),
    )
    bool_mask = np.ones((4, 6), bool)
    bool_mask[1] = False
    float_mask = np.where(bool_mask, 0.0, -np.inf)
    for mask in (bool_mask, float_mask, r.standard_normal((2, 1, 4, 6))):
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        fq, fk, fv = (fw.tensor(a, requires_grad=True) for a in (q, k, v))
        to = TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask), scale=0.3)
        fo = F.scaled_dot_product_attention(fq, fk, fv, attn_mask=fw.tensor(mask), scale=0.3)
        close(fo, to)
        (to**2).sum().backward()
        (fo**2).sum().backward()
        for a, b in [(fq, tq), (fk, tk), (fv, tv)]:
            close(a.grad, b.grad, 1e-9)


def test_transformer_encoder_layer_with_an_all_padded_sample_stays_finite():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).double()
    x = fw.tensor(rng(15).standard_normal((2, 3, 8)), requires_grad=True)
    kpm = fw.tensor(np.array([[1, 1, 1], [0, 0, 1]], bool))
    y = layer(x, src_key_padding_mask=kpm)
    y.sum().backward()
    assert np.isfinite(y.detach().numpy()).all()
    assert all(np.isfinite(p.grad.numpy()).all() for p in layer.parameters())


# ================================================================================ normalisation


BN_CASES = [
    ("BatchNorm1d", (4, 3)),
    ("BatchNorm1d", (4, 3, 5)),
    ("BatchNorm2d", (2, 3, 4, 5)),
]
BN_KW = [
    {},
    dict(momentum=None),
    dict(track_running_stats=False),
    dict(affine=False),
    dict(momentum=None, affine=False, eps=1e-3),
]


@pytest.mark.parametrize("cls,shape", BN_CASES, ids=[f"{c}{s}" for c, s in BN_CASES])
@pytest.mark.parametrize("kw", BN_KW, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_batchnorm_train_then_eval_matches_torch(cls, shape, kw):
    r = rng(16)
    t = getattr(torch.nn, cls)(shape[1], **kw).double()
    f = getattr(nn, cls)(shape[1], **kw).double()
    if t.affine:
        with torch.no_grad():
            t.weight.uniform_(0.5, 1.5)
            t.bias.uniform_(-1, 1)
    copy_weights(t, f)
    for _ in range(3):  # the running statistics (incl. the cumulative average) over several steps
        x = r.standard_normal(shape) * 2 + 1
        tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
        to, fo = t(tx), f(fx)
        close(fo, to)
        g = r.standard_normal(shape)
        (to * torch.tensor(g)).sum().backward()
        (fo * fw.tensor(g)).sum().backward()
        close(fx.grad, tx.grad, 1e-9)
        for k, v in t.state_dict().items():
            close(f.state_dict()[k], v, 1e-12, k)
    t.eval()
    f.eval()
    modules_close(t, f, r.standard_normal(shape))


def test_batchnorm_loads_a_checkpoint_without_num_batches_tracked():
    """Old or converted checkpoints lack num_batches_tracked; PyTorch loads them strictly, we refused."""
    t = torch.nn.BatchNorm2d(3)
    sd = {k: v.numpy() for k, v in t.state_dict().items() if k != "num_batches_tracked"}
    sd["running_mean"] = np.array([1.0, 2.0, 3.0], np.float32)
    f = nn.BatchNorm2d(3)
    f.num_batches_tracked.data[...] = 5
    assert f.load_state_dict(sd, strict=True) == ([], [])
    assert int(f.num_batches_tracked.item()) == 5
    np.testing.assert_array_equal(f.running_mean.numpy(), [1, 2, 3])
    t.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=True)
    # nested in a model: the key is prefixed
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3))
    sd = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert model.load_state_dict(sd) == ([], [])
    # other missing keys still fail a strict load
    sd.pop("1.running_var")
    with pytest.raises(RuntimeError, match="1.running_var"):
        model.load_state_dict(sd)


@pytest.mark.parametrize(
    "shape,groups,affine",
    [
        ((2, 6, 3, 4), 3, True),
        ((2, 6), 2, True),
        ((2, 4, 5), 4, False),
        ((2, 6, 3), 1, True),
        ((0, 6, 3), 3, True),
    ],
)
@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_group_norm_matches_torch_incl_empty_batch(shape, groups, affine, dt):
    tdt, fdt, tol = dt
    r = rng(17)
    t = torch.nn.GroupNorm(groups, shape[1], affine=affine).to(tdt)
    f = nn.GroupNorm(groups, shape[1], affine=affine).to(fdt)
    if affine:
        with torch.no_grad():
            t.weight.uniform_()
            t.bias.uniform_()
    copy_weights(t, f)
    x = r.standard_normal(shape)
    tx, fx = torch.tensor(x, dtype=tdt, requires_grad=True), fw.tensor(x, dtype=fdt, requires_grad=True)
    to, fo = t(tx), f(fx)
    close(fo, to, tol)
    g = r.standard_normal(shape)
    (to * torch.tensor(g, dtype=tdt)).sum().backward()
    (fo * fw.tensor(g, dtype=fdt)).sum().backward()
    close(fx.grad, tx.grad, 3 * tol)
    param_grads_close(t, f, 3 * tol)


@pytest.mark.parametrize(
    "shape,ns,kw",
    [
        ((2, 3, 4), 4, {}),
        ((2, 3, 4), (3, 4), {}),
        ((2, 3, 4), [4], dict(elementwise_affine=False)),
        ((2, 3, 4), 4, dict(bias=False)),
        ((0, 4), 4, {}),
        ((2, 0, 4), 4, {}),
    ],
)
def test_layer_norm_matches_torch_incl_empty_batch(shape, ns, kw):
    r = rng(18)
    t = torch.nn.LayerNorm(ns, **kw).double()
    f = nn.LayerNorm(ns, **kw).double()
    with torch.no_grad():
        for p in t.parameters():
            p.uniform_()
    copy_weights(t, f)
    modules_close(t, f, r.standard_normal(shape), power=3)


def test_norm_shape_errors():
    with pytest.raises(RuntimeError, match=r"group_norm.*\(3\).*num_groups \(2\)"):
        nn.GroupNorm(2, 6)(fw.randn(2, 3, 3))
    with pytest.raises(
        RuntimeError, match=r"group_norm.*weight of shape \[6\] and input of shape \[2, 4, 3\]"
    ):
        nn.GroupNorm(2, 6)(fw.randn(2, 4, 3))
    with pytest.raises(RuntimeError, match=r"layer_norm.*\[4\].*\[2, 3\]"):
        nn.LayerNorm(4)(fw.randn(2, 3))
    with pytest.raises(RuntimeError, match=r"batch_norm: running_mean should contain 5 elements not 3"):
        nn.BatchNorm1d(3)(fw.randn(4, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(fw.randn(1, 3))


# ================================================================================ embedding, one_hot


@pytest.mark.parametrize("padding_idx", [None, 0, 2, -1])
def test_embedding_padding_idx_matches_torch(padding_idx):
    t = torch.nn.Embedding(5, 3, padding_idx=padding_idx).double()
    f = nn.Embedding(5, 3, padding_idx=padding_idx).double()
    assert f.padding_idx == t.padding_idx
    if padding_idx is not None:
        assert not f.weight.detach().numpy()[padding_idx].any()
    copy_weights(t, f)
    idx = np.array([[0, 2, 4, 2], [1, 4, 4, 3]])
    to, fo = t(torch.tensor(idx)), f(fw.tensor(idx))
    close(fo, to)
    g = rng(19).standard_normal(tuple(to.shape))
    (to * torch.tensor(g)).sum().backward()
    (fo * fw.tensor(g)).sum().backward()
    close(f.weight.grad, t.weight.grad)
    assert tuple(f(fw.tensor(np.zeros((0, 2), np.int64))).shape) == (0, 2, 3)
    with pytest.raises(IndexError, match=r"embedding.*\[5, 5\].*\[5, 3\]"):
        f(fw.tensor(np.array([5])))


def test_embedding_max_norm_renormalises_like_torch():
    w = rng(20).standard_normal((5, 3)) * 3
    t = torch.nn.Embedding.from_pretrained(torch.tensor(w), max_norm=1.0, freeze=False)
    f = nn.Embedding.from_pretrained(fw.tensor(w), max_norm=1.0, freeze=False)
    idx = np.array([0, 2, 2])
    close(f(fw.tensor(idx)), t(torch.tensor(idx)), 1e-7)
    close(f.weight, t.weight, 1e-7)


def test_one_hot_matches_torch_and_checks_classes():
    a = np.array([[0, 3], [2, 1]])
    close(F.one_hot(fw.tensor(a)), TF.one_hot(torch.tensor(a)), 0)
    close(F.one_hot(fw.tensor(a), 6), TF.one_hot(torch.tensor(a), 6), 0)
    assert F.one_hot(fw.tensor(a)).dtype == fw.int64
    assert tuple(F.one_hot(fw.tensor(np.zeros(0, np.int64)), 3).shape) == (0, 3)
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(fw.tensor(np.array([3])), 3)
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(fw.tensor(np.array([-1])), 3)


# ================================================================================ pooling


def _valid_windows(n, k, s, p, d, ceil_mode):
    """True when every pooling window along an axis holds at least one input cell (PyTorch's indices
    and gradients are undefined for windows entirely in the padding)."""
    out = (n + 2 * p - d * (k - 1) - 1 + ((s - 1) if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out >= 1 and all(any(0 <= o * s - p + j * d < n for j in range(k)) for o in range(out))


def test_max_pool2d_grid_matches_torch():
    r = rng(21)
    n = 0
    for (h, w), k, s, p, d, cm in itertools.product(
        [(5, 7), (6, 6)], [1, 2, 3], [None, 1, 2, 3], [0, 1], [1, 2], [False, True]
    ):
        ss = s or k
        if p > k // 2 or not (_valid_windows(h, k, ss, p, d, cm) and _valid_windows(w, k, ss, p, d, cm)):
            continue
        both("max_pool2d", r.standard_normal((2, 2, h, w)), k, s, p, d, ceil_mode=cm, return_indices=True)
        n += 1
    assert n > 100


def test_max_pool1d_grid_matches_torch():
    r = rng(22)
    for length, k, s, p, d, cm in itertools.product(
        [5, 8], [1, 2, 3], [None, 2], [0, 1], [1, 2], [False, True]
    ):
        if p <= k // 2 and _valid_windows(length, k, s or k, p, d, cm):
            both(
                "max_pool1d", r.standard_normal((2, 3, length)), k, s, p, d, ceil_mode=cm, return_indices=True
            )
    both("max_pool1d", r.standard_normal((3, 8)), 2, return_indices=True)


def test_avg_pool_grid_matches_torch():
    r = rng(23)
    n = 0
    for (h, w), k, s, p, cm, cip, dv in itertools.product(
        [(5, 7), (6, 6)], [1, 2, 3], [None, 2, 3], [0, 1], [False, True], [False, True], [None, 3]
    ):
        if p <= k // 2:
            both(
                "avg_pool2d",
                r.standard_normal((2, 2, h, w)),
                k,
                s,
                p,
                ceil_mode=cm,
                count_include_pad=cip,
                divisor_override=dv,
            )
            n += 1
    assert n > 200
    for length, k, s, p, cm, cip in itertools.product(
        [5, 8], [1, 2, 3], [None, 2], [0, 1], [False, True], [False, True]
    ):
        if p <= k // 2:
            both(
                "avg_pool1d", r.standard_normal((2, 3, length)), k, s, p, ceil_mode=cm, count_include_pad=cip
            )


def test_avg_pool_too_small_input_raises_like_max_pool():
    """A 3x3 window over a 2-row input gave an empty (N, C, 0, W') result instead of PyTorch's error."""
    x = fw.randn(2, 2, 2, 3)
    with pytest.raises(RuntimeError, match=r"avg_pool2d.*\[2, 2, 2, 3\].*\(0x1\)"):
        F.avg_pool2d(x, 3)
    with pytest.raises(RuntimeError, match="avg_pool2d"):
        nn.AvgPool1d(4)(fw.randn(1, 2, 3))
    with pytest.raises(RuntimeError):
        TF.avg_pool2d(torch.zeros(2, 2, 2, 3), 3)
    with pytest.raises(RuntimeError, match="divisor must be not zero"):  # the module dropped a 0 override
        nn.AvgPool2d(2, divisor_override=0)(fw.randn(1, 1, 4, 4))


@pytest.mark.parametrize("hw", [(5, 7), (6, 6), (3, 2), (1, 1)])
def test_adaptive_pools_match_torch_incl_upsampling_outputs(hw):
    """Output larger than the input (overlapping windows) failed in gather's shape check."""
    x = rng(24).standard_normal((2, 2) + hw)
    for o in [1, 2, 3, (2, 5), (None, 3), (4, None), (7, 7), (9, 4)]:
        both("adaptive_avg_pool2d", x, o)
        both("adaptive_max_pool2d", x, o, return_indices=True)


def test_gather_index_longer_than_input_along_dim():
    """torch.gather bounds the index by the input outside ``dim`` only (core ops fix)."""
    x = rng(25).standard_normal((2, 3))
    idx = np.array([[0, 1, 2, 2, 1], [1, 1, 1, 0, 0]])
    tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
    to, fo = torch.gather(tx, 1, torch.tensor(idx)), fw.gather(fx, 1, fw.tensor(idx))
    close(fo, to, 0)
    (to**2).sum().backward()
    (fo**2).sum().backward()
    close(fx.grad, tx.grad, 0)
    with pytest.raises(RuntimeError, match="gather"):
        fw.gather(fx, 1, fw.tensor(np.zeros((3, 2), np.int64)))


def test_pooling_modules_match_torch():
    x = rng(26).standard_normal((2, 3, 7, 6))
    for name, args, kw in [
        ("MaxPool2d", (3, 2, 1), dict(ceil_mode=True)),
        ("AvgPool2d", (3, 2, 1), dict(count_include_pad=False)),
        ("AdaptiveAvgPool2d", ((3, 4),), {}),
        ("AdaptiveMaxPool2d", (5,), {}),
    ]:
        close(
            getattr(nn, name)(*args, **kw)(fw.tensor(x)),
            getattr(torch.nn, name)(*args, **kw)(torch.tensor(x)),
        )
    fo, fi = nn.MaxPool2d(2, return_indices=True)(fw.tensor(x))
    to, ti = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    close(fo, to, 0)
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())


# ================================================================================ interpolate, pad


def test_interpolate_nearest_index_rules_match_torch():
    """PyTorch's 2-D 'nearest' kernel copies an axis whose size is unchanged and halves one whose size
    doubled, whatever the scale factor (its legacy nearest_idx); its 1-D and 3-D kernels and
    'nearest-exact' apply floor(dst / scale) throughout. E.g. 3 -> 6 by 2.3 in 2-D reads
    [0, 0, 1, 1, 2, 2] (the framework read [0, 0, 0, 1, 1, 2]); 3 -> 3 by 1.1 in 1-D reads [0, 0, 1]."""
    r = rng(27)
    checked = 0
    for nsp, mode in itertools.product([1, 2, 3], ["nearest", "nearest-exact"]):
        for n, sf in itertools.product([2, 3, 5, 8], [0.55, 1.1, 1.3, 2.0, 2.1, 2.3, 3.1]):
            shape = (1, 2) + (3,) * (nsp - 1) + (n,)
            scales = (1.7,) * (nsp - 1) + (sf,) if nsp > 1 else sf
            if math.floor(n * sf) < 1:
                continue
            x = r.standard_normal(shape)
            # values against PyTorch; PyTorch's 1-D / 3-D backward uses the 2-D shortcuts that its
            # forward does not (3 -> 3 by 1.1 reads [0, 0, 1] but sends the gradient to [0, 1, 2]), so
            # the gradient is checked as the adjoint of our forward: <J x, g> = <x, J^T g>.
            both("interpolate", x, scale_factor=scales, mode=mode, grad=False)
            fx = fw.tensor(x, requires_grad=True)
            y = F.interpolate(fx, scale_factor=scales, mode=mode)
            g = r.standard_normal(tuple(y.shape))
            (y * fw.tensor(g)).sum().backward()
            np.testing.assert_allclose(
                (y.detach().numpy() * g).sum(), (x * fx.grad.numpy()).sum(), rtol=1e-12
            )
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("shape", [(1, 2, 5, 7), (2, 1, 3, 3), (1, 1, 1, 4), (1, 1, 9, 6)])
def test_interpolate_2d_grid_matches_torch(shape):
    r = rng(28)
    x = r.standard_normal(shape)
    for mode in ["nearest", "nearest-exact", "bilinear", "area"]:
        for ac in [None] if mode in ("nearest", "nearest-exact", "area") else [False, True]:
            for size in [(2, 3), (10, 14), (7, 5), (1, 1), 4, (3, 11)]:
                both("interpolate", x, size=size, mode=mode, align_corners=ac)
            for sf in [2, 0.5, 1.5, (0.7, 2.3), (1.3, 1.0), 3, 1 / 3, 1.0]:
                for rsf in [None, True]:
                    out = [
                        math.floor(n * s)
                        for n, s in zip(shape[2:], sf if isinstance(sf, tuple) else (sf, sf))
                    ]
                    if min(out) >= 1:
                        both(
                            "interpolate",
                            x,
                            scale_factor=sf,
                            mode=mode,
                            align_corners=ac,
                            recompute_scale_factor=rsf,
                        )


def test_interpolate_linear_keeps_an_unchanged_axis_like_torch():
    """An axis whose size does not change (3 -> floor(3 * 1.3) = 3) is copied by PyTorch; the framework
    interpolated it with the scale 1.3, moving every value."""
    r = rng(29)
    for ac in [False, True]:
        both(
            "interpolate",
            r.standard_normal((1, 2, 70, 3)),
            scale_factor=1.3,
            mode="bilinear",
            align_corners=ac,
        )
        both(
            "interpolate",
            r.standard_normal((1, 2, 10, 3)),
            scale_factor=(1.0, 1.3),
            mode="bilinear",
            align_corners=ac,
        )
        both("interpolate", r.standard_normal((2, 3, 3)), scale_factor=1.2, mode="linear", align_corners=ac)
        both(
            "interpolate",
            r.standard_normal((1, 1, 3, 4, 5)),
            scale_factor=(1.2, 1.5, 2.0),
            mode="trilinear",
            align_corners=ac,
        )
    for size in [(131, 5), (33, 2)]:  # the gather path of long axes
        both("interpolate", r.standard_normal((1, 2, 70, 3)), size=size, mode="bilinear")


def test_interpolate_errors():
    x = fw.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="exactly one of size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="bilinear.*4-D"):
        F.interpolate(fw.randn(1, 1, 4), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="size"):
        F.interpolate(x, size=(2, 2, 2))


def test_upsample_module_matches_torch():
    x = rng(30).standard_normal((1, 2, 3, 5))
    for kw in [
        dict(scale_factor=2),
        dict(size=(4, 4), mode="bilinear"),
        dict(scale_factor=1.5, mode="bilinear", align_corners=True),
        dict(scale_factor=(2.3, 1.0)),
    ]:
        t, f = torch.nn.Upsample(**kw), nn.Upsample(**kw)
        close(f(fw.tensor(x)), t(torch.tensor(x)))
        assert repr(f) == repr(t)


def test_pad_modes_match_torch():
    r = rng(31)
    x = r.standard_normal((2, 3, 4, 5))
    for mode in ["constant", "reflect", "replicate", "circular"]:
        pads = [(1, 2, 3, 0), (0, 0, 2, 2), (3, 4, 3, 3)] + (
            [(1, 2), (-1, 2), (2, -1, 0, 1), (1, 1, 1, 1, 1, 1)] if mode == "constant" else []
        )
        for p in pads:
            both("pad", x, p, mode=mode)
            both("pad", x[0], p, mode=mode)
    both("pad", x, (1, 1), value=2.5)
    x3 = r.standard_normal((2, 3, 4))
    for mode in ["reflect", "replicate", "circular"]:
        both("pad", x3, (2, 3), mode=mode)
        both("pad", x3[0], (2, 3), mode=mode)
    with pytest.raises(RuntimeError, match="padding size should be less"):
        F.pad(fw.randn(1, 2, 3), (3, 0), mode="reflect")


# ================================================================================ losses


def _loss_pair(fname, x, target, grad_target=False, tol=1e-10, **kw):
    kwt = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    kwf = {k: (fw.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
    tt, ft = torch.tensor(target, requires_grad=grad_target), fw.tensor(target, requires_grad=grad_target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to = getattr(TF, fname)(tx, tt, **kwt)
        fo = getattr(F, fname)(fx, ft, **kwf)
    assert tuple(fo.shape) == tuple(to.shape)
    np.testing.assert_allclose(
        fo.detach().numpy(), to.detach().numpy(), rtol=tol, atol=tol, err_msg=f"{fname} {kw}"
    )
    g = rng(32).standard_normal(tuple(to.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (to * torch.tensor(g)).sum().backward()
        (fo * fw.tensor(g)).sum().backward()
    np.testing.assert_allclose(
        fx.grad.numpy(), tx.grad.numpy(), rtol=tol, atol=tol, err_msg=f"{fname} grad {kw}"
    )
    if grad_target:
        np.testing.assert_allclose(
            ft.grad.numpy(), tt.grad.numpy(), rtol=tol, atol=tol, err_msg=f"{fname} t {kw}"
        )


@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 3), (4,), (2, 4, 3)], ids=str)
def test_cross_entropy_and_nll_grid_match_torch(shape):
    """Weight x ignore_index x label_smoothing x reduction, class indices (with an ignored target) and
    class probabilities, (N, C), (N, C, d1, d2), (C,) inputs."""
    r = rng(33)
    x = r.standard_normal(shape)
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    base = r.integers(0, 4, tshape)
    probs = r.random(shape)
    probs /= probs.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    for w, ii, ls, red in itertools.product(
        [None, r.random(4) + 0.1], [-100, 1], [0.0, 0.2, 1.0], ["none", "mean", "sum"]
    ):
        tgt = base.copy()
        if len(shape) > 1:  # one ignored target, and one kept target of class 1
            tgt.reshape(-1)[0] = ii
            tgt.reshape(-1)[-1] = 1 if ii != 1 else 2
        kw = dict(reduction=red, label_smoothing=ls)
        if w is not None:
            kw["weight"] = w
        _loss_pair("cross_entropy", x, tgt, ignore_index=ii, **kw)
        _loss_pair("cross_entropy", x, probs, grad_target=True, **kw)
        if ls == 0.0:
            kw.pop("label_smoothing")
            _loss_pair("nll_loss", x, tgt, ignore_index=ii, **kw)


def test_cross_entropy_float32_large_logits():
    r = rng(34)
    x = (r.standard_normal((6, 5, 3)) * 30).astype(np.float32)
    tgt = r.integers(0, 5, (6, 3))
    w = (r.random(5) + 0.1).astype(np.float32)
    for ls in [0.0, 0.3]:
        _loss_pair("cross_entropy", x, tgt, tol=3e-5, weight=w, label_smoothing=ls)


@pytest.mark.parametrize("fname", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_all_ignored_targets_give_nan_loss_and_zero_gradient(fname, ls):
    """Every target ignored: PyTorch returns NaN (0/0) for 'mean' but a zero gradient; the framework's
    gradient was 0 * inf = NaN, which an optimizer step writes into every parameter."""
    if fname == "nll_loss" and ls:
        pytest.skip("nll_loss has no label smoothing")
    kw = {"label_smoothing": ls} if ls else {}
    x = rng(35).standard_normal((3, 4, 2))
    for tgt, w in [
        (np.full((3, 2), -100), None),
        (np.array([[0, -100], [-100, -100], [-100, -100]]), np.array([0.0, 1.0, 1.0, 1.0])),
    ]:
        tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            to = getattr(TF, fname)(tx, torch.tensor(tgt), None if w is None else torch.tensor(w), **kw)
            fo = getattr(F, fname)(fx, fw.tensor(tgt), None if w is None else fw.tensor(w), **kw)
            to.backward()
            fo.backward()
        assert np.isnan(to.item()) and np.isnan(fo.item())
        np.testing.assert_array_equal(fx.grad.numpy(), tx.grad.numpy())  # NaN where PyTorch has NaN
        if w is None:
            assert not fx.grad.numpy().any()


def test_cross_entropy_probabilities_of_an_empty_batch_mean_is_nan():
    to = TF.cross_entropy(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, 4, dtype=torch.float64))
    fo = F.cross_entropy(fw.zeros(0, 4, dtype=fw.float64), fw.zeros(0, 4, dtype=fw.float64))
    assert np.isnan(to.item()) and np.isnan(fo.item())
    for red in ["sum", "none"]:
        _loss_pair("cross_entropy", np.zeros((0, 4)), np.zeros((0, 4)), reduction=red)
        _loss_pair("cross_entropy", np.zeros((0, 4)), np.zeros(0, np.int64), reduction=red)


def test_cross_entropy_errors_name_shapes():
    x = fw.randn(3, 4)
    with pytest.raises(ValueError, match=r"cross_entropy.*\[3\].*\[3, 4\].*\[2\]"):
        F.cross_entropy(x, fw.tensor(np.array([0, 1])))
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        F.cross_entropy(x, fw.tensor(np.array([0, 1, 4])))
    with pytest.raises(IndexError, match="Target -1 is out of bounds"):
        F.cross_entropy(x, fw.tensor(np.array([0, 1, -1])))
    with pytest.raises(ValueError, match=r"probabilities.*\[3, 4\].*\[3, 5\]"):
        F.cross_entropy(x, fw.randn(3, 5))
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 4 classes"):
        F.cross_entropy(x, fw.tensor(np.array([0, 1, 2])), weight=fw.ones(3))
    with pytest.raises(RuntimeError, match="nll_loss: weight tensor"):
        F.nll_loss(x, fw.tensor(np.array([0, 1, 2])), weight=fw.ones(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, fw.tensor(np.array([0, 1, 2])), label_smoothing=1.5)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5)], ids=str)
def test_bce_with_logits_weight_and_pos_weight_broadcasting(shape):
    r = rng(36)
    x = r.standard_normal(shape) * 3
    t = r.random(shape)
    for w, pw, red in itertools.product(
        [None, r.random(shape[-1:]), r.random((1,) + shape[1:]), r.random(shape)],
        [None, r.random(shape[-1:]) * 3, r.random(shape[1:]) * 2],
        ["none", "mean", "sum"],
    ):
        kw = dict(reduction=red)
        if w is not None:
            kw["weight"] = w
        if pw is not None:
            kw["pos_weight"] = pw
        _loss_pair("binary_cross_entropy_with_logits", x, t, grad_target=True, **kw)
    for w in [None, r.random(shape)]:
        _loss_pair(
            "binary_cross_entropy",
            1 / (1 + np.exp(-x)),
            t,
            grad_target=True,
            **({} if w is None else {"weight": w}),
        )
    # saturated logits stay finite and exact
    _loss_pair(
        "binary_cross_entropy_with_logits",
        np.array([[-200.0, 200.0, 0.0, 50.0]]),
        np.array([[1.0, 0.0, 0.5, 1.0]]),
        grad_target=True,
        pos_weight=np.array([2.0, 3.0, 4.0, 5.0]),
    )
    with pytest.raises(ValueError, match=r"target size \(\[4, 1\]\).*input size \(\[4, 3\]\)"):
        F.binary_cross_entropy_with_logits(fw.randn(4, 3), fw.rand(4, 1))
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, ?3\)|\(4, ?3\).*\(4,\)"):
        F.binary_cross_entropy_with_logits(fw.randn(4, 3), fw.rand(4, 3), pos_weight=fw.ones(4))


def test_pointwise_losses_beta_and_kinks_match_torch():
    r = rng(37)
    for shape in [(4, 3), (0,), ()]:
        x, t = r.standard_normal(shape) * 2, r.standard_normal(shape) * 2
        for red in ["none", "mean", "sum"]:
            for fname in ["mse_loss", "l1_loss"]:
                _loss_pair(fname, x, t, grad_target=True, reduction=red)
            for beta in [0.0, 0.5, 1.0, 2.0]:
                _loss_pair("smooth_l1_loss", x, t, grad_target=True, reduction=red, beta=beta)
                _loss_pair("huber_loss", x, t, grad_target=True, reduction=red, delta=beta or 1.0)
    x, t = np.array([0.0, 1.0, -1.0, 0.5]), np.zeros(4)  # equal values and exactly at |d| = beta
    for beta in [0.0, 0.5, 1.0]:
        _loss_pair("smooth_l1_loss", x, t, grad_target=True, beta=beta)
    _loss_pair("l1_loss", x, t, grad_target=True)
    _loss_pair("mse_loss", r.standard_normal((3, 4)), r.standard_normal(4), grad_target=True)
    with pytest.raises(RuntimeError, match=r"mse_loss.*\[3, 4\].*\[3\]"):
        F.mse_loss(fw.randn(3, 4), fw.randn(3))
    with pytest.raises(RuntimeError, match="negative values for beta"):
        F.smooth_l1_loss(fw.randn(3), fw.randn(3), beta=-1.0)


def test_sigmoid_focal_loss_matches_torchvision_formula():
    r = rng(38)
    x = r.standard_normal((5, 3)) * 3
    t = (r.random((5, 3)) > 0.5).astype(float)
    t[0, 0] = 0.3  # soft target
    for a, g, red in itertools.product([0.25, -1, 0.9], [0, 0.5, 2, 3], ["none", "mean", "sum"]):
        tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
        to, fo = (
            torchvision_focal_loss(tx, torch.tensor(t), a, g, red),
            F.sigmoid_focal_loss(fx, fw.tensor(t), a, g, red),
        )
        close(fo, to)
        to.sum().backward()
        fo.sum().backward()
        close(fx.grad, tx.grad, 1e-9)
    with pytest.raises(ValueError, match="reduction"):
        F.sigmoid_focal_loss(fw.randn(2), fw.rand(2), reduction="avg")


def test_loss_modules_match_torch():
    x, tgt = rng(39).standard_normal((4, 3)), np.array([0, 2, 1, 2])
    for cls, kw in [
        ("CrossEntropyLoss", dict(weight=np.array([1.0, 2.0, 3.0]), ignore_index=2, label_smoothing=0.1)),
        ("NLLLoss", dict(weight=np.array([1.0, 2.0, 3.0]), reduction="sum")),
    ]:
        t = getattr(torch.nn, cls)(
            **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        )
        f = getattr(nn, cls)(**{k: fw.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
        close(f(fw.tensor(x), fw.tensor(tgt)), t(torch.tensor(x), torch.tensor(tgt)))
        assert list(f.state_dict()) == list(t.state_dict())
    t, f = torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(3)), nn.BCEWithLogitsLoss(pos_weight=fw.ones(3))
    assert list(f.state_dict()) == list(t.state_dict())
    close(
        nn.SmoothL1Loss(beta=0.3)(fw.tensor(x), fw.tensor(x * 0.5)),
        torch.nn.SmoothL1Loss(beta=0.3)(torch.tensor(x), torch.tensor(x * 0.5)),
    )


# ================================================================================ Module API


def _net(lib):
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(10, 4, padding_idx=0)
            self.lstm = lib.nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
            self.gru = lib.nn.GRU(12, 5)
            self.attn = lib.nn.MultiheadAttention(5, 1, kdim=3, vdim=7)
            self.bn = lib.nn.BatchNorm1d(5)
            self.gn = lib.nn.GroupNorm(1, 5)
            self.ln = lib.nn.LayerNorm([5])
            self.head = lib.nn.Sequential(
                lib.nn.Linear(5, 3), lib.nn.ReLU(), lib.nn.Dropout(0.0), lib.nn.Linear(3, 2)
            )
            self.cells = lib.nn.ModuleList([lib.nn.LSTMCell(2, 3), lib.nn.GRUCell(3, 3)])
            self.register_buffer("scale", lib.ones(1))
            self.register_buffer("tmp", lib.zeros(2), persistent=False)

        def forward(self, idx):
            o, _ = self.lstm(self.emb(idx))
            o, _ = self.gru(o.transpose(0, 1))
            y = self.bn(o[-1]) + self.gn(o[-1]) + self.ln(o[-1])
            return self.head(y) * self.scale

    return Net()


def test_converted_state_dict_loads_and_gives_the_same_outputs():
    torch.manual_seed(0)
    t, f = _net(torch), _net(fw)
    assert [(k, tuple(v.shape), str(v.dtype).split(".")[-1]) for k, v in t.state_dict().items()] == [
        (k, tuple(v.shape), str(v.dtype).split(".")[-1]) for k, v in f.state_dict().items()
    ]
    for attr in ("named_parameters", "named_buffers", "named_children"):
        assert [n for n, _ in getattr(t, attr)()] == [n for n, _ in getattr(f, attr)()], attr
    assert [n for n, _ in t.named_modules()] == [n for n, _ in f.named_modules()]
    assert f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()}) == ([], [])
    idx = rng(40).integers(0, 10, (3, 5))
    for mode in ("eval", "train"):
        getattr(t, mode)()
        getattr(f, mode)()
        close(f(fw.tensor(idx)), t(torch.tensor(idx)), 1e-5)
    for (k, a), (_, b) in zip(t.state_dict().items(), f.state_dict().items()):  # BN statistics updated alike
        close(b, a, 1e-6, k)
    t.double()
    f.double()
    assert f.bn.num_batches_tracked.dtype == fw.int64 and f.bn.running_mean.dtype == fw.float64
    close(f(fw.tensor(idx)), t(torch.tensor(idx)), 1e-10)


def test_load_state_dict_strictness_matches_torch():
    t, f = _net(torch), _net(fw)
    sd = {k: v.numpy() for k, v in f.state_dict().items()}
    bad = dict(sd)
    bad.pop("head.0.weight")
    bad["extra.w"] = np.zeros(2)
    with pytest.raises(
        RuntimeError, match=r'Missing key\(s\).*"head.0.weight"(.|\n)*Unexpected key\(s\).*"extra.w"'
    ):
        f.load_state_dict(bad)
    assert f.load_state_dict(bad, strict=False) == (["head.0.weight"], ["extra.w"])
    wrong = dict(sd)
    wrong["head.0.weight"] = np.zeros((4, 5))
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for head.0.weight.*\[4, 5\].*\[3, 5\]"):
            f.load_state_dict(wrong, strict=strict)
    extra = dict(sd)
    extra["tmp"] = np.zeros(2)  # a non-persistent buffer is not part of the state
    with pytest.raises(RuntimeError, match='Unexpected key.*"tmp"'):
        f.load_state_dict(extra)
    with pytest.raises(RuntimeError, match='Unexpected key.*"tmp"'):
        t.load_state_dict({k: torch.tensor(v) for k, v in extra.items()})


def test_apply_hooks_and_modes_match_torch():
    t, f = _net(torch), _net(fw)
    seen_t, seen_f = [], []
    t.apply(lambda m: seen_t.append(type(m).__name__.replace("NonDynamicallyQuantizable", "")))
    f.apply(lambda m: seen_f.append(type(m).__name__))
    assert seen_f == seen_t
    calls = []
    h1 = f.head.register_forward_pre_hook(lambda m, a: calls.append("pre"))
    h2 = f.head.register_forward_hook(lambda m, a, o: o * 0 + 1)
    out = f(fw.tensor(rng(41).integers(0, 10, (3, 5))))
    assert calls == ["pre"] and np.all(out.detach().numpy() == 1)
    h1.remove()
    h2.remove()
    lin_t, lin_f = torch.nn.Linear(3, 2).double(), nn.Linear(3, 2).double()
    copy_weights(lin_t, lin_f)
    got_t, got_f = [], []
    lin_t.register_full_backward_hook(
        lambda m, gi, go: got_t.append((gi[0].numpy().copy(), go[0].numpy().copy()))
    )
    lin_f.register_full_backward_hook(
        lambda m, gi, go: got_f.append((gi[0].numpy().copy(), go[0].numpy().copy()))
    )
    x = rng(42).standard_normal((4, 3))
    (lin_t(torch.tensor(x, requires_grad=True)) ** 2).sum().backward()
    (lin_f(fw.tensor(x, requires_grad=True)) ** 2).sum().backward()
    for a, b in zip(got_f[0], got_t[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    f.eval()
    assert not any(m.training for m in f.modules())
    f.train()
    assert all(m.training for m in f.modules())
    f.zero_grad()
    assert all(p.grad is None for p in f.parameters())


def test_dropout_modules():
    x = fw.randn(2000, requires_grad=True)
    y = nn.Dropout(1.0)(x)
    y.sum().backward()
    assert not y.detach().numpy().any() and not x.grad.numpy().any()
    d = nn.Dropout(0.3)
    assert np.array_equal(d.eval()(x).detach().numpy(), x.detach().numpy())
    y = d.train()(x).detach().numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], x.detach().numpy()[kept] / 0.7, rtol=1e-6)
    assert 0.6 < kept.mean() < 0.8
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    y = nn.Dropout2d(0.5)(fw.ones(4, 5, 6, 7)).numpy()
    assert all(len(np.unique(y[n, c])) == 1 for n in range(4) for c in range(5))  # whole channels


@pytest.mark.parametrize(
    "kw",
    [
        {},
        dict(affine=True),
        dict(track_running_stats=True),
        dict(track_running_stats=True, momentum=None, affine=True),
    ],
    ids=["default", "affine", "running", "running_momentum_none"],
)
def test_instance_norm_matches_torch_incl_running_stats_and_unbatched(kw):
    """track_running_stats=True never updated the running statistics in training; momentum=None used
    0.1 (PyTorch: 0, the statistics stay); a (C, H, W) input was normalised over W alone."""
    r = rng(43)
    t = torch.nn.InstanceNorm2d(3, **kw).double()
    f = nn.InstanceNorm2d(3, **kw).double()
    if t.affine:
        with torch.no_grad():
            t.weight.uniform_(0.5, 1.5)
            t.bias.uniform_(-1, 1)
    copy_weights(t, f)
    for mode, shape in [
        ("train", (2, 3, 4, 5)),
        ("train", (3, 4, 5)),
        ("eval", (2, 3, 4, 5)),
        ("eval", (3, 4, 5)),
    ]:
        getattr(t, mode)()
        getattr(f, mode)()
        x = r.standard_normal(shape)
        tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
        to, fo = t(tx), f(fx)
        close(fo, to, 1e-10, f"{kw} {mode} {shape}")
        (to**3).sum().backward()
        (fo**3).sum().backward()
        close(fx.grad, tx.grad, 1e-9)
        for k, v in t.state_dict().items():
            close(f.state_dict()[k], v, 1e-12, f"{k} {mode}")
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        nn.InstanceNorm2d(3)(fw.randn(2, 3, 1, 1))


@pytest.mark.parametrize("cls,shape", [("BatchNorm2d", (0, 3, 4, 4)), ("BatchNorm1d", (0, 3))])
def test_batchnorm_training_on_an_empty_batch_matches_torch(cls, shape):
    """PyTorch returns an empty output and keeps the running statistics; the framework raised
    'Expected more than 1 value per channel'."""
    t, f = getattr(torch.nn, cls)(3).double(), getattr(nn, cls)(3).double()
    copy_weights(t, f)
    tx, fx = torch.zeros(shape, dtype=torch.float64, requires_grad=True), fw.zeros(*shape, dtype=fw.float64)
    fx.requires_grad_(True)
    to, fo = t(tx), f(fx)
    assert tuple(fo.shape) == tuple(to.shape)
    to.sum().backward()
    fo.sum().backward()
    assert tuple(fx.grad.shape) == shape
    param_grads_close(t, f, 0)
    for k, v in t.state_dict().items():
        close(f.state_dict()[k], v, 0, k)


def test_clip_grad_norm_with_a_nan_norm_makes_the_gradients_nan_as_pytorch():
    """Before: min(1, NaN) is 1 in Python, so a NaN total norm left the gradients as they were (PyTorch
    clamps the coefficient, which keeps NaN, and every gradient becomes NaN: the step is visibly bad)."""
    g = np.array([1.0, np.nan, 2.0])
    p, tp = fw.nn.Parameter(fw.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    p.grad, tp.grad = fw.tensor(g.copy()).float(), torch.tensor(g.copy()).float()
    other, tother = fw.nn.Parameter(fw.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    other.grad, tother.grad = fw.ones(2), torch.ones(2)
    n = fw.nn.utils.clip_grad_norm_([p, other], 1.0)
    tn = torch.nn.utils.clip_grad_norm_([tp, tother], 1.0)
    assert np.isnan(n.item()) and np.isnan(tn.item())
    np.testing.assert_array_equal(np.isnan(other.grad.numpy()), np.isnan(tother.grad.numpy()))
    assert np.isnan(other.grad.numpy()).all()
    # finite norms are unchanged: below max_norm nothing moves, above it the scale is max_norm / norm
    q = fw.nn.Parameter(fw.zeros(2))
    q.grad = fw.tensor([3.0, 4.0])
    fw.nn.utils.clip_grad_norm_([q], 10.0)
    np.testing.assert_array_equal(q.grad.numpy(), [3.0, 4.0])
    fw.nn.utils.clip_grad_norm_([q], 1.0)
    np.testing.assert_allclose(q.grad.numpy(), [0.6, 0.8], rtol=1e-5)
