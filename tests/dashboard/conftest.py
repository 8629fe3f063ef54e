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


@pytest.fixture(autouse=True)
def fresh_streamlit_caches():
    """Streamlit's caches are process-wide and outlive an AppTest: clear them around each test so
    that a model or a result cached by one test (e.g. a stand-in model) never leaks into another."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()
