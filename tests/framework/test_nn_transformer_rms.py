"""nn.Transformer (the full encoder-decoder) and RMSNorm against PyTorch: a PyTorch state dict loads
unchanged and gives the same outputs and gradients."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for nn modules")


def _load(ours, theirs):
    ours.load_state_dict({k: fw.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})


@pytest.mark.parametrize("batch_first, norm_first", [(False, False), (True, True)])
def test_transformer_matches_pytorch(batch_first, norm_first):
    torch.manual_seed(0)
    kw = dict(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32,
              dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    tm = torch.nn.Transformer(**kw).double()
    fm = fw.nn.Transformer(**kw).to(fw.float64)
    assert set(fm.state_dict()) == set(tm.state_dict())
    _load(fm, tm)
    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 2, 16) if not batch_first else (2, 5, 16))
    tgt = rng.normal(size=(4, 2, 16) if not batch_first else (2, 4, 16))
    mask_t = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    mask_f = fw.nn.Transformer.generate_square_subsequent_mask(4, dtype=fw.float64)
    np.testing.assert_array_equal(mask_f.numpy(), mask_t.numpy())
    pad = np.array([[False] * 5, [False, False, False, True, True]])
    ts, tt = torch.tensor(src, requires_grad=True), torch.tensor(tgt, requires_grad=True)
    fs, ft = fw.tensor(src, requires_grad=True), fw.tensor(tgt, requires_grad=True)
    yt = tm(ts, tt, tgt_mask=mask_t, src_key_padding_mask=torch.tensor(pad),
            memory_key_padding_mask=torch.tensor(pad))
    yf = fm(fs, ft, tgt_mask=mask_f, src_key_padding_mask=fw.tensor(pad),
            memory_key_padding_mask=fw.tensor(pad))
    np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy(), rtol=1e-9, atol=1e-10)
    w = rng.normal(size=yt.shape)
    (yt * torch.tensor(w)).sum().backward()
    (yf * fw.tensor(w)).sum().backward()
    np.testing.assert_allclose(fs.grad.numpy(), ts.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ft.grad.numpy(), tt.grad.numpy(), rtol=1e-8, atol=1e-10)
    with pytest.raises(RuntimeError, match="d_model = 16"):
        fm(fw.randn(3, 3, 8, dtype=fw.float64), fw.randn(3, 3, 8, dtype=fw.float64))
    with pytest.raises(RuntimeError, match="batch sizes"):
        fm(fw.randn(3, 2, 16, dtype=fw.float64), fw.randn(2, 3, 16, dtype=fw.float64))


@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm_matches_pytorch(eps):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4))
    tm = torch.nn.RMSNorm((3, 4), eps=eps).double()
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(rng.normal(size=(3, 4))))
    fm = fw.nn.RMSNorm((3, 4), eps=eps).to(fw.float64)
    _load(fm, tm)
    tx, fx = torch.tensor(x, requires_grad=True), fw.tensor(x, requires_grad=True)
    yt, yf = tm(tx), fm(fx)
    np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    g = rng.normal(size=x.shape)
    (yt * torch.tensor(g)).sum().backward()
    (yf * fw.tensor(g)).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(fm.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-10)
    assert set(fm.state_dict()) == {"weight"}
    f32 = fw.nn.functional.rms_norm(fw.tensor(x.astype(np.float32)), (4,))
    t32 = torch.nn.functional.rms_norm(torch.tensor(x.astype(np.float32)), (4,))
    np.testing.assert_allclose(f32.numpy(), t32.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="does not match"):
        fw.nn.functional.rms_norm(fw.tensor(x), (5,))
