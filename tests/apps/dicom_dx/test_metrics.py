"""Metrics against brute-force oracles."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.dicom_dx import metrics as M


def brute_auroc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=40))
def test_auroc_matches_pairwise_count_with_ties(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], float) / 6
    if y.min() == y.max():
        assert np.isnan(M.auroc(y, s))
    else:
        assert abs(M.auroc(y, s) - brute_auroc(y, s)) < 1e-12


def test_auroc_ignores_nan_labels_and_roc_curve_area():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300).astype(float)
    s = rng.random(300) + 0.6 * y
    y2 = y.copy()
    y2[:50] = np.nan
    assert abs(M.auroc(y2, s) - brute_auroc(y[50:], s[50:])) < 1e-12
    fpr, tpr, _ = M.roc_curve(y, s)
    assert abs(np.trapezoid(tpr, fpr) - M.auroc(y, s)) < 1e-9


def test_threshold_reaches_sensitivity_and_is_the_highest():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = rng.random(500) + 0.5 * y
    for target in (0.8, 0.9, 0.95):
        t = M.threshold_at_sensitivity(y, s, target)
        sens, _ = M.sens_spec(y, s, t)
        assert sens >= target
        higher = np.nextafter(t, 2)
        assert M.sens_spec(y, s, higher)[0] < target


def test_confusion_and_ece_by_hand():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.4, 0.35, 0.1, 0.8])
    assert M.confusion(y, p, 0.5) == {"tp": 2, "fp": 0, "tn": 2, "fn": 1}
    # bins of width 0.5: [0.1, 0.35, 0.4] mean 0.2833 freq 1/3; [0.8, 0.9] mean 0.85 freq 1
    ece = 3 / 5 * abs(0.85 / 3 - 1 / 3) + 2 / 5 * abs(0.85 - 1.0)
    assert abs(M.expected_calibration_error(y, p, n_bins=2) - ece) < 1e-12


def test_reliability_png_and_report(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, (200, 2)).astype(float)
    p = np.clip(y * 0.6 + rng.random((200, 2)) * 0.4, 0, 1)
    rep = M.multilabel_report(y, p, ["a", "b"], {"a": 0.5, "b": 0.5})
    assert set(rep["findings"]) == {"a", "b"} and 0.5 < rep["macro_auroc"] <= 1
    path = M.reliability_png(tmp_path / "r.png", {"a": M.reliability_bins(y[:, 0], p[:, 0])})
    import cv2

    assert cv2.imread(str(path)).shape == (480, 480, 3)


def test_operating_threshold_keeps_sensitivity_and_centres_in_the_gap():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 400)
    s = rng.random(400) + 0.7 * y
    for target in (0.8, 0.9):
        t = M.operating_threshold(y, s, target)
        best = M.sens_spec(y, s, M.threshold_at_sensitivity(y, s, target))
        sens, spec = M.sens_spec(y, s, t)
        assert sens >= best[0] >= target and spec == best[1]
    # Perfectly separated: the threshold sits between the classes, all positives kept.
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 0.991, 0.992, 0.993, 0.999])
    assert M.operating_threshold(y, s, 0.9) == (0.9 + 0.3) / 2
