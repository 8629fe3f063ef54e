"""fw.distributions against torch.distributions: values and parameter gradients of log_prob, entropy,
moments, cdf/icdf and KL over broadcast batch shapes (float64 and float32); reparameterised sampling
checked pathwise with the same noise; sample statistics, shapes, reproducibility and validation."""

import math

import numpy as np
import pytest

import framework as fw
import framework.distributions as D

torch = pytest.importorskip("torch")
TD = torch.distributions

DTYPES = {"float64": (fw.float64, torch.float64, dict(rtol=1e-7, atol=1e-9)),
          "float32": (fw.float32, torch.float32, dict(rtol=2e-4, atol=2e-5))}

rng = np.random.default_rng(0)
POS_A = rng.uniform(0.5, 2.0, (3, 1))
POS_B = rng.uniform(0.5, 2.0, (4,))
REAL_A = rng.normal(size=(3, 1))
PROBS = rng.uniform(0.05, 0.95, (3, 4))
UNIT = rng.uniform(0.05, 0.95, (2, 3, 4))
REAL_V = rng.normal(size=(2, 3, 4))
CAT_P = rng.uniform(0.1, 1.0, (3, 5))
CAT_V = rng.integers(0, 5, (2, 3))


def _tril(n, batch=()):
    a = rng.normal(size=batch + (n, n)) * 0.3
    a = np.tril(a, -1) + np.eye(n) * rng.uniform(0.8, 1.5, batch + (n,))[..., None, :]
    return a


SCALE_TRIL = _tril(3, (2,))
COV = SCALE_TRIL @ np.swapaxes(SCALE_TRIL, -1, -2)
MVN_LOC = rng.normal(size=(2, 3))
MVN_V = rng.normal(size=(4, 2, 3))


def _leaves(arrays, dt):
    fdt, tdt, _ = dt
    f = [fw.tensor(a, dtype=fdt, requires_grad=True) for a in arrays]
    t = [torch.tensor(np.ascontiguousarray(a), dtype=tdt, requires_grad=True) for a in arrays]
    return f, t


