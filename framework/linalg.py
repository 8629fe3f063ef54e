"""``fw.linalg``: the part of ``torch.linalg`` a model usually needs, differentiable: norms, inverse,
determinants, linear solves, cross products, chained products, Cholesky, matrix powers and the matrix
exponential (gradients of gradients too); symmetric eigendecomposition, SVD, QR, pseudo-inverse and
rank (first derivatives); lstsq (every CPU driver's outputs), cond, vecdot, vander, the *_ex functions,
and the general eig / eigvals (no gradient)."""

from __future__ import annotations

import builtins

import numpy as np

from .autograd import Function
from .backend import get_array_module
from .ops.basic import _float_in
from .ops.compose import cross as _cross
from .ops.extra import det, inverse, tril
from .ops.reduce import amax, amin, sum
from .ops.reduce import norm as _norm
from .ops.shape import matmul, transpose
from .ops.specfun import broadcast_shapes
from .tensor import Tensor

__all__ = ["vector_norm", "matrix_norm", "norm", "inv", "det", "slogdet", "solve", "cross", "multi_dot",
           "cholesky", "solve_triangular", "eigh", "eigvalsh", "svd", "svdvals", "qr", "matrix_power",
           "matrix_exp", "pinv", "matrix_rank", "lstsq", "vecdot", "cond", "vander", "diagonal", "inv_ex",
           "cholesky_ex", "solve_ex", "eigvals", "eig"]

inv = inverse


def vector_norm(x, ord=2, dim=None, keepdim=False):
    """The vector ``ord``-norm over ``dim`` (all elements when None), as ``torch.linalg.vector_norm``."""
    return _norm(_float_in(x), ord, dim, keepdim)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False):
    """Frobenius ('fro'), nuclear ('nuc'), spectral (2, -2: the largest / smallest singular value), 1, -1,
    inf or -inf matrix norms over ``dim``, as ``torch.linalg.matrix_norm``."""
    A = _float_in(A)
    d0, d1 = (d % A.ndim for d in dim)
    if ord == "fro":
        return _norm(A, 2, (d0, d1), keepdim)
    if ord in (1, -1, float("inf"), -float("inf")):
        # 1: the largest column sum of |A| (over rows d0, then the max over columns d1); inf: rows
        over, pick = (d0, d1) if ord in (1, -1) else (d1, d0)
        s = sum(A.abs(), over, keepdim=True)
        r = (amax if ord in (1, float("inf")) else amin)(s, pick, keepdim=True)
        return r if keepdim else r.squeeze(builtins.max(d0, d1)).squeeze(builtins.min(d0, d1))
    if ord in ("nuc", 2, -2):
        order = [d for d in range(A.ndim) if d not in (d0, d1)] + [d0, d1]
        sv = svdvals(A.permute(*order))
        r = sv.sum(-1) if ord == "nuc" else sv[..., 0] if ord == 2 else sv[..., -1]
        if keepdim:
            r = r.unsqueeze(builtins.min(d0, d1)).unsqueeze(builtins.max(d0, d1))
        return r
    raise ValueError(f"matrix_norm(): ord must be 'fro', 'nuc', 2, -2, 1, -1, inf or -inf, got {ord!r}")


def norm(A, ord=None, dim=None, keepdim=False):
    """``torch.linalg.norm``: without ord, the 2-norm of the flattened input (or over ``dim``); with ord, a
    vector norm for one dim or a 1-D input, a matrix norm for two dims or a 2-D input."""
    if ord is None:
        return vector_norm(A, 2, dim, keepdim)
    if (dim is not None and not isinstance(dim, int) and len(dim) == 2) or (dim is None and A.ndim == 2):
        return matrix_norm(A, ord, (-2, -1) if dim is None else dim, keepdim)
    return vector_norm(A, ord, dim, keepdim)


class _Slogdet(Function):
    """log |det A| (the sign is returned apart, without gradient); d/dA = A^-T."""

    saves_inputs = (0,)

    def forward(self, a):
        xp = get_array_module(a)
        sign, logabs = xp.linalg.slogdet(a)
        self.sign = sign
        return logabs

    def backward(self, g):
        (a,) = self.saved_tensors
        return g.reshape(tuple(g.shape) + (1, 1)) * transpose(inverse(a), -1, -2)


