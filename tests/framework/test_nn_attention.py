"""MultiheadAttention against PyTorch: parameters, masks, kdim/vdim, batch_first, gradients."""

import numpy as np
import pytest

import framework as fw
from framework import nn

torch = pytest.importorskip("torch")


def copy_weights(t, f):
    assert list(f.state_dict()) == list(t.state_dict())
    f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    t.load_state_dict({k: torch.tensor(np.array(v.numpy())) for k, v in f.state_dict().items()}, strict=True)


def close(a, b, tol):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


CASES = [
    dict(kw={}, masks="none"),
    dict(kw={"batch_first": True}, masks="bool"),
    dict(kw={"kdim": 3, "vdim": 5}, masks="float"),
    dict(kw={"add_bias_kv": True, "add_zero_attn": True}, masks="bool"),
    dict(kw={"bias": False, "batch_first": True}, masks="3d"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c["kw"].items())
                         + "-" + c["masks"])
@pytest.mark.parametrize("dt", [(torch.float64, fw.float64, 1e-10), (torch.float32, fw.float32, 1e-5)],
                         ids=["f64", "f32"])
def test_mha_matches_torch(case, dt):
    tdt, fdt, tol = dt
    torch.manual_seed(0)
    E, H, L, S, N = 8, 2, 4, 6, 3
    kw = case["kw"]
    t = torch.nn.MultiheadAttention(E, H, **kw).to(tdt)
    f = nn.MultiheadAttention(E, H, **kw).to(fdt)
    copy_weights(t, f)
    rng = np.random.default_rng(0)
    bf = kw.get("batch_first", False)
    shp = (lambda n_, s_, d_: (n_, s_, d_)) if bf else (lambda n_, s_, d_: (s_, n_, d_))
    q = rng.standard_normal(shp(N, L, E))
    k = rng.standard_normal(shp(N, S, kw.get("kdim", E)))
    v = rng.standard_normal(shp(N, S, kw.get("vdim", E)))
    tq, tk, tv = (torch.tensor(a, dtype=tdt, requires_grad=True) for a in (q, k, v))
    fq, fk, fv = (fw.tensor(a, dtype=fdt, requires_grad=True) for a in (q, k, v))
    masks = {}
    kpm = np.zeros((N, S), bool)
    kpm[0, -2:] = True
    kpm[2, 1] = True  # (no query row is left with every key masked)
    causal = np.triu(np.ones((L, S), bool), 1)
    if case["masks"] == "bool":
        masks = {"key_padding_mask": kpm, "attn_mask": causal}
    elif case["masks"] == "float":
        masks = {"attn_mask": rng.standard_normal((L, S)), "key_padding_mask": np.where(kpm, -1e9, 0.0)}
    elif case["masks"] == "3d":
        masks = {"attn_mask": np.broadcast_to(causal, (N * H, L, S)).copy()}

    def conv(lib, m):
        if m.dtype == bool:
            return torch.tensor(m) if lib == "t" else fw.tensor(m)
        return torch.tensor(m, dtype=tdt) if lib == "t" else fw.tensor(m, dtype=fdt)

    for avg in (True, False):
        to, tw = t(tq, tk, tv, average_attn_weights=avg, **{n: conv("t", m) for n, m in masks.items()})
        fo, fwts = f(fq, fk, fv, average_attn_weights=avg, **{n: conv("f", m) for n, m in masks.items()})
        close(fo, to, tol)
        close(fwts, tw, tol)
    g = rng.standard_normal(tuple(to.shape))
    (to * torch.tensor(g, dtype=tdt)).sum().backward()
    (fo * fw.tensor(g, dtype=fdt)).sum().backward()
    for a, b in ((fq, tq), (fk, tk), (fv, tv)):
        close(a.grad, b.grad, 10 * tol)
    for tp, fp in zip(t.parameters(), f.parameters()):
        close(fp.grad, tp.grad, 10 * tol)


