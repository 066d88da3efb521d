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
    # GET /health: registry backend, degraded or not, open registration.
    health: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    polled_at: float = 0.0


@st.cache_data(ttl=POLL_TTL_S, show_spinner=False)
def poll(controller_url: str) -> Snapshot:
    """One poll of /health, /workers, /models and /stats, shared by all sessions for POLL_TTL_S."""
    client = ControllerClient(controller_url, timeout_s=3.0)
    try:
        health = client.health()
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
        health=health,
        polled_at=time.time(),
    )


def requests_per_minute(stats: dict[str, Any], now_s: float | None = None) -> float:
    """Streams started in the last minute, from the controller's time series."""
    points = stats.get("points", [])
    if not points:
        return 0.0
    now_s = now_s if now_s is not None else max(p["t"] for p in points)
    return float(sum(p.get("requests", 0) for p in points if p["t"] > now_s - 60.0))


# Status shown as a coloured label: a Styler colours whole rows too, but cost half the refresh
# time with 200 workers.
STATUSES = ("healthy", "late", "expired")
STATUS_COLORS = ("#21c354", "#ffa421", "#ff4b4b")
# The controller says half_open; the table shows words.
BREAKER_LABELS = {"closed": "closed", "half_open": "half-open", "open": "open"}
BREAKERS = tuple(BREAKER_LABELS.values())
BREAKER_COLORS = ("#21c354", "#ffa421", "#ff4b4b")


def _trouble_rank(worker: dict[str, Any]) -> int:
    """0 first: expired or breaker open; then late or half-open; healthy and closed last."""
    status, breaker = worker.get("status", ""), worker.get("breaker", "closed")
    if status == "expired" or breaker == "open":
        return 0
    if status == "late" or breaker == "half_open":
        return 1
    return 2


def worker_table(snapshot: Snapshot, lg: str) -> pd.DataFrame:
    """One row per worker, those in trouble first, in the column order of the table."""
    workers = sorted(snapshot.workers, key=lambda w: (_trouble_rank(w), w.get("address", "")))
    rows = [
        {
            t("col_status", lg): [w.get("status", "")],
            t("col_breaker", lg): [BREAKER_LABELS.get(w.get("breaker", "closed"),
                                                      str(w.get("breaker", "")))],
            t("col_failures", lg): int(w.get("consecutive_failures", 0)),
            t("col_address", lg): w.get("address", ""),
            t("col_models", lg): ", ".join(w.get("model_names", [])),
            t("col_images", lg): bool(w.get("multimodal")),
            t("col_speed", lg): w.get("speed", 0),
            t("col_queue", lg): w.get("queue_length", 0),
            t("col_in_flight", lg): w.get("in_flight", 0),
            t("col_heartbeat", lg): round(float(w.get("seconds_since_heartbeat", 0.0)), 1),
        }
        for w in workers
    ]
    return pd.DataFrame(rows)


def late_workers(snapshot: Snapshot) -> list[str]:
    """Addresses of workers whose heartbeat is late or expired."""
    return [w.get("address", "") for w in snapshot.workers
            if w.get("status") in ("late", "expired")]


def open_breakers(snapshot: Snapshot) -> list[str]:
    """Addresses of workers taken out of dispatch by their circuit breaker."""
    return [w.get("address", "") for w in snapshot.workers if w.get("breaker") == "open"]


def _listed(addresses: list[str]) -> str:
    return ", ".join(addresses[:5]) + (" …" if len(addresses) > 5 else "")


def _health_banners(snapshot: Snapshot, lg: str) -> None:
    """Registry backend, a degraded shared registry, and open registration, said plainly."""
    health = snapshot.health
    registry = health.get("registry", "memory")
    if registry == "redis":
        age = health.get("snapshot_age_s")
        st.caption(t("registry_redis", lg) + (
            "" if age is None else " " + t("registry_synced", lg, seconds=float(age))
        ))
    else:
        st.caption(t("registry_memory", lg))
    if health.get("status") == "degraded":
        st.error(t("registry_degraded", lg, error=health.get("redis_error") or "-"),
                 icon=":material/sync_problem:")
    if health.get("registration") == "open":
        st.warning(t("registration_open", lg), icon=":material/lock_open:")


def _short(address: str) -> str:
    """host:port, enough to tell workers apart in a chart legend."""
    return address.split("://", 1)[-1]