def slogdet(A):
    """(sign, log |det A|) of each square matrix, as ``torch.linalg.slogdet``."""
    from collections import namedtuple

    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"slogdet(): expected square matrices in the last two dimensions, got "
                         f"{tuple(A.shape)}")
    f = _Slogdet()
    logabs = f(_float_in(A))
    return namedtuple("slogdet", ["sign", "logabsdet"])(Tensor(f.sign), logabs)


class _Solve(Function):
    """X = A^-1 B; gB = A^-T g, gA = -gB X^T, both written with solve itself (differentiable again)."""

    saves_output = True

    def forward(self, a, b):
        xp = get_array_module(a)
        return xp.linalg.solve(a, b)

    def backward(self, g):
        a, b = self.inputs
        (x,) = self.saved_tensors
        gb = _Solve()(transpose(a, -1, -2), g)
        ga = -matmul(gb, transpose(x, -1, -2)) if self.needs_input_grad[0] else None
        return ga, (gb if self.needs_input_grad[1] else None)


def solve(A, B, *, left=True):
    """The X with A X = B (``left=False``: X A = B), as ``torch.linalg.solve``; B a matrix (or a batch of
    them) or a vector. A singular A is an error naming it."""
    A, B = _float_in(A), _float_in(B)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"solve(): A must be square matrices, got shape {tuple(A.shape)}")
    if not left:
        return transpose(solve(transpose(A, -1, -2), transpose(B, -1, -2)), -1, -2)
    vector = B.ndim == A.ndim - 1
    b = B.unsqueeze(-1) if vector else B
    if b.shape[-2] != A.shape[-1]:
        raise ValueError(f"solve(): A of shape {tuple(A.shape)} cannot solve B of shape {tuple(B.shape)}")
    try:
        x = _Solve()(A, b)
    except np.linalg.LinAlgError as e:
        raise RuntimeError(f"solve(): A of shape {tuple(A.shape)} is singular ({e})") from None
    return x.squeeze(-1) if vector else x


def cross(input, other, *, dim=-1):
    """The cross product of 3-vectors along ``dim`` (default the last), as ``torch.linalg.cross``."""
    return _cross(input, other, dim=dim)


def multi_dot(tensors):
    """The product of a chain of matrices (a first 1-D tensor a row, a last one a column), as
    ``torch.linalg.multi_dot``; multiplied in the cheapest order."""
    ts = list(tensors)
    if len(ts) < 2:
        raise ValueError("multi_dot(): expected at least two tensors")
    first_vec, last_vec = ts[0].ndim == 1, ts[-1].ndim == 1
    if first_vec:
        ts[0] = ts[0].unsqueeze(0)
    if last_vec:
        ts[-1] = ts[-1].unsqueeze(-1)
    dims = [ts[0].shape[0]] + [t.shape[1] for t in ts]
    n = len(ts)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(2, n + 1):  # the matrix-chain order (dynamic programming)
        for i in range(n - length + 1):
            j = i + length - 1
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k

    def product(i, j):
        return ts[i] if i == j else matmul(product(i, split[i][j]), product(split[i][j] + 1, j))

    out = product(0, n - 1)
    if first_vec:
        out = out.squeeze(0)
    if last_vec:
        out = out.squeeze(-1)
    return out


# ------------------------------------------------------------ Cholesky and triangular solves

def _mT(x):
    return transpose(x, -1, -2)


class _SolveTriangular(Function):
    """X = A^-1 B for triangular A (lower, or upper) with equal batch shapes.

    Backward: gB = A^-T g (a triangular solve of the other kind), gA = -gB X^T restricted to A's
    triangle, since only that triangle is an input."""

    saves_output = True

    def forward(self, a, b):
        xp = get_array_module(a)
        # A general batched solve of the triangle: SciPy's and CuPy's triangular solvers do not batch.
        tri = xp.tril(a) if not self.upper else xp.triu(a)
        return xp.linalg.solve(tri, b)

    def backward(self, g):
        a, b = self.inputs
        (x,) = self.saved_tensors
        gb = _SolveTriangular(upper=not self.upper)(_mT(a), g)
        ga = None
        if self.needs_input_grad[0]:
            full = -matmul(gb, _mT(x))
            ga = tril(full) if not self.upper else _mT(tril(_mT(full)))
        return ga, (gb if self.needs_input_grad[1] else None)


