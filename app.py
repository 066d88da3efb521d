"""Streamlit entry: `streamlit run app.py [-- options]` boots the controller and a worker.

The controller starts when the Streamlit server starts (the st.App lifespan), before any browser
connects, so workers on other machines can register at once. The page script is webui/main.py.
Options: docs/app.md. FastAPI is built in controller/, never here: Streamlit would serve an
ASGI app it finds constructed in this file instead of the pages.
"""

import streamlit as st

from webui.boot import lifespan

app = st.App("webui/main.py", lifespan=lifespan)