def _np(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else x.detach().numpy()


# name -> (fw factory, torch factory, parameter arrays, value array (or None), members to compare)
CASES = {
    "Normal": (D.Normal, TD.Normal, (REAL_A, POS_B), REAL_V,
               ["log_prob", "cdf", "icdf", "entropy", "mean", "variance", "stddev", "mode"]),
    "Laplace": (D.Laplace, TD.Laplace, (REAL_A, POS_B), REAL_V,
                ["log_prob", "cdf", "icdf", "entropy", "mean", "variance", "stddev", "mode"]),
    "Uniform": (lambda lo, w: D.Uniform(lo, lo + w), lambda lo, w: TD.Uniform(lo, lo + w),
                (REAL_A, POS_B), REAL_A + UNIT * POS_B,
                ["log_prob", "cdf", "icdf", "entropy", "mean", "variance", "stddev"]),
    "Exponential": (D.Exponential, TD.Exponential, (POS_A * POS_B,), np.abs(REAL_V),
                    ["log_prob", "cdf", "icdf", "entropy", "mean", "variance", "stddev", "mode"]),
    "Beta": (D.Beta, TD.Beta, (POS_A + 0.8, POS_B + 0.8), UNIT,
             ["log_prob", "entropy", "mean", "variance", "mode"]),
    "Bernoulli_probs": (lambda p: D.Bernoulli(probs=p), lambda p: TD.Bernoulli(probs=p), (PROBS,),
                        (UNIT > 0.5).astype(float), ["log_prob", "entropy", "mean", "variance", "mode"]),
    "Bernoulli_logits": (lambda x: D.Bernoulli(logits=x), lambda x: TD.Bernoulli(logits=x),
                         (REAL_V[0],), (UNIT > 0.5).astype(float),
                         ["log_prob", "entropy", "mean", "variance"]),
    "Categorical_probs": (lambda p: D.Categorical(probs=p), lambda p: TD.Categorical(probs=p), (CAT_P,),
                          CAT_V, ["log_prob", "entropy", "mode"]),
    "Categorical_logits": (lambda x: D.Categorical(logits=x), lambda x: TD.Categorical(logits=x),
                           (np.log(CAT_P),), CAT_V, ["log_prob", "entropy"]),
    "OneHotCategorical": (lambda p: D.OneHotCategorical(probs=p), lambda p: TD.OneHotCategorical(probs=p),
                          (CAT_P,), np.eye(5)[CAT_V], ["log_prob", "entropy", "mean", "variance", "mode"]),
    "MVN_scale_tril": (lambda m, s: D.MultivariateNormal(m, scale_tril=s),
                       lambda m, s: TD.MultivariateNormal(m, scale_tril=s), (MVN_LOC, SCALE_TRIL), MVN_V,
                       ["log_prob", "entropy", "mean", "variance", "mode"]),
    "MVN_covariance": (lambda m, c: D.MultivariateNormal(m, covariance_matrix=c),
                       lambda m, c: TD.MultivariateNormal(m, covariance_matrix=c), (MVN_LOC[0], COV), MVN_V,
                       ["log_prob", "entropy", "variance"]),
    "MVN_precision": (lambda m, c: D.MultivariateNormal(m, precision_matrix=c),
                      lambda m, c: TD.MultivariateNormal(m, precision_matrix=c),
                      (MVN_LOC, np.linalg.inv(COV)), MVN_V, ["log_prob", "entropy"]),
    "Independent_Normal": (lambda m, s: D.Independent(D.Normal(m, s), 1),
                           lambda m, s: TD.Independent(TD.Normal(m, s), 1), (REAL_A, POS_B), REAL_V,
                           ["log_prob", "entropy", "mean", "variance"]),
}

NONDIFF = {"mode"}


def _member(d, name, value):
    if name in ("log_prob", "cdf"):
        return getattr(d, name)(value)
    if name == "icdf":
        return d.icdf(value)
    if name == "entropy":
        return d.entropy()
    return getattr(d, name)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_against_torch_values_and_gradients(case, dt):
    dt = DTYPES[dt]
    fdt, tdt, tol = dt
    make_f, make_t, params, value, members = CASES[case]
    wrng = np.random.default_rng(1)
    for name in members:
        v = UNIT if name == "icdf" else value
        is_int = v.dtype.kind == "i"
        fv = fw.tensor(v, dtype=fw.int64 if is_int else fdt)
        tv = torch.tensor(v, dtype=torch.int64 if is_int else tdt)
        fp, tp = _leaves(params, dt)
        df, dtorch = make_f(*fp), make_t(*tp)
        assert tuple(df.batch_shape) == tuple(dtorch.batch_shape)
        assert tuple(df.event_shape) == tuple(dtorch.event_shape)
        of, ot = _member(df, name, fv), _member(dtorch, name, tv)
        assert tuple(of.shape) == tuple(ot.shape), (case, name)
        np.testing.assert_allclose(_np(of), _np(ot), equal_nan=True, err_msg=f"{case}.{name}", **tol)
        if name in NONDIFF or not ot.requires_grad:
            continue
        w = wrng.normal(size=tuple(ot.shape))
        (of * fw.tensor(w, dtype=fdt)).sum().backward()
        (ot * torch.tensor(w, dtype=tdt)).sum().backward()
        for a, b in zip(fp, tp):
            if b.grad is None:
                assert a.grad is None or np.allclose(a.grad.numpy(), 0)
                continue
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), err_msg=f"d {case}.{name}",
                                       **{k: 10 * x for k, x in tol.items()})


