"""The chat page: model picker, conversation, streamed answers, images and boxes."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from webui import boot
from webui.boxes import draw_boxes, parse_boxes, strip_grounding
from webui.client import ControllerClient, ControllerError, ModelInfo
from webui.convlog import ConversationLog, message_record
from webui.generation import (
    BOUNDS,
    Message,
    build_params,
    clamp_options,
    images_in,
    last_image_before,
)
from webui.i18n import t
from webui.images import ACCEPTED_TYPES, ChatImage, ImageRejected, load_image
from webui.settings import AppSettings

# Redraw the streamed answer at most this often: every token would flood the websocket.
STREAM_REDRAW_S = 0.05
MODELS_TTL_S = 2.0
WAIT_POLL_S = 1.0
# While the controller is down (e.g. restarting): a refused connection costs nothing, and the
# page should be back soon after the controller is.
UNREACHABLE_POLL_S = 2.0
# Wide enough to read the labels, small enough to keep the conversation in view.
BOXED_IMAGE_WIDTH_PX = 560


def lang() -> str:
    return st.session_state.get("lang", "en")


@st.cache_data(ttl=MODELS_TTL_S, show_spinner=False)
def fetch_models(controller_url: str) -> tuple[list[ModelInfo], str | None]:
    """The models in the controller's order; cached briefly so reruns cost no extra call."""
    try:
        return ControllerClient(controller_url, timeout_s=2.0).models(), None
    except ControllerError as exc:
        return [], str(exc)


@st.cache_data(ttl=30, show_spinner=False)
def fetch_controller_limits(controller_url: str) -> dict[str, int]:
    """The prompt limits the controller enforces (empty when it does not say or is down)."""
    try:
        limits = ControllerClient(controller_url, timeout_s=2.0).health().get("limits", {})
    except ControllerError:
        return {}
    return {k: v for k, v in limits.items() if isinstance(v, int) and v > 0}


def effective_settings(settings: AppSettings, controller_limits: dict[str, int]) -> AppSettings:
    """The page's limits, lowered to the controller's where it is stricter.

    The controller refuses a prompt over its limits anyway; checking the same limits here
    says so before anything is uploaded or stored.
    """
    lowered = {
        name: min(getattr(settings, name), controller_limits[name])
        for name in ("max_image_bytes", "max_image_pixels", "max_prompt_chars")
        if name in controller_limits
    }
    return dataclasses.replace(settings, **lowered) if lowered else settings


def _conversation() -> list[Message]:
    if "chat_messages" not in st.session_state:
        st.session_state.chat_messages = []
        st.session_state.chat_id = uuid.uuid4().hex
    return st.session_state.chat_messages


def _clear() -> None:
    st.session_state.chat_messages = []
    st.session_state.chat_id = uuid.uuid4().hex


def _regenerate() -> None:
    messages = _conversation()
    if messages and messages[-1].role == "assistant":
        messages.pop()


def _wait_for_models(controller_url: str) -> None:
    """Poll while no model is served; rerun the page when the first one appears."""
    # Uncached: the cache would add up to its TTL to the wait for the first model.
    try:
        ready = bool(ControllerClient(controller_url, timeout_s=1.0).list_models())
    except ControllerError:
        ready = False
    if ready:
        fetch_models.clear()
        st.rerun()


def _sidebar(models: list[ModelInfo]) -> tuple[ModelInfo | None, str, dict[str, Any]]:
    lg = lang()
    with st.sidebar:
        names = [m.name for m in models]
        # The picker keeps its value across reruns by key, even when the options change; a
        # model that went away (or none while the list was empty) must not stay selected. The
        # one picked last comes back with its worker (e.g. after a controller restart).
        if names and st.session_state.get("chat_model") not in names:
            wanted = st.session_state.get("chat_model_wanted")
            st.session_state.chat_model = wanted if wanted in names else names[0]
        name = st.selectbox(t("model", lg), names, key="chat_model",
                            placeholder=t("no_models", lg))
        if name is not None:
            st.session_state.chat_model_wanted = name
        model = next((m for m in models if m.name == name), None)
        if model is not None:
            st.caption(t("takes_images", lg) if model.multimodal else t("text_only", lg))
        if st.button(t("refresh_models", lg), icon=":material/refresh:"):
            fetch_models.clear()
            st.rerun()
        system_prompt = st.text_area(
            t("system_prompt", lg), value=t("system_prompt_default", lg), key="system_prompt",
            height=80,
        )
        options: dict[str, Any] = {}
        with st.expander(t("advanced", lg)):
            for option, bound in BOUNDS.items():
                is_int = float(bound.step).is_integer() and bound.step >= 1
                cast = int if is_int else float
                options[option] = st.slider(
                    t(option, lg), cast(bound.low), cast(bound.high), cast(bound.default),
                    cast(bound.step), key=f"opt_{option}",
                )
    return model, system_prompt, clamp_options(options)


