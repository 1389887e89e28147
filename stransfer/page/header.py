"""The first thing a visitor sees, sent before any other module of the page is imported."""

import streamlit as st


def header() -> None:
    st.set_page_config(page_title="Stransfer", page_icon="🎨", layout="wide")
    st.title("Stransfer", anchor=False)  # no link icon beside it (always shown on a phone)
    st.caption("Neural style transfer: paint a photo in the style of another image, step by step.")