# ----------------------------------------------------------------------------- KL
LSLS = (REAL_A, POS_B, REAL_V[0], POS_A)  # loc, scale, loc, scale over broadcast batch shapes
KL_PAIRS = {
    "Normal-Normal": (lambda a, b, c, d: (D.Normal(a, b), D.Normal(c, d)),
                      lambda a, b, c, d: (TD.Normal(a, b), TD.Normal(c, d)), LSLS),
    "Laplace-Laplace": (lambda a, b, c, d: (D.Laplace(a, b), D.Laplace(c, d)),
                        lambda a, b, c, d: (TD.Laplace(a, b), TD.Laplace(c, d)), LSLS),
    "Exponential-Exponential": (lambda a, b: (D.Exponential(a), D.Exponential(b)),
                                lambda a, b: (TD.Exponential(a), TD.Exponential(b)), (POS_A, POS_B)),
    "Uniform-Uniform": (lambda a, b: (D.Uniform(a, a + b), D.Uniform(a - 0.5, a + b + 1)),
                        lambda a, b: (TD.Uniform(a, a + b), TD.Uniform(a - 0.5, a + b + 1)), (REAL_A, POS_B)),
    "Beta-Beta": (lambda a, b, c, d: (D.Beta(a, b), D.Beta(c, d)),
                  lambda a, b, c, d: (TD.Beta(a, b), TD.Beta(c, d)), (POS_A, POS_B, POS_B + 0.3, POS_A)),
    "Bernoulli-Bernoulli": (lambda p, q: (D.Bernoulli(p), D.Bernoulli(q)),
                            lambda p, q: (TD.Bernoulli(p), TD.Bernoulli(q)), (PROBS, UNIT[0])),
    "Categorical-Categorical": (lambda p, q: (D.Categorical(p), D.Categorical(logits=q)),
                                lambda p, q: (TD.Categorical(p), TD.Categorical(logits=q)),
                                (CAT_P, REAL_V[:, :, :1] + CAT_P[0])),
    "OneHot-OneHot": (lambda p, q: (D.OneHotCategorical(p), D.OneHotCategorical(q)),
                      lambda p, q: (TD.OneHotCategorical(p), TD.OneHotCategorical(q)), (CAT_P, CAT_P[::-1])),
    "MVN-MVN": (lambda m, s, c: (D.MultivariateNormal(m, scale_tril=s), D.MultivariateNormal(-m, c)),
                lambda m, s, c: (TD.MultivariateNormal(m, scale_tril=s), TD.MultivariateNormal(-m, c)),
                (MVN_LOC, SCALE_TRIL, COV[::-1].copy())),
    "Independent": (lambda a, b: (D.Independent(D.Normal(a, b), 1), D.Independent(D.Normal(b, a), 1)),
                    lambda a, b: (TD.Independent(TD.Normal(a, b), 1), TD.Independent(TD.Normal(b, a), 1)),
                    (REAL_V[0] ** 2 + 0.5, POS_A * POS_B)),
    "Uniform-Normal": (lambda a, b, c, d: (D.Uniform(a, a + b), D.Normal(c, d)),
                       lambda a, b, c, d: (TD.Uniform(a, a + b), TD.Normal(c, d)), LSLS),
    "Exponential-Normal": (lambda a, c, d: (D.Exponential(a), D.Normal(c, d)),
                           lambda a, c, d: (TD.Exponential(a), TD.Normal(c, d)), (POS_B, REAL_A, POS_A)),
    "Laplace-Normal": (lambda a, b, c, d: (D.Laplace(a, b), D.Normal(c, d)),
                       lambda a, b, c, d: (TD.Laplace(a, b), TD.Normal(c, d)), LSLS),
    "Normal-Laplace": (lambda a, b, c, d: (D.Normal(a, b), D.Laplace(c, d)),
                       lambda a, b, c, d: (TD.Normal(a, b), TD.Laplace(c, d)), LSLS),
    "Beta-Normal": (lambda a, b, c, d: (D.Beta(a, b), D.Normal(c, d)),
                    lambda a, b, c, d: (TD.Beta(a, b), TD.Normal(c, d)), (POS_A, POS_B, REAL_A, POS_B)),
    "Beta-Exponential": (lambda a, b, c: (D.Beta(a, b), D.Exponential(c)),
                         lambda a, b, c: (TD.Beta(a, b), TD.Exponential(c)), (POS_A, POS_B, POS_B)),
    "Beta-Uniform": (lambda a, b, c: (D.Beta(a, b), D.Uniform(-c, 1 + c)),
                     lambda a, b, c: (TD.Beta(a, b), TD.Uniform(-c, 1 + c)),
                     # equal shapes: torch 2.13's Beta-Uniform KL fails to broadcast its support mask
                     (POS_A * POS_B, POS_B + 0 * POS_A, POS_A + 0 * POS_B)),
    "Uniform-Exponential": (lambda a, b, c: (D.Uniform(a, a + b), D.Exponential(c)),
                            lambda a, b, c: (TD.Uniform(a, a + b), TD.Exponential(c)), (POS_A, POS_B, POS_B)),
    "Uniform-Beta": (lambda a, b, c, d: (D.Uniform(a, a + b), D.Beta(c, d)),
                     lambda a, b, c, d: (TD.Uniform(a, a + b), TD.Beta(c, d)),
                     (UNIT[0] * 0.5, UNIT[1] * 0.4, POS_A, POS_B)),
}


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("pair", KL_PAIRS)
def test_kl_divergence_against_torch(pair, dt):
    dt = DTYPES[dt]
    make_f, make_t, params = KL_PAIRS[pair]
    fp, tp = _leaves(params, dt)
    kf, kt = D.kl_divergence(*make_f(*fp)), TD.kl_divergence(*make_t(*tp))
    assert tuple(kf.shape) == tuple(kt.shape)
    np.testing.assert_allclose(kf.detach().numpy(), kt.detach().numpy(), err_msg=pair, **dt[2])
    w = np.random.default_rng(2).normal(size=tuple(kt.shape))
    (kf * fw.tensor(w, dtype=dt[0])).sum().backward()
    (kt * torch.tensor(w, dtype=dt[1])).sum().backward()
    for a, b in zip(fp, tp):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), err_msg=f"d KL {pair}",
                                   **{k: 10 * x for k, x in dt[2].items()})


