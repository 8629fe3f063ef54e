"""Framework lab, the non-Streamlit half: toy data sets and a small classifier trained step by step
with the framework.

Kept free of Streamlit so that it is tested as plain Python; ``framework_lab.py`` only draws what this
module yields.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import framework as fw

DATASETS = ("two spirals", "moons", "circles", "xor")


def make_dataset(name: str, n: int = 512, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D two-class toy problem.

    Returns ``x`` float32 ``(n, 2)`` (roughly in [-1.5, 1.5]) and ``y`` int64 ``(n,)`` in {0, 1}.
    """
    rng = np.random.default_rng(seed)
    half = n // 2
    y = np.concatenate([np.zeros(half, np.int64), np.ones(n - half, np.int64)])
    if name == "two spirals":
        t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 3 * math.pi  # sqrt: even density along the arm
        sign = np.where(y == 0, 1.0, -1.0)
        x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], 1) / (3 * math.pi) * 1.4
    elif name == "moons":
        t = rng.uniform(0, math.pi, n)
        x = np.where(y[:, None] == 0,
                     np.stack([np.cos(t), np.sin(t)], 1),
                     np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
        x = (x - [0.5, 0.25]) / 1.2
    elif name == "circles":
        t = rng.uniform(0, 2 * math.pi, n)
        r = np.where(y == 0, 1.0, 0.45)
        x = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    elif name == "xor":
        x = rng.uniform(-1, 1, (n, 2))
        y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    else:
        raise ValueError(f"unknown data set {name!r}; expected one of {DATASETS}")
    x = x + rng.normal(0, noise, x.shape)
    return x.astype(np.float32), y


def _has_nn() -> bool:
    """Whether ``framework.nn`` / ``framework.optim`` provide what the lab uses (they may be in progress)."""
    try:
        import framework.nn as nn
        import framework.nn.functional as F
        import framework.optim as optim
    except Exception:
        return False
    return all(hasattr(nn, a) for a in ("Linear", "ReLU", "Sequential")) and hasattr(F, "cross_entropy") \
        and hasattr(optim, "Adam")


class _CoreMLP:
    """An MLP on the framework's core tensors only, with a hand-written Adam step.

    The fallback while ``framework.nn`` is not available; same maths as ``nn.Linear`` + ``optim.Adam``.
    """

    def __init__(self, sizes: list[int], lr: float):
        self.params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default init range
            self.params.append((fw.rand(fan_in, fan_out) * 2 - 1) * bound)
            self.params.append((fw.rand(fan_out) * 2 - 1) * bound)
        for p in self.params:
            p.requires_grad_(True)
        self.lr, self.t = lr, 0
        self.m = [np.zeros(p.shape, np.float32) for p in self.params]
        self.v = [np.zeros(p.shape, np.float32) for p in self.params]

    def __call__(self, x):
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            x = x @ self.params[2 * i] + self.params[2 * i + 1]
            if i < n_layers - 1:
                x = fw.relu(x)
        return x

    def step(self, loss):
        for p in self.params:
            p.grad = None
        loss.backward()
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for p, m, v in zip(self.params, self.m, self.v):
            g = np.asarray(p.grad.data)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mhat, vhat = m / (1 - b1 ** self.t), v / (1 - b2 ** self.t)
            p.data -= (self.lr * mhat / (np.sqrt(vhat) + eps)).astype(p.data.dtype)


class _NNMLP:
    """The same MLP through ``framework.nn`` and ``framework.optim`` (the PyTorch-shaped API)."""

    def __init__(self, sizes: list[int], lr: float):
        import framework.nn as nn
        import framework.optim as optim

        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers)
        self.params = list(self.model.parameters())
        self.opt = optim.Adam(self.params, lr=lr)

    def __call__(self, x):
        return self.model(x)

    def step(self, loss):
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()


def _cross_entropy(logits, target):
    if _has_nn():
        import framework.nn.functional as F

        return F.cross_entropy(logits, target)
    logp = fw.log_softmax(logits, 1)
    return -fw.gather(logp, 1, target.unsqueeze(1)).mean()


