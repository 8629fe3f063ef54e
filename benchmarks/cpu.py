"""CPU speed of the framework relative to PyTorch, measured in the same run with the same threads.

    python -m benchmarks.cpu [--threads N ...] [--strategy both|framework|blas] [--repeat R] [--quick]
                            [--blas-core native|inherit] [--out PATH]

Prints one JSON document and writes it (with machine information) to
``benchmarks/results/cpu.json``. Every figure is a ratio ``torch_time / our_time``: above 1 means
the framework is faster. Times are medians over ``repeat`` samples after warm-up (a sample
times enough back-to-back calls to last ~50 ms); our samples and PyTorch's alternate so that load
from other processes affects both alike. ``cpu_time_ratio`` is the same ratio in process CPU time
(steadier on a shared machine for single-threaded runs).

Figures (issue 2's targets in brackets):
- ``conv2d``: forward + backward (input, weight and bias gradients) for six layer shapes, and
  their geometric mean [>= 1.0];
- ``cnn_train_step``: one SGD step of conv-BN-ReLU x4, global pool, linear on 32 images of
  64x64 [>= 0.8];
- ``mlp_train_step``: one Adam step of a 3-layer MLP, width 64, batch 16 (framework overhead)
  [>= 0.5];
- ``lstm_packed``: forward + backward of a 1-layer LSTM (hidden 128) over a padded batch of
  variable-length sequences given as a PackedSequence [>= 0.5].
With several threads the framework is measured both ways it can use them (``--strategy``): "framework",
``framework.set_num_threads(n)``, groups of images on its own n threads with NumPy's BLAS on one; and
"blas", NumPy's BLAS on n threads with the rest of the work on one. Each run in the JSON names its
strategy; the top-level ``figures`` are the first run's.
With several threads each timed block follows a 0.3 s rest and 50 ms of untimed calls, so that neither
library's spinning idle workers take the cores from the other's block (without it PyTorch's 2-thread
figures came out up to 2x slow, flattering ours) and both are timed in their steady state (one untimed
call left ours on two threads up to 1.5x slow while PyTorch's was already steady).
NumPy's OpenBLAS uses the CPU's widest kernels, as PyTorch does, unless ``--blas-core inherit``
(see ``benchmarks/_blas.py``: some machines preset ``OPENBLAS_CORETYPE``). Each model runs from
the same weights in both frameworks, and the JSON records the difference between their losses
as a correctness check.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from benchmarks import _blas
from benchmarks._report import emit


def _early_thread_env() -> None:
    """Without threadpoolctl, BLAS threads can only be set before NumPy loads: do it here."""
    n = None
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv) and sys.argv[i + 1].isdigit():
            n = sys.argv[i + 1]
        elif a.startswith("--threads="):
            n = a.split("=", 1)[1]
    n = n or str(os.cpu_count() or 1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, n)


_early_thread_env()
_blas.choose()

import numpy as np  # noqa: E402

CONV_SHAPES = [  # (N, C, H=W, K, kernel, stride, pad)
    (1, 3, 320, 16, 3, 2, 1),
    (1, 64, 80, 64, 3, 1, 1),
    (1, 64, 80, 128, 3, 2, 1),
    (8, 32, 64, 64, 3, 1, 1),
    (8, 128, 16, 128, 3, 1, 1),
    (8, 128, 32, 256, 1, 1, 0),
]
TARGETS = {"conv2d_geomean": 1.0, "cnn_train_step": 0.8, "mlp_train_step": 0.5, "lstm_packed": 0.5}


def _set_threads(n: int):
    """Same thread count for PyTorch and for NumPy's BLAS (threadpoolctl if present)."""
    import torch

    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=n), "threadpoolctl"
    except ImportError:  # env vars set before NumPy loaded are the fallback (see main)
        return None, "environment (OMP/OPENBLAS/MKL_NUM_THREADS)"


def _use_strategy(strategy: str, n: int):
    """How the framework uses ``n`` threads (PyTorch gets ``n`` either way); returns the undo.

    "framework": ``framework.set_num_threads(n)``, its own threads over groups of images (and row blocks
    of large products) with NumPy's BLAS on one. "blas": NumPy's BLAS on ``n`` threads (as set by
    ``_set_threads``), the framework's own work on one. "serial": one thread throughout."""
    import framework as fw
    from framework.kernels.cpu import conv

    before = (conv._THREADS, conv._BATCH_PARALLEL)
    if strategy in ("framework", "serial"):
        fw.set_num_threads(n)  # (holds NumPy's BLAS to one thread; the limiter restores it)
    else:
        conv._THREADS, conv._BATCH_PARALLEL = n, False

    def restore():
        conv._THREADS, conv._BATCH_PARALLEL = before

    return restore