def test_kl_infinite_pairs_and_registration():
    n, u, e = D.Normal(0.0, 1.0), D.Uniform(0.0, 1.0), D.Exponential(1.0)
    assert math.isinf(D.kl_divergence(n, u).item()) and math.isinf(D.kl_divergence(n, e).item())
    assert math.isinf(D.kl_divergence(D.Uniform(-1.0, 1.0), e).item())  # support of p outside q's
    assert math.isinf(D.kl_divergence(D.Uniform(0.0, 2.0), u).item())
    with pytest.raises(NotImplementedError, match="Bernoulli"):
        D.kl_divergence(D.Bernoulli(0.5), n)

    class MyNormal(D.Normal):
        pass

    assert D.kl_divergence(MyNormal(0.0, 1.0), n).item() == 0.0  # inherited from (Normal, Normal)

    @D.register_kl(MyNormal, D.Normal)
    def _mine(p, q):
        return p.loc * 0 + 42.0

    assert D.kl_divergence(MyNormal(0.0, 1.0), n).item() == 42.0  # the more specific pair wins
    assert D.kl_divergence(D.Normal(0.0, 1.0), n).item() == 0.0


# ----------------------------------------------------------------------------- reparameterised sampling
def _same_noise(draw, shape, dtype):
    fw.manual_seed(123)
    noise = draw(shape, dtype=dtype)
    fw.manual_seed(123)
    return noise