def queue_series(stats: dict[str, Any]) -> pd.DataFrame:
    """Queue length over time in long form (time, worker, queue), for the busiest workers."""
    points = stats.get("points", [])
    if not points:
        return pd.DataFrame(columns=["time", "worker", "queue"])
    wide = pd.DataFrame(
        [{_short(address): n for address, n in p.get("queue_length", {}).items()}
         for p in points],
        index=pd.to_datetime([p["t"] for p in points], unit="s"),
    ).fillna(0)
    if wide.shape[1] > MAX_CHART_WORKERS:
        busiest = wide.max().sort_values(ascending=False).index[:MAX_CHART_WORKERS]
        wide = wide[busiest]
    return wide.rename_axis("time").reset_index().melt(
        "time", var_name="worker", value_name="queue"
    )


def rate_series(stats: dict[str, Any]) -> pd.DataFrame:
    """Requests and errors per minute over time in long form (time, kind, per_minute)."""
    points = stats.get("points", [])
    if not points:
        return pd.DataFrame(columns=["time", "kind", "per_minute"])
    per_minute = 60.0 / float(stats.get("interval_s") or 60.0)
    times = pd.to_datetime([p["t"] for p in points], unit="s")
    return pd.concat([
        pd.DataFrame({"time": times, "kind": kind,
                      "per_minute": [p.get(field, 0) * per_minute for p in points]})
        for kind, field in (("requests", "requests"), ("errors", "errors"))
    ])


def _line_spec(y: str, color: str, mark: str) -> dict[str, Any]:
    # A Vega-Lite spec by hand: st.line_chart builds it through Altair, which took 230 ms of
    # each refresh; this takes about 10.
    return {
        "mark": {"type": mark, "interpolate": "step-after", "tooltip": True},
        "encoding": {
            # Whole seconds: right after start-up the default picks millisecond ticks.
            "x": {"field": "time", "type": "temporal", "title": None,
                  "axis": {"format": "%H:%M:%S", "tickCount": 5}},
            # Counts are whole numbers; without this an all-zero series shows "0.000000".
            "y": {"field": y, "type": "quantitative", "title": None,
                  "axis": {"format": "d", "tickMinStep": 1}},
            "color": {"field": color, "type": "nominal", "title": None,
                      "legend": {"orient": "bottom", "columns": 2, "labelLimit": 260}},
        },
    }


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
            st.vega_lite_chart(queues, _line_spec("queue", "worker", "line"), height=220,
                               width="stretch")
    with right:
        st.markdown(f"**{t('rate_chart', lg)}**")
        if rates.empty:
            st.caption(t("no_stats", lg))
        else:
            st.vega_lite_chart(rates, _line_spec("per_minute", "kind", "line"), height=220,
                               width="stretch")


def _dashboard(controller_url: str, refresh_s: float) -> Snapshot:
    lg = lang()
    snapshot = poll(controller_url)
    if snapshot.error:
        st.error(snapshot.error, icon=":material/cloud_off:")
        return snapshot
    _health_banners(snapshot, lg)
    _metrics(snapshot, lg)
    if snapshot.workers:
        table = worker_table(snapshot, lg)
        late = late_workers(snapshot)
        if late:
            st.warning(t("late_workers", lg, n=len(late), addresses=_listed(late)),
                       icon=":material/schedule:")
        tripped = open_breakers(snapshot)
        if tripped:
            st.warning(t("open_breakers", lg, n=len(tripped), addresses=_listed(tripped)),
                       icon=":material/electrical_services:")
        st.dataframe(
            table, hide_index=True, width="stretch",
            height=min(38 + 35 * len(table), 420),
            column_config={
                t("col_status", lg): st.column_config.MultiselectColumn(
                    options=STATUSES, color=STATUS_COLORS
                ),
                t("col_breaker", lg): st.column_config.MultiselectColumn(
                    options=BREAKERS, color=BREAKER_COLORS
                ),
                # Short labels, the long meaning in the header's tooltip: the table then fits
                # the page at 1280 px without scrolling sideways.
                t("col_failures", lg): st.column_config.NumberColumn(
                    help=t("col_failures_help", lg)
                ),
                t("col_speed", lg): st.column_config.NumberColumn(format="%g"),
                t("col_heartbeat", lg): st.column_config.NumberColumn(
                    format="%.1f", help=t("col_heartbeat_help", lg)
                ),
            },
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
    _actions(ControllerClient(controller_url, token=boot.app_settings().controller_token), snapshot)


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
    st.caption(t("controller", lang(), url=controller_url))
    st.fragment(run_every=settings.admin_refresh_s)(_live)(
        controller_url, settings.admin_refresh_s
    )
