"""Shared fixtures: a tiny synthetic data set (small images, fast) and a tiny untrained predictor."""

import pytest

from apps.dicom_dx.synth import generate


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """6 chest radiographs (prevalence 0.5) + 9 negatives (one per kind), 96-128 px."""
    root = tmp_path_factory.mktemp("synth")
    generate(root, 6, seed=7, prevalence=0.5, negatives=9, size_range=(96, 128), render_max=96)
    return root


@pytest.fixture(scope="session")
def tiny_predictor():
    from apps.dicom_dx.inference import untrained_predictor

    return untrained_predictor(size=32, widths=(4, 8, 8, 8))