@pytest.mark.parametrize("dt", DTYPES)
def test_rsample_pathwise_gradients(dt):
    fdt, _, tol = DTYPES[dt]
    S = (50,)
    # Normal: x = loc + scale eps; d sum(x^2)/d loc = 2 sum x, d/d scale = 2 sum x eps
    loc = fw.tensor(REAL_A, dtype=fdt, requires_grad=True)
    scale = fw.tensor(POS_B, dtype=fdt, requires_grad=True)
    eps = _same_noise(fw.randn, S + (3, 4), fdt).numpy()
    x = D.Normal(loc, scale).rsample(S)
    np.testing.assert_allclose(x.detach().numpy(), REAL_A + POS_B * eps, **tol)
    (x**2).sum().backward()
    xn = x.detach().numpy()
    np.testing.assert_allclose(loc.grad.numpy(), (2 * xn).sum((0, 2))[:, None], **tol)
    np.testing.assert_allclose(scale.grad.numpy(), (2 * xn * eps).sum((0, 1)), **tol)
    # Exponential: x = -log(1 - u) / rate; dx/drate = -x / rate
    rate = fw.tensor(POS_B, dtype=fdt, requires_grad=True)
    u = _same_noise(fw.rand, S + (4,), fdt).numpy()
    x = D.Exponential(rate).rsample(S)
    np.testing.assert_allclose(x.detach().numpy(), -np.log1p(-u) / POS_B, **tol)
    x.sum().backward()
    np.testing.assert_allclose(rate.grad.numpy(), (-x.detach().numpy() / POS_B).sum(0), **tol)
    # Uniform: x = low + u (high - low); dx/dlow = 1 - u, dx/dhigh = u
    low = fw.tensor(REAL_A, dtype=fdt, requires_grad=True)
    high = fw.tensor(REAL_A + 1 + POS_B, dtype=fdt, requires_grad=True)
    u = _same_noise(fw.rand, S + (3, 4), fdt).numpy()
    D.Uniform(low, high).rsample(S).sum().backward()
    np.testing.assert_allclose(low.grad.numpy(), (1 - u).sum((0, 2))[:, None], **tol)
    np.testing.assert_allclose(high.grad.numpy(), u.sum(0), **tol)
    # Laplace: dx/dloc = 1, dx/dscale = (x - loc) / scale
    loc = fw.tensor(REAL_A, dtype=fdt, requires_grad=True)
    scale = fw.tensor(POS_B, dtype=fdt, requires_grad=True)
    x = D.Laplace(loc, scale).rsample(S)
    x.sum().backward()
    np.testing.assert_allclose(loc.grad.numpy(), np.full((3, 1), 50 * 4.0), **tol)
    np.testing.assert_allclose(scale.grad.numpy(), ((x.detach().numpy() - REAL_A) / POS_B).sum((0, 1)), **tol)
    # MultivariateNormal: x = loc + L eps; d sum(c . x)/dL = sum_s c eps_s^T
    m = fw.tensor(MVN_LOC[0], dtype=fdt, requires_grad=True)
    L = fw.tensor(SCALE_TRIL[0], dtype=fdt, requires_grad=True)
    eps = _same_noise(fw.randn, S + (3,), fdt).numpy()
    x = D.MultivariateNormal(m, scale_tril=L).rsample(S)
    np.testing.assert_allclose(x.detach().numpy(), MVN_LOC[0] + eps @ SCALE_TRIL[0].T, **tol)
    c = np.array([1.0, -2.0, 0.5])
    (x * fw.tensor(c, dtype=fdt)).sum().backward()
    np.testing.assert_allclose(L.grad.numpy(), np.outer(c, eps.sum(0)), **tol)
    np.testing.assert_allclose(m.grad.numpy(), 50 * c, **tol)


def test_rsample_gradient_of_an_expectation():
    # d E[x^2] / d(loc, scale) = (2 loc, 2 scale) for x ~ N(loc, scale^2), estimated from 20k draws
    fw.manual_seed(0)
    loc = fw.tensor([0.5, -1.0], dtype=fw.float64, requires_grad=True)
    scale = fw.tensor([1.5, 0.5], dtype=fw.float64, requires_grad=True)
    (D.Normal(loc, scale).rsample((20000,)) ** 2).mean(0).sum().backward()
    np.testing.assert_allclose(loc.grad.numpy(), [1.0, -2.0], atol=0.08)
    np.testing.assert_allclose(scale.grad.numpy(), [3.0, 1.0], atol=0.08)
    assert not D.Bernoulli(0.3).has_rsample and not D.Categorical(fw.ones(3)).has_rsample
    with pytest.raises(NotImplementedError):
        D.Bernoulli(0.3).rsample()