def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True) -> Tensor:
    """The X with A X = B for a triangular A (only its ``upper`` or lower triangle is read), as
    ``torch.linalg.solve_triangular``; batch dimensions broadcast."""
    A, B = _float_in(A), _float_in(B)
    if not left:
        return _mT(solve_triangular(_mT(A), _mT(B), upper=not upper))
    batch = broadcast_shapes(A.shape[:-2], B.shape[:-2])
    A = A.expand(*batch, *A.shape[-2:])
    B = B.expand(*batch, *B.shape[-2:])
    return _SolveTriangular(upper=upper)(A, B)


class _Cholesky(Function):
    """L with A = L L^T. Backward (Murray 2016, "Differentiation of the Cholesky decomposition"):
    P = Phi(L^T gL), with Phi the lower triangle and a halved diagonal; S = L^-T P L^-1;
    gA = (S + S^T) / 2."""

    saves_output = True

    def forward(self, a):
        xp = get_array_module(a)
        try:
            return xp.linalg.cholesky(a)
        except Exception as e:  # NumPy raises LinAlgError; CuPy may too
            raise ValueError(f"cholesky(): the input of shape {tuple(a.shape)} is not positive-definite "
                             f"({e})") from None

    def backward(self, g):
        (L,) = self.saved_tensors
        P = tril(matmul(_mT(L), g))
        P = P - 0.5 * _diag_part(P)
        Y = solve_triangular(_mT(L), P, upper=True)  # L^-T P
        S = _mT(solve_triangular(_mT(L), _mT(Y), upper=True))  # (L^-T Y^T)^T = Y L^-1
        return 0.5 * (S + _mT(S))


def _diag_part(M):
    """M with everything off the diagonal zeroed (differentiable)."""
    from .tensor import eye

    return M * eye(M.shape[-1], dtype=M.dtype, device=M.device)


def cholesky(A: Tensor) -> Tensor:
    """The lower Cholesky factor of symmetric positive-definite matrices, as ``torch.linalg.cholesky``."""
    A = _float_in(A)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"cholesky(): expected square matrices, got shape {tuple(A.shape)}")
    return _Cholesky()(A)


# ------------------------------------------------------------ decompositions and matrix functions

def _square(name: str, A: Tensor) -> Tensor:
    A = _float_in(A)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{name}(): expected square matrices in the last two dimensions, got shape "
                         f"{tuple(A.shape)}")
    return A


def _first_order(name: str) -> None:
    """The decompositions' backward passes are written on constant factors: first derivatives only."""
    from .autograd import is_grad_enabled

    if is_grad_enabled():
        raise NotImplementedError(f"{name}: gradients of gradients (create_graph=True) are not "
                                  "implemented for this decomposition")


def _off_diagonal_inverse(xp, d):
    """F[..., i, j] = 1 / (d_j - d_i) off the diagonal, 0 on it (and where d_j = d_i: degenerate)."""
    diff = d[..., None, :] - d[..., :, None]
    with np.errstate(divide="ignore"):
        f = xp.where(diff == 0, 0.0, 1.0 / xp.where(diff == 0, 1.0, diff))
    return f.astype(d.dtype, copy=False)


class _Eigh(Function):
    """A = V diag(L) V^T. Backward: gA = V (diag(gL) + F * (V^T gV)) V^T, F_ij = 1 / (L_j - L_i)."""

    def forward(self, a):
        xp = get_array_module(a)
        lam, vec = xp.linalg.eigh(a, UPLO=self.uplo)
        self.lam, self.vec = lam, vec
        return lam, vec

    def backward(self, gl, gv):
        _first_order("eigh")
        xp = get_array_module(self.vec)
        v = self.vec
        inner = _off_diagonal_inverse(xp, self.lam) * (xp.swapaxes(v, -1, -2) @ gv.data)
        idx = xp.arange(v.shape[-1])
        inner[..., idx, idx] = gl.data
        return Tensor(v @ inner @ xp.swapaxes(v, -1, -2))


