"""Dashboard entry point: ``streamlit run streamlit_app.py``."""

import streamlit as st

st.set_page_config(page_title="DL suite", layout="wide")
st.title("Deep-learning suite")
st.write("DICOM diagnosis, driving perception and the framework they stand on.")