def thread_runs(thread_counts, strategy: str = "both"):
    """For each thread count and each way the framework can use it (``_use_strategy``; "both": its own
    threads, then BLAS's), set both libraries up, yield the run's description ``{"threads", "strategy",
    "thread_control"}`` for the caller to measure in, and restore the settings afterwards."""
    global PAUSE_S
    for threads in thread_counts:
        # With several threads, each library's idle workers spin for a while after its last call (OpenBLAS's
        # and PyTorch's OpenMP alike) and take the cores from the other's next block: measured, PyTorch's
        # small-CNN step read 41 ms straight after ours against 20-21 ms after a 0.3 s rest.
        PAUSE_S = 0.3 if threads > 1 else 0.0
        limiter, how = _set_threads(threads)
        if limiter is None and len(thread_counts) > 1:
            raise SystemExit("several --threads values need threadpoolctl (pip install threadpoolctl)")
        strategies = ["serial"] if threads == 1 else (
            ["framework", "blas"] if strategy == "both" else [strategy])
        for name in strategies:
            restore = _use_strategy(name, threads)
            try:
                yield {"threads": threads, "strategy": name, "thread_control": how}
            finally:
                restore()
        if limiter is not None:
            limiter.restore_original_limits()


PAUSE_S = 0.0  # set by thread_runs: a rest before each timed block when several threads run (see there)
# After the rest, untimed calls for this long before the timed block (at least one call). One call was
# not enough for ours on two threads: on this VM the stride-2 64->128 layer at batch 1 took 12.5 ms right
# after a rest and one untimed call, 8.2-8.4 ms after 50-100 ms of calls (steady state, as in a training
# loop), while PyTorch's took 5.2-5.5 ms either way.
WARM_S = 0.05


def _warm(fn):
    t0 = time.perf_counter()
    fn()
    while time.perf_counter() - t0 < WARM_S:
        fn()