def _render_assistant(messages: list[Message], index: int) -> None:
    message = messages[index]
    lg = lang()
    boxes = parse_boxes(message.content)
    shown = strip_grounding(message.content) if boxes else message.content
    if shown:
        st.markdown(shown)
    image = last_image_before(messages, index)
    if boxes and image is not None:
        labels = ", ".join(dict.fromkeys(b.label for b in boxes if b.label))
        st.image(draw_boxes(image.data, boxes), caption=t("boxes_caption", lg, labels=labels),
                 width=BOXED_IMAGE_WIDTH_PX)
    if message.error:
        st.error(t("answer_error", lg, error=message.error), icon=":material/error:")
    elif message.stopped:
        st.caption(t("stopped", lg))


def _render_history(messages: list[Message]) -> None:
    for index, message in enumerate(messages):
        with st.chat_message(message.role):
            if message.role == "assistant":
                _render_assistant(messages, index)
            else:
                if message.images:
                    st.image([image.data for image in message.images],
                             caption=[image.original_name for image in message.images], width=200)
                if message.content:
                    st.markdown(message.content)


def _accept_images(files: list[Any], messages: list[Message], settings: AppSettings,
                   log: ConversationLog, problems: list[str]) -> list[ChatImage]:
    """The uploads within the limits, saved; what was refused and why goes to `problems`."""
    lg = lang()
    room = max(0, settings.max_images - images_in(messages))
    accepted: list[ChatImage] = []
    for upload in files[:room]:
        try:
            image = load_image(upload.getvalue(), upload.name,
                               max_bytes=settings.max_image_bytes,
                               max_pixels=settings.max_image_pixels)
        except ImageRejected as exc:
            problems.append(t("image_rejected", lg, error=exc))
            continue
        log.save_image(image)
        accepted.append(image)
    if len(files) > room:
        names = ", ".join(f.name for f in files[room:])
        problems.append(t("too_many_images", lg, n=settings.max_images, names=names))
    return accepted


def _text_problem(text: str, system_prompt: str, messages: list[Message],
                  max_chars: int) -> str | None:
    """Why a message cannot be sent for its length, counted as the controller counts it."""
    lg = lang()
    if len(text) > max_chars:
        return t("message_too_long", lg, n=len(text), limit=max_chars)
    total = len(system_prompt.strip()) + sum(len(m.content) for m in messages) + len(text)
    if total > max_chars:
        return t("conversation_too_long", lg, n=total, limit=max_chars)
    return None


@dataclass
class _Stream:
    """An answer being streamed by one script run; a later run may have to finish it.

    With `runner.fastReruns`, a click (Stop, a new message) starts the next run at once while
    the streaming run only stops at its next frame; the next run must neither start the same
    answer again nor render the conversation without the partial answer.
    """

    messages: list[Message]
    model: str
    system_prompt: str
    options: dict[str, Any]
    conversation_id: str | None
    text: str = ""
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False

    def finish(self, log: ConversationLog, *, stopped: bool) -> bool:
        """Append the answer and log the turn, once; False when another run already did."""
        with self.lock:
            if self.done:
                return False
            self.done = True
        self.messages.append(Message("assistant", self.text, error=self.error, stopped=stopped))
        answer = self.messages[-1]
        record = {
            "conversation_id": self.conversation_id,
            "model": self.model,
            "system_prompt": self.system_prompt,
            "params": self.options,
            "messages": [message_record(m.role, m.content, m.images) for m in self.messages],
            "finish": "error" if answer.error else "stopped" if answer.stopped else "stop",
        }
        if answer.error:
            record["error"] = answer.error
        log.append_turn(record)
        return True


def _take_over_interrupted_stream(log: ConversationLog) -> None:
    """Finish, as stopped, an answer a previous run of this session is still streaming."""
    stream = st.session_state.pop("chat_stream", None)
    if stream is not None:
        stream.cancel.set()
        stream.finish(log, stopped=True)