# ----------------------------------------------------------------------------- sampling
def _stat_cases():
    t = lambda a: fw.tensor(a, dtype=fw.float64)  # noqa: E731
    return {
        "Normal": D.Normal(t([0.5, -2.0]), t([1.0, 3.0])),
        "Laplace": D.Laplace(t([0.5, -2.0]), t([1.0, 0.3])),
        "Uniform": D.Uniform(t([0.0, -3.0]), t([1.0, 5.0])),
        "Exponential": D.Exponential(t([0.5, 4.0])),
        "Beta": D.Beta(t([0.5, 3.0]), t([2.0, 3.0])),
        "Bernoulli": D.Bernoulli(t([0.1, 0.7])),
        "Categorical": D.Categorical(t([0.2, 0.5, 0.3])),
        "OneHotCategorical": D.OneHotCategorical(t([0.2, 0.5, 0.3])),
        "MVN": D.MultivariateNormal(t(MVN_LOC[0]), t(COV[0])),
        "Independent": D.Independent(D.Normal(t([0.5, -2.0]), t([1.0, 3.0])), 1),
    }


@pytest.mark.parametrize("name", list(_stat_cases()))
def test_sample_mean_and_variance(name):
    d = _stat_cases()[name]
    fw.manual_seed(5)
    n = 20000
    x = d.sample((n,)).numpy().astype(np.float64)
    if name == "Categorical":
        freq = np.bincount(x.astype(int), minlength=3) / n
        p = d.probs.numpy()
        assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))
        return
    mean, var = d.mean.numpy(), d.variance.numpy()
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n)), (x.mean(0), mean)
    np.testing.assert_allclose(x.var(0), var, rtol=0.1)
    if name == "MVN":
        np.testing.assert_allclose(np.cov(x.T), COV[0], atol=0.1)
    assert np.all(d.support.check(fw.tensor(x[:100])).numpy())


@pytest.mark.parametrize("name", list(_stat_cases()))
@pytest.mark.parametrize("sample_shape", [(), (5,), (2, 3)])
def test_sample_shapes_and_reproducibility(name, sample_shape):
    d = _stat_cases()[name]
    expected = tuple(sample_shape) + tuple(d.batch_shape) + tuple(d.event_shape)
    fw.manual_seed(11)
    a = d.sample(sample_shape)
    fw.manual_seed(11)
    b = d.sample(sample_shape)
    assert tuple(a.shape) == expected
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not a.requires_grad
    c = d.sample((200,))
    assert not np.array_equal(c.numpy()[:100], c.numpy()[100:])  # it does draw
    if d.has_rsample:
        assert tuple(d.rsample(sample_shape).shape) == expected


def test_categorical_sample_dtype_and_zero_probability():
    d = D.Categorical(fw.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]))
    fw.manual_seed(0)
    x = d.sample((1000,))
    assert x.dtype == fw.int64
    assert np.all(x.numpy()[:, 0] == 1) and not np.any(x.numpy()[:, 1] == 1)


