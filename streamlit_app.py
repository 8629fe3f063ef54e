"""Dashboard entry point: ``streamlit run streamlit_app.py``.

Registers the pages of ``apps/dashboard/`` with Streamlit's multipage navigation. Each page is
presentation only: it calls the public functions of ``apps.dicom_dx``, ``apps.perception`` and
``framework``.
"""

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
PAGES = HERE / "apps" / "dashboard"

st.set_page_config(page_title="dlsuite dashboard", page_icon=":material/radiology:", layout="wide")

pages = {
    "Overview": [st.Page(PAGES / "home.py", title="Home", icon=":material/home:", default=True)],
    "Radiology": [
        st.Page(PAGES / "dicom.py", title="DICOM diagnosis", icon=":material/radiology:"),
        st.Page(PAGES / "batch.py", title="Batch analysis", icon=":material/folder_open:"),
    ],
    "Driving": [st.Page(PAGES / "perception.py", title="Perception", icon=":material/directions_car:")],
    "Framework": [st.Page(PAGES / "framework_lab.py", title="Framework lab", icon=":material/science:")],
}

st.navigation(pages).run()