def eigh(A: Tensor, UPLO: str = "L"):
    """Eigenvalues (ascending) and orthonormal eigenvectors of symmetric matrices, as
    ``torch.linalg.eigh`` (only the ``UPLO`` triangle is read); first derivatives. Eigenvectors are
    defined up to sign, and their gradients are undefined where eigenvalues repeat."""
    from collections import namedtuple

    if UPLO not in ("L", "U"):
        raise ValueError(f"eigh(): UPLO must be 'L' or 'U', got {UPLO!r}")
    lam, vec = _Eigh(uplo=UPLO)(_square("eigh", A))
    return namedtuple("eigh", ["eigenvalues", "eigenvectors"])(lam, vec)


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:
    """The eigenvalues of symmetric matrices, ascending, as ``torch.linalg.eigvalsh``."""
    return eigh(A, UPLO).eigenvalues


class _Svd(Function):
    """Reduced A = U diag(S) Vh. Backward (Townsend 2016, "Differentiating the singular value
    decomposition"), F_ij = 1 / (s_j^2 - s_i^2):
    gA = U [(F * (U^T gU - gU^T U)) S + diag(gS) + S (F * (V^T gV - gV^T V))] Vh
         + (I - U U^T) gU S^-1 Vh + U S^-1 gV^T (I - V V^T)."""

    def forward(self, a):
        xp = get_array_module(a)
        u, s, vh = xp.linalg.svd(a, full_matrices=False)
        self.u, self.s, self.vh = u, s, vh
        return u, s, vh

    def backward(self, gu, gs, gvh):
        _first_order("svd")
        xp = get_array_module(self.s)
        u, s, vh = self.u, self.s, self.vh
        T = lambda m: xp.swapaxes(m, -1, -2)  # noqa: E731
        v, gv = T(vh), T(gvh.data)
        gu = gu.data
        f = _off_diagonal_inverse(xp, s * s)
        ut_gu, vt_gv = T(u) @ gu, T(v) @ gv
        core = (f * (ut_gu - T(ut_gu))) * s[..., None, :] + s[..., :, None] * (f * (vt_gv - T(vt_gv)))
        idx = xp.arange(s.shape[-1])
        core[..., idx, idx] += gs.data
        ga = u @ core @ vh
        with np.errstate(divide="ignore"):
            s_inv = xp.where(s > 0, 1.0 / xp.where(s > 0, s, 1.0), 0.0).astype(s.dtype, copy=False)
        m, n = u.shape[-2], v.shape[-2]
        if m > s.shape[-1]:  # the part of gU outside U's span
            ga = ga + (gu - u @ ut_gu) * s_inv[..., None, :] @ vh
        if n > s.shape[-1]:
            ga = ga + (u * s_inv[..., None, :]) @ T(gv - v @ vt_gv)
        return Tensor(ga)


def svd(A: Tensor, full_matrices: bool = True):
    """(U, S, Vh) with A = U diag(S) Vh and S descending, as ``torch.linalg.svd``; first derivatives,
    for ``full_matrices=False`` (the reduced factors: the extra columns of the full ones are arbitrary,
    so PyTorch refuses their gradient too). Singular vectors are defined up to sign."""
    from collections import namedtuple

    A = _float_in(A)
    if A.ndim < 2:
        raise ValueError(f"svd(): expected matrices (at least 2-D), got shape {tuple(A.shape)}")
    out = namedtuple("svd", ["U", "S", "Vh"])
    if full_matrices and A.shape[-1] != A.shape[-2]:
        from .autograd import is_grad_enabled

        if A.requires_grad and is_grad_enabled():
            raise RuntimeError("svd(): gradients of the full factors are not defined; use "
                               "full_matrices=False")
        xp = get_array_module(A.data)
        u, s, vh = xp.linalg.svd(A.data, full_matrices=True)
        return out(Tensor(u), Tensor(s), Tensor(vh))
    return out(*_Svd()(A))


def svdvals(A: Tensor) -> Tensor:
    """The singular values, descending, as ``torch.linalg.svdvals``."""
    return svd(A, full_matrices=False).S