def test_expand_matches_broadcasting():
    d = D.Normal(fw.tensor([0.0, 1.0]), fw.tensor([1.0, 2.0]))
    e = d.expand((3, 2))
    assert tuple(e.batch_shape) == (3, 2)
    v = fw.randn(3, 2)
    np.testing.assert_allclose(e.log_prob(v).numpy(), d.log_prob(v).numpy())
    c = D.Categorical(logits=fw.randn(2, 4)).expand((5, 2))
    assert tuple(c.batch_shape) == (5, 2) and tuple(c.sample().shape) == (5, 2)
    assert tuple(c.probs.shape) == (5, 2, 4)
    m = D.MultivariateNormal(fw.zeros(3), fw.eye(3)).expand((4,))
    assert tuple(m.batch_shape) == (4,) and tuple(m.sample((2,)).shape) == (2, 4, 3)
    i = D.Independent(D.Normal(fw.zeros(3), fw.ones(3)), 1).expand((2,))
    assert tuple(i.batch_shape) == (2,) and tuple(i.log_prob(fw.zeros(2, 3)).shape) == (2,)
    b = D.Bernoulli(probs=fw.tensor([0.2, 0.6])).expand((3, 2))
    np.testing.assert_allclose(b.logits.numpy()[2], np.log([0.25, 1.5]), rtol=1e-6)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("build, dist, arg", [
    (lambda: D.Normal(0.0, -1.0), "Normal", "scale"),
    (lambda: D.Normal(float("nan"), 1.0), "Normal", "loc"),
    (lambda: D.Laplace(0.0, 0.0), "Laplace", "scale"),
    (lambda: D.Exponential(fw.tensor([1.0, -2.0])), "Exponential", "rate"),
    (lambda: D.Beta(0.0, 1.0), "Beta", "concentration1"),
    (lambda: D.Uniform(1.0, 1.0), "Uniform", "low"),
    (lambda: D.Bernoulli(probs=1.5), "Bernoulli", "probs"),
    (lambda: D.Bernoulli(probs=0.5, logits=0.0), "Bernoulli", "probs"),
    (lambda: D.Categorical(probs=fw.tensor([0.5, -0.1, 0.6])), "Categorical", "probs"),
    (lambda: D.OneHotCategorical(), "OneHotCategorical", "probs"),
    (lambda: D.MultivariateNormal(fw.zeros(2), fw.tensor([[1.0, 2.0], [2.0, 1.0]])), "MultivariateNormal",
     "covariance_matrix"),
    (lambda: D.MultivariateNormal(fw.zeros(2), scale_tril=fw.tensor([[1.0, 1.0], [0.0, 1.0]])),
     "MultivariateNormal", "scale_tril"),
    (lambda: D.MultivariateNormal(fw.zeros(2)), "MultivariateNormal", "covariance_matrix"),
    (lambda: D.Normal(0.0, 1.0).log_prob(fw.tensor(float("nan"))), "Normal", "value"),
    (lambda: D.Exponential(1.0).log_prob(fw.tensor(-1.0)), "Exponential", "support"),
    (lambda: D.Beta(1.0, 2.0).log_prob(fw.tensor(1.5)), "Beta", "support"),
    (lambda: D.Bernoulli(0.5).log_prob(fw.tensor(0.5)), "Bernoulli", "support"),
    (lambda: D.Categorical(fw.ones(3)).log_prob(fw.tensor(3)), "Categorical", "support"),
    (lambda: D.Uniform(0.0, 1.0).log_prob(fw.tensor(2.0)), "Uniform", "support"),
    (lambda: D.OneHotCategorical(fw.ones(3)).log_prob(fw.tensor([1.0, 1.0, 0.0])), "OneHotCategorical",
     "support"),
    (lambda: D.Normal(fw.zeros(3), 1.0).log_prob(fw.zeros(4)), "Normal", "broadcastable"),
])
def test_validation_errors_name_the_distribution_and_argument(build, dist, arg):
    with pytest.raises(ValueError, match=dist) as e:
        build()
    assert arg in str(e.value)


def test_validate_args_false_skips_checks():
    d = D.Normal(0.0, -1.0, validate_args=False)
    assert math.isnan(d.log_prob(fw.tensor(0.0)).item())
    assert D.Exponential(1.0, validate_args=False).log_prob(fw.tensor(-1.0)).item() == pytest.approx(1.0)
    D.Distribution.set_default_validate_args(False)
    try:
        D.Normal(0.0, -1.0)
    finally:
        D.Distribution.set_default_validate_args(True)
    with pytest.raises(ValueError):
        D.Normal(0.0, -1.0)


