"""Shared test settings: hypothesis profile (no deadlines on a shared CPU) and a seeded RNG."""

import numpy as np
import pytest

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", deadline=None, max_examples=40,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("ci")
except ImportError:  # hypothesis is a dev extra; tests that need it skip themselves
    pass


@pytest.fixture
def rng():
    """A NumPy generator with a fixed seed, so each test sees the same data every run."""
    return np.random.default_rng(0)
