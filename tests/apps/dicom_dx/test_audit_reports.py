"""Audit regressions for metrics (NaN scores, empty calibration) and the DICOM objects written back
to PACS (Basic Text SR, Secondary Capture): character set, type 2 attributes, pixel module."""

import numpy as np
import pytest

from apps.dicom_dx import metrics as M


def test_nan_score_is_an_error_not_silently_dropped():
    """A NaN probability (diverged model) must not shrink the evaluated set without a word: before,
    the NaN-scored positive was dropped and AUROC read 1.0 on the rest."""
    y = np.array([1, 1, 0, 0])
    s = np.array([0.9, np.nan, 0.2, 0.1])
    for fn in (M.auroc, M.roc_curve, M.expected_calibration_error):
        with pytest.raises(ValueError, match="NaN"):
            fn(y, s)
    with pytest.raises(ValueError, match="NaN"):
        M.sens_spec(y, s, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        M.operating_threshold(y, s, 0.9)


def test_nan_labels_are_still_left_out():
    y = np.array([1, np.nan, 0, 0])
    s = np.array([0.9, 0.5, 0.2, 0.1])
    assert M.auroc(y, s) == 1.0 and M.confusion(y, s, 0.5) == {"tp": 1, "fp": 0, "tn": 2, "fn": 0}


def test_ece_without_labelled_samples_is_nan_not_perfect():
    assert np.isnan(M.expected_calibration_error(np.full(3, np.nan), np.array([0.1, 0.5, 0.9])))
    assert np.isnan(M.expected_calibration_error(np.zeros(0), np.zeros(0)))
    rep = M.multilabel_report(np.full((3, 1), np.nan), np.full((3, 1), 0.3), ["a"], {"a": 0.5})
    assert np.isnan(rep["findings"]["a"]["ece"]) and np.isnan(rep["findings"]["a"]["auroc"])


def test_auroc_one_class_is_nan_and_sens_spec_by_hand_with_ties():
    assert np.isnan(M.auroc([1, 1, 1], [0.2, 0.4, 0.9]))
    assert np.isnan(M.auroc([0, 0], [0.2, 0.4]))
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.8, 0.5, 0.5, 0.5, 0.3, 0.3, 0.9])
    # pairs (pos, neg): 0.8 beats 3 of 4 negatives; each 0.5 beats 2, ties 1, loses to 0.9.
    assert abs(M.auroc(y, s) - (3 + 2.5 + 2.5) / 12) < 1e-12
    sens, spec = M.sens_spec(y, s, 0.5)  # rule: score >= threshold, ties go positive
    assert (sens, spec) == (1.0, 0.5)