def test_constraints():
    C = D.constraints
    assert C.positive.check(fw.tensor([1.0, 0.0])).numpy().tolist() == [True, False]
    assert C.simplex.check(fw.tensor([[0.2, 0.8], [0.5, 0.6]])).numpy().tolist() == [True, False]
    assert C.lower_cholesky.check(fw.tensor([[1.0, 0.0], [3.0, 2.0]])).item()
    assert not C.positive_definite.check(fw.tensor([[1.0, 2.0], [2.0, 1.0]])).item()
    assert C.independent(C.real, 1).check(fw.tensor([[1.0, float("nan")], [0.0, 1.0]])).numpy().tolist() == \
        [False, True]
    assert C.is_dependent(D.Uniform.support) and not C.is_dependent(C.real)
    s = D.Uniform(0.0, 2.0).support
    assert s.check(fw.tensor(1.5)).item() and not s.check(fw.tensor(2.5)).item()
    assert D.Categorical(fw.ones(4)).support.upper_bound == 3


def test_enumerate_support_and_special_functions():
    b = D.Bernoulli(fw.tensor([0.2, 0.3, 0.4]))
    assert b.enumerate_support().numpy().tolist() == [[0.0] * 3, [1.0] * 3]
    c = D.Categorical(fw.ones(2, 4))
    np.testing.assert_array_equal(c.enumerate_support(expand=False).numpy().ravel(), np.arange(4))
    cholesky, digamma, erfinv, lgamma = fw.linalg.cholesky, fw.digamma, fw.erfinv, fw.lgamma

    x = np.array([0.3, 1.7, 4.0])
    xt = torch.tensor(x, requires_grad=True)
    for f, g in ((lgamma, torch.lgamma), (digamma, torch.digamma), (erfinv, lambda t: torch.erfinv(t / 5))):
        xf = fw.tensor(x, dtype=fw.float64, requires_grad=True)
        if g is not torch.lgamma and g is not torch.digamma:
            out_f, out_t = f(xf / 5), g(xt)
        else:
            out_f, out_t = f(xf), g(xt)
        gf = fw.autograd.grad(out_f.sum(), xf, create_graph=True)[0]
        gt = torch.autograd.grad(out_t.sum(), xt, create_graph=True)[0]
        np.testing.assert_allclose(gf.detach().numpy(), gt.detach().numpy(), rtol=1e-8)
        # second derivatives too
        np.testing.assert_allclose(fw.autograd.grad(gf.sum(), xf)[0].numpy(),
                                   torch.autograd.grad(gt.sum(), xt)[0].numpy(), rtol=1e-6)
    assert fw.testing.gradcheck(lambda a: cholesky(a @ a.transpose(-1, -2) + fw.eye(3, dtype=fw.float64)),
                                (fw.tensor(SCALE_TRIL, dtype=fw.float64, requires_grad=True),))


@pytest.mark.skipif(not fw.cuda.is_available(), reason="needs CUDA (CuPy)")
def test_sampling_and_log_prob_on_cuda():
    loc = fw.tensor([0.0, 1.0], device="cuda", requires_grad=True)
    d = D.Normal(loc, fw.tensor([1.0, 2.0], device="cuda"))
    fw.manual_seed(0)
    x = d.rsample((1000,))
    assert x.device.type == "cuda"
    d.log_prob(x.detach()).sum().backward()
    assert loc.grad.device.type == "cuda"
    for dist in (D.Bernoulli(fw.tensor([0.3], device="cuda")), D.Categorical(fw.ones(3, device="cuda")),
                 D.Beta(fw.tensor([2.0], device="cuda"), fw.tensor([1.0], device="cuda")),
                 D.MultivariateNormal(fw.zeros(2, device="cuda"), fw.eye(2, device="cuda"))):
        s = dist.sample((10,))
        assert s.device.type == "cuda"
        assert dist.log_prob(s).device.type == "cuda"