class _Qr(Function):
    """Reduced A = Q R (m >= n). Backward: M = R gR^T - gQ^T Q; gA = (gQ + Q copyltu(M)) R^-T, with
    copyltu(M) the symmetric matrix from M's lower triangle."""

    def forward(self, a):
        xp = get_array_module(a)
        q, r = xp.linalg.qr(a, mode="reduced")
        self.q, self.r = q, r
        return q, r

    def backward(self, gq, gr):
        _first_order("qr")
        xp = get_array_module(self.q)
        q, r = self.q, self.r
        if q.shape[-2] < r.shape[-1]:
            raise NotImplementedError("qr: the gradient for wide matrices (more columns than rows) is not "
                                      "implemented")
        T = lambda m: xp.swapaxes(m, -1, -2)  # noqa: E731
        m = r @ T(gr.data) - T(gq.data) @ q
        low = xp.tril(m, -1)
        sym = low + T(low) + xp.tril(xp.triu(m))
        b = gq.data + q @ sym  # gA R^T = b: a triangular solve with R
        return Tensor(T(xp.linalg.solve(r, T(b))))


def qr(A: Tensor, mode: str = "reduced"):
    """(Q, R) with A = Q R, Q orthonormal columns, R upper triangular, as ``torch.linalg.qr``
    (``mode`` "reduced" or "r"); first derivatives for matrices with at least as many rows as columns."""
    from collections import namedtuple

    A = _float_in(A)
    if A.ndim < 2:
        raise ValueError(f"qr(): expected matrices (at least 2-D), got shape {tuple(A.shape)}")
    if mode not in ("reduced", "r"):
        raise ValueError(f"qr(): mode must be 'reduced' or 'r' here, got {mode!r}")
    q, r = _Qr()(A)
    out = namedtuple("qr", ["Q", "R"])
    if mode == "r":
        return out(Tensor(get_array_module(q.data).empty((0,), dtype=q.data.dtype)), r)
    return out(q, r)


def matrix_power(A: Tensor, n: int) -> Tensor:
    """A multiplied by itself n times (n < 0: of the inverse; 0: the identity), by repeated squaring;
    differentiable to any order, as ``torch.linalg.matrix_power``."""
    from .tensor import eye

    A = _square("matrix_power", A)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"matrix_power(): n must be an integer, got {type(n).__name__}")
    if n == 0:
        return eye(A.shape[-1], dtype=A.dtype, device=A.device).expand(*A.shape)
    if n < 0:
        A, n = inverse(A), -n
    result, base = None, A
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def matrix_exp(A: Tensor) -> Tensor:
    """The matrix exponential, as ``torch.linalg.matrix_exp``: scaling and squaring around a Taylor
    polynomial of degree 18 (each matrix scaled by 2^-s to a 1-norm under 1/2, where the remainder is
    below float64 rounding), written with matrix products, so differentiable to any order."""
    from .tensor import eye

    A = _square("matrix_exp", A)
    xp = get_array_module(A.data)
    norm1 = float(xp.abs(A.data).sum(-2).max()) if A.numel() else 0.0
    s = max(0, int(np.ceil(np.log2(norm1 / 0.5)))) if norm1 > 0.5 else 0
    X = A * (0.5 ** s) if s else A
    ident = eye(A.shape[-1], dtype=A.dtype, device=A.device)
    result = ident + X
    term = X
    for k in range(2, 19):
        term = matmul(term, X) * (1.0 / k)
        result = result + term
    for _ in range(s):
        result = matmul(result, result)
    return result


def pinv(A: Tensor, *, atol: float | None = None, rtol: float | None = None,
         hermitian: bool = False) -> Tensor:
    """The Moore-Penrose pseudo-inverse from the SVD, as ``torch.linalg.pinv``: singular values at or
    under max(atol, rtol * largest) count as zero (default rtol: eps * max(m, n), atol 0)."""
    return _pinv_parts(_float_in(A), atol, rtol)[0]


def _pinv_parts(A: Tensor, atol, rtol):
    """(pseudo-inverse, singular values, the mask of those kept) from one SVD (pinv and lstsq share it)."""
    u, s, vh = svd(A, full_matrices=False)
    eps = float(np.finfo(s.data.dtype).eps)
    if rtol is None:
        rtol = eps * max(A.shape[-2:]) if atol is None or atol <= 0 else 0.0
    tol = (s.detach().max(-1, keepdim=True).values * rtol)
    if atol is not None:
        tol = tol.clamp(min=atol)
    keep = s > tol
    inv_s = (1.0 / s.clamp(min=1e-300)) * keep.to(s.dtype)
    return matmul(transpose(vh, -1, -2) * inv_s.unsqueeze(-2), transpose(u, -1, -2)), s, keep


