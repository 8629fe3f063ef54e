"""Classification metrics for multi-label findings, NumPy only.

AUROC via the Mann–Whitney U statistic with tied scores counted as 1/2; operating thresholds at a
stated sensitivity; sensitivity/specificity and confusion counts; expected calibration error with
equal-width bins (Guo et al., 2017); a reliability diagram drawn as a PNG with OpenCV.
Labels may be NaN (unknown, e.g. CheXpert's uncertain labels under the "ignore" policy): such
entries are left out per finding. Scores must be numbers: a NaN score (a diverged model, a failed
decode) raises ValueError rather than being left out, which would silently change the set measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "auroc",
    "roc_curve",
    "threshold_at_sensitivity",
    "confusion",
    "sens_spec",
    "expected_calibration_error",
    "reliability_bins",
    "reliability_png",
    "multilabel_report",
]


def _valid(y, s):
    y = np.asarray(y, np.float64).ravel()
    s = np.asarray(s, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} of {s.size} scores are NaN; scores must all be numbers")
    keep = ~np.isnan(y)
    return y[keep] > 0.5, s[keep]


def _ranks(s: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) with ties sharing the mean rank."""
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based positions start+1 … end
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(y, scores) -> float:
    """Area under the ROC curve = P(score of a random positive > that of a random negative) + ½ P(tie).
    NaN when only one class is present."""
    y, s = _valid(y, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(s)
    u = r[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y, scores):
    """(fpr, tpr, thresholds), thresholds decreasing; a point per distinct score, starting at (0, 0)."""
    y, s = _valid(y, scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    P, N = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / N], np.r_[0.0, tp / P], np.r_[np.inf, s[last]]


def threshold_at_sensitivity(y, scores, sensitivity: float = 0.9) -> float:
    """The highest threshold t such that the rule score ≥ t reaches at least `sensitivity` on
    the positives (so specificity is as high as that sensitivity allows). Raises ValueError when
    there is no positive case: no threshold reaches a sensitivity then."""
    y, s = _valid(y, scores)
    pos = np.sort(s[y])[::-1]
    if len(pos) == 0:
        raise ValueError("threshold at a sensitivity: no positive case among the labelled samples")
    k = int(np.ceil(sensitivity * len(pos))) - 1
    return float(pos[min(max(k, 0), len(pos) - 1)])


def operating_threshold(y, scores, sensitivity: float = 0.9) -> float:
    """The operating threshold for a stated sensitivity: maximise specificity subject to
    sensitivity ≥ `sensitivity`, then, among thresholds with that specificity, take the most
    sensitive one, and place the threshold midway between that positive score and the next lower
    negative score (so that a well-separated finding is not cut at its 10th-percentile positive).
    Rule: score ≥ threshold. Raises ValueError without a positive case."""
    y, s = _valid(y, scores)
    t_hi = threshold_at_sensitivity(y, s, sensitivity)
    neg = np.sort(s[~y])
    fp_hi = int((neg >= t_hi).sum())
    # Lowest positive score that adds no false positive beyond those at t_hi.
    pos = np.sort(s[y])
    below_neg = neg[neg < t_hi]
    floor = below_neg[-1] if len(below_neg) else -np.inf
    cands = pos[(pos > floor) & (pos <= t_hi)]
    t_lo = float(cands[0]) if len(cands) else t_hi
    assert int((neg >= t_lo).sum()) == fp_hi
    if not np.isfinite(floor):
        return float(t_lo / 2 if t_lo > 0 else t_lo)
    mid = (t_lo + floor) / 2
    # Between two adjacent floats the midpoint rounds onto one of them; onto the negative's score,
    # the rule score ≥ threshold would take that negative in as a false positive.
    return float(mid) if mid > floor else float(t_lo)


def confusion(y, scores, threshold: float) -> dict[str, int]:
    y, s = _valid(y, scores)
    pred = s >= threshold
    return {
        "tp": int((pred & y).sum()),
        "fp": int((pred & ~y).sum()),
        "tn": int((~pred & ~y).sum()),
        "fn": int((~pred & y).sum()),
    }


def sens_spec(y, scores, threshold: float) -> tuple[float, float]:
    c = confusion(y, scores, threshold)
    sens = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else float("nan")
    spec = c["tn"] / (c["tn"] + c["fp"]) if c["tn"] + c["fp"] else float("nan")
    return float(sens), float(spec)


def reliability_bins(y, probs, n_bins: int = 10):
    """Per equal-width probability bin: (bin centres, mean predicted, observed frequency, counts)."""
    y, p = _valid(y, probs)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    conf = np.bincount(idx, weights=p, minlength=n_bins) / np.maximum(counts, 1)
    freq = np.bincount(idx, weights=y.astype(np.float64), minlength=n_bins) / np.maximum(counts, 1)
    return (edges[:-1] + edges[1:]) / 2, conf, freq, counts


def expected_calibration_error(y, probs, n_bins: int = 10) -> float:
    """ECE = Σ_b (n_b / n) |mean prob_b − positive rate_b| over equal-width bins; NaN when no
    labelled sample is left (not 0, which would read as perfect calibration)."""
    _, conf, freq, counts = reliability_bins(y, probs, n_bins)
    n = counts.sum()
    if n == 0:
        return float("nan")
    return float((counts / n * np.abs(conf - freq)).sum())


def reliability_png(path: str | Path, curves: dict[str, tuple], size: int = 480) -> Path:
    """Draw a reliability diagram: one line per finding (mean predicted vs observed frequency,
    non-empty bins only) and the diagonal. `curves` maps name → reliability_bins(...)."""
    import cv2

    img = np.full((size, size, 3), 255, np.uint8)
    m = 40
    span = size - 2 * m

    def pt(px, py):
        return int(m + px * span), int(size - m - py * span)

    cv2.rectangle(img, pt(0, 0), pt(1, 1), (0, 0, 0), 1)
    cv2.line(img, pt(0, 0), pt(1, 1), (160, 160, 160), 1, cv2.LINE_AA)
    for t in np.linspace(0, 1, 6):
        cv2.putText(
            img, f"{t:.1f}", (pt(t, 0)[0] - 10, size - m + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1
        )
        cv2.putText(img, f"{t:.1f}", (4, pt(0, t)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
    for i, (name, (_, conf, freq, counts)) in enumerate(curves.items()):
        c = colours[i % len(colours)][::-1]
        pts = [pt(a, b) for a, b, n in zip(conf, freq, counts) if n > 0]
        for a, b in zip(pts[:-1], pts[1:]):
            cv2.line(img, a, b, c, 2, cv2.LINE_AA)
        for p_ in pts:
            cv2.circle(img, p_, 3, c, -1, cv2.LINE_AA)
        cv2.putText(img, name, (m + 8, m + 16 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1, cv2.LINE_AA)
    cv2.putText(
        img,
        "mean predicted probability",
        (size // 2 - 90, size - 6),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4,
        (0, 0, 0),
        1,
    )
    cv2.putText(img, "observed frequency", (m, m - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def multilabel_report(
    y: np.ndarray, probs: np.ndarray, names: list[str], thresholds: dict[str, float], n_bins: int = 10
) -> dict:
    """Per finding: AUROC, threshold, sensitivity, specificity, confusion, ECE, prevalence; and the
    macro AUROC (mean over findings with both classes present). y, probs: (N, K)."""
    out: dict = {"findings": {}}
    aucs = []
    for k, name in enumerate(names):
        a = auroc(y[:, k], probs[:, k])
        t = float(thresholds.get(name, 0.5))
        sens, spec = sens_spec(y[:, k], probs[:, k], t)
        yk = y[:, k][~np.isnan(y[:, k])]
        out["findings"][name] = {
            "auroc": a,
            "threshold": t,
            "sensitivity": sens,
            "specificity": spec,
            "confusion": confusion(y[:, k], probs[:, k], t),
            "ece": expected_calibration_error(y[:, k], probs[:, k], n_bins),
            "n": int(len(yk)),
            "prevalence": float(yk.mean()) if len(yk) else float("nan"),
        }
        if not np.isnan(a):
            aucs.append(a)
    out["macro_auroc"] = float(np.mean(aucs)) if aucs else float("nan")
    return out
