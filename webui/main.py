"""The Streamlit script of the app: boot notices, language switch, navigation over the pages."""

from __future__ import annotations

import streamlit as st

from webui import boot
from webui.i18n import LANGUAGES, t
from webui.settings import REPO_ROOT


def render_notices(runtime: boot.AppRuntime) -> None:
    """Start-up problems on every page, instead of a traceback in the terminal."""
    for notice in [*runtime.notices, *runtime.worker_notices()]:
        show = {"error": st.error, "warning": st.warning}.get(notice.level, st.info)
        show(notice.text)


def run() -> None:
    """Boot (once per process) and run the page the browser asked for."""
    runtime = boot.ensure_started()
    st.set_page_config(page_title="Vision chat", page_icon=":material/forum:", layout="wide")
    with st.sidebar:
        lang = st.radio(
            t("language", st.session_state.get("lang", "en")), list(LANGUAGES),
            format_func=LANGUAGES.__getitem__, horizontal=True, key="lang",
        )
    pages = st.navigation([
        st.Page(REPO_ROOT / "pages" / "chat.py", title=t("page_chat", lang),
                icon=":material/chat:", url_path="chat", default=True),
        st.Page(REPO_ROOT / "pages" / "admin.py", title=t("page_admin", lang),
                icon=":material/monitoring:", url_path="admin"),
    ])
    render_notices(runtime)
    pages.run()


run()
