"""The admin page: live totals, worker table, traffic charts and operator actions."""

from __future__ import annotations

import datetime as dt
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from controller.settings import DISPATCH_METHODS
from webui import boot
from webui.client import ControllerClient, ControllerError
from webui.i18n import t

# One poll serves every admin tab refreshing within this window.
POLL_TTL_S = 1.5
# A chart with hundreds of lines is unreadable; show the busiest workers.
MAX_CHART_WORKERS = 10


def lang() -> str:
    return st.session_state.get("lang", "en")


@dataclass
class Snapshot:
    """What one admin refresh shows, polled from the controller."""

    workers: list[dict[str, Any]] = field(default_factory=list)
    dispatch_method: str = ""
    heart_beat_expiration_s: float = 0.0
    models: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    polled_at: float = 0.0


@st.cache_data(ttl=POLL_TTL_S, show_spinner=False)
def poll(controller_url: str) -> Snapshot:
    """One poll of /workers, /models and /stats, shared by all sessions for POLL_TTL_S."""
    client = ControllerClient(controller_url, timeout_s=3.0)
    try:
        workers = client.workers()
        models = client.models()
        stats = client.stats()
    except ControllerError as exc:
        return Snapshot(error=str(exc), polled_at=time.time())
    return Snapshot(
        workers=workers.get("workers", []),
        dispatch_method=workers.get("dispatch_method", ""),
        heart_beat_expiration_s=float(workers.get("heart_beat_expiration_s", 0.0)),
        models=[{"name": m.name, "multimodal": m.multimodal, "workers": m.workers} for m in models],
        stats=stats,
        polled_at=time.time(),
    )


def requests_per_minute(stats: dict[str, Any], now_s: float | None = None) -> float:
    """Streams started in the last minute, from the controller's time series."""
    points = stats.get("points", [])
    if not points:
        return 0.0
    now_s = now_s if now_s is not None else max(p["t"] for p in points)
    return float(sum(p.get("requests", 0) for p in points if p["t"] > now_s - 60.0))


def worker_table(snapshot: Snapshot, lg: str) -> pd.DataFrame:
    """One row per worker, in the column order of the table."""
    rows = [
        {
            t("col_address", lg): w.get("address", ""),
            t("col_models", lg): ", ".join(w.get("model_names", [])),
            t("col_images", lg): bool(w.get("multimodal")),
            t("col_speed", lg): w.get("speed", 0),
            t("col_queue", lg): w.get("queue_length", 0),
            t("col_in_flight", lg): w.get("in_flight", 0),
            t("col_heartbeat", lg): round(float(w.get("seconds_since_heartbeat", 0.0)), 1),
            t("col_status", lg): w.get("status", ""),
        }
        for w in snapshot.workers
    ]
    return pd.DataFrame(rows)


def _highlight_late(row: pd.Series, status_column: str) -> list[str]:
    color = {"late": "background-color: #fff3cd", "expired": "background-color: #f8d7da"}
    return [color.get(row[status_column], "")] * len(row)


def queue_series(stats: dict[str, Any]) -> pd.DataFrame:
    """Queue length over time, one column per worker (the busiest ones)."""
    points = stats.get("points", [])
    if not points:
        return pd.DataFrame()
    frame = pd.DataFrame(
        [p.get("queue_length", {}) for p in points],
        index=pd.to_datetime([p["t"] for p in points], unit="s"),
    ).fillna(0)
    if frame.shape[1] > MAX_CHART_WORKERS:
        busiest = frame.max().sort_values(ascending=False).index[:MAX_CHART_WORKERS]
        frame = frame[busiest]
    return frame


def rate_series(stats: dict[str, Any]) -> pd.DataFrame:
    """Requests and errors per minute over time."""
    points = stats.get("points", [])
    if not points:
        return pd.DataFrame()
    per_minute = 60.0 / float(stats.get("interval_s") or 60.0)
    return pd.DataFrame(
        {
            "requests/min": [p.get("requests", 0) * per_minute for p in points],
            "errors/min": [p.get("errors", 0) * per_minute for p in points],
        },
        index=pd.to_datetime([p["t"] for p in points], unit="s"),
    )


def _metrics(snapshot: Snapshot, lg: str) -> None:
    workers = snapshot.workers
    totals = snapshot.stats.get("totals", {})
    cols = st.columns(6)
    cols[0].metric(t("workers", lg), len(workers))
    cols[1].metric(t("models", lg), len(snapshot.models))
    cols[2].metric(t("in_flight", lg), sum(int(w.get("in_flight", 0)) for w in workers))
    cols[3].metric(t("total_queue", lg), sum(int(w.get("queue_length", 0)) for w in workers))
    cols[4].metric(t("requests_per_min", lg), f"{requests_per_minute(snapshot.stats):g}")
    cols[5].metric(t("errors", lg), int(totals.get("errors", 0)))