@dataclass
class TrainConfig:
    dataset: str = "two spirals"
    n: int = 512
    noise: float = 0.08
    hidden: int = 32
    depth: int = 2
    lr: float = 0.02
    steps: int = 300
    batch_size: int = 128
    seed: int = 0
    use_nn: bool | None = None  # None: framework.nn when available


def train(cfg: TrainConfig, every: int = 10) -> Iterator[dict]:
    """Train an MLP on ``cfg.dataset`` and yield metrics every ``every`` steps and at the last one.

    Each yielded dict has ``step``, ``loss`` (mean cross-entropy over the steps since the last report),
    ``train_acc`` and ``val_acc`` (fractions on the full train / held-out split), ``api`` (which
    framework API trained it) and ``predict`` (a function ``(m, 2) float32 -> (m,) P(class 1)``).
    """
    fw.manual_seed(cfg.seed)
    x, y = make_dataset(cfg.dataset, cfg.n, cfg.noise, cfg.seed)
    xv, yv = make_dataset(cfg.dataset, max(cfg.n // 2, 64), cfg.noise, cfg.seed + 1)
    use_nn = _has_nn() if cfg.use_nn is None else cfg.use_nn
    sizes = [2] + [cfg.hidden] * cfg.depth + [2]
    net = (_NNMLP if use_nn else _CoreMLP)(sizes, cfg.lr)
    rng = np.random.default_rng(cfg.seed)

    def predict(points: np.ndarray) -> np.ndarray:
        with fw.no_grad():
            logits = net(fw.tensor(np.asarray(points, np.float32)))
            return np.asarray(fw.softmax(logits, 1).numpy()[:, 1])

    def accuracy(xs, ys):
        return float(((predict(xs) > 0.5).astype(np.int64) == ys).mean())

    losses = []
    for step in range(1, cfg.steps + 1):
        idx = rng.choice(len(x), size=min(cfg.batch_size, len(x)), replace=False)
        loss = _cross_entropy(net(fw.tensor(x[idx])), fw.tensor(y[idx]))
        net.step(loss)
        losses.append(float(loss.item()))
        if step % every == 0 or step == cfg.steps:
            yield {"step": step, "loss": float(np.mean(losses)), "train_acc": accuracy(x, y),
                   "val_acc": accuracy(xv, yv), "api": "framework.nn + optim.Adam" if use_nn
                   else "framework core tensors + hand-written Adam", "predict": predict}
            losses = []


def decision_image(predict, x: np.ndarray, y: np.ndarray, size: int = 240) -> np.ndarray:
    """An RGB uint8 ``(size, size, 3)`` picture of P(class 1) over the data's extent, points on top."""
    lo, hi = x.min(0) - 0.2, x.max(0) + 0.2
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], size), np.linspace(hi[1], lo[1], size))
    p = predict(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)).reshape(size, size)
    c0, c1 = np.array([70, 130, 220.0]), np.array([235, 120, 60.0])  # class 0 blue, class 1 orange
    img = (1 - p)[..., None] * c0 + p[..., None] * c1
    img = 255 - 0.45 * (255 - img)  # pale background so the points stand out
    cols = ((x[:, 0] - lo[0]) / (hi[0] - lo[0]) * (size - 1)).round().astype(int)
    rows = ((hi[1] - x[:, 1]) / (hi[1] - lo[1]) * (size - 1)).round().astype(int)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = np.clip(rows + dr, 0, size - 1), np.clip(cols + dc, 0, size - 1)
            img[r, c] = np.where(y[:, None] == 1, c1 * 0.8, c0 * 0.8)
    return img.clip(0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------- a tiny image task (CNN)
SHAPES = ("square", "disc", "triangle", "cross")


def make_shapes(n: int = 512, size: int = 16, noise: float = 0.15,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy ``size``×``size`` images of one of :data:`SHAPES` at a random place, scale and brightness.

    Returns ``x`` float32 ``(n, 1, size, size)`` and ``y`` int64 ``(n,)`` (balanced over the classes).
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % len(SHAPES)
    rng.shuffle(y)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    x = np.empty((n, 1, size, size), np.float32)
    for i, c in enumerate(y):
        r = rng.uniform(size * 0.2, size * 0.33)
        cy, cx = rng.uniform(r, size - 1 - r, 2)
        dy, dx = yy - cy, xx - cx
        if c == 0:
            m = (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
        elif c == 1:
            m = dy * dy + dx * dx <= r * r
        elif c == 2:  # apex up: inside when below the apex and within the widening sides
            m = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
        else:
            m = ((np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r)) | ((np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r))
        x[i, 0] = m * rng.uniform(0.6, 1.0) + rng.normal(0, noise, (size, size))
    return x, y


def _has_conv() -> bool:
    if not _has_nn():
        return False
    import framework.nn as nn

    return all(hasattr(nn, a) for a in ("Conv2d", "MaxPool2d", "Flatten"))


def train_cnn(cfg: TrainConfig, every: int = 10) -> Iterator[dict]:
    """Train a small CNN (two 3×3 conv blocks with max-pooling, then a linear classifier) on
    :func:`make_shapes`; yields the same metrics as :func:`train`, with ``predict`` mapping
    ``(m, 1, 16, 16)`` images to ``(m, 4)`` class probabilities. Needs ``framework.nn`` (Conv2d)."""
    import framework.nn as nn
    import framework.nn.functional as F
    import framework.optim as optim

    fw.manual_seed(cfg.seed)
    x, y = make_shapes(cfg.n, noise=cfg.noise, seed=cfg.seed)
    xv, yv = make_shapes(max(cfg.n // 2, 64), noise=cfg.noise, seed=cfg.seed + 1)
    h = cfg.hidden
    model = nn.Sequential(nn.Conv2d(1, h // 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(h // 2, h, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(h * 4 * 4, len(SHAPES)))
    opt = optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)

    def predict(images: np.ndarray) -> np.ndarray:
        with fw.no_grad():
            model.eval()
            p = fw.softmax(model(fw.tensor(np.asarray(images, np.float32))), 1).numpy()
            model.train()
            return np.asarray(p)

    def accuracy(xs, ys):
        return float((predict(xs).argmax(1) == ys).mean())

    losses = []
    for step in range(1, cfg.steps + 1):
        idx = rng.choice(len(x), size=min(cfg.batch_size, len(x)), replace=False)
        loss = F.cross_entropy(model(fw.tensor(x[idx])), fw.tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
        if step % every == 0 or step == cfg.steps:
            yield {"step": step, "loss": float(np.mean(losses)), "train_acc": accuracy(x, y),
                   "val_acc": accuracy(xv, yv), "api": "framework.nn (Conv2d, MaxPool2d) + optim.Adam",
                   "predict": predict}
            losses = []


def shapes_gallery(predict, x: np.ndarray, y: np.ndarray, count: int = 24, scale: int = 5) -> np.ndarray:
    """A grid of the first ``count`` images, each framed green (right) or red (wrong); uint8 RGB."""
    count = min(count, len(x))
    pred = predict(x[:count]).argmax(1)
    cols = 8
    rows = -(-count // cols)
    s = x.shape[-1] * scale
    pad = 3
    grid = np.full((rows * (s + 2 * pad), cols * (s + 2 * pad), 3), 255, np.uint8)
    for i in range(count):
        r, c = divmod(i, cols)
        tile = np.kron(np.clip(x[i, 0], 0, 1), np.ones((scale, scale)))
        frame = (40, 170, 60) if pred[i] == y[i] else (220, 40, 40)
        y0, x0 = r * (s + 2 * pad), c * (s + 2 * pad)
        grid[y0:y0 + s + 2 * pad, x0:x0 + s + 2 * pad] = frame
        grid[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s] = (tile[..., None] * 255).astype(np.uint8)
    return grid
