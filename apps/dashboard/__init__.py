"""The Streamlit dashboard: presentation only.

``streamlit_app.py`` (the entry point, ``streamlit run streamlit_app.py``) registers one page per module
here through ``st.navigation``: ``home``, ``dicom``, ``batch``, ``perception`` and ``framework_lab``.
The pages call the public functions of ``apps.dicom_dx`` and ``apps.perception``; they hold no domain
logic. Helpers that do not touch Streamlit (``lab``: the live-training loop of the Framework lab and the
benchmark-file reader; ``uploads``: upload validation) are plain Python and are unit-tested as such.
"""

PAGES = ("home", "dicom", "batch", "perception", "framework_lab")