def _charts(snapshot: Snapshot, lg: str) -> None:
    left, right = st.columns(2)
    queues, rates = queue_series(snapshot.stats), rate_series(snapshot.stats)
    with left:
        st.markdown(f"**{t('queue_chart', lg)}**")
        if queues.empty:
            st.caption(t("no_stats", lg))
        else:
            st.line_chart(queues, height=220)
    with right:
        st.markdown(f"**{t('rate_chart', lg)}**")
        if rates.empty:
            st.caption(t("no_stats", lg))
        else:
            st.area_chart(rates, height=220)


def _dashboard(controller_url: str, refresh_s: float) -> Snapshot:
    lg = lang()
    snapshot = poll(controller_url)
    if snapshot.error:
        st.error(snapshot.error, icon=":material/cloud_off:")
        return snapshot
    _metrics(snapshot, lg)
    if snapshot.workers:
        table = worker_table(snapshot, lg)
        status = t("col_status", lg)
        st.dataframe(
            table.style.apply(_highlight_late, axis=1, status_column=status),
            hide_index=True, use_container_width=True,
            height=min(38 + 35 * len(table), 420),
        )
        st.caption(t("late_legend", lg))
    else:
        st.info(t("no_workers", lg))
    _charts(snapshot, lg)
    polled = dt.datetime.fromtimestamp(snapshot.polled_at).strftime("%H:%M:%S")
    st.caption(t("updated", lg, time=polled, seconds=refresh_s))
    return snapshot


def _actions(client: ControllerClient, snapshot: Snapshot) -> None:
    lg = lang()
    refresh_col, dispatch_col = st.columns(2)
    with refresh_col:
        if st.button(t("refresh_all", lg), icon=":material/sync:"):
            _run(lambda: _refreshed(client.refresh_all_workers(), lg))
    with dispatch_col, st.form("dispatch", border=False):
        current = snapshot.dispatch_method
        method = st.selectbox(
            t("dispatch_method", lg), DISPATCH_METHODS,
            index=DISPATCH_METHODS.index(current) if current in DISPATCH_METHODS else 0,
        )
        if st.form_submit_button(t("apply", lg)):
            _run(lambda: t("dispatch_set", lg, method=client.set_dispatch_method(method)))

    remove_col, register_col = st.columns(2)
    with remove_col, st.form("remove", border=False):
        addresses = [w.get("address", "") for w in snapshot.workers]
        address = st.selectbox(t("remove_worker", lg), addresses, index=None)
        if st.form_submit_button(t("remove", lg), disabled=not addresses) and address:
            _run(lambda: t("removed" if client.remove_worker(address) else "not_found", lg,
                           address=address))
    with register_col, st.form("register", border=False, clear_on_submit=True):
        new_address = st.text_input(t("register_worker", lg), placeholder="http://host:21002")
        if st.form_submit_button(t("register", lg)) and new_address.strip():
            address = new_address.strip().rstrip("/")
            _run(lambda: (client.register_worker(address), t("registered", lg, address=address))[1])


def _refreshed(result: dict[str, Any], lg: str) -> str:
    removed = ", ".join(result.get("removed", [])) or "-"
    return t("refreshed", lg, n=result.get("workers", 0), removed=removed)


def _run(action: Any) -> None:
    """Run an operator action, keep its outcome for the next run, and show fresh data."""
    try:
        st.session_state.admin_notice = ("success", action())
    except ControllerError as exc:
        st.session_state.admin_notice = ("error", str(exc))
    poll.clear()
    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:
        # A full run (first view, tests) is not a fragment rerun: rerun the page instead.
        st.rerun()


def _live(controller_url: str, refresh_s: float) -> None:
    """Dashboard and actions; rerun as a fragment every `refresh_s` and after each action."""
    notice = st.session_state.pop("admin_notice", None)
    if notice is not None:
        level, text = notice
        (st.success if level == "success" else st.error)(text)
    snapshot = _dashboard(controller_url, refresh_s)
    st.divider()
    _actions(ControllerClient(controller_url), snapshot)


def _authorised(password: str | None) -> bool:
    if not password:
        return True
    if st.session_state.get("admin_ok"):
        return True
    lg = lang()
    with st.form("login"):
        given = st.text_input(t("password", lg), type="password")
        submitted = st.form_submit_button("OK")
    if submitted:
        # Constant-time comparison: the response time must not leak how much matched.
        if hmac.compare_digest(given.encode(), password.encode()):
            st.session_state.admin_ok = True
            st.rerun()
        st.error(t("password_wrong", lg))
    return False


def render() -> None:
    """The whole admin page."""
    settings = boot.app_settings()
    if not _authorised(settings.admin_password):
        return
    controller_url = boot.controller_url()
    st.subheader(t("admin_title", lang()))
    st.caption(controller_url)
    st.fragment(run_every=settings.admin_refresh_s)(_live)(
        controller_url, settings.admin_refresh_s
    )