def _time_pair(ours, theirs, repeat: int, warmup: int = 2, min_sample_s: float = 0.05):
    """Median wall-clock and CPU (process) seconds per call of ``ours()`` and ``theirs()``:
    ``(wall_ours, wall_torch, cpu_ours, cpu_torch)``. The two alternate; each sample times enough
    back-to-back calls to last about ``min_sample_s``, so that millisecond-scale steps are not
    at the mercy of the scheduler's time slices."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        ours()
        theirs()
    per_call = (time.perf_counter() - t0) / (2 * warmup)
    inner = max(1, int(min_sample_s / max(per_call, 1e-6)))
    wo, wt, co, ct = [], [], [], []
    for _ in range(repeat):
        if PAUSE_S:  # (rest, then untimed calls: its threads awake, the other library's asleep)
            time.sleep(PAUSE_S)
            _warm(ours)
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(inner):
            ours()
        c1, t1 = time.process_time(), time.perf_counter()
        if PAUSE_S:
            time.sleep(PAUSE_S)
            _warm(theirs)
        c1b, t1b = time.process_time(), time.perf_counter()
        for _ in range(inner):
            theirs()
        c2, t2 = time.process_time(), time.perf_counter()
        wo.append((t1 - t0) / inner)
        wt.append((t2 - t1b) / inner)
        co.append((c1 - c0) / inner)
        ct.append((c2 - c1b) / inner)
    return tuple(statistics.median(v) for v in (wo, wt, co, ct))


def _figure(times, **extra):
    """``ratio`` from wall-clock medians. ``cpu_time_ratio`` compares the CPU time the process
    used (all its threads): on a machine shared with other jobs it is the steadier figure for
    single-threaded runs, since time spent preempted is not counted."""
    t_ours, t_torch, c_ours, c_torch = times
    return dict(ratio=round(t_torch / t_ours, 3), ours_ms=round(t_ours * 1e3, 3),
                torch_ms=round(t_torch * 1e3, 3),
                cpu_time_ratio=round(c_torch / c_ours, 3) if c_ours > 0 else None, **extra)


def _to_fw(t):
    import framework as fw

    return fw.tensor(t.detach().numpy().copy())


def _copy_weights(theirs, ours):
    import framework as fw

    ours.load_state_dict({k: fw.tensor(v.detach().numpy().copy()) for k, v in theirs.state_dict().items()})


# ------------------------------------------------------------------------------------ conv2d


def conv_pair(op, x, w, b, rng, repeat, **kw):
    """Forward + backward (input, weight and bias gradients, for a fixed random output gradient) of
    ``F.<op>`` against ``torch.nn.functional.<op>`` on the same arrays, timed by :func:`_time_pair`.
    Returns (times, {"input_grad_rel_err", "weight_grad_rel_err"}), errors relative to PyTorch's largest."""
    import torch

    import framework as fw
    import framework.nn.functional as F

    f_op, t_op = getattr(F, op), getattr(torch.nn.functional, op)
    fx, fwt, fb = (fw.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, twt, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    g = rng.standard_normal(tuple(f_op(fx, fwt, fb, **kw).shape), dtype=np.float32)
    fg, tg = fw.tensor(g), torch.tensor(g)

    def ours():
        for t in (fx, fwt, fb):
            t.grad = None
        f_op(fx, fwt, fb, **kw).backward(fg)

    def theirs():
        for t in (tx, twt, tb):
            t.grad = None
        t_op(tx, twt, tb, **kw).backward(tg)

    ours()
    theirs()
    errs = {}
    for name, a, ref in (("input_grad_rel_err", fx, tx), ("weight_grad_rel_err", fwt, twt)):
        r = ref.grad.numpy()
        errs[name] = float(f"{float(np.abs(a.grad.numpy() - r).max() / (np.abs(r).max() + 1e-12)):.2e}")
    return _time_pair(ours, theirs, repeat), errs


def geomeans(rows) -> dict:
    """The geometric means of the rows' ``ratio`` and ``cpu_time_ratio``, and the rows."""
    def geo(key):
        vals = [r[key] for r in rows if r[key]]
        return round(math.exp(sum(math.log(v) for v in vals) / len(vals)), 3) if vals else None

    return {"geomean": geo("ratio"), "cpu_time_geomean": geo("cpu_time_ratio"), "shapes": rows}


def _conv_case(shape, rng, repeat):
    n, c, h, k, ks, s, p = shape
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = (rng.standard_normal((k, c, ks, ks)) / math.sqrt(c * ks * ks)).astype(np.float32)
    b = rng.standard_normal(k, dtype=np.float32)
    times, errs = conv_pair("conv2d", x, w, b, rng, repeat, stride=s, padding=p)
    return _figure(times, shape=dict(N=n, C=c, HW=h, K=k, kernel=ks, stride=s, pad=p),
                   weight_grad_rel_err=errs["weight_grad_rel_err"])


def bench_conv(repeat: int, shapes=CONV_SHAPES):
    rng = np.random.default_rng(0)
    return geomeans([_conv_case(shape, rng, repeat) for shape in shapes])


# ------------------------------------------------------------------------------------ models


def _cnn(nn):
    def block(i, o, s):
        return [nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(*block(3, 16, 1), *block(16, 32, 2), *block(32, 64, 2), *block(64, 128, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def _mlp(nn):
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _train_pair(make, batch_shape, n_classes, opt_name, opt_kw, repeat):
    """A classifier from ``make(nn)`` in both frameworks: one ``opt_name`` step on cross-entropy."""
    import torch

    import framework as fw
    import framework.nn  # noqa: F401  (fw.nn)

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(batch_shape, dtype=np.float32)
    y = rng.integers(0, n_classes, size=batch_shape[0])
    targets = {fw: fw.tensor(y), torch: torch.tensor(y)}

    def loss(lib, out):
        return lib.nn.functional.cross_entropy(out, targets[lib])

    return step_pair(make(torch.nn), make(fw.nn), x, loss, opt_name, opt_kw, repeat)


def step_pair(torch_model, our_model, x, loss, opt_name, opt_kw, repeat, **time_kw):
    """One optimizer step (zero_grad, forward, ``loss(lib, output)``, backward, step) of the same model in
    both frameworks, ours given PyTorch's weights, on the array ``x``; timed by :func:`_time_pair`
    (``time_kw``), with the difference of the first losses as a correctness check."""
    import torch

    import framework as fw

    _copy_weights(torch_model, our_model)
    fo = getattr(fw.optim, opt_name)(our_model.parameters(), **opt_kw)
    to = getattr(torch.optim, opt_name)(torch_model.parameters(), foreach=False, **opt_kw)
    fx, tx = fw.tensor(x), torch.tensor(x)
    losses = {}

    def step(lib, model, opt, xx):
        opt.zero_grad()
        value = loss(lib, model(xx))
        value.backward()
        opt.step()
        losses.setdefault(lib.__name__, value.item())

    def ours():
        step(fw, our_model, fo, fx)

    def theirs():
        step(torch, torch_model, to, tx)

    ours()
    theirs()
    diff = abs(losses[fw.__name__] - losses[torch.__name__])
    return _figure(_time_pair(ours, theirs, repeat, **time_kw), first_loss_abs_diff=float(f"{diff:.2e}"))


def bench_cnn(repeat):
    return _train_pair(_cnn, (32, 3, 64, 64), 10, "SGD", dict(lr=0.01, momentum=0.9), repeat)


def bench_mlp(repeat):
    return _train_pair(_mlp, (16, 64), 10, "Adam", dict(lr=1e-3), repeat)


def bench_lstm(repeat, batch=16, max_len=40, input_size=32, hidden=128):
    import torch

    import framework as fw
    import framework.nn  # noqa: F401  (fw.nn)

    rng = np.random.default_rng(2)
    lengths = sorted(rng.integers(5, max_len + 1, size=batch).tolist(), reverse=True)
    lengths[0] = max_len
    x = rng.standard_normal((batch, max_len, input_size), dtype=np.float32)
    for i, n in enumerate(lengths):
        x[i, n:] = 0  # padding
    torch.manual_seed(0)
    tm = torch.nn.LSTM(input_size, hidden, batch_first=True)
    fm = fw.nn.LSTM(input_size, hidden, batch_first=True)
    _copy_weights(tm, fm)
    fx, tx = fw.tensor(x), torch.tensor(x)
    f_len, t_len = list(lengths), torch.tensor(lengths)
    outs = {}

    def run(L, m, xx, ln, key):
        for p in m.parameters():
            p.grad = None
        packed = L.nn.utils.rnn.pack_padded_sequence(xx, ln, batch_first=True, enforce_sorted=False)
        out, (h, _) = m(packed)
        padded, _ = L.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        loss = (padded * padded).sum() + h.sum()
        loss.backward()
        outs.setdefault(key, loss.item())

    def ours():
        run(fw, fm, fx, f_len, "ours")

    def theirs():
        run(torch, tm, tx, t_len, "torch")

    ours()
    theirs()
    rel = abs(outs["ours"] - outs["torch"]) / abs(outs["torch"])
    print(f"[benchmarks.cpu] lstm loss: ours {outs['ours']:.6g}, torch {outs['torch']:.6g}", file=sys.stderr)
    times = _time_pair(ours, theirs, repeat)
    return _figure(times, batch=batch, max_len=max_len, input_size=input_size, hidden=hidden,
                   loss_rel_diff=float(f"{rel:.2e}"))


# ------------------------------------------------------------------------------------ main


def machine_info() -> dict:
    import torch

    info = dict(python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
                platform=platform.platform(), processor=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count())
    try:
        info["load_average_1m"] = round(os.getloadavg()[0], 2)  # other processes on a shared machine
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = sorted({f"{d.get('internal_api')} {d.get('version')}" for d in threadpool_info()})
    except ImportError:
        pass
    info.update(_blas.info())
    return info


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="thread counts to measure, for both frameworks (default: all cores); "
                         "several need threadpoolctl")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per figure (median reported)")
    ap.add_argument("--quick", action="store_true", help="3 repeats (a smoke test, noisy figures)")
    ap.add_argument("--only", nargs="*", default=None,
                    choices=["conv2d", "cnn_train_step", "mlp_train_step", "lstm_packed"])
    ap.add_argument("--strategy", choices=["both", "framework", "blas"], default="both",
                    help="with several threads, how the framework uses them: its own threads over groups of "
                         "images with BLAS on one (framework.set_num_threads), or NumPy's BLAS threads only")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cpu.json"))
    _blas.add_argument(ap)
    args = ap.parse_args(argv)
    thread_counts = args.threads or [os.cpu_count() or 1]
    repeat = 3 if args.quick else args.repeat
    benches = {"conv2d": bench_conv, "cnn_train_step": bench_cnn, "mlp_train_step": bench_mlp,
               "lstm_packed": bench_lstm}
    runs = []
    for run in thread_runs(thread_counts, args.strategy):
        figures = {}
        for name, fn in benches.items():
            if args.only is None or name in args.only:
                print(f"[benchmarks.cpu] threads={run['threads']} ({run['strategy']}) {name} ...",
                      file=sys.stderr, flush=True)
                figures[name] = fn(repeat)
        runs.append({**run, "figures": figures})
    result = {"benchmark": "cpu", "unit": "ratio torch_time / framework_time (>1: framework faster)",
              "command": "python -m benchmarks.cpu " + " ".join(sys.argv[1:] if argv is None else argv),
              "repeat": repeat, "machine": machine_info(), "targets": TARGETS,
              "figures": runs[0]["figures"], "threads": runs[0]["threads"], "runs": runs,
              "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if len(runs) == 1:
        del result["runs"]
    emit(result, args.out, indent=2)
    return result


if __name__ == "__main__":
    main()
