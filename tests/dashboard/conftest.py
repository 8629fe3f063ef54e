"""Shared fixtures for the dashboard tests: AppTests of the whole multipage app."""

from pathlib import Path

import pytest

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


@pytest.fixture
def make_app():
    """A factory of fresh AppTests of ``streamlit_app.py``, each already run once (Home page)."""
    from streamlit.testing.v1 import AppTest

    def make(timeout: float = 120):
        at = AppTest.from_file(APP, default_timeout=timeout)
        at.run()
        return at

    return make


@pytest.fixture
def app(make_app):
    return make_app()