def test_self_attention_need_weights_false_and_unbatched():
    torch.manual_seed(1)
    t = torch.nn.MultiheadAttention(6, 3, batch_first=True).double()
    f = nn.MultiheadAttention(6, 3, batch_first=True).double()
    copy_weights(t, f)
    x = np.random.default_rng(1).standard_normal((2, 5, 6))
    to, tw = t(torch.tensor(x), torch.tensor(x), torch.tensor(x), need_weights=False)
    fx = fw.tensor(x)
    fo, fwts = f(fx, fx, fx, need_weights=False)
    assert tw is None and fwts is None
    close(fo, to, 1e-10)
    # Unbatched (L, E).
    to, tw = t(torch.tensor(x[0]), torch.tensor(x[0]), torch.tensor(x[0]))
    fo, fwts = f(fw.tensor(x[0]), fw.tensor(x[0]), fw.tensor(x[0]))
    assert tuple(fo.shape) == (5, 6) and tuple(fwts.shape) == (5, 5)
    close(fo, to, 1e-10)
    close(fwts, tw, 1e-10)
    # is_causal with an explicit causal mask, as PyTorch requires.
    mask = np.triu(np.ones((5, 5), bool), 1)
    to, _ = t(torch.tensor(x), torch.tensor(x), torch.tensor(x), attn_mask=torch.tensor(mask), is_causal=True)
    fo, _ = f(fx, fx, fx, attn_mask=fw.tensor(mask), is_causal=True)
    close(fo, to, 1e-10)


def test_parameters_init_and_eval_dropout():
    f = nn.MultiheadAttention(16, 4, dropout=0.5)
    assert tuple(f.in_proj_weight.shape) == (48, 16) and tuple(f.in_proj_bias.shape) == (48,)
    assert float(f.in_proj_bias.abs().sum()) == 0 and float(f.out_proj.bias.abs().sum()) == 0
    bound = np.sqrt(6 / (48 + 16))  # xavier_uniform_ on the (3E, E) matrix
    assert float(f.in_proj_weight.abs().max()) <= bound
    x = fw.randn(3, 2, 16)
    f.eval()
    a, _ = f(x, x, x)
    b, _ = f(x, x, x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    f.train()
    c, w = f(x, x, x)
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())
    with pytest.raises(AssertionError):
        nn.MultiheadAttention(10, 3)
    t = torch.nn.MultiheadAttention(4, 2, kdim=3, vdim=3)
    g = nn.MultiheadAttention(4, 2, kdim=3, vdim=3)
    assert list(g.state_dict()) == list(t.state_dict())


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_and_decoder_match_torch(norm_first, activation):
    torch.manual_seed(2)
    kw = dict(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, activation=activation, batch_first=True,
              norm_first=norm_first)
    t_enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(**kw), 2, enable_nested_tensor=False)
    f_enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), 2)
    t_dec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(**kw), 2, norm=torch.nn.LayerNorm(8))
    f_dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), 2, norm=nn.LayerNorm(8))
    for t, f in ((t_enc, f_enc), (t_dec, f_dec)):
        t.double()
        f.double()
        copy_weights(t, f)
    rng = np.random.default_rng(3)
    src, tgt = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 4, 8))
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    causal = np.triu(np.ones((4, 4), bool), 1)
    tsrc, ttgt = torch.tensor(src, requires_grad=True), torch.tensor(tgt, requires_grad=True)
    fsrc, ftgt = fw.tensor(src, requires_grad=True), fw.tensor(tgt, requires_grad=True)
    tm = t_enc(tsrc, src_key_padding_mask=torch.tensor(kpm))
    fm = f_enc(fsrc, src_key_padding_mask=fw.tensor(kpm))
    close(fm, tm, 1e-9)
    to = t_dec(ttgt, tm, tgt_mask=torch.tensor(causal), memory_key_padding_mask=torch.tensor(kpm))
    fo = f_dec(ftgt, fm, tgt_mask=fw.tensor(causal), memory_key_padding_mask=fw.tensor(kpm))
    close(fo, to, 1e-9)
    g = rng.standard_normal(tuple(to.shape))
    (to * torch.tensor(g)).sum().backward()
    (fo * fw.tensor(g)).sum().backward()
    close(fsrc.grad, tsrc.grad, 1e-8)
    close(ftgt.grad, ttgt.grad, 1e-8)
    for tp, fp in zip(list(t_enc.parameters()) + list(t_dec.parameters()),
                      list(f_enc.parameters()) + list(f_dec.parameters())):
        close(fp.grad, tp.grad, 1e-8)