def matrix_rank(A: Tensor, *, atol: float | None = None, rtol: float | None = None,
                hermitian: bool = False) -> Tensor:
    """The number of singular values above max(atol, rtol * largest), as ``torch.linalg.matrix_rank``
    (default rtol: eps * max(m, n))."""
    from .autograd import no_grad

    with no_grad():
        s = svdvals(_float_in(A).detach())
        eps = float(np.finfo(s.data.dtype).eps)
        if rtol is None:
            rtol = eps * max(A.shape[-2:]) if atol is None or atol <= 0 else 0.0
        tol = s.max(-1, keepdim=True).values * rtol if s.shape[-1] else s
        if atol is not None:
            tol = tol.clamp(min=atol)
        return (s > tol).sum(-1)


_LSTSQ_DRIVERS = ("gels", "gelsy", "gelsd", "gelss")


def lstsq(A: Tensor, B: Tensor, rcond: float | None = None, *, driver: str | None = None):
    """Least-squares solutions of A X = B (batched), as ``torch.linalg.lstsq``: a named tuple (solution,
    residuals, rank, singular_values) filled as PyTorch fills it for the CPU drivers (``driver``: "gelsy",
    the default, "gels", "gelsd", "gelss"): residuals (the squared residual of each column) only for a
    tall, full-rank A and a driver other than "gelsy"; rank except for "gels"; singular values for
    "gelsd" and "gelss". The solution is the pseudo-inverse's (minimum norm; singular values under
    ``rcond`` times the largest count as zero, default eps * max(m, n)), differentiable in A and B."""
    from collections import namedtuple

    from .autograd import no_grad
    from .tensor import zeros

    driver = "gelsy" if driver is None else driver
    if driver not in _LSTSQ_DRIVERS:
        raise RuntimeError(f"torch.linalg.lstsq: parameter `driver` should be one of {_LSTSQ_DRIVERS}")
    A, B = _float_in(A), _float_in(B)
    vector = B.ndim == A.ndim - 1
    Bm = B.unsqueeze(-1) if vector else B
    if A.shape[-2] != Bm.shape[-2]:
        raise RuntimeError(f"torch.linalg.lstsq: input.size(-2) should match other.size(-2), got A "
                           f"{tuple(A.shape)} and B {tuple(B.shape)}")
    m, n = A.shape[-2:]
    inv, s, keep = _pinv_parts(A, None, rcond)  # (one SVD for the solution, the rank and the values)
    x = matmul(inv, Bm)
    s = s.detach()
    with no_grad():
        rank = keep.sum(-1)
    full = bool((rank.data == builtins.min(m, n)).all()) if rank.numel() else True
    lead = tuple(A.shape[:-2])
    if driver != "gelsy" and m > n and full:
        residuals = ((matmul(A, x) - Bm) ** 2).sum(-2)
        if vector:
            residuals = residuals.squeeze(-1)
    else:
        residuals = zeros(0, dtype=A.dtype, device=A.device)
    rank_out = zeros(0, dtype=rank.dtype, device=A.device) if driver == "gels" else rank.reshape(lead)
    sv = s if driver in ("gelsd", "gelss") else zeros(0, dtype=A.dtype, device=A.device)
    out = namedtuple("lstsq", ["solution", "residuals", "rank", "singular_values"])
    return out(x.squeeze(-1) if vector else x, residuals, rank_out, sv)


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
    """sum(conj(x) * y) over ``dim`` (broadcast), as ``torch.linalg.vecdot``."""
    if x.data.dtype.kind == "c":
        from .ops.complexops import conj

        x = conj(x)
    return sum(x * y, dim)


def cond(A: Tensor, p=None) -> Tensor:
    """The condition number of A in the ``p`` norm (None or 2: largest / smallest singular value, -2 the
    inverse; 'fro', 'nuc', inf, -inf, 1, -1: norm(A) * norm(inv(A))), as ``torch.linalg.cond``."""
    A = _float_in(A)
    if p is None or p in (2, -2):
        s = svdvals(A)
        big, small = s.max(-1).values, s.min(-1).values
        return big / small if p != -2 else small / big
    return matrix_norm(A, p) * matrix_norm(inverse(A), p)