def _stream_answer(client: ControllerClient, model: ModelInfo, system_prompt: str,
                   options: dict[str, Any], log: ConversationLog) -> None:
    messages = _conversation()
    lg = lang()
    params = build_params(model.name, system_prompt, messages, options,
                          send_images=model.multimodal)
    stream = _Stream(messages, model.name, system_prompt, options,
                     st.session_state.get("chat_id"))
    st.session_state.chat_stream = stream
    with st.chat_message("assistant"):
        # Clicking Stop starts a new run, which takes the partial answer over (see _Stream).
        stop_slot = st.empty()
        stop_slot.button(t("stop", lg), icon=":material/stop_circle:", key="stop")
        body = st.empty()
        completed = False
        try:
            redrawn_at = 0.0
            for frame in client.generate_stream(params):
                if stream.cancel.is_set():
                    break
                if frame.get("error_code", 0):
                    stream.error = str(frame.get("text") or f"error code {frame['error_code']}")
                    break
                stream.text = str(frame.get("text", stream.text))
                now = time.monotonic()
                if now - redrawn_at >= STREAM_REDRAW_S:
                    body.markdown(stream.text + " ▌")
                    redrawn_at = now
            completed = not stream.cancel.is_set()
        finally:
            finished_here = stream.finish(log, stopped=not completed)
            if st.session_state.get("chat_stream") is stream:
                del st.session_state["chat_stream"]
        if finished_here:
            stop_slot.empty()
            with body.container():
                _render_assistant(messages, len(messages) - 1)


def render() -> None:
    """The whole chat page."""
    lg = lang()
    controller_url = boot.controller_url()
    settings = effective_settings(boot.app_settings(), fetch_controller_limits(controller_url))
    client = ControllerClient(controller_url)
    log = ConversationLog(settings.log_dir)
    messages = _conversation()
    _take_over_interrupted_stream(log)

    models, error = fetch_models(controller_url)
    model, system_prompt, options = _sidebar(models)

    if error:
        # The conversation stays in the session; the poll below brings the page back by itself.
        st.warning(t("controller_unreachable", lg, url=controller_url),
                   icon=":material/cloud_off:")
        st.caption(error)
    if not models:
        st.info(t("no_models", lg), icon=":material/hourglass_empty:")
        runtime = boot.current_runtime()
        if runtime is not None and any(w.state == "starting" for w in runtime.workers):
            st.caption(t("no_models_loading", lg))
        st.markdown(t("no_models_howto", lg))
        st.code(
            f"python -m worker --backend simulated --controller-address {controller_url} "
            "--port 21002 --worker-address http://127.0.0.1:21002",
            language="bash",
        )
        # Every second while a worker is loading; rarely while the controller does not answer.
        poll_s = WAIT_POLL_S if error is None else UNREACHABLE_POLL_S
        st.fragment(run_every=poll_s)(_wait_for_models)(controller_url)

    takes_images = model is not None and model.multimodal
    placeholder = (
        t("chat_placeholder_images", lg, n=settings.max_images) if takes_images
        else t("chat_placeholder", lg) if model is not None
        else t("waiting_for_controller", lg) if error
        else t("pick_model_first", lg)
    )
    # The input is pinned to the bottom wherever it is called; reading it first lets the new
    # message render in order with the history.
    submitted = st.chat_input(
        placeholder,
        key="chat_input",
        accept_file="multiple" if takes_images else False,
        file_type=list(ACCEPTED_TYPES) if takes_images else None,
        disabled=model is None,
    )
    problems: list[str] = []
    refused: str | None = None
    if submitted is not None and model is not None:
        text = (submitted if isinstance(submitted, str) else submitted.text).strip()
        files = [] if isinstance(submitted, str) else list(submitted.files)
        # Length first: a message that cannot be sent must not store its images either.
        refused = _text_problem(text, system_prompt, messages, settings.max_prompt_chars)
        if refused is None:
            images = _accept_images(files, messages, settings, log, problems) if files else []
            if text or images:
                messages.append(Message("user", text, images))

    _render_history(messages)
    # Below the conversation, next to the input the user is looking at.
    if refused:
        st.error(refused, icon=":material/block:")
    for problem in problems:
        st.warning(problem, icon=":material/warning:")
    if model is not None and not model.multimodal and images_in(messages):
        st.caption(t("images_ignored", lg, model=model.name))
    if model is not None and messages and messages[-1].role == "user":
        _stream_answer(client, model, system_prompt, options, log)
    if messages:
        left, right, _ = st.columns([1, 1, 3])
        left.button(t("regenerate", lg), icon=":material/refresh:", on_click=_regenerate,
                    disabled=model is None or messages[-1].role != "assistant",
                    width="stretch")
        right.button(t("clear", lg), icon=":material/delete:", on_click=_clear,
                     width="stretch")