def vander(x: Tensor, *, N: int | None = None) -> Tensor:
    """x[..., i] ** j for j = 0 .. N - 1 (increasing powers, unlike ``torch.vander``), as
    ``torch.linalg.vander``."""
    from .ops.shape import stack

    n = x.shape[-1] if N is None else N
    if n <= 1:
        raise RuntimeError(f"linalg.vander: N must be greater than 1, got {n}")
    cols = [x ** 0 if j == 0 else x ** j for j in range(n)]
    return stack([(c * 1) for c in cols], -1)


def diagonal(A: Tensor, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """The diagonal of each matrix (over the last two dimensions by default), as
    ``torch.linalg.diagonal``."""
    from .ops.extra import diagonal as _diagonal

    return _diagonal(A, offset, dim1, dim2)


def _ex(name, fn, A, check_errors, shape=None):
    """(result, info) as PyTorch's ``*_ex`` functions: info 0 where the factorisation worked; where it
    failed, a positive code and a result of NaN of ``shape`` (A's by default), or the error with
    ``check_errors``."""
    from .tensor import zeros

    try:
        out = fn()
        info = zeros(*A.shape[:-2], dtype=np.int32, device=A.device)
    except (np.linalg.LinAlgError, RuntimeError, ValueError) as e:
        if check_errors:
            raise RuntimeError(f"linalg.{name}: {e}") from e
        xp = get_array_module(A.data)
        out = Tensor(xp.full(tuple(A.shape) if shape is None else shape, np.nan, dtype=A.data.dtype))
        info = Tensor(xp.ones(A.shape[:-2], dtype=np.int32))
    return out, info


def inv_ex(A: Tensor, *, check_errors: bool = False):
    """(inverse, info), as ``torch.linalg.inv_ex``: no error for a singular matrix unless asked."""
    from collections import namedtuple

    A = _float_in(A)
    out = namedtuple("inv_ex", ["inverse", "info"])
    return out(*_ex("inv_ex", lambda: inverse(A), A, check_errors))


def cholesky_ex(A: Tensor, *, upper: bool = False, check_errors: bool = False):
    """(L, info), as ``torch.linalg.cholesky_ex``: no error for a matrix that is not positive-definite
    unless asked."""
    from collections import namedtuple

    A = _float_in(A)

    def run():
        low = cholesky(A)
        return transpose(low, -2, -1) if upper else low

    out = namedtuple("cholesky_ex", ["L", "info"])
    return out(*_ex("cholesky_ex", run, A, check_errors))


def solve_ex(A: Tensor, B: Tensor, *, left: bool = True, check_errors: bool = False):
    """(result, info), as ``torch.linalg.solve_ex``."""
    from collections import namedtuple

    A = _float_in(A)
    if left:
        shape = tuple(np.broadcast_shapes(tuple(A.shape[:-2]), tuple(B.shape[:-2]))) + tuple(B.shape[-2:])
    else:
        shape = tuple(B.shape)
    res, info = _ex("solve_ex", lambda: solve(A, B, left=left), A, check_errors,
                    shape if B.ndim == A.ndim else tuple(B.shape))
    out = namedtuple("solve_ex", ["result", "info"])
    return out(res, info)


def eig(A: Tensor):
    """(eigenvalues, eigenvectors) of a general square matrix, complex, as ``torch.linalg.eig`` (each
    eigenvector of unit norm). No gradient (PyTorch's needs the eigenvectors' phases fixed; here a
    gradient is refused rather than given wrong)."""
    from .autograd import is_grad_enabled

    A = _square("eig", _float_in(A))
    if A.requires_grad and is_grad_enabled():
        raise RuntimeError("linalg.eig: gradients through a general eigendecomposition are not supported "
                           "here; use eigh for symmetric matrices, or detach the input")
    a = A.data.get() if hasattr(A.data, "get") else A.data  # (CuPy has no general eig: on the host)
    w, v = np.linalg.eig(a)
    ctype = np.complex64 if A.data.dtype == np.float32 else np.complex128
    w, v = Tensor(w.astype(ctype)), Tensor(v.astype(ctype))
    return (w, v) if A.device.type == "cpu" else (w.to(A.device), v.to(A.device))


def eigvals(A: Tensor) -> Tensor:
    """The (complex) eigenvalues of a general square matrix, as ``torch.linalg.eigvals`` (no gradient)."""
    return eig(A)[0]
